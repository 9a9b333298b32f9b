"""Bivariate correlations of features with the transfer gap (paper Table 1) and of S_T with n (Table 2).

Pairs share languages, so the rows of a pair table are not independent. Next to the paper's plain
Pearson p-values every correlation gets (a) a language-permutation p-value that is exact for any
design (one source, square, incomplete), (b) a delete-one-language jackknife p-value (calibrated in
simulation) and (c) a two-way cluster-robust p-value (clusters: source and target language), which
with the 8-14 languages of such studies rejects too often (10-23% at 0.05 under the null).
"""

from __future__ import annotations

import gc
import itertools
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

MAX_ENUMERATED = 100_000  # enumerate the whole permutation group up to this size


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (statsmodels)."""
    # statsmodels' Holm branch runs a full gc.collect() on every call (~0.1-0.2 s once pandas, sklearn and
    # matplotlib are loaded); frozen objects are not scanned, and freeze/unfreeze only move list heads.
    gc.freeze()
    try:
        return multipletests(np.asarray(p_values, float), method="holm")[1]
    finally:
        gc.unfreeze()


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg FDR-adjusted p-values (statsmodels)."""
    return multipletests(np.asarray(p_values, float), method="fdr_bh")[1]


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of x (B, n) with y (n,); rows have no NaN (valid permutations only)."""
    dx = x - x.mean(axis=1, keepdims=True)
    dy = y - y.mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return (dx @ dy) / np.sqrt((dx * dx).sum(axis=1) * (dy @ dy))


def role_classes(sources, targets) -> list[np.ndarray]:
    """Languages that the null hypothesis treats as exchangeable, as index arrays into the
    sorted union of codes: those used as source and target, as source only, as target only.

    A permutation that maps each class onto itself and relabels sources and targets alike
    keeps every language in its role, so it preserves any design built from roles: one
    source (only the targets move), square (a Mantel-style joint relabelling) and a few
    sources among many targets.
    """
    codes = sorted(set(sources) | set(targets))
    src, tgt = set(sources), set(targets)
    roles = [[i for i, c in enumerate(codes) if (c in src, c in tgt) == role] for role in ((True, True), (True, False), (False, True))]
    return [np.array(r) for r in roles if len(r) > 1]


def _group_size(classes: list[np.ndarray]) -> int:
    return math.prod(math.factorial(len(c)) for c in classes)


def _enumerate(classes: list[np.ndarray], k: int) -> np.ndarray:
    blocks = [list(itertools.permutations(c)) for c in classes]
    out = np.tile(np.arange(k), (_group_size(classes), 1))
    for row, choice in enumerate(itertools.product(*blocks)):
        for c, image in zip(classes, choice):
            out[row, c] = image
    return out


def _sample(classes: list[np.ndarray], k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.tile(np.arange(k), (n, 1))
    for c in classes:
        out[:, c] = rng.permuted(np.tile(c, (n, 1)), axis=1)
    return out


def language_permutation_test(
    frame: pd.DataFrame, feature: str, target: str = "gap", n_permutations: int = 999, seed: int = 0
) -> tuple[float, int]:
    """Two-sided p-value of Pearson r(feature, target) under relabelling of languages.

    Pairs share languages, so rows are not exchangeable; languages are. One permutation of
    language labels within each role class (see :func:`role_classes`) is applied to sources
    and targets alike, and the feature of pair (s, t) is replaced by that of (pi(s), pi(t)).
    Only *valid* permutations count: those that map every observed pair onto an observed
    pair (in an incomplete design some do not; they are left out of numerator and
    denominator alike, which keeps the test exact because the valid ones form a group).
    When the group has at most ``n_permutations`` elements it is enumerated and the p-value
    is exact; otherwise ``n_permutations`` are drawn and p = (1 + extreme) / (1 + valid).
    Returns (p, number of valid permutations used, identity included when enumerated).
    """
    sub = frame.dropna(subset=[feature, target])
    codes = sorted(set(sub["source"]) | set(sub["target"]))
    index = {c: i for i, c in enumerate(codes)}
    k = len(codes)
    s_idx = sub["source"].map(index).to_numpy()
    t_idx = sub["target"].map(index).to_numpy()
    values = sub[feature].to_numpy(float)
    y = sub[target].to_numpy(float)
    if len(sub) < 3 or np.ptp(values) == 0 or np.ptp(y) == 0:
        return float("nan"), 0
    table = np.full((k, k), np.nan)
    table[s_idx, t_idx] = values
    observed = _pearson_rows(values[None, :], y)[0]
    classes = role_classes(sub["source"], sub["target"])
    size = _group_size(classes)
    exact = size <= max(n_permutations, 1) and size <= MAX_ENUMERATED
    if exact:
        perms = _enumerate(classes, k)
    else:
        perms = _sample(classes, k, n_permutations, np.random.default_rng(seed))
    permuted = table[perms[:, s_idx], perms[:, t_idx]]
    valid = ~np.isnan(permuted).any(axis=1)
    r = _pearson_rows(permuted[valid], y)
    extreme = int(np.sum(np.abs(r) >= abs(observed) - 1e-12))
    used = int(valid.sum())
    if exact:
        return float(extreme / used), used
    return float((extreme + 1) / (used + 1)), used


def cluster_robust(y, design, sources, targets) -> tuple[np.ndarray, np.ndarray]:
    """(standard errors, p-values) of OLS coefficients with two-way cluster-robust covariance
    (source and target language; Cameron, Gelbach and Miller 2011) and t with G - 1 degrees of
    freedom, G the smaller number of clusters. One-way when one side has a single level. Where
    the two-way variance comes out negative (it is a difference of matrices), the larger of the
    two one-way variances is used instead. With few languages these are approximate."""
    from statsmodels.regression.linear_model import OLS  # slow import; only when used

    y, design = np.asarray(y, float), np.asarray(design, float)
    groups = [pd.factorize(np.asarray(g))[0] for g in (sources, targets)]
    groups = [g for g in groups if g.max() > 0]
    nan = np.full(design.shape[1], np.nan)
    if not groups or len(y) <= design.shape[1]:
        return nan, nan  # one language on both sides, or no residual degrees of freedom

    def fit(g) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with warnings.catch_warnings():  # a negative two-way variance is handled below, not warned about
            warnings.simplefilter("ignore", RuntimeWarning)
            result = OLS(y, design).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
            return np.asarray(result.params, float), np.asarray(result.bse, float), np.asarray(result.pvalues, float)

    if len(groups) == 1:
        _, se, p = fit(groups[0])
        return se, p
    params, se, _ = fit(np.column_stack(groups))
    bad = ~np.isfinite(se)
    if bad.any():
        one_way = np.max([fit(g)[1] for g in groups], axis=0)
        se = np.where(bad, one_way, se)
    df = min(g.max() + 1 for g in groups) - 1
    p = 2 * sps.t.sf(np.abs(params / se), df)
    return se, p


def language_jackknife(y, design, sources, targets) -> tuple[np.ndarray, np.ndarray, int]:
    """(standard errors, p-values, languages deleted) of OLS coefficients from the delete-one-language
    jackknife: refit without every pair that contains language l (as source or target), for each l
    that is not in every pair; V = (G - 1) / G * sum (b_(l) - mean b)^2 and t with G - 1 degrees of
    freedom (G deletions used).

    Pairs share languages in both roles (a language that transfers well may also be an easy target),
    which role-wise two-way clustering misses; and with 8-14 languages sandwich estimators are biased
    down. In simulations with language random effects (tests/test_stats_correlations.py) this
    test rejects close to 5% at 0.05 in one-source, square and incomplete designs, where the two-way
    cluster-robust one (:func:`cluster_robust`) rejects 10-23%. Deletions that leave a rank-deficient
    design are skipped; fewer than 3 usable deletions give NaN."""
    y, X = np.asarray(y, float), np.asarray(design, float)
    sources, targets = np.asarray(sources), np.asarray(targets)
    k = X.shape[1]
    nan = np.full(k, np.nan)
    estimates = []
    for language in sorted(set(sources) | set(targets)):
        keep = (sources != language) & (targets != language)
        if keep.sum() <= k or np.linalg.matrix_rank(X[keep]) < k:
            continue  # a language in every pair (one source) or a deletion the design cannot absorb
        estimates.append(np.linalg.lstsq(X[keep], y[keep], rcond=None)[0])
    used = len(estimates)
    if used < 3 or len(y) <= k or np.linalg.matrix_rank(X) < k:
        return nan, nan, used
    full = np.linalg.lstsq(X, y, rcond=None)[0]
    estimates = np.array(estimates)
    se = np.sqrt((used - 1) / used * ((estimates - estimates.mean(axis=0)) ** 2).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * sps.t.sf(np.abs(full / se), used - 1)
    return se, p, used


def jackknife_p(x, y, sources, targets) -> float:
    """p-value of the Pearson correlation from the language jackknife (:func:`language_jackknife`)
    of the slope of standardised y on standardised x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    design = np.column_stack([np.ones(len(x)), (x - x.mean()) / x.std()])
    return float(language_jackknife((y - y.mean()) / y.std(), design, sources, targets)[1][1])


