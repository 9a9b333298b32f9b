"""Batch prediction and scoring of JSONL records with a loaded checkpoint (used by `jaxlt predict`/`score`).

Texts are tokenised with the checkpoint's SentencePiece model and end with EOS (as in mT5
pre-training and fine-tuning); prediction and scoring go through `jaxlt.train.batched`, the one
path shared with `jaxlt evaluate` and the grid (fixed batch size, bucketed lengths, so a whole
file runs through a handful of compiled functions).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable

from jaxlt import atomic, errors, jsonl

log = logging.getLogger(__name__)


class InputError(errors.DataError):
    """A bad input record: names the file and line."""


def read_jsonl(path: str, required: tuple[str, ...]) -> list[dict]:
    """Records of a JSONL file; every line must be an object with string fields `required`."""
    if not os.path.isfile(path):
        raise InputError(f"no such input file: {path}")
    records = []
    for lineno, line in jsonl.iter_lines(path, InputError):
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


def predict_records(loaded, records: list[dict], *, batch_size: int = 16, max_decode_length: int = 64,
                    max_input_length: int | None = None, progress: bool = True, trainer=None) -> list[dict]:
    """Adds "prediction" (text) and "prediction_ids" (ids without EOS/padding) to each record.

    Runs through `jaxlt.train.batched.predict_ids`, the path `jaxlt evaluate` and the grid use
    (`trainer`: an existing one for `loaded.config`; default a data-parallel inference Trainer)."""
    from jaxlt.train.batched import inference_trainer, predict_ids

    config, vocab = loaded.config, loaded.vocabulary
    inputs = tokenize(vocab, [r["inputs"] for r in records], config.eos_token_id, max_input_length)
    trainer = trainer or inference_trainer(config, batch_size)
    params = trainer.place_params(loaded.params)
    generated, _ = predict_ids(trainer, params, inputs, max_decode_length, batch_size=batch_size,
                               progress=progress)
    out = [dict(r) for r in records]
    for record, ids in zip(out, generated):
        record["prediction"] = vocab.decode(ids)
        record["prediction_ids"] = ids
    return out


def score_records(loaded, records: list[dict], *, batch_size: int = 16, max_input_length: int | None = None,
                  progress: bool = True, trainer=None) -> list[dict]:
    """Adds "log_likelihood" (natural-log sum over target tokens incl. EOS) and "num_tokens".

    Runs through `jaxlt.train.batched.score_ids`, the path rank classification uses."""
    from jaxlt.train.batched import inference_trainer, score_ids

    config, vocab = loaded.config, loaded.vocabulary
    inputs = tokenize(vocab, [r["inputs"] for r in records], config.eos_token_id, max_input_length)
    targets = tokenize(vocab, [r["targets"] for r in records], config.eos_token_id, None, what="targets")
    trainer = trainer or inference_trainer(config, batch_size)
    params = trainer.place_params(loaded.params)
    scores, _ = score_ids(trainer, params, inputs, targets, batch_size=batch_size, progress=progress)
    out = [dict(r) for r in records]
    for record, ll, tgt in zip(out, scores, targets):
        record["log_likelihood"] = ll
        record["num_tokens"] = len(tgt)
    return out
