"""n-shot and source sampling: nested, deterministic, disjoint from evaluation data, bounded."""

import json
import logging
import os
import shutil

import pytest

from jaxlt.data import sampling, sources
from jaxlt.data.examples import load_examples

TINY_DATA = os.path.join(os.path.dirname(sources.__file__), os.pardir, "resources", "tiny_data")


@pytest.fixture(autouse=True)
def tiny_data_dir():
    sources.set_data_dir(TINY_DATA)
    yield TINY_DATA
    sources.set_data_dir(None)


def ids(examples):
    return [ex["id"] for ex in examples]


@pytest.mark.parametrize("strategy", sampling.SAMPLING_STRATEGIES)
@pytest.mark.parametrize("dataset,lang", [("xnli", "ru"), ("panx", "bn"), ("tydiqa", "ar")])
def test_nshot_sets_are_nested_and_deterministic(dataset, lang, strategy):
    for seed in (0, 1):
        sets = {k: ids(sampling.nshot_examples(dataset, lang, k, seed, strategy))
                for k in (0, 10, 30, 50)}
        assert [len(v) for v in sets.values()] == [0, 10, 30, 50]
        assert len(set(sets[50])) == 50
        assert sets[10] == sets[30][:10] and sets[30] == sets[50][:30]
        assert sets == {k: ids(sampling.nshot_examples(dataset, lang, k, seed, strategy))
                        for k in (0, 10, 30, 50)}


def test_seeds_differ_and_languages_are_parallel():
    a = ids(sampling.nshot_examples("xnli", "en", 10, seed=0))
    b = ids(sampling.nshot_examples("xnli", "en", 10, seed=1))
    assert a != b
    # Same seed, same items in every language of a parallel dataset (record i = translation i).
    assert ids(sampling.nshot_examples("xnli", "hi", 10, seed=0)) == a
    labels_en = [ex["targets"] for ex in sampling.nshot_examples("xnli", "en", 10, seed=0)]
    labels_ar = [ex["targets"] for ex in sampling.nshot_examples("xnli", "ar", 10, seed=0)]
    assert labels_en == labels_ar


def test_nshot_never_overlaps_evaluation_data(tmp_path, caplog):
    root = tmp_path / "data"
    shutil.copytree(os.path.join(TINY_DATA, "facebook/xnli/en"), root / "facebook/xnli/en")
    # Plant 3 test records and 2 validation records in the train split.
    test = [json.loads(line) for line in open(root / "facebook/xnli/en/test.jsonl")]
    valid = [json.loads(line) for line in open(root / "facebook/xnli/en/validation.jsonl")]
    with open(root / "facebook/xnli/en/train.jsonl", "a") as f:
        for record in test[:3] + valid[:2]:
            f.write(json.dumps(record) + "\n")
    evaluation = {ex["inputs"] for split in ("validation", "test")
                  for ex in load_examples("xnli", "en", split, str(root))}
    train = load_examples("xnli", "en", "train", str(root))
    assert len(train) == 56 + 5
    with caplog.at_level(logging.WARNING):
        pool = sampling.nshot_pool("xnli", "en", data_dir=str(root))
    assert len(pool) == 56
    assert "5 train examples excluded" in caplog.text
    for strategy in sampling.SAMPLING_STRATEGIES:
        chosen = sampling.nshot_examples("xnli", "en", 56, 0, strategy, data_dir=str(root))
        assert not {ex["inputs"] for ex in chosen} & evaluation
    with pytest.raises(ValueError, match=r"k=57 is larger than the xnli.en n-shot pool \(56"):
        sampling.nshot_examples("xnli", "en", 57, 0, data_dir=str(root))


def test_shortest_and_longest_pick_extreme_lengths():
    lengths = sorted(len(ex["inputs"]) for ex in sampling.nshot_pool("panx", "ru"))
    shortest = sampling.nshot_examples("panx", "ru", 20, 0, "shortest")
    longest = sampling.nshot_examples("panx", "ru", 20, 0, "longest")
    assert sorted(len(ex["inputs"]) for ex in shortest) == lengths[:20]
    assert sorted(len(ex["inputs"]) for ex in longest) == lengths[-20:]
    # ties are broken by the seed, lengths by the strategy
    assert [len(ex["inputs"]) for ex in shortest] == sorted(len(ex["inputs"]) for ex in shortest)


def test_length_bounds():
    pool = sampling.nshot_pool("tydiqa", "en")
    lengths = sorted(len(ex["inputs"]) for ex in pool)
    lo, hi = lengths[10], lengths[40]
    expected = sum(lo <= n <= hi for n in lengths)
    bounded = sampling.nshot_pool("tydiqa", "en", min_length=lo, max_length=hi)
    assert len(bounded) == expected
    chosen = sampling.nshot_examples("tydiqa", "en", 20, 0, "longest", min_length=lo, max_length=hi)
    assert all(lo <= len(ex["inputs"]) <= hi for ex in chosen)
    with pytest.raises(ValueError, match=f"larger than the tydiqa.en n-shot pool \\({expected}"):
        sampling.nshot_examples("tydiqa", "en", expected + 1, 0, min_length=lo, max_length=hi)
    with pytest.raises(ValueError, match="min_length 50 is larger than max_length 10"):
        sampling.nshot_pool("tydiqa", "en", min_length=50, max_length=10)


def test_unknown_strategy_and_negative_k():
    with pytest.raises(ValueError, match="choose from random, shortest, longest"):
        sampling.nshot_examples("xnli", "en", 5, 0, "median")
    with pytest.raises(ValueError, match="k must be >= 0"):
        sampling.nshot_examples("xnli", "en", -1, 0)


def test_source_subsets(caplog):
    a = sampling.source_examples("panx", "fi", seed=0, size=40)
    assert len(a) == 40 and len(set(ids(a))) == 40
    assert ids(a) == ids(sampling.source_examples("panx", "fi", seed=0, size=40))
    assert ids(a) != ids(sampling.source_examples("panx", "fi", seed=1, size=40))
    assert ids(sampling.source_examples("panx", "fi", seed=0, size=20)) == ids(a)[:20]
    with pytest.raises(ValueError, match=r"source size 57 is larger than the panx.fi train split "
                                         r"\(56 examples\)"):
        sampling.source_examples("panx", "fi", seed=0, size=57)
    # the paper's default (10k for NER) is capped at the split with a warning
    assert sampling.default_source_size("panx") == 10_000
    with caplog.at_level(logging.WARNING):
        assert len(sampling.source_examples("panx", "fi", seed=0)) == 56
    assert "default source size 10000 capped" in caplog.text


def test_source_sizes_are_the_papers_from_the_dataset_table():
    # paper, section 3: 100k samples for XNLI, 10k for NER, 2.2k for QA per source language
    assert {d: sampling.default_source_size(d) for d in ("xnli", "panx", "tydiqa", "pawsx", "xquad")} == \
        {"xnli": 100_000, "panx": 10_000, "tydiqa": 2_200, "pawsx": None, "xquad": None}
    # an explicit size wins over the table
    assert len(sampling.source_examples("xnli", "de", seed=0, size=30)) == 30
