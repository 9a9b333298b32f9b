"""SYNT / PHONO (WALS intersection over union) and lang2vec similarities."""
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cosine as scipy_cosine

from jaxlt import languages
from jaxlt.features import typology

nan = np.nan


def test_iou_paper_example():
    # Japanese: GENITIVE-NOUN and SOV; French: GENITIVE-NOUN and SVO -> 1 shared of 3 (paper section 2.1)
    # columns: GEN-N, SOV, SVO
    japanese = np.array([1, 1, 0])
    french = np.array([1, 0, 1])
    assert typology.wals_iou(japanese, french) == (pytest.approx(1 / 3), 3, 3)


def test_iou_ignores_properties_unknown_for_either_language():
    s = np.array([1, 1, nan, 0, 1])
    t = np.array([1, 0, 1, nan, nan])
    iou, shared, union = typology.wals_iou(s, t)
    assert (iou, shared, union) == (pytest.approx(1 / 2), 2, 2)
    all_missing = typology.wals_iou(np.array([nan, 1]), np.array([1, nan]))
    assert np.isnan(all_missing[0]) and all_missing[1:] == (0, 0)
    with pytest.raises(ValueError, match="differ in shape"):
        typology.wals_iou(np.zeros(3), np.zeros(4))


def test_snapshot_matches_lang2vec_and_features_match_independent_computation():
    l2v = typology.import_lang2vec()  # also when a console script named lang2vec.py shadows the package
    codes = ["en", "sw", "fi"]
    l2v_codes = [languages.lang2vec_code(c) for c in codes]
    raw = l2v.get_features(l2v_codes, "syntax_wals+phonology_wals", header=True)
    names = raw["CODE"]
    for fs in ("syntax_wals", "phonology_wals"):
        snap = typology.vectors(fs)
        for code, l2 in zip(codes, l2v_codes):
            expected = [np.nan if v == "--" else float(v) for n, v in zip(names, raw[l2]) if n in set(snap.columns)]
            np.testing.assert_array_equal(snap.loc[code].to_numpy(), np.array(expected, dtype=np.float32))
    pairs = typology.pair_features([("en", "sw"), ("sw", "fi")]).set_index(["source", "target"])
    # independent SYNT for en->sw straight from lang2vec's strings
    syn = [n for n in names if n.startswith("S_")]
    idx = [names.index(n) for n in syn]
    e, s = [raw["eng"][i] for i in idx], [raw["swh"][i] for i in idx]
    both = [(a, b) for a, b in zip(e, s) if a != "--" and b != "--"]
    inter = sum(1 for a, b in both if a == 1.0 and b == 1.0)
    union = sum(1 for a, b in both if a == 1.0 or b == 1.0)
    assert pairs.loc[("en", "sw"), "SYNT"] == pytest.approx(inter / union)
    assert pairs.loc[("en", "sw"), "SYNT_n_shared"] == len(both)
    knn = typology.vectors("syntax_knn")
    assert pairs.loc[("sw", "fi"), "cos_syntax"] == pytest.approx(1 - scipy_cosine(knn.loc["sw"], knn.loc["fi"]), rel=1e-6)


def test_symmetry_and_unknown_codes():
    f = typology.pair_features([("en", "ar"), ("ar", "en")])
    assert f.iloc[0]["SYNT"] == f.iloc[1]["SYNT"]
    with pytest.raises(languages.UnknownLanguageError):
        typology.pair_features([("en", "qq")])
    with pytest.raises(ValueError, match="unknown feature set"):
        typology.vectors("nope")


