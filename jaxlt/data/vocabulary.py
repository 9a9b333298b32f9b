"""SentencePiece vocabularies, as seqio sees them.

mT5's `spiece.model` already contains its 100 sentinels (`<extra_id_0>` is the
last piece), so seqio's `extra_ids` is 0 and sentinel i has id `vocab_size - 1 - i`.
"""

from __future__ import annotations

import functools
import os

import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
import seqio

SPM_FILENAMES = ("spiece.model", "sentencepiece.model", "tokenizer.model")


def find_sentencepiece_model(path: str) -> str:
    """Returns the SentencePiece model file for a file path or a checkpoint directory."""
    if os.path.isfile(path):
        return path
    if os.path.isdir(path):
        for name in SPM_FILENAMES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        raise FileNotFoundError(
            f"{path} has no SentencePiece model: expected one of {', '.join(SPM_FILENAMES)}")
    raise FileNotFoundError(f"no such SentencePiece model file or directory: {path}")


@functools.lru_cache(maxsize=16)
def get_vocabulary(path: str, extra_ids: int = 0) -> seqio.SentencePieceVocabulary:
    """A seqio vocabulary for a `spiece.model` file or a directory holding one."""
    return seqio.SentencePieceVocabulary(find_sentencepiece_model(path), extra_ids=extra_ids)
