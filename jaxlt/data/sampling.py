"""Deterministic subsets of training data: fixed-size source sets and nested n-shot target sets.

* `source_examples(dataset, lang, seed, size=None)`: `size` examples of the language's train split
  (default: the dataset's declared `source_size`, the paper's 100k XNLI, 10k NER, 2.2k QA).
* `nshot_examples(dataset, lang, k, seed, sampling="random")`: k examples of the train split,
  never an example whose inputs also occur in the language's evaluation splits, nested for a seed
  (the 10-shot set is the first 10 of the 30-shot set) whatever the strategy:
  random (seeded permutation), shortest or longest (by input length in characters; ties in
  seeded random order), optionally within `min_length` / `max_length` characters.

The order depends on the seed only, not on the language: for parallel data (XNLI and PAWS-X
train are translations) every language gets the same items, so languages compare like with like.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from jaxlt.data import sources
from jaxlt.data.examples import load_examples

logger = logging.getLogger(__name__)

SAMPLING_STRATEGIES = ("random", "shortest", "longest")
EVAL_SPLITS = ("validation", "test")


def default_source_size(dataset: str) -> int | None:
    """The paper's number of source examples for `dataset` (None: the whole train split)."""
    return sources.get_spec(dataset).source_size


def order(examples: Sequence[dict], seed: int, sampling: str = "random") -> list[int]:
    """Indices of `examples` in selection order; any prefix is the sample of that size."""
    if sampling not in SAMPLING_STRATEGIES:
        raise ValueError(f"unknown sampling {sampling!r}; choose from "
                         f"{', '.join(SAMPLING_STRATEGIES)}")
    permutation = np.random.default_rng(seed).permutation(len(examples))
    if sampling == "random":
        return [int(i) for i in permutation]
    rank = np.empty(len(examples), dtype=np.int64)
    rank[permutation] = np.arange(len(examples))
    lengths = np.array([len(ex["inputs"]) for ex in examples], dtype=np.int64)
    key = lengths if sampling == "shortest" else -lengths
    return [int(i) for i in np.lexsort((rank, key))]


def source_examples(dataset: str, lang: str, seed: int, size: int | None = None, *,
                    data_dir: str | None = None) -> list[dict]:
    """A seeded random sample of `size` train examples.

    An explicit `size` larger than the split is an error (both numbers given); the default
    (the dataset's `source_size`, None = all) is capped at the split size with a logged warning,
    so small splits (TyDiQA ko has 1.6k) and the tiny fixtures work with defaults.
    """
    pool = load_examples(dataset, lang, "train", data_dir)
    if size is None:
        size = default_source_size(dataset)
        if size is None:
            size = len(pool)
        elif size > len(pool):
            logger.warning("%s.%s: default source size %d capped at the train split's %d "
                           "examples", dataset, lang, size, len(pool))
            size = len(pool)
    if size > len(pool):
        raise ValueError(f"source size {size} is larger than the {dataset}.{lang} train split "
                         f"({len(pool)} examples)")
    return [pool[i] for i in order(pool, seed)[:size]]


def nshot_pool(dataset: str, lang: str, *, min_length: int | None = None,
               max_length: int | None = None, data_dir: str | None = None) -> list[dict]:
    """Train examples eligible for n-shot sets: not in the evaluation splits, within bounds."""
    train = load_examples(dataset, lang, "train", data_dir)
    evaluation = set()
    for split in sources.available_splits(dataset, lang, data_dir):
        if split in EVAL_SPLITS:
            evaluation.update(ex["inputs"] for ex in load_examples(dataset, lang, split, data_dir))
    pool = [ex for ex in train if ex["inputs"] not in evaluation]
    if len(pool) < len(train):
        logger.warning("%s.%s: %d train examples excluded from n-shot sampling because their "
                       "inputs occur in an evaluation split", dataset, lang, len(train) - len(pool))
    if min_length is not None or max_length is not None:
        lo, hi = min_length or 0, max_length if max_length is not None else float("inf")
        if lo > hi:
            raise ValueError(f"min_length {lo} is larger than max_length {hi}")
        kept = [ex for ex in pool if lo <= len(ex["inputs"]) <= hi]
        logger.info("%s.%s: %d of %d n-shot candidates outside length bounds [%s, %s] excluded",
                    dataset, lang, len(pool) - len(kept), len(pool), lo, hi)
        pool = kept
    return pool


def nshot_examples(dataset: str, lang: str, k: int, seed: int, sampling: str = "random", *,
                   min_length: int | None = None, max_length: int | None = None,
                   data_dir: str | None = None) -> list[dict]:
    """k target training examples, nested in k for a seed (see module docstring)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    pool = nshot_pool(dataset, lang, min_length=min_length, max_length=max_length,
                      data_dir=data_dir)
    if k > len(pool):
        raise ValueError(f"k={k} is larger than the {dataset}.{lang} n-shot pool "
                         f"({len(pool)} eligible train examples)")
    return [pool[i] for i in order(pool, seed, sampling)[:k]]
