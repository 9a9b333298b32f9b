"""Checks before a grid claims its results directory: everything a Trainer grid reads, without loading a model.

`check_trainer_inputs` reads every data file the cells need (evaluation splits, source train
splits, n-shot pools of the largest n), checks the pre-trained checkpoint's files and config
and that the vocabulary loads. All problems are collected and raised together as one
`jaxlt.errors.UserError` (DataError or CheckpointError), so `jaxlt grid` and `jaxlt grid
--dry_run` stop with one line and exit status 2 before `grid.json` is written.
"""

from __future__ import annotations

import json
import logging
import os
import re

from jaxlt.errors import CheckpointError, DataError, UserError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _message(e: BaseException) -> str:
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text ({e.reason} at byte {e.start})"
    text = " ".join(str(e).split())
    return text if isinstance(e, (UserError, OSError)) else f"{type(e).__name__}: {text}"


def check_pretrained(pretrained: str, vocabulary: str = "") -> list[str]:
    """Problems with the pre-trained checkpoint and vocabulary (empty list: all good)."""
    problems = []
    spm_source = vocabulary
    if pretrained.startswith("init:"):
        from jaxlt.model.config import get_config

        try:
            get_config(pretrained[len("init:"):])
        except (KeyError, ValueError) as e:
            problems.append(f"pretrained {pretrained!r}: {_message(e)}")
        if not spm_source:
            from jaxlt.data.tasks import TINY_VOCABULARY

            spm_source = TINY_VOCABULARY
    else:
        path = os.path.expanduser(pretrained)
        if os.path.isdir(path):
            problems += _check_checkpoint_dir(path)
            spm_source = spm_source or path
        elif _HUB_ID.match(pretrained) and not os.path.exists(path):
            spm_source = spm_source or None  # fetched from the hub when the executor starts
        else:
            problems.append(f"pretrained checkpoint {pretrained!r} does not exist (a checkpoint directory, a "
                            "Hugging Face hub id, or init:CONFIG_NAME)")
            spm_source = spm_source or None
    if spm_source:
        try:
            import sentencepiece as spm

            from jaxlt.data.vocabulary import find_sentencepiece_model

            spm.SentencePieceProcessor(model_file=find_sentencepiece_model(spm_source))
        except (OSError, RuntimeError, ValueError) as e:
            problems.append(f"vocabulary {spm_source}: {_message(e)}")
    return problems


def _check_checkpoint_dir(path: str) -> list[str]:
    from jaxlt.train.checkpointing import MARKER, read_config

    if os.path.isfile(os.path.join(path, MARKER)):
        try:
            read_config(path)
        except (OSError, ValueError, KeyError) as e:
            return [f"pretrained jaxlt checkpoint {path}: {_message(e)}"]
        if not any(name.isdigit() for name in os.listdir(path)):
            return [f"pretrained jaxlt checkpoint {path} has no checkpoint steps"]
        return []
    from jaxlt.model.hf_io import CONFIG_FILE, find_weight_file

    problems = []
    try:
        with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as f:
            json.load(f)
    except (OSError, ValueError) as e:
        problems.append(f"pretrained checkpoint {path}: {CONFIG_FILE} unreadable ({_message(e)})")
    try:
        find_weight_file(path)
    except (OSError, ValueError) as e:
        problems.append(f"pretrained checkpoint: {_message(e)}")
    return problems


def check_data(settings, cells, data_dir: str | None) -> list[str]:
    """Problems with the data the cells read: evaluation splits, source train splits, n-shot pools.

    Local data only (a data directory, or a dataset declared with its own): data that comes from
    the Hugging Face hub is read when the executor starts (checking it would mean downloading it)."""
    from jaxlt.data import sampling, sources
    from jaxlt.data.examples import load_examples

    problems = []

    def local(task: str) -> bool:
        try:
            return bool(data_dir or sources.get_data_dir(None) or sources.get_spec(task).data_dir)
        except KeyError:  # an unknown task is named by the spec validation
            return False

    cells = [c for c in cells if local(c.task)]

    def attempt(what: str, fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except (UserError, OSError, ValueError, KeyError, UnicodeDecodeError) as e:
            problems.append(f"{what}: {_message(e)}")

    split_for = getattr(settings, "eval_split_for", lambda task: settings.eval_split)
    for task, target in sorted({(c.task, c.target) for c in cells}):
        attempt(f"{task}.{target} evaluation data", load_examples, task, target, split_for(task), data_dir)
    # Source runs (zero-shot, sequential) and joint cells read the source's train split.
    for task, source in sorted({(c.task, c.source) for c in cells}):
        attempt(f"{task}.{source} source training data", load_examples, task, source, "train", data_dir)
    largest: dict[tuple, int] = {}
    for c in cells:
        if not c.zero_shot:
            key = (c.task, c.target, c.seed, c.sampling or "random")
            largest[key] = max(largest.get(key, 0), c.n)
    for (task, target, seed, how), n in sorted(largest.items()):
        attempt(f"{task}.{target} n-shot pool (n={n})", sampling.nshot_examples, task, target, n, seed, how,
                data_dir=data_dir)
    return problems


def check_trainer_inputs(settings, cells, data_dir: str | None) -> None:
    """Raises one UserError listing every problem (data first, then the checkpoint and vocabulary)."""
    data_log = logging.getLogger("jaxlt.data")  # one line per file read would drown the run's own lines
    level = data_log.level
    data_log.setLevel(max(level, logging.WARNING))
    try:
        data = check_data(settings, cells, data_dir) if cells else []
    finally:
        data_log.setLevel(level)
    model = settings.model if hasattr(settings, "model") and not isinstance(settings.model, str) else None
    pretrained = model.pretrained if model is not None else settings.pretrained
    vocabulary = model.vocabulary if model is not None else settings.vocabulary
    checkpoint = check_pretrained(pretrained, vocabulary)
    if not data and not checkpoint:
        return
    problems = data + checkpoint
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    cls = DataError if data else CheckpointError
    raise cls("; ".join(problems[:3]) + more,
              hint="fix these before the grid starts (jaxlt grid --dry_run runs the same checks)")
