"""Evaluation: batched greedy decoding (or rank classification) over a task split, seqio metrics.

Decoding and scoring go through `jaxlt.train.batched` (the path `jaxlt predict`/`score` and the
grid use): inputs are padded to a few fixed lengths (`buckets`) and batches to a fixed size, so
evaluating many languages reuses a handful of compiled functions.
Every prediction is returned (and written by `write_evaluation`) next to the
metrics, so any number can be audited.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence

import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
import numpy as np
import seqio

from jaxlt import atomic
from jaxlt.train.batched import predict_ids, score_ids

log = logging.getLogger(__name__)

DEFAULT_BUCKETS = (32, 64, 128, 256, 512, 1024)


def _text(x) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def _tokens_to_text(vocabulary, tokens: np.ndarray, eos_id: int) -> str:
    ids = [int(t) for t in tokens]
    if eos_id in ids:
        ids = ids[:ids.index(eos_id)]
    return vocabulary.decode([t for t in ids if t != 0])


def load_examples(task_name: str, split: str, max_examples: int | None = None) -> list[dict]:
    """The task's preprocessed (tokenized, EOS-appended) examples in order, as numpy dicts."""
    task = seqio.get_mixture_or_task(task_name)
    ds = task.get_dataset(sequence_length=None, split=split, shuffle=False, num_epochs=1, use_cached=False)
    if max_examples is not None:
        ds = ds.take(max_examples)
    return list(ds.as_numpy_iterator())


def evaluate_task(trainer, params, task_name: str, split: str, *, vocabulary=None, batch_size: int,
                  max_decode_length: int, rank_classification: bool = False,
                  label_strings: Sequence[str] | None = None, buckets: Sequence[int] | None = None,
                  max_examples: int | None = None, progress: bool = False) -> tuple[dict, list[dict]]:
    """Decodes (or rank-classifies) every example of `task_name`/`split` and applies its metric_fns.

    rank_classification scores each label string (default: the distinct targets
    of the split) and predicts the likeliest: faster than decoding, never malformed.
    Returns (metrics, predictions); predictions hold index, input, target and
    prediction (raw and postprocessed) for every example.
    """

    task = seqio.get_mixture_or_task(task_name)
    if vocabulary is None:
        vocabulary = task.output_features["targets"].vocabulary
    buckets = tuple(sorted(buckets or [b for b in DEFAULT_BUCKETS if b <= max(trainer.lengths["inputs"], 32)]))
    examples = load_examples(task_name, split, max_examples)
    if not examples:
        raise ValueError(f"task {task_name!r} split {split!r} has no examples")
    eos = trainer.config.eos_token_id
    inputs = [[int(t) for t in ex["inputs"]] for ex in examples]
    if rank_classification:
        labels = list(label_strings) if label_strings is not None else sorted(
            {_text(ex.get("targets_pretokenized", b"")) or _tokens_to_text(vocabulary, ex["targets"], eos)
             for ex in examples})
        label_ids = [list(vocabulary.encode(l)) + [eos] for l in labels]
        # One scoring pass per label over the whole split (the shared scoring path).
        scores = []
        for ids in label_ids:
            ll, truncated = score_ids(trainer, params, inputs, [ids] * len(inputs), batch_size=batch_size,
                                      buckets=buckets, progress=progress, desc=f"rank {task_name}")
            scores.append(ll)
        best = np.argmax(np.array(scores), axis=0)
        raw = [labels[int(j)] for j in best]
    else:
        generated, truncated = predict_ids(trainer, params, inputs, max_decode_length, batch_size=batch_size,
                                           buckets=buckets, progress=progress, desc=f"eval {task_name}")
        raw = [vocabulary.decode([t for t in ids if t != 0]) for ids in generated]

    predictions, targets, outputs = [], [], []
    for i, ex in enumerate(examples):
        target_text = (_text(ex["targets_pretokenized"]) if "targets_pretokenized" in ex
                       else _tokens_to_text(vocabulary, ex["targets"], eos))
        target = task.postprocess_fn(target_text, example=ex, is_target=True)
        output = task.postprocess_fn(raw[i], example=ex, is_target=False)
        targets.append(target)
        outputs.append(output)
        predictions.append({
            "index": i,
            "input": _text(ex["inputs_pretokenized"]) if "inputs_pretokenized" in ex
            else vocabulary.decode([int(t) for t in ex["inputs"] if t not in (0, eos)]),
            "target": _jsonable(target), "prediction_raw": raw[i], "prediction": _jsonable(output)})
    metrics: dict = {}
    metric_fns = list(task.predict_metric_fns)
    if not metric_fns:
        raise ValueError(f"task {task_name!r} has no predict metric_fns to evaluate with")
    for fn in metric_fns:
        metrics.update({k: float(v) for k, v in fn(targets, outputs).items()})
    metrics["num_examples"] = len(examples)
    metrics["num_truncated"] = int(truncated)
    return metrics, predictions


def _jsonable(x):
    if isinstance(x, bytes):
        return x.decode("utf-8")
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, np.generic):
        return x.item()
    return x


def write_evaluation(out_dir: str, task_name: str, split: str, metrics: dict, predictions: list[dict],
                     step: int | None = None, extra: dict | None = None) -> tuple[str, str]:
    """Writes `{task}.{split}.metrics.json` and `{task}.{split}.predictions.jsonl` (atomically)."""
    stem = os.path.join(out_dir, f"{task_name}.{split}")
    record = {"task": task_name, "split": split, "step": step, "metrics": metrics, **(extra or {})}
    atomic.write_text(stem + ".predictions.jsonl",
                  "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in predictions))
    atomic.write_text(stem + ".metrics.json", json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return stem + ".metrics.json", stem + ".predictions.jsonl"
