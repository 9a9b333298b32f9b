"""Text features (LEX, Vr, SENTLEN, MORPH) against hand-worked values and scipy."""
import json
import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from jaxlt.features import text


def test_text_stats_counts_by_hand():
    s = text.text_stats(["ab ab", "  c  "])
    # "ab ab" -> 3-grams "ab ", "b a", " ab"; "c" has none
    assert s.ngrams == {"ab ": 1, "b a": 1, " ab": 1}
    assert (s.types, s.tokens, s.sentences) == (2, 3, 2)
    assert s.ttr == pytest.approx(2 / 3)
    assert s.mean_sentence_length == pytest.approx(1.5)


def test_jsd_hand_worked_and_against_scipy():
    # disjoint supports: JSD = 1 bit; identical: 0
    assert text.jensen_shannon({"a": 1}, {"b": 5}) == pytest.approx(1.0)
    assert text.jensen_shannon({"a": 2, "b": 2}, {"a": 1, "b": 1}) == pytest.approx(0.0)
    # p = (1/2, 1/2), q = (1, 0): m = (3/4, 1/4); JSD = 1/2 KL(p||m) + 1/2 KL(q||m)
    hand = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)) + 0.5 * math.log2(1 / 0.75)
    assert text.jensen_shannon({"a": 1, "b": 1}, {"a": 3}) == pytest.approx(hand)
    rng = np.random.default_rng(0)
    p, q = rng.integers(0, 9, 20), rng.integers(0, 9, 20)
    ours = text.jensen_shannon(dict(enumerate(p)), dict(enumerate(q)))
    assert ours == pytest.approx(jensenshannon(p, q, base=2) ** 2)


def test_empty_distribution_is_an_error():
    with pytest.raises(ValueError, match="empty distribution"):
        text.jensen_shannon({}, {"a": 1})


def test_pair_features_hand_worked():
    stats = {
        "en": text.LanguageText(ngrams={"abc": 1}, types=10, tokens=20, sentences=4),   # TTR 0.5, len 5
        "de": text.LanguageText(ngrams={"abc": 1, "xyz": 1}, types=8, tokens=32, sentences=4),  # TTR 0.25, len 8
        "fi": text.LanguageText(ngrams={"qqq": 1}, types=9, tokens=12, sentences=2),  # TTR 0.75, len 6
    }
    pairs = text.pair_text_features(stats).set_index(["source", "target"])
    # JSD(en, fi) = 1 (disjoint) is the maximum, so LEX(en->fi) = 0
    assert pairs.loc[("en", "fi"), "LEX"] == pytest.approx(0.0)
    jsd_en_de = text.jensen_shannon({"abc": 1}, {"abc": 1, "xyz": 1})
    assert pairs.loc[("en", "de"), "LEX"] == pytest.approx(1 - jsd_en_de / 1.0)
    assert pairs.loc[("en", "de"), "Vr"] == pytest.approx(8 / 10)
    assert pairs.loc[("en", "de"), "SENTLEN"] == pytest.approx(8 / 5)
    # TTR ratios T/S: the largest is fi/de = 3, so K = 3
    assert pairs.loc[("de", "fi"), "MORPH"] == pytest.approx(1.0)
    assert pairs.loc[("en", "de"), "MORPH"] == pytest.approx((0.25 / 0.5) / 3)
    assert pairs.loc[("fi", "en"), "MORPH"] == pytest.approx((0.5 / 0.75) / 3)
    assert len(pairs) == 6


def test_read_dir_and_jsonl_give_the_same_features(tmp_path):
    corpus = {("xnli", "en"): ["the cat sat", "a dog ran"], ("xnli", "de"): ["die katze", "der hund lief"],
              ("xnli", "sw"): ["paka alikaa", "mbwa alikimbia"]}
    for (task, lang), lines in corpus.items():
        text.write_text_dir(tmp_path / "dir", task, lang, lines)
    with open(tmp_path / "t.jsonl", "w") as f:
        for (task, lang), lines in corpus.items():
            for line in lines:
                f.write(json.dumps({"task": task, "language": {"en": "eng", "de": "German", "sw": "swh"}[lang], "text": line}) + "\n")
    a, _ = text.compute_text_features(tmp_path / "dir", cache_dir=tmp_path / "cache")
    b, langs = text.compute_text_features(tmp_path / "t.jsonl")
    assert a.sort_values(["source", "target"]).reset_index(drop=True).equals(b.sort_values(["source", "target"]).reset_index(drop=True))
    assert set(langs["language"]) == {"en", "de", "sw"}
    assert list((tmp_path / "cache").glob("*.json"))  # cached
    again, _ = text.compute_text_features(tmp_path / "dir", cache_dir=tmp_path / "cache")
    assert again.equals(a)


def test_bad_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"task": "x", "language": "en", "text": "a"}) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        text.read_text_source(path)
    path.write_text(json.dumps({"task": "x", "language": "zz", "text": "a"}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: unknown language code 'zz'"):
        text.read_text_source(path)


def test_one_language_task_is_an_error(tmp_path):
    text.write_text_dir(tmp_path, "xnli", "en", ["a b c"])
    with pytest.raises(ValueError, match="only"):
        text.compute_text_features(tmp_path)


def test_features_text_command_feeds_analyze(tmp_path):
    """`jaxlt features text` writes a long pair table that `jaxlt analyze --pair-features` reads."""
    import itertools

    import pandas as pd

    from jaxlt import cli

    corpus = {"en": "the cat sat on the mat", "de": "die katze sass auf der matte", "fi": "kissa istui matolla",
              "sw": "paka aliketi kwenye mkeka"}
    for code, line in corpus.items():
        text.write_text_dir(tmp_path / "text", "xnli", code, [line])
    assert cli.main(["features", "text", "--text", str(tmp_path / "text"), "--out", str(tmp_path / "f")]) == 0
    long = pd.read_csv(tmp_path / "f" / "text_pair_features.csv")
    assert list(long.columns) == ["task", "source", "target", "feature", "value"]
    wide, _ = text.compute_text_features(tmp_path / "text")
    lex = long[(long.feature == "LEX") & (long.source == "en") & (long.target == "fi")]["value"].item()
    assert lex == pytest.approx(wide[(wide.source == "en") & (wide.target == "fi")]["LEX"].item())
    rows = [{"task": "xnli", "model": "mt5-small", "source": s, "target": t, "n_target": 0, "score": 80.0 if s == t else 40.0 + i}
            for i, (s, t) in enumerate(itertools.product(corpus, corpus))]
    pd.DataFrame(rows).to_csv(tmp_path / "r.csv", index=False)
    assert cli.main(["analyze", "--results", str(tmp_path / "r.csv"), "--pair-features", str(tmp_path / "f" / "text_pair_features.csv"),
                     "--out", str(tmp_path / "o"), "--permutations", "10", "--no-models"]) == 0
    frame = pd.read_csv(tmp_path / "o" / "tables" / "analysis_frame.csv")
    assert frame["LEX"].notna().all() and frame["MORPH"].notna().all()
    used = pd.read_csv(tmp_path / "o" / "tables" / "pair_features.csv")
    assert used[(used.feature == "LEX") & (used.source == "en") & (used.target == "fi")]["value"].item() == pytest.approx(lex)
