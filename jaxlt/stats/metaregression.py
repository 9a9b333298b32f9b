"""Zero-shot meta-regression (paper section 3.2.1, Table 3a, Figure 2).

A scikit-learn regressor: mean imputation, min-max scaling to [0, 1] (the paper scales every
variable to [0, 1]), then Lasso with recursive feature elimination by |coefficient| (the paper's
procedure). The number of features and the Lasso penalty are chosen by cross-validation over
target languages *inside* the training data (sklearn ``RFECV`` and ``LassoCV`` with
``GroupKFold`` on targets), so the outer leave-one-target-language-out evaluation is nested and
honest. Imputation and scaling are refitted inside every fold. The final equation is refit on
all data with ordinary least squares (statsmodels) for standard errors and p-values: plain, from
the delete-one-language jackknife, and two-way cluster-robust.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.feature_selection import RFE, RFECV
from sklearn.impute import SimpleImputer
from sklearn.linear_model import Lasso, LassoCV
from sklearn.metrics import ndcg_score
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

INNER_FOLDS = 3  # inner CV over target languages (GroupKFold); 3 keeps the nested CV affordable on a laptop
N_ALPHAS = 20


def neg_rmse(estimator, X, y) -> float:
    """RFECV's score: minus the RMSE of a fitted linear model, as scikit-learn's "neg_root_mean_squared_error"
    scorer, computed directly (the scorer's input validation is a third of RFECV's time on tiny data)."""
    return -float(np.sqrt(np.mean((np.asarray(y, float) - (X @ estimator.coef_ + estimator.intercept_)) ** 2)))


class ValidatedLasso(Lasso):
    """sklearn's Lasso for inputs its caller has already validated (RFE / RFECV pass float ndarrays; the
    bootstrap its scaled design): the fit skips the per-call input validation (``check_input=False``),
    which is most of a fit's time on tiny data. Same solver on the same Fortran-ordered float64 copy,
    so the same coefficients bit for bit (tested against Lasso)."""

    def fit(self, X, y, sample_weight=None, check_input=True):
        return super().fit(np.asfortranarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64),
                           sample_weight=sample_weight, check_input=False)


def _pipeline(alpha: float) -> Pipeline:
    return Pipeline([("impute", SimpleImputer(strategy="mean", keep_empty_features=True)), ("scale", MinMaxScaler()),
                     ("model", Lasso(alpha=alpha, max_iter=100_000))])


class TransferRegressor(RegressorMixin, BaseEstimator):
    """Impute -> MinMax scale -> Lasso, with recursive feature elimination by |coef|. DataFrames in, Series out.

    n_features: how many features RFE keeps, or "cv" to choose it by RFECV over target groups.
    alpha: Lasso penalty on [0, 1]-scaled features (scores stay in points), or "cv" for LassoCV over
    target groups (chosen on all candidate features, then kept during elimination).
    groups: the column of X that defines the CV groups (target language); needed for "cv".
    Fitted: selected_ (features kept), alpha_ (penalty used), coef_, intercept_, cv_scores_ (RFECV).
    """

    def __init__(self, features=None, n_features="cv", alpha="cv", groups: str = "target"):
        self.features = features
        self.n_features = n_features
        self.alpha = alpha
        self.groups = groups

    def _columns(self, X: pd.DataFrame) -> list[str]:
        columns = list(self.features) if self.features is not None else [c for c in X.columns if c != self.groups]
        missing = [c for c in columns if c not in X.columns]
        if missing:
            raise KeyError(f"feature column(s) {missing} not in X (has {list(X.columns)})")
        return columns

    def _splits(self, X: pd.DataFrame, n: int):
        if self.groups not in X.columns:
            raise ValueError(f"choosing n_features/alpha by CV needs the group column {self.groups!r} in X")
        groups = X[self.groups].to_numpy()
        k = min(INNER_FOLDS, len(set(groups)))
        if k < 2:
            raise ValueError(f"choosing n_features/alpha by CV needs at least 2 {self.groups} groups, got {k}")
        return list(GroupKFold(n_splits=k).split(np.zeros(n), groups=groups))

    def fit(self, X: pd.DataFrame, y) -> "TransferRegressor":
        columns = self._columns(X)
        all_nan = [c for c in columns if X[c].isna().all()]
        if all_nan:
            raise ValueError(f"feature(s) {all_nan} have no values in the training data; leave them out")
        self.feature_names_in_ = np.array(columns)
        values, y = X[columns].to_numpy(float), np.asarray(y, float)
        needs_cv = self.alpha == "cv" or self.n_features == "cv"
        splits = self._splits(X, len(y)) if needs_cv else None
        # Imputation and scaling are fitted on this (outer) training set; the inner CV that picks the
        # penalty and the number of features reuses them (it only chooses hyper-parameters).
        prep = Pipeline([("impute", SimpleImputer(strategy="mean", keep_empty_features=True)), ("scale", MinMaxScaler())])
        with sklearn.config_context(skip_parameter_validation=True):
            scaled = prep.fit_transform(values)
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):  # tiny data: overhead dominates
            if self.alpha == "cv":
                self.alpha_ = float(LassoCV(alphas=N_ALPHAS, cv=splits, max_iter=100_000).fit(scaled, y).alpha_)
            else:
                self.alpha_ = float(self.alpha)
            lasso = ValidatedLasso(alpha=self.alpha_, max_iter=100_000)  # RFE/RFECV validate X once themselves
            if self.n_features == "cv" and len(columns) > 1:
                rfe = RFECV(lasso, step=1, min_features_to_select=1, cv=splits, scoring=neg_rmse).fit(scaled, y)
                self.cv_scores_ = pd.Series(rfe.cv_results_["mean_test_score"], index=np.arange(1, len(columns) + 1),
                                            name="cv_neg_rmse")
                support = rfe.support_
            elif self.n_features != "cv" and int(self.n_features) < len(columns):
                support = RFE(lasso, n_features_to_select=int(self.n_features)).fit(scaled, y).support_
            else:
                support = np.ones(len(columns), bool)
        self.selected_ = [c for c, keep in zip(columns, support) if keep]
        with sklearn.config_context(skip_parameter_validation=True):
            self.pipeline_ = _pipeline(self.alpha_).fit(X[self.selected_].to_numpy(float), y)
        fitted = self.pipeline_.named_steps["model"]
        self.coef_ = pd.Series(fitted.coef_, index=self.selected_, name="coef")
        self.intercept_ = float(fitted.intercept_)
        return self

    def predict(self, X: pd.DataFrame) -> pd.Series:
        with sklearn.config_context(skip_parameter_validation=True):
            predicted = self.pipeline_.predict(X[self.selected_].to_numpy(float))
        return pd.Series(predicted, index=X.index, name="predicted")


def ranking_metrics(predictions: pd.DataFrame, score: str = "predicted", truth: str = "observed",
                    by: tuple[str, ...] = ("target", "n_target"), k: int = 3) -> dict:
    """Top-1 best-source accuracy and mean NDCG@k (scikit-learn's ndcg_score, tie-averaged) over
    (target, n) groups with at least two sources.

    Top-1: share of groups whose top predicted source is an observed best; when several
    sources tie for the top prediction, the hit counts as the fraction of them that are best.
    NDCG@k uses the observed scores (0-100) as graded relevance.
    """
    codes = predictions.groupby(list(by), sort=True).ngroup().to_numpy()
    y = predictions[truth].to_numpy(float)
    s = predictions[score].to_numpy(float)
    hits, by_size = [], {}
    for code in np.unique(codes):
        rows = (codes == code) & ~np.isnan(s) & ~np.isnan(y)
        yg, sg = y[rows], s[rows]
        if len(yg) < 2:
            continue
        top = np.isclose(sg, sg.max())  # tied top predictions: a random pick among them (expected hit rate)
        hits.append(float(np.mean(np.isclose(yg[top], yg.max()))))
        by_size.setdefault(len(yg), []).append((np.clip(yg, 0, None), sg))
    ndcgs = []
    for groups in by_size.values():  # one ndcg_score call per ranking length (its validation is costly)
        truth_rows, score_rows = np.array([g[0] for g in groups]), np.array([g[1] for g in groups])
        ndcgs += [float(ndcg_score([t], [p], k=k)) if t.max() > 0 else 0.0 for t, p in zip(truth_rows, score_rows)] \
            if (truth_rows.max(axis=1) <= 0).any() else \
            [float(ndcg_score(truth_rows, score_rows, k=k))] * len(groups)
    return {"top1_accuracy": float(np.mean(hits)) if hits else np.nan,
            f"ndcg@{k}": float(np.mean(ndcgs)) if ndcgs else np.nan, "n_rankings": len(hits)}


METHODS = ("meta_regression", "training_mean", "source_mean", "always_english", "largest_corpus")
BASELINES = ("training_mean", "source_mean", "always_english", "largest_corpus")


def rmse(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.sqrt(np.mean((a - b) ** 2)))


def loto_cross_validate(frame: pd.DataFrame, features: list[str], y: str = "S_T", estimator=None,
                        size_feature: str = "SIZE_S") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leave-one-target-language-out CV of the regressor and the baselines.

    Returns (predictions, metrics). predictions has one row per pair and one column per
    method; metrics one row per method with RMSE (mean over folds, as the paper, and
    pooled), top-1 accuracy and NDCG@3, and ``attrs['folds']``: what was selected in each fold.
    Baselines: training mean, per-source training mean, always English (ranking only) and
    largest pre-training corpus (ranking only).
    """
    estimator = estimator if estimator is not None else TransferRegressor(features=features)
    frame = frame.reset_index(drop=True)
    out = frame[["task", "model", "source", "target", "n_target"]].copy()
    out["observed"] = frame[y].to_numpy(float)
    for method in METHODS:
        out[method] = np.nan
    out["fold"] = ""
    folds = []
    for train, test in LeaveOneGroupOut().split(frame, groups=frame["target"]):
        tr, te = frame.iloc[train], frame.iloc[test]
        fitted = clone(estimator).fit(tr, tr[y])
        folds.append({"fold": te["target"].iloc[0], "selected": "+".join(fitted.selected_),
                      "n_selected": len(fitted.selected_), "lasso_alpha": fitted.alpha_,
                      "nonzero": "+".join(c for c, v in fitted.coef_.items() if v != 0)})
        out.loc[te.index, "meta_regression"] = fitted.predict(te).to_numpy()
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
    metrics = flag_losses(pd.DataFrame(rows))
    folds = pd.DataFrame(folds)
    metrics.attrs["folds"] = folds
    counts = pd.Series([f for sel in folds["selected"] for f in sel.split("+") if f]).value_counts()
    metrics.attrs["selection_frequency"] = (counts / len(folds)).to_dict()
    return out, metrics


def flag_losses(metrics: pd.DataFrame, model: str = "meta_regression") -> pd.DataFrame:
    """Add ``loses_to``: for the model row, the baselines that beat it (lower RMSE, or higher top-1 / NDCG@3)."""
    metrics = metrics.copy()
    metrics["loses_to"] = ""
    if model not in set(metrics["method"]):
        return metrics
    mine = metrics.set_index("method").loc[model]
    losses = []
    for _, row in metrics[metrics["method"] != model].iterrows():
        beaten = []
        if not np.isnan(row.get("rmse_mean_over_folds", np.nan)) and row["rmse_mean_over_folds"] < mine["rmse_mean_over_folds"] - 1e-9:
            beaten.append("RMSE")
        for column in ("top1_accuracy", "ndcg@3"):
            if column in row and not np.isnan(row[column]) and not np.isnan(mine[column]) and row[column] > mine[column] + 1e-9:
                beaten.append(column.replace("_accuracy", ""))
        if beaten:
            losses.append(f"{row['method']} ({', '.join(beaten)})")
    metrics.loc[metrics["method"] == model, "loses_to"] = "; ".join(losses)
    return metrics


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
    # Pairs share languages: the delete-one-language jackknife (calibrated in simulation) and two-way
    # cluster-robust errors (source, target; t with G - 1 df; too small with few languages) beside the plain ones.
    from jaxlt.stats.correlations import cluster_robust, language_jackknife

    outcome = frame[y].astype(float).to_numpy()
    se, p = cluster_robust(outcome, X.to_numpy(), frame["source"], frame["target"])
    table["std_err_cluster"], table["p_value_cluster"] = se, p
    se, p, used = language_jackknife(outcome, X.to_numpy(), frame["source"].to_numpy(), frame["target"].to_numpy())
    table["std_err_jackknife"], table["p_value_jackknife"], table["jackknife_deletions"] = se, p, used
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
