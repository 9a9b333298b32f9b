"""Source-language recommendation from a fitted transfer model, with an uncertainty interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from jaxlt import languages
from jaxlt.features import sizes, typology
from jaxlt.stats.metaregression import TransferRegressor, loto_cross_validate
from jaxlt.stats.nshot import fit_alpha, loto_alpha

KEY = ["source", "target"]


def conformal_quantile(residuals, coverage: float) -> float:
    """The split-conformal quantile: the ceil((n+1) * coverage)-th smallest absolute residual."""
    residuals = np.sort(np.asarray(residuals, float))
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    rank = min(len(residuals), int(np.ceil((len(residuals) + 1) * coverage)))
    return float(residuals[rank - 1])


class SourceRecommender(BaseEstimator):
    """Rank source languages for a target by predicted S_T(n) = S_T(0) + alpha * log(n+1).

    Fit on the analysis frame of one task and model. Intervals are split-conformal style:
    the ``coverage`` quantile of absolute leave-one-target-out residuals, for zero-shot
    scores and for alpha (widened by log(n+1)), so they reflect error on unseen targets.
    """

    def __init__(self, features=None, n_features: int = 5, alpha: float = 0.01, coverage: float = 0.9):
        self.features = features
        self.n_features = n_features
        self.alpha = alpha
        self.coverage = coverage

    def fit(self, frame: pd.DataFrame, y=None, zero_cv: pd.DataFrame | None = None,
            alpha_cv: pd.DataFrame | None = None) -> "SourceRecommender":
        """Fit on one task's analysis frame. ``zero_cv`` / ``alpha_cv``: LOTO predictions already
        computed with the same settings (from loto_cross_validate / loto_alpha), to avoid refitting."""
        groups = frame[["task", "model"]].drop_duplicates()
        if len(groups) != 1:
            raise ValueError(f"fit one recommender per task and model; got {groups.to_dict('records')}")
        self.task_, self.model_ = groups.iloc[0]["task"], groups.iloc[0]["model"]
        zero = frame[frame["n_target"] == 0].reset_index(drop=True)
        features = list(self.features) if self.features is not None else [c for c in zero.columns if c in _DEFAULT]
        self.features_ = [f for f in features if zero[f].notna().any()]
        estimator = TransferRegressor(features=self.features_, n_features=self.n_features, alpha=self.alpha)
        self.zero_model_ = estimator.fit(zero, zero["S_T"])
        predictions = zero_cv if zero_cv is not None else loto_cross_validate(zero, self.features_, estimator=estimator)[0]
        self.zero_halfwidth_ = conformal_quantile(np.abs(predictions["observed"] - predictions["meta_regression"]), self.coverage)
        self.alpha_model_ = None
        self.alpha_halfwidth_ = np.nan
        if (frame["n_target"] > 0).any():
            alphas = fit_alpha(frame)
            if alphas["target"].nunique() >= 2:
                self.alpha_model_ = TransferRegressor(features=self.features_, n_features=self.n_features,
                                                      alpha=self.alpha).fit(alphas, alphas["alpha"])
                cv = alpha_cv if alpha_cv is not None else loto_alpha(frame, alphas, self.features_, estimator=estimator)[0]
                cv = cv.drop_duplicates(["source", "target"])
                self.alpha_halfwidth_ = conformal_quantile(np.abs(cv["alpha"] - cv["alpha_predicted"]), self.coverage)
        self.known_ = zero.set_index(KEY)
        self.source_features_ = zero.groupby("source")[["S_S"] + [c for c in zero.columns if c.endswith("_S") and c != "S_S"]].first()
        self.observed_n_ = frame.set_index(KEY + ["n_target"])["S_T"]
        return self

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Zero-shot S_T for rows of features (sklearn convention)."""
        return self.zero_model_.predict(X)

    def _pair_rows(self, target: str, sources: list[str]) -> pd.DataFrame:
        """Feature rows for (source, target): from the fitted data when the pair is known,
        otherwise built from offline features (typology, SIZE, the source's in-language score)."""
        known = self.known_.xs(target, level="target", drop_level=False) if target in self.known_.index.get_level_values("target") else None
        have = set(known.index.get_level_values("source")) if known is not None else set()
        parts = [known.reset_index()] if known is not None else []
        new = [s for s in sources if s not in have]
        if new:
            built = typology.pair_features([(s, target) for s in new])
            built = built.join(self.source_features_, on="source")
            if "SIZE_T" in self.features_:
                built["SIZE_T"] = sizes.log_size(sizes.corpus_for_model(self.model_)).get(target, np.nan)
            parts.append(built)
        frame = pd.concat(parts, ignore_index=True).set_index("source").loc[sources].reset_index()
        used = set(self.zero_model_.selected_) | (set(self.alpha_model_.selected_) if self.alpha_model_ else set())
        fresh = frame["source"].isin(new).to_numpy()
        lacking = sorted(f for f in used if f not in frame.columns or (f not in _COMPUTABLE and frame.loc[fresh, f].isna().any()))
        if lacking:
            raise ValueError(f"cannot recommend for target {target!r}: the fitted model uses {lacking}, which are not "
                             "available for this target (only typology, SIZE and the sources' in-language scores can be "
                             "computed for a pair outside the results)")
        # Missing values of computable features (sparse WALS) are mean-imputed, as in training; say which.
        missing = frame[sorted(used)].isna()
        frame["imputed"] = [",".join(missing.columns[row]) for row in missing.to_numpy()]
        return frame

    def recommend(self, target: str, n: int = 0, sources: list[str] | None = None) -> pd.DataFrame:
        """Sources ranked by predicted score on ``target`` with ``n`` target examples."""
        target = languages.normalize(target)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        candidates = [languages.normalize(s) for s in sources] if sources else list(self.source_features_.index)
        unknown = [s for s in candidates if s not in self.source_features_.index]
        if unknown:
            raise ValueError(f"no in-language score for source(s) {unknown}; known sources: {list(self.source_features_.index)}")
        candidates = [s for s in candidates if s != target]
        rows = self._pair_rows(target, candidates)
        predicted = self.zero_model_.predict(rows).to_numpy()
        width = np.full(len(rows), self.zero_halfwidth_)
        if n > 0:
            if self.alpha_model_ is None:
                raise ValueError(f"{self.task_}: no n-shot results to fit alpha; only --n 0 is possible")
            slope = self.alpha_model_.predict(rows).to_numpy()
            predicted = predicted + slope * np.log1p(n)
            width = width + self.alpha_halfwidth_ * np.log1p(n)
        out = pd.DataFrame({"source": rows["source"], "source_name": rows["source"].map(languages.name),
                            "predicted": predicted, "lower": predicted - width, "upper": predicted + width})
        out["imputed"] = rows["imputed"].to_numpy()
        out["observed"] = [self.observed_n_.get((s, target, n), np.nan) for s in out["source"]]
        out = out.sort_values("predicted", ascending=False, kind="stable").reset_index(drop=True)
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        out.attrs.update(task=self.task_, model=self.model_, target=target, n=n, coverage=self.coverage)
        return out


from jaxlt.features.frame import PAPER_FEATURES as _DEFAULT, TYPOLOGY_FEATURES  # noqa: E402  (frame imports stats)

_COMPUTABLE = set(TYPOLOGY_FEATURES) | {"S_S", "SIZE_S", "SIZE_T"}
