"""Correlations against scipy / statsmodels, and the language-permutation test against brute force."""
import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from jaxlt.stats import correlations


def _pairs(k=4, seed=0):
    rng = np.random.default_rng(seed)
    codes = ["en", "de", "fi", "sw", "ar", "ru"][:k]
    rows = [{"task": "t", "model": "m", "source": s, "target": t, "n_target": 0,
             "x": rng.normal(), "gap": rng.normal()} for s, t in itertools.permutations(codes, 2)]
    frame = pd.DataFrame(rows)
    frame["gap"] += 0.8 * frame["x"]
    return frame


def test_pearson_spearman_match_scipy():
    frame = _pairs(5)
    frame.loc[3, "x"] = np.nan  # pairwise-complete
    table = correlations.bivariate(frame, ["x"], n_permutations=50).iloc[0]
    sub = frame.dropna(subset=["x"])
    assert table["n"] == len(sub)
    assert table["pearson_r"] == pytest.approx(sps.pearsonr(sub["x"], sub["gap"]).statistic)
    assert table["pearson_p"] == pytest.approx(sps.pearsonr(sub["x"], sub["gap"]).pvalue)
    assert table["spearman_rho"] == pytest.approx(sps.spearmanr(sub["x"], sub["gap"]).statistic)
    assert table["spearman_p"] == pytest.approx(sps.spearmanr(sub["x"], sub["gap"]).pvalue)


def test_exact_permutation_p_value_matches_brute_force():
    frame = _pairs(4)
    p, used = correlations.language_permutation_test(frame, "x", "gap", n_permutations=1000)
    assert used == 24
    codes = sorted(set(frame["source"]))
    lookup = {(s, t): v for s, t, v in zip(frame["source"], frame["target"], frame["x"])}
    observed = sps.pearsonr(frame["x"], frame["gap"]).statistic
    count = 0
    for perm in itertools.permutations(codes):
        mapping = dict(zip(codes, perm))
        permuted = [lookup[(mapping[s], mapping[t])] for s, t in zip(frame["source"], frame["target"])]
        count += abs(sps.pearsonr(permuted, frame["gap"]).statistic) >= abs(observed) - 1e-12
    assert p == pytest.approx(count / 24)


def test_sampled_permutation_p_value_is_valid_and_detects_strong_signal():
    frame = _pairs(6, seed=1)
    frame["gap"] = 5 * frame["x"] + 0.01 * np.random.default_rng(2).normal(size=len(frame))
    p, used = correlations.language_permutation_test(frame, "x", "gap", n_permutations=199, seed=3)
    # the same draws, counted independently: only draws of the identity reach |r| ~ 1
    rng = np.random.default_rng(3)
    identity = sum(bool((rng.permutation(6) == np.arange(6)).all()) for _ in range(199))
    assert used == 199 and p == pytest.approx((1 + identity) / 200) and p < 0.05


def test_corrections_match_statsmodels():
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.005, 0.5])
    np.testing.assert_allclose(correlations.holm(p), multipletests(p, method="holm")[1])
    np.testing.assert_allclose(correlations.benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1])
    frame = _pairs(4).assign(y=lambda f: np.random.default_rng(5).normal(size=len(f)), z=lambda f: f["x"] ** 2)
    table = correlations.bivariate(frame, ["x", "y", "z"], n_permutations=10)
    np.testing.assert_allclose(table["pearson_p_holm"], multipletests(table["pearson_p"], method="holm")[1])


def test_constant_feature_is_reported_not_crashing():
    frame = _pairs(4).assign(c=1.0)
    row = correlations.bivariate(frame, ["c"]).iloc[0]
    assert np.isnan(row["pearson_r"]) and row["note"] == "feature is constant"


def test_n_transformations_match_scipy():
    frame = pd.DataFrame({"task": "t", "model": "m", "n_target": [0, 10, 100, 1000, 0, 10, 100, 1000],
                          "S_T": [10, 20, 31, 40, 12, 19, 33, 41.0]})
    table = correlations.n_transformations(frame).set_index("transform")
    n = frame["n_target"].to_numpy(float)
    assert table.loc["n", "pearson_r"] == pytest.approx(sps.pearsonr(n, frame["S_T"]).statistic)
    assert table.loc["log(n+1)", "pearson_r"] == pytest.approx(sps.pearsonr(np.log(n + 1), frame["S_T"]).statistic)
    assert table.loc["log2(n+1)", "pearson_r"] == pytest.approx(table.loc["log(n+1)", "pearson_r"])
    assert table.loc["n", "distinct_n"] == 4
