"""Zero-shot meta-regression (paper section 3.2.1, Table 3a, Figure 2).

A scikit-learn regressor: mean imputation, min-max scaling to [0, 1] (the paper scales
every variable to [0, 1]), then Lasso with recursive feature elimination on |coef|. It is
evaluated with leave-one-target-language-out cross-validation, where imputation and
scaling are fitted inside each training fold. The final equation is refit on all data
with ordinary least squares (statsmodels) to get standard errors and p-values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.feature_selection import RFE
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Lasso
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler


class TransferRegressor(RegressorMixin, BaseEstimator):
    """Impute -> MinMax scale -> Lasso with RFE. DataFrames in, Series out.

    n_features: how many features RFE keeps (all when there are fewer).
    alpha: Lasso penalty on min-max-scaled features (scores stay in points).
    """

    def __init__(self, features=None, n_features: int = 5, alpha: float = 0.01):
        self.features = features
        self.n_features = n_features
        self.alpha = alpha

    def _columns(self, X: pd.DataFrame) -> list[str]:
        columns = list(self.features) if self.features is not None else list(X.columns)
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise KeyError(f"feature column(s) {missing} not in X (has {list(X.columns)})")
        return columns

    def fit(self, X: pd.DataFrame, y) -> "TransferRegressor":
        columns = self._columns(X)
        all_nan = [c for c in columns if X[c].isna().all()]
        if all_nan:
            raise ValueError(f"feature(s) {all_nan} have no values in the training data; leave them out")
        self.feature_names_in_ = np.array(columns)
        n_keep = min(self.n_features, len(columns))
        lasso = Lasso(alpha=self.alpha, max_iter=100_000)
        # RFE needs something to eliminate; with no more features than kept, fit the Lasso directly.
        last = RFE(lasso, n_features_to_select=n_keep) if n_keep < len(columns) else lasso
        self.pipeline_ = Pipeline([("impute", SimpleImputer(strategy="mean")), ("scale", MinMaxScaler()), ("model", last)])
        self.pipeline_.fit(X[columns].to_numpy(float), np.asarray(y, float))
        if isinstance(last, RFE):
            self.selected_ = [c for c, keep in zip(columns, last.support_) if keep]
            fitted = last.estimator_
        else:
            self.selected_, fitted = list(columns), last
        self.coef_ = pd.Series(fitted.coef_, index=self.selected_, name="coef")
        self.intercept_ = float(fitted.intercept_)
        return self

    def predict(self, X: pd.DataFrame) -> pd.Series:
        columns = list(self.feature_names_in_)
        return pd.Series(self.pipeline_.predict(X[columns].to_numpy(float)), index=X.index, name="predicted")


def dcg_at_k(relevance: np.ndarray, score: np.ndarray, k: int) -> float:
    """DCG@k of items ranked by ``score``; tied scores share the mean gain of their positions
    (the tie-averaged DCG of McSherry & Najork 2008, as scikit-learn's ndcg_score)."""
    order = np.argsort(-score, kind="stable")
    relevance, score = relevance[order], score[order]
    discount = np.zeros(len(score))
    discount[: min(k, len(score))] = 1.0 / np.log2(np.arange(min(k, len(score))) + 2)
    total, start = 0.0, 0
    while start < len(score):
        end = start + 1
        while end < len(score) and score[end] == score[start]:
            end += 1
        total += relevance[start:end].mean() * discount[start:end].sum()
        start = end
    return float(total)


def ndcg_at_k(relevance: np.ndarray, score: np.ndarray, k: int = 3) -> float:
    relevance, score = np.asarray(relevance, float), np.asarray(score, float)
    ideal = dcg_at_k(relevance, relevance, k)
    return dcg_at_k(relevance, score, k) / ideal if ideal > 0 else 0.0


def ranking_metrics(predictions: pd.DataFrame, score: str = "predicted", truth: str = "observed",
                    by: tuple[str, ...] = ("target", "n_target"), k: int = 3) -> dict:
    """Top-1 best-source accuracy and mean NDCG@k over (target, n) groups.

    Top-1: share of groups whose top predicted source is an observed best; when several
    sources tie for the top prediction, the hit counts as the fraction of them that are best.
    NDCG@k uses the observed scores (0-100) as graded relevance.
    """
    codes = predictions.groupby(list(by), sort=True).ngroup().to_numpy()
    y = predictions[truth].to_numpy(float)
    s = predictions[score].to_numpy(float)
    hits, ndcgs = [], []
    for code in np.unique(codes):
        rows = codes == code
        yg, sg = y[rows], s[rows]
        if len(yg) < 2 or np.isnan(sg).all():
            continue
        # Tied top predictions count as a random pick among them (expected hit rate).
        top = np.isclose(sg, np.nanmax(sg))
        hits.append(float(np.mean(np.isclose(yg[top], yg.max()))))
        ndcgs.append(ndcg_at_k(yg, sg, k))
    return {"top1_accuracy": float(np.mean(hits)) if hits else np.nan,
            f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else np.nan, "n_rankings": len(hits)}


METHODS = ("meta_regression", "training_mean", "source_mean", "always_english", "largest_corpus")


def rmse(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def loto_cross_validate(frame: pd.DataFrame, features: list[str], y: str = "S_T", estimator=None,
                        size_feature: str = "SIZE_S") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leave-one-target-language-out CV of the regressor and the baselines.

    Returns (predictions, metrics). predictions has one row per pair and one column per
    method; metrics one row per method with RMSE (mean over folds, as the paper, and
    pooled), top-1 accuracy and NDCG@3. Baselines: training mean, per-source training
    mean, always English (ranking only) and largest pre-training corpus (ranking only).
    """
    estimator = estimator if estimator is not None else TransferRegressor(features=features)
    frame = frame.reset_index(drop=True)
    out = frame[["task", "model", "source", "target", "n_target"]].copy()
    out["observed"] = frame[y].to_numpy(float)
    for method in METHODS:
        out[method] = np.nan
    out["fold"] = ""
    selections = []
    for train, test in LeaveOneGroupOut().split(frame, groups=frame["target"]):
        tr, te = frame.iloc[train], frame.iloc[test]
        fitted = clone(estimator).fit(tr[features], tr[y])
        selections.append(fitted.selected_)
        out.loc[te.index, "meta_regression"] = fitted.predict(te[features]).to_numpy()
        out.loc[te.index, "fold"] = te["target"].iloc[0]
        out.loc[te.index, "training_mean"] = tr[y].mean()
        per_source = tr.groupby("source")[y].mean()
        out.loc[te.index, "source_mean"] = te["source"].map(per_source).fillna(tr[y].mean()).to_numpy()
    out["always_english"] = (out["source"] == "en").astype(float) if (out["source"] == "en").any() else np.nan
    if size_feature in frame.columns:
        out["largest_corpus"] = frame[size_feature].to_numpy(float)
    rows = []
    for method in METHODS:
        row = {"method": method}
        if method in ("meta_regression", "training_mean", "source_mean"):
            row["rmse_mean_over_folds"] = float(np.mean([rmse(g["observed"], g[method]) for _, g in out.groupby("fold")]))
            row["rmse_pooled"] = rmse(out["observed"], out[method])
        else:
            row["rmse_mean_over_folds"] = row["rmse_pooled"] = np.nan
        if out[method].notna().any():
            row.update(ranking_metrics(out, score=method))
        else:
            row.update(top1_accuracy=np.nan, **{"ndcg@3": np.nan}, n_rankings=0)
        rows.append(row)
    metrics = pd.DataFrame(rows)
    counts = pd.Series([f for sel in selections for f in sel]).value_counts()
    metrics.attrs["selection_frequency"] = (counts / len(selections)).to_dict()
    return out, metrics


def refit_ols(frame: pd.DataFrame, features: list[str], y: str = "S_T") -> pd.DataFrame:
    """OLS on all data with the selected features min-max scaled to [0, 1] (mean-imputed):
    coefficient, standard error, t, p-value and 95% interval per term (Figure 2)."""
    from statsmodels.regression.linear_model import OLS  # imported here: statsmodels is slow to import

    X = frame[features].astype(float)
    X = X.fillna(X.mean())
    span = (X.max() - X.min()).replace(0, 1.0)
    X = (X - X.min()) / span
    X.insert(0, "const", 1.0)
    result = OLS(frame[y].astype(float).to_numpy(), X).fit()
    ci = result.conf_int()
    table = pd.DataFrame({
        "term": result.params.index, "coef": result.params.to_numpy(), "std_err": result.bse.to_numpy(),
        "t": result.tvalues.to_numpy(), "p_value": result.pvalues.to_numpy(),
        "ci_low": ci.iloc[:, 0].to_numpy(), "ci_high": ci.iloc[:, 1].to_numpy(),
    })
    # Pairs share languages: two-way cluster-robust errors (source, target; t with G - 1 df) beside the plain ones.
    from jaxlt.stats.correlations import cluster_robust

    se, p = cluster_robust(frame[y].astype(float).to_numpy(), X.to_numpy(), frame["source"], frame["target"])
    table["std_err_cluster"], table["p_value_cluster"] = se, p
    table.attrs.update(r2=float(result.rsquared), n=int(result.nobs))
    return table


def equation(table: pd.DataFrame, lhs: str = "S_T(0)") -> str:
    """The refit model as a one-line equation like the paper's Figure 2."""
    parts = []
    for term, coef in zip(table["term"], table["coef"]):
        if term == "const":
            parts.insert(0, f"{coef:.2f}")
        else:
            parts.append(f"{'+' if coef >= 0 else '-'} {abs(coef):.2f} {term}")
    return f"{lhs} = " + " ".join(parts)
