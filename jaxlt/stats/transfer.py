"""Analyses of related studies on the same table: relative zero-shot ability, advantage over
English, group averages and source ranking; greedy forward feature selection with leave-one-out."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from jaxlt import languages


def relative_zero_shot(frame: pd.DataFrame) -> pd.DataFrame:
    """Z(S->T) = E(M_S, T) / E(M_T, T): zero-shot score over the target's in-language score,
    and the advantage over English A(S->T) = E(M_S, T) - E(M_en, T)."""
    zero = frame[frame["n_target"] == 0].copy()
    zero["Z"] = zero["S_T"] / zero["S_S_target"]
    english = zero[zero["source"] == "en"].set_index(["task", "model", "target"])["S_T"].rename("S_T_en")
    zero = zero.join(english, on=["task", "model", "target"])
    zero["advantage_over_en"] = zero["S_T"] - zero["S_T_en"]
    return zero[["task", "model", "source", "target", "S_T", "S_S_target", "Z", "S_T_en", "advantage_over_en"]]


def target_group(code: str) -> str:
    return "Latin-script target" if languages.get(code).script == "Latn" else "non-Latin-script target"


def source_ranking(relative: pd.DataFrame) -> pd.DataFrame:
    """Mean Z and advantage over English per source, over all targets and per target group; ranked.

    Targets without an in-language score (e.g. PAN-X Swahili, evaluation-only) have no Z;
    they are counted in ``n_targets_without_in_language_score``."""
    rel = relative.assign(group=relative["target"].map(target_group))
    overall = rel.groupby(["task", "model", "source"]).agg(
        mean_Z=("Z", "mean"), mean_advantage_over_en=("advantage_over_en", "mean"), n_targets=("Z", "count"),
        n_targets_without_in_language_score=("Z", lambda z: int(z.isna().sum())))
    by_group = rel.pivot_table(index=["task", "model", "source"], columns="group", values="Z", aggfunc="mean")
    by_group.columns = [f"mean_Z[{c}]" for c in by_group.columns]
    table = overall.join(by_group).reset_index()
    table["rank"] = table.groupby(["task", "model"])["mean_Z"].rank(ascending=False, method="min").astype(int)
    return table.sort_values(["task", "model", "rank"]).reset_index(drop=True)


def loo_predictions(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave-one-out predictions of least squares with intercept, in closed form:
    y_hat_(-i) = y_i - e_i / (1 - h_ii), e the residuals and h the hat matrix's diagonal."""
    design = np.column_stack([np.ones(len(y)), X])
    pinv = np.linalg.pinv(design)
    hat = np.einsum("ij,ji->i", design, pinv)
    residual = y - design @ (pinv @ y)
    return y - residual / (1.0 - hat)


def _loo_scores(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    predicted = loo_predictions(X, y)
    return predicted, float(np.mean(np.abs(predicted - y)))


def greedy_forward_selection(frame: pd.DataFrame, features: list[str], y: str, max_features: int | None = None) -> pd.DataFrame:
    """Add, one at a time, the feature that most lowers leave-one-out MAE of a linear regression;
    stop when none lowers it. One row per step with the LOO Pearson, Spearman and MAE."""
    data = frame.dropna(subset=[y]).copy()
    data[features] = data[features].fillna(data[features].mean())
    usable = [f for f in features if data[f].nunique() > 1]
    target = data[y].to_numpy(float)
    chosen: list[str] = []
    best_mae = float(np.mean(np.abs(target - target.mean())))
    steps = []
    limit = max_features or len(usable)
    while len(chosen) < limit:
        trials = []
        for feature in usable:
            if feature in chosen:
                continue
            predicted, mae = _loo_scores(data[chosen + [feature]].to_numpy(float), target)
            trials.append((mae, feature, predicted))
        if not trials:
            break
        mae, feature, predicted = min(trials, key=lambda t: (t[0], t[1]))
        if mae >= best_mae - 1e-12:
            break
        chosen.append(feature)
        best_mae = mae
        steps.append({"step": len(chosen), "added": feature, "features": "+".join(chosen), "loo_mae": mae,
                      "loo_pearson": float(sps.pearsonr(predicted, target).statistic),
                      "loo_spearman": float(sps.spearmanr(predicted, target).statistic), "n": len(target)})
    return pd.DataFrame(steps, columns=["step", "added", "features", "loo_mae", "loo_pearson", "loo_spearman", "n"])