def cluster_robust_p(x, y, sources, targets) -> float:
    """p-value of the Pearson correlation: OLS of standardised y on standardised x with
    two-way cluster-robust errors (:func:`cluster_robust`)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    design = np.column_stack([np.ones(len(x)), (x - x.mean()) / x.std()])
    return float(cluster_robust((y - y.mean()) / y.std(), design, sources, targets)[1][1])


def bivariate(
    frame: pd.DataFrame,
    features: list[str],
    target: str = "gap",
    by: tuple[str, ...] = ("task", "model"),
    n_permutations: int = 999,
    seed: int = 0,
) -> pd.DataFrame:
    """Pearson and Spearman of each feature with ``target`` per group, two-tailed p-values,
    a language-permutation p-value (with the number of valid permutations), a two-way
    cluster-robust p-value (anti-conservative with few languages), a language-jackknife p-value,
    and Holm / Benjamini-Hochberg corrections within each group."""
    rows = []
    for keys, group in frame.groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        block = []
        for feature in features:
            if feature not in group.columns or target not in group.columns:
                continue
            sub = group[[feature, target, "source", "target"]].dropna(subset=[feature, target])
            row = dict(zip(by, keys), feature=feature, n=len(sub))
            if len(sub) < 3 or sub[feature].nunique() < 2 or sub[target].nunique() < 2:
                note = "fewer than 3 pairs" if len(sub) < 3 else ("feature is constant" if sub[feature].nunique() < 2 else f"{target} is constant")
                row.update(pearson_r=np.nan, pearson_p=np.nan, spearman_rho=np.nan, spearman_p=np.nan,
                           permutation_p=np.nan, n_permutations=0, cluster_p=np.nan, jackknife_p=np.nan, note=note)
            else:
                pr = sps.pearsonr(sub[feature], sub[target])
                sr = sps.spearmanr(sub[feature], sub[target])
                perm_p, used = language_permutation_test(sub, feature, target, n_permutations, seed)
                note = ""
                if 0 < used < 20:
                    note = f"only {used} valid language permutations: the permutation p-value cannot reach 0.05"
                row.update(pearson_r=float(pr.statistic), pearson_p=float(pr.pvalue),
                           spearman_rho=float(sr.statistic), spearman_p=float(sr.pvalue),
                           permutation_p=perm_p, n_permutations=used,
                           cluster_p=cluster_robust_p(sub[feature], sub[target], sub["source"], sub["target"]),
                           jackknife_p=jackknife_p(sub[feature], sub[target], sub["source"], sub["target"]), note=note)
            block.append(row)
        if not block:
            continue
        block = pd.DataFrame(block)
        for source_column, method, column in (("pearson_p", holm, "pearson_p_holm"), ("pearson_p", benjamini_hochberg, "pearson_p_fdr_bh"),
                                              ("permutation_p", holm, "permutation_p_holm")):
            block[column] = np.nan
            tested = block[source_column].notna()
            if tested.any():
                block.loc[tested, column] = method(block.loc[tested, source_column].to_numpy())
        rows.append(block)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


N_TRANSFORMS = {
    "n": lambda n: n,
    "log(n+1)": lambda n: np.log(n + 1),
    "log2(n+1)": lambda n: np.log2(n + 1),
    "log(n+1)^2": lambda n: np.log(n + 1) ** 2,
}


def n_transformations(frame: pd.DataFrame, by: tuple[str, ...] = ("task", "model")) -> pd.DataFrame:
    """Pearson of S_T with transformations of n (paper Table 2), with the number of distinct n.

    log and log2 differ by a constant factor, so their Pearson correlations are equal
    by construction; with only two distinct n every monotone transform gives the same r.
    """
    rows = []
    for keys, group in frame.groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        n = group["n_target"].to_numpy(float)
        distinct = int(len(np.unique(n)))
        for name, fn in N_TRANSFORMS.items():
            row = dict(zip(by, keys), transform=name, n_rows=len(group), distinct_n=distinct)
            if distinct < 2:
                row.update(pearson_r=np.nan, pearson_p=np.nan)
            else:
                result = sps.pearsonr(fn(n), group["S_T"].to_numpy(float))
                row.update(pearson_r=float(result.statistic), pearson_p=float(result.pvalue))
            rows.append(row)
    return pd.DataFrame(rows)