def test_snapshot_falls_back_to_a_user_cache_built_from_lang2vec(tmp_path, monkeypatch):
    """An install without the bundled snapshot builds one in the cache (identical to the bundled one)."""
    monkeypatch.setenv("JAXLT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(typology, "bundled_snapshot_path", lambda: tmp_path / "absent.npz")
    assert typology.snapshot_path() == tmp_path / "lang2vec_snapshot.npz"
    # keep the lang2vec query small: three languages, one feature set
    monkeypatch.setattr(languages, "codes", lambda: ["en", "sw", "ar"])
    monkeypatch.setattr(typology, "FEATURE_SETS", ("syntax_wals",))
    built = typology.vectors("syntax_wals")
    assert (tmp_path / "lang2vec_snapshot.npz").exists()
    reference = typology.vectors("syntax_wals", path=_bundled())
    np.testing.assert_array_equal(built.loc[["en", "sw", "ar"]].to_numpy(), reference.loc[["en", "sw", "ar"]].to_numpy())


def _bundled():
    import importlib.resources
    import pathlib

    return pathlib.Path(str(importlib.resources.files("jaxlt") / "features" / "data" / "lang2vec_snapshot.npz"))


def test_codes_are_chosen_per_feature_set_by_coverage():
    """Arabic: lang2vec's 'arb' (Standard Arabic) has no WALS phonology, the macrolanguage 'ara' has it."""
    l2v = typology.import_lang2vec()
    raw = {code: l2v.get_features([code], "phonology_wals", header=True)[code] for code in ("ara", "arb")}
    known = {code: sum(v != "--" for v in values) for code, values in raw.items()}
    assert known["arb"] == 0 < known["ara"]
    codes = typology.chosen_codes()
    assert codes.loc["ar", "phonology_wals"] == "ara" and codes.loc["ar", "fam"] == "arb"
    assert typology.vectors("phonology_wals").loc["ar"].notna().sum() == known["ara"]
    pair = typology.pair_features([("en", "ar")]).iloc[0]
    assert pair["PHONO_n_shared"] > 0 and not np.isnan(pair["PHONO"])


def test_vectorised_pair_features_equal_the_pair_by_pair_definitions():
    """pair_features computes IoU and cosines as matrix products over languages; check every pair
    against wals_iou / cosine applied pair by pair, with a user typology file that extends lang2vec
    (a synthetic language, and an override of one English property)."""
    import pandas as pd

    syntax = typology.vectors("syntax_wals")
    prop = syntax.columns[0]
    user = pd.DataFrame({prop: [1.0, 0.0], "S_NEW_ORDER": [1.0, np.nan], "P_TONE": [0.0, 1.0]},
                        index=pd.Index(["syn_a", "en"], name="language"))
    codes = ["en", "sw", "fi", "ar", "ja", "syn_a"]
    pairs = [(s, t) for s in codes for t in codes if s != t]
    got = typology.pair_features(pairs, user=user).set_index(["source", "target"])
    tables = {fs: typology.vectors(fs) for fs in typology.FEATURE_SETS}
    for s, t in pairs:
        for feature, prefix in typology.WALS_PREFIX.items():
            rows = []
            for code in (s, t):
                parts = [user.loc[code, [c for c in user.columns if c.startswith(prefix)]]] if code in user.index else []
                if code != "syn_a":
                    parts.append(tables[typology.WALS_SETS[feature]].loc[code])
                row = pd.concat(parts)
                rows.append(row[~row.index.duplicated(keep="first")])
            names = rows[0].index.intersection(rows[1].index)
            expected = typology.wals_iou(rows[0][names].to_numpy(float), rows[1][names].to_numpy(float))
            actual = (got.loc[(s, t), feature], got.loc[(s, t), f"{feature}_n_shared"], got.loc[(s, t), f"{feature}_n_union"])
            assert actual[1:] == expected[1:], (s, t, feature)
            assert (np.isnan(actual[0]) and np.isnan(expected[0])) or actual[0] == pytest.approx(expected[0]), (s, t, feature)
        typo = typology.wals_iou(user.loc[s].to_numpy(), user.loc[t].to_numpy())[0] if s in user.index and t in user.index else nan
        assert (np.isnan(typo) and np.isnan(got.loc[(s, t), "TYPO"])) or got.loc[(s, t), "TYPO"] == pytest.approx(typo)
        for name, fs in typology.COSINE_SETS.items():
            known = tables[fs]
            expected = typology.cosine(known.loc[s], known.loc[t]) if s in known.index and t in known.index else nan
            value = got.loc[(s, t), f"cos_{name}"]
            assert (np.isnan(expected) and np.isnan(value)) or value == pytest.approx(expected, rel=1e-9), (s, t, name)
    # the override is used: en's first syntax property comes from the user file
    assert got.loc[("en", "syn_a"), "SYNT_n_shared"] >= 1
