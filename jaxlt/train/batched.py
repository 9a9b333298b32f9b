"""The one prediction and scoring path: token ids in, through a `Trainer`'s compiled functions.

`jaxlt predict`, `jaxlt score`, `jaxlt evaluate` (and evaluation during training), the grid's
evaluation and the model features (`jaxlt features model`: `encode_mean_ids` for EMB, `score_ids`
with weights for LM_L, `predict_ids` for LM_EM) all call these functions. Inputs are grouped by length into a few
buckets (powers of two by default) and batched at a fixed size, so a whole file or many
languages run through a handful of compiled functions; inputs longer than the largest bucket
are truncated keeping their final token (EOS) and counted. Results come back in input order.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

log = logging.getLogger(__name__)


def power_of_two_buckets(max_length: int | None = None, minimum: int = 8) -> tuple[int, ...] | None:
    """(8, 16, ..., max_length rounded up); None without a maximum (any length, rounded up)."""
    if max_length is None:
        return None
    out, length = [], minimum
    while length < max_length:
        out.append(length)
        length *= 2
    return tuple(out + [length])


def bucket_length(n: int, buckets: Sequence[int] | None, minimum: int = 8) -> int:
    """The smallest bucket >= n (the largest one if none is); powers of two when `buckets` is None."""
    if buckets is None:
        length = minimum
        while length < n:
            length *= 2
        return length
    for b in buckets:
        if n <= b:
            return b
    return buckets[-1]


def truncate(ids: Sequence[int], length: int) -> list[int]:
    """At most `length` ids, keeping the last one (EOS)."""
    ids = list(ids)
    return ids if len(ids) <= length else ids[:length - 1] + ids[-1:]


def strip_after_eos(ids, eos_id: int) -> list[int]:
    """Generated ids before the first EOS (everything after it is padding)."""
    ids = [int(t) for t in ids]
    return ids[:ids.index(eos_id)] if eos_id in ids else ids


def _groups(lengths: Sequence[int], buckets, batch_size: int):
    """(bucket length, indices) batches, indices in input order within a bucket."""
    by_bucket: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_bucket.setdefault(bucket_length(n, buckets), []).append(i)
    for length in sorted(by_bucket):
        idx = by_bucket[length]
        for start in range(0, len(idx), batch_size):
            yield length, idx[start:start + batch_size]


def _pad(rows: Sequence[Sequence[int]], length: int, dtype=np.int32) -> np.ndarray:
    out = np.zeros((len(rows), length), dtype)
    for r, ids in enumerate(rows):
        out[r, :len(ids)] = ids
    return out


def _warn_truncated(truncated: int, total: int, largest) -> None:
    if truncated:
        log.warning("%d of %d inputs are longer than the largest bucket (%s tokens) and were truncated",
                    truncated, total, largest)


def predict_ids(trainer, params, inputs: Sequence[Sequence[int]], max_decode_length: int, *,
                batch_size: int | None = None, buckets: Sequence[int] | None = None, progress: bool = False,
                desc: str = "predict") -> tuple[list[list[int]], int]:
    """Greedy decoding of every input (token ids ending in EOS) -> (generated ids before EOS, in
    input order; the number of truncated inputs)."""
    from tqdm.auto import tqdm

    batch_size = batch_size or trainer.batch_size
    eos = trainer.config.eos_token_id
    out: list[list[int] | None] = [None] * len(inputs)
    truncated = 0
    with tqdm(total=len(inputs), desc=desc, unit="ex", disable=not progress) as bar:
        for length, idx in _groups([len(x) for x in inputs], buckets, batch_size):
            rows = [truncate(inputs[i], length) for i in idx]
            truncated += sum(len(inputs[i]) > length for i in idx)
            tokens = trainer.predict(params, _pad(rows, length), max_decode_length)
            for r, i in enumerate(idx):
                out[i] = strip_after_eos(tokens[r], eos)
            bar.update(len(idx))
    _warn_truncated(truncated, len(inputs), buckets[-1] if buckets else None)
    return out, truncated


def score_ids(trainer, params, inputs: Sequence[Sequence[int]], targets: Sequence[Sequence[int]], *,
              weights: Sequence[Sequence[float]] | None = None, batch_size: int | None = None,
              buckets: Sequence[int] | None = None, progress: bool = False,
              desc: str = "score") -> tuple[list[float], int]:
    """Teacher-forced log-likelihood (natural log, summed over the target ids, or over the target
    positions whose `weights` entry is nonzero, weighted by it) of each target given its input ->
    (scores in input order; the number of truncated inputs). Targets are never cut."""
    from tqdm.auto import tqdm

    if len(inputs) != len(targets) or weights is not None and len(weights) != len(targets):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets"
                         + ("" if weights is None else f" and {len(weights)} weight rows"))
    if weights is not None:
        bad = [i for i, (t, w) in enumerate(zip(targets, weights)) if len(t) != len(w)]
        if bad:
            raise ValueError(f"target {bad[0]} has {len(targets[bad[0]])} ids but {len(weights[bad[0]])} weights")
    batch_size = batch_size or trainer.batch_size
    out = [math.nan] * len(inputs)
    truncated = 0
    with tqdm(total=len(inputs), desc=desc, unit="ex", disable=not progress) as bar:
        for length, idx in _groups([len(x) for x in inputs], buckets, batch_size):
            enc = _pad([truncate(inputs[i], length) for i in idx], length)
            truncated += sum(len(inputs[i]) > length for i in idx)
            width = bucket_length(max(len(targets[i]) for i in idx), None)
            extra = () if weights is None else (_pad([weights[i] for i in idx], width, np.float32),)
            scores = trainer.score(params, enc, _pad([targets[i] for i in idx], width), *extra)
            for r, i in enumerate(idx):
                out[i] = float(scores[r])
            bar.update(len(idx))
    _warn_truncated(truncated, len(inputs), buckets[-1] if buckets else None)
    return out, truncated


def encode_mean_ids(trainer, params, inputs: Sequence[Sequence[int]], *, batch_size: int | None = None,
                    buckets: Sequence[int] | None = None, progress: bool = False,
                    desc: str = "encode") -> tuple[np.ndarray, int]:
    """Mean over the non-pad positions of the final encoder states of each input -> (float32
    [len(inputs), d_model] in input order; the number of truncated inputs). Padding to a bucket
    does not change a row: padded positions are masked in attention and left out of the mean."""
    from tqdm.auto import tqdm

    batch_size = batch_size or trainer.batch_size
    out = np.zeros((len(inputs), trainer.config.d_model), np.float32)
    truncated = 0
    with tqdm(total=len(inputs), desc=desc, unit="ex", disable=not progress) as bar:
        for length, idx in _groups([len(x) for x in inputs], buckets, batch_size):
            truncated += sum(len(inputs[i]) > length for i in idx)
            out[idx] = trainer.encode_mean(params, _pad([truncate(inputs[i], length) for i in idx], length))
            bar.update(len(idx))
    _warn_truncated(truncated, len(inputs), buckets[-1] if buckets else None)
    return out, truncated


def buckets_up_to(max_length: int, minimum: int = 8) -> tuple[int, ...]:
    """Powers of two below `max_length`, then `max_length` itself (the largest bucket is exact)."""
    return tuple(b for b in power_of_two_buckets(max_length, minimum) if b < max_length) + (int(max_length),)


def inference_trainer(config, batch_size: int, *, mesh=None, rules=None, compiler_options=None):
    """A Trainer used only to predict and score (its optimizer is never built into a step): on a
    data-parallel mesh over as many devices as divide `batch_size` unless a mesh is given."""
    import jax

    from jaxlt import partitioning
    from jaxlt.train.engine import Trainer

    if mesh is None:
        mesh = partitioning.create_mesh((math.gcd(int(batch_size), jax.device_count()), 1))
    return Trainer(config, batch_size=batch_size, feature_lengths={"inputs": 8, "targets": 8}, mesh=mesh,
                   rules=rules, compiler_options=compiler_options)
