"""Batch prediction and scoring of JSONL records with a loaded checkpoint (used by `jaxlt predict`/`score`).

Texts are tokenised with the checkpoint's SentencePiece model and end with EOS (as in mT5
pre-training and fine-tuning). Batches have a fixed size and lengths are rounded up to a
few buckets, so a whole file runs through a handful of compiled functions.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator

import numpy as np

from jaxlt import atomic, errors

log = logging.getLogger(__name__)


class InputError(errors.DataError):
    """A bad input record: names the file and line."""


def read_jsonl(path: str, required: tuple[str, ...]) -> list[dict]:
    """Records of a JSONL file; every line must be an object with string fields `required`."""
    if not os.path.isfile(path):
        raise InputError(f"no such input file: {path}")
    records = []
    with open(path, "rb") as f:  # decoded line by line, so a non-UTF-8 byte is reported with its line
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"{path}:{lineno}: not UTF-8 text ({e.reason} at byte {e.start} of the line); "
                                 "convert the file to UTF-8") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}:{lineno}: invalid JSON: {e.msg}") from e
            if not isinstance(record, dict):
                raise InputError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            for key in required:
                if key not in record:
                    raise InputError(f"{path}:{lineno}: missing field {key!r} (fields: {', '.join(record) or 'none'})")
                if not isinstance(record[key], str):
                    raise InputError(f"{path}:{lineno}: field {key!r} must be a string, "
                                     f"got {type(record[key]).__name__}")
            records.append(record)
    return records


def write_jsonl_atomic(path: str, records: Iterable[dict]) -> None:
    """Writes all records to a temp file beside `path`, then renames it into place."""
    with atomic.atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def tokenize(vocabulary, texts: list[str], eos_id: int, max_length: int | None = None,
             what: str = "inputs") -> list[list[int]]:
    """Token ids + EOS per text; texts longer than `max_length` (EOS included) are truncated,
    keeping the EOS, and counted in the log."""
    out, truncated = [], 0
    for text in texts:
        ids = list(vocabulary.encode(text)) + [eos_id]
        if max_length is not None and len(ids) > max_length:
            ids = ids[:max_length - 1] + [eos_id]
            truncated += 1
        out.append(ids)
    if truncated:
        log.warning("%d of %d %s truncated to %d tokens", truncated, len(texts), what, max_length)
    return out


def bucket_length(n: int, minimum: int = 8) -> int:
    """Next power of two >= n (at least `minimum`): few distinct shapes, at most 2x padding."""
    length = minimum
    while length < n:
        length *= 2
    return length


def padded_batches(sequences: list[list[int]], batch_size: int, *others: list[list[int]]
                   ) -> Iterator[tuple[int, int, tuple[np.ndarray, ...]]]:
    """Yields (start, count, arrays) over fixed-size batches, each array zero-padded to a bucketed
    length; the last batch is filled with copies of its first row (dropped by the caller)."""
    for start in range(0, len(sequences), batch_size):
        count = min(batch_size, len(sequences) - start)
        arrays = []
        for seqs in (sequences, *others):
            chunk = seqs[start:start + count]
            chunk = chunk + [chunk[0]] * (batch_size - count)
            arr = np.zeros((batch_size, bucket_length(max(map(len, chunk)))), np.int32)
            for i, ids in enumerate(chunk):
                arr[i, :len(ids)] = ids
            arrays.append(arr)
        yield start, count, tuple(arrays)


def strip_after_eos(ids: np.ndarray, eos_id: int) -> list[int]:
    """Generated ids before the first EOS (everything after it is padding)."""
    ids = [int(t) for t in ids]
    return ids[:ids.index(eos_id)] if eos_id in ids else ids


def predict_records(loaded, records: list[dict], *, batch_size: int = 16, max_decode_length: int = 64,
                    max_input_length: int | None = None, progress: bool = True) -> list[dict]:
    """Adds "prediction" (text) and "prediction_ids" (ids without EOS/padding) to each record."""
    import jax
    from tqdm import tqdm

    from jaxlt.model.decoding import greedy_decode

    config, vocab = loaded.config, loaded.vocabulary
    inputs = tokenize(vocab, [r["inputs"] for r in records], config.eos_token_id, max_input_length)
    params = jax.device_put(loaded.params)
    out = [dict(r) for r in records]
    with tqdm(total=len(records), desc="predict", unit="ex", disable=not progress) as bar:
        for start, count, (enc,) in padded_batches(inputs, batch_size):
            tokens = np.asarray(greedy_decode(config, params, enc, max_decode_length))
            for i in range(count):
                ids = strip_after_eos(tokens[i], config.eos_token_id)
                out[start + i]["prediction"] = vocab.decode(ids)
                out[start + i]["prediction_ids"] = ids
            bar.update(count)
    return out


def score_records(loaded, records: list[dict], *, batch_size: int = 16, max_input_length: int | None = None,
                  progress: bool = True) -> list[dict]:
    """Adds "log_likelihood" (natural-log sum over target tokens incl. EOS) and "num_tokens"."""
    import jax
    from tqdm import tqdm

    from jaxlt.model.decoding import sequence_log_likelihood

    config, vocab = loaded.config, loaded.vocabulary
    inputs = tokenize(vocab, [r["inputs"] for r in records], config.eos_token_id, max_input_length)
    targets = tokenize(vocab, [r["targets"] for r in records], config.eos_token_id, None, what="targets")
    params = jax.device_put(loaded.params)
    out = [dict(r) for r in records]
    with tqdm(total=len(records), desc="score", unit="ex", disable=not progress) as bar:
        for start, count, (enc, tgt) in padded_batches(inputs, batch_size, targets):
            ll = np.asarray(sequence_log_likelihood(config, params, enc, tgt))
            for i in range(count):
                out[start + i]["log_likelihood"] = float(ll[i])
                out[start + i]["num_tokens"] = len(targets[start + i])
            bar.update(count)
    return out
