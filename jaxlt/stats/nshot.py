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
    """Leave-one-target-out CV of the alpha regression.

    Returns (per-row predictions of S_T(n) for n > 0 rows, metrics): RMSE of alpha, and RMSE of
    S_T(n) rebuilt as the observed S_T(0) + predicted alpha * log(n+1) (the paper's f1 in points).
    """
    estimator = estimator if estimator is not None else TransferRegressor(features=features)
    alphas = alphas.reset_index(drop=True).copy()
    alphas["alpha_predicted"] = np.nan
    for train, test in LeaveOneGroupOut().split(alphas, groups=alphas["target"]):
        fitted = clone(estimator).fit(alphas.iloc[train][features], alphas.iloc[train]["alpha"])
        alphas.loc[alphas.index[test], "alpha_predicted"] = fitted.predict(alphas.iloc[test][features]).to_numpy()
    few = frame[frame["n_target"] > 0].merge(alphas[PAIR + ["S_T0", "alpha", "alpha_predicted"]], on=PAIR, how="inner")
    few["predicted"] = curve(few["S_T0"], few["alpha_predicted"], few["n_target"])
    few["fitted_curve"] = curve(few["S_T0"], few["alpha"], few["n_target"])
    metrics = pd.DataFrame([{
        "n_pairs": len(alphas),
        "rmse_alpha": rmse(alphas["alpha"], alphas["alpha_predicted"]),
        "rmse_alpha_mean_baseline": rmse(alphas["alpha"], np.full(len(alphas), alphas["alpha"].mean())),
        "rmse_S_T": rmse(few["S_T"], few["predicted"]),
        "rmse_S_T_of_fitted_curve": rmse(few["S_T"], few["fitted_curve"]),
    }])
    return few, metrics
