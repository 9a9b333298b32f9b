"""Bivariate correlations of features with the transfer gap (paper Table 1) and of S_T with n (Table 2)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)."""
    p = np.asarray(p_values, float)
    order = np.argsort(p)
    m = len(p)
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def benjamini_hochberg(p_values) -> np.ndarray:
    return sps.false_discovery_control(np.asarray(p_values, float), method="bh")


def _pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of x (B, n) with y (n,), ignoring NaN per row."""
    mask = ~np.isnan(x) & ~np.isnan(y)[None, :]
    count = mask.sum(axis=1)
    xm = np.where(mask, x, 0.0)
    ym = np.where(mask, y[None, :], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = xm.sum(1) / count
        my = ym.sum(1) / count
        dx = np.where(mask, x - mx[:, None], 0.0)
        dy = np.where(mask, y[None, :] - my[:, None], 0.0)
        r = (dx * dy).sum(1) / np.sqrt((dx * dx).sum(1) * (dy * dy).sum(1))
    r[count < 3] = np.nan
    return r


def language_permutation_test(
    frame: pd.DataFrame, feature: str, target: str = "gap", n_permutations: int = 999, seed: int = 0
) -> tuple[float, int]:
    """Two-sided p-value of Pearson r(feature, target) under relabelling of languages.

    Pairs share languages, so rows are not exchangeable; instead one permutation of the
    language labels is applied to sources and targets alike (a Mantel-style test) and
    the feature of pair (s, t) is replaced by that of (pi(s), pi(t)). Permuted pairs
    absent from the data contribute nothing to that permutation's r. When the number of
    languages is small enough (k! <= n_permutations) every permutation is enumerated and
    the p-value is exact. Returns (p, number of permutations used).
    """
    codes = sorted(set(frame["source"]) | set(frame["target"]))
    index = {c: i for i, c in enumerate(codes)}
    k = len(codes)
    table = np.full((k, k), np.nan)
    s_idx = frame["source"].map(index).to_numpy()
    t_idx = frame["target"].map(index).to_numpy()
    values = frame[feature].to_numpy(float)
    table[s_idx, t_idx] = values
    y = frame[target].to_numpy(float)
    observed = _pearson_rows(values[None, :], y)[0]
    if np.isnan(observed):
        return float("nan"), 0
    if math.factorial(k) <= n_permutations:
        import itertools

        perms = np.array(list(itertools.permutations(range(k))))
        exact = True
    else:
        rng = np.random.default_rng(seed)
        perms = np.array([rng.permutation(k) for _ in range(n_permutations)])
        exact = False
    permuted = table[perms[:, s_idx], perms[:, t_idx]]
    r = _pearson_rows(permuted, y)
    extreme = np.sum(np.abs(r) >= abs(observed) - 1e-12)
    if exact:
        return float(extreme / len(perms)), len(perms)
    return float((extreme + 1) / (len(perms) + 1)), len(perms)


def bivariate(
    frame: pd.DataFrame,
    features: list[str],
    target: str = "gap",
    by: tuple[str, ...] = ("task", "model"),
    n_permutations: int = 999,
    seed: int = 0,
) -> pd.DataFrame:
    """Pearson and Spearman of each feature with ``target`` per group, two-tailed p-values,
    a language-permutation p-value, and Holm / Benjamini-Hochberg corrections within each group."""
    rows = []
    for keys, group in frame.groupby(list(by), sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        block = []
        for feature in features:
            sub = group[[feature, target, "source", "target"]].dropna(subset=[feature, target])
            row = dict(zip(by, keys), feature=feature, n=len(sub))
            if len(sub) < 3 or sub[feature].nunique() < 2:
                row.update(pearson_r=np.nan, pearson_p=np.nan, spearman_rho=np.nan, spearman_p=np.nan,
                           permutation_p=np.nan, n_permutations=0,
                           note="fewer than 3 pairs" if len(sub) < 3 else "feature is constant")
            else:
                pr = sps.pearsonr(sub[feature], sub[target])
                sr = sps.spearmanr(sub[feature], sub[target])
                perm_p, used = language_permutation_test(sub, feature, target, n_permutations, seed)
                row.update(pearson_r=float(pr.statistic), pearson_p=float(pr.pvalue),
                           spearman_rho=float(sr.statistic), spearman_p=float(sr.pvalue),
                           permutation_p=perm_p, n_permutations=used, note="")
            block.append(row)
        block = pd.DataFrame(block)
        tested = block["pearson_p"].notna()
        for method, column in ((holm, "pearson_p_holm"), (benjamini_hochberg, "pearson_p_fdr_bh")):
            block[column] = np.nan
            if tested.any():
                block.loc[tested, column] = method(block.loc[tested, "pearson_p"].to_numpy())
        block["permutation_p_holm"] = np.nan
        ptested = block["permutation_p"].notna()
        if ptested.any():
            block.loc[ptested, "permutation_p_holm"] = holm(block.loc[ptested, "permutation_p"].to_numpy())
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
