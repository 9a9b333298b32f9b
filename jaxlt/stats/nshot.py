"""n-shot model S_T(n) = S_T(0) + alpha * log(n + 1) (paper section 3.2.2, Table 3b, Figure 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxlt.stats.metaregression import TransferRegressor, rmse
from sklearn.base import clone
from sklearn.model_selection import LeaveOneGroupOut

PAIR = ["task", "model", "source", "target"]


def fit_alpha(frame: pd.DataFrame) -> pd.DataFrame:
    """Per pair: least-squares alpha of S_T(n) - S_T(0) = alpha * log(n+1) over the pair's n > 0.

    Pairs without a zero-shot score or without any n > 0 are left out and counted in the
    returned frame's ``attrs['excluded']``.
    """
    zero = frame[frame["n_target"] == 0].set_index(PAIR)["S_T"].rename("S_T0")
    few = frame[frame["n_target"] > 0].join(zero, on=PAIR)
    no_zero = few["S_T0"].isna()
    few = few[~no_zero]
    x = np.log1p(few["n_target"].to_numpy(float))
    few = few.assign(_xy=x * (few["S_T"] - few["S_T0"]), _xx=x * x)
    grouped = few.groupby(PAIR, sort=True)
    alpha = (grouped["_xy"].sum() / grouped["_xx"].sum()).rename("alpha")
    out = grouped.agg(S_T0=("S_T0", "first"), n_points=("n_target", "size"), max_n=("n_target", "max")).join(alpha).reset_index()
    features = frame[frame["n_target"] == 0].drop(columns=["n_target", "S_T"], errors="ignore")
    out = out.merge(features.drop(columns=[c for c in ("S_T0", "alpha", "n_points", "max_n") if c in features.columns]),
                    on=PAIR, how="left")
    out.attrs["excluded"] = {"n-shot rows without a zero-shot score for their pair": int(no_zero.sum())}
    return out


def curve(s_t0, alpha, n) -> np.ndarray:
    return np.asarray(s_t0, float) + np.asarray(alpha, float) * np.log1p(np.asarray(n, float))


def loto_alpha(frame: pd.DataFrame, alphas: pd.DataFrame, features: list[str], estimator=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leave-one-target-out CV of the alpha regression, evaluated out of sample on n > 0.

    alpha's predictors are ``features`` plus S_T(0), the pair's zero-shot score, which the paper
    (section 3.2.2) names as a main predictor. Returns (per-row predictions of S_T(n) for n > 0
    rows, metrics with one row per method): the model (S_T(0) + predicted alpha * log(n+1)) and
    the baselines mean_alpha (S_T(0) + training-mean alpha * log(n+1)), source_mean (training
    mean of S_T(n) per source and n) and training_mean (training mean of S_T(n) per n). Each
    method's RMSE of S_T(n) (the paper's Table 3b), RMSE of alpha where it has one, top-1 and
    NDCG@3 of the source ranking per (target, n), and which baselines beat the model.
    """
    from jaxlt.stats.metaregression import flag_losses, ranking_metrics

    features = list(dict.fromkeys([*features, "S_T0"]))
    features = [f for f in features if f in alphas.columns and alphas[f].notna().any()]
    estimator = estimator if estimator is not None else TransferRegressor()
    estimator = clone(estimator).set_params(features=features)
    alphas = alphas.reset_index(drop=True).copy()
    alphas["alpha_predicted"] = np.nan
    alphas["alpha_mean_baseline"] = np.nan
    few = frame[frame["n_target"] > 0].merge(alphas[PAIR + ["S_T0", "alpha"]], on=PAIR, how="inner").reset_index(drop=True)
    few["source_mean"] = np.nan
    few["training_mean"] = np.nan
    folds = []
    for train, test in LeaveOneGroupOut().split(alphas, groups=alphas["target"]):
        tr = alphas.iloc[train]
        fitted = clone(estimator).fit(tr, tr["alpha"])
        test_index = alphas.index[test]
        alphas.loc[test_index, "alpha_predicted"] = fitted.predict(alphas.iloc[test]).to_numpy()
        alphas.loc[test_index, "alpha_mean_baseline"] = tr["alpha"].mean()
        target = alphas.iloc[test]["target"].iloc[0]
        folds.append({"fold": target, "selected": "+".join(fitted.selected_), "lasso_alpha": fitted.alpha_})
        seen = few[few["target"] != target]
        rows = few["target"] == target
        by_source = seen.groupby(["source", "n_target"])["S_T"].mean()
        by_n = seen.groupby("n_target")["S_T"].mean()
        keys = pd.MultiIndex.from_frame(few.loc[rows, ["source", "n_target"]])
        few.loc[rows, "source_mean"] = by_source.reindex(keys).to_numpy()
        few.loc[rows, "training_mean"] = few.loc[rows, "n_target"].map(by_n).to_numpy()
    few = few.merge(alphas[PAIR + ["alpha_predicted", "alpha_mean_baseline"]], on=PAIR, how="left")
    few["predicted"] = curve(few["S_T0"], few["alpha_predicted"], few["n_target"])
    few["mean_alpha"] = curve(few["S_T0"], few["alpha_mean_baseline"], few["n_target"])
    few["source_mean"] = few["source_mean"].fillna(few["training_mean"])
    few["fitted_curve"] = curve(few["S_T0"], few["alpha"], few["n_target"])
    rows = []
    for method, column, alpha_column in (("nshot_model", "predicted", "alpha_predicted"), ("mean_alpha", "mean_alpha", "alpha_mean_baseline"),
                                         ("source_mean", "source_mean", None), ("training_mean", "training_mean", None)):
        folds_rmse = [rmse(g["S_T"], g[column]) for _, g in few.groupby("target")]
        row = {"method": method, "n_pairs": len(alphas), "n_rows": len(few),
               "rmse_alpha": rmse(alphas["alpha"], alphas[alpha_column]) if alpha_column else np.nan,
               "rmse_mean_over_folds": float(np.mean(folds_rmse)), "rmse_S_T": rmse(few["S_T"], few[column])}
        row.update(ranking_metrics(few.rename(columns={"S_T": "observed"}), score=column))
        rows.append(row)
    metrics = flag_losses(pd.DataFrame(rows), model="nshot_model")
    metrics["rmse_S_T_of_fitted_curve"] = rmse(few["S_T"], few["fitted_curve"])
    metrics.attrs["folds"] = pd.DataFrame(folds)
    metrics.attrs["features"] = features
    return few, metrics
