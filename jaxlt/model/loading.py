"""One entry point for inference checkpoints: a Hugging Face directory (or hub id) or a jaxlt checkpoint.

jaxlt checkpoints (orbax steps + `jaxlt_checkpoint.json`) are read by
`jaxlt.train.checkpointing`, imported only when needed.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, NamedTuple

from jaxlt.model import hf_io
from jaxlt.model.config import T5Config

log = logging.getLogger(__name__)

JAXLT_MARKER = "jaxlt_checkpoint.json"
SPM_FILENAMES = ("spiece.model", "sentencepiece.model", "tokenizer.model")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Files worth fetching from the hub for a T5 checkpoint (never the TF / Flax duplicates when
# safetensors exist: see _hub_download).
_HUB_PATTERNS = ["config.json", "spiece.model", "*.safetensors", "model.safetensors.index.json"]


class LoadedModel(NamedTuple):
    config: T5Config
    params: Any  # unboxed pytree
    vocabulary: Any  # seqio.SentencePieceVocabulary


def _hub_download(repo_id: str) -> str:
    """Local snapshot of a hub model (honours HF_HUB_OFFLINE: then only the local cache is used)."""
    from huggingface_hub import list_repo_files, snapshot_download

    try:
        files = set(list_repo_files(repo_id)) if not os.environ.get("HF_HUB_OFFLINE") else set()
    except Exception:  # offline or private: let snapshot_download explain
        files = set()
    patterns = list(_HUB_PATTERNS)
    if files and not any(f.endswith(".safetensors") for f in files):
        # google/mt5-* ship flax_model.msgpack and pytorch_model.bin: prefer the one that needs no torch.
        if "flax_model.msgpack" in files:
            patterns.append("flax_model.msgpack")
        else:
            patterns += ["pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"]
    return snapshot_download(repo_id, allow_patterns=patterns)


def _missing_parts(directory: str) -> list[str]:
    missing = []
    if not os.path.isfile(os.path.join(directory, hf_io.CONFIG_FILE)):
        missing.append(hf_io.CONFIG_FILE)
    if not any(os.path.isfile(os.path.join(directory, f)) for f in hf_io.WEIGHT_FILES):
        missing.append("model weights (one of " + ", ".join(hf_io.WEIGHT_FILES) + ")")
    if not any(os.path.isfile(os.path.join(directory, f)) for f in SPM_FILENAMES):
        missing.append("a SentencePiece tokenizer (one of " + ", ".join(SPM_FILENAMES) + ")")
    return missing


def resolve_checkpoint_path(path: str) -> str:
    """A local directory for `path`: itself, or a hub snapshot for an id such as google/mt5-base."""
    path = os.path.expanduser(str(path))
    if os.path.isdir(path):
        return path
    if _HUB_ID.match(path) and not os.path.exists(path):
        log.info("%s is not a local directory; fetching it from the Hugging Face hub", path)
        try:
            return _hub_download(path)
        except Exception as e:
            raise hf_io.CheckpointError(f"{path} is neither a local directory nor a downloadable hub model: "
                                        f"{type(e).__name__}: {e}") from e
    raise hf_io.CheckpointError(f"no such checkpoint directory: {path}")


def load_checkpoint(directory: str, step: int | None = None) -> LoadedModel:
    """(config, params, vocabulary) from a Hugging Face directory / hub id or a jaxlt checkpoint.

    `step` selects a step of a jaxlt checkpoint (default: its best, else latest) and is an error
    for a Hugging Face directory, which has only one set of weights.
    """
    from jaxlt.data.vocabulary import get_vocabulary

    directory = resolve_checkpoint_path(directory)
    if os.path.isfile(os.path.join(directory, JAXLT_MARKER)):
        try:
            from jaxlt.train import checkpointing
        except ImportError as e:
            raise hf_io.CheckpointError(f"{directory} is a jaxlt checkpoint but jaxlt.train.checkpointing "
                                        f"cannot be imported: {e}") from e
        if checkpointing.is_jaxlt_checkpoint(directory):
            if not any(os.path.isfile(os.path.join(directory, f)) for f in SPM_FILENAMES):
                raise hf_io.CheckpointError(f"jaxlt checkpoint {directory} has no spiece.model")
            config, params = checkpointing.load_inference_params(directory, step)
            vocabulary = get_vocabulary(directory)
            _check_vocabulary(directory, config, vocabulary)
            return LoadedModel(config, params, vocabulary)
    if step is not None:
        raise hf_io.CheckpointError(f"{directory} is a Hugging Face checkpoint (a single set of weights); "
                                    f"step={step} applies only to jaxlt checkpoints")
    missing = _missing_parts(directory)
    if missing:
        raise hf_io.CheckpointError(f"{directory} is not a loadable checkpoint: missing " + "; ".join(missing))
    config, params = hf_io.load_hf_checkpoint(directory)
    vocabulary = get_vocabulary(directory)
    _check_vocabulary(directory, config, vocabulary)
    return LoadedModel(config, params, vocabulary)


def _check_vocabulary(directory: str, config: T5Config, vocabulary) -> None:
    if vocabulary.vocab_size > config.vocab_size:
        raise hf_io.CheckpointError(f"{directory}: the SentencePiece model has {vocabulary.vocab_size} pieces but "
                                    f"the model's vocab_size is {config.vocab_size}")
