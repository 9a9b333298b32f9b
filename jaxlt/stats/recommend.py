"""Source-language recommendation from a fitted transfer model, with what a user needs to trust it:
intervals clipped to the metric's range, flags where the query leaves the fitted data, the probability
that each source is best (bootstrap over target languages and seeds), the per-source-mean baseline's
answer beside the model's, and the budget question (expected gain per doubling of n)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, clone

from jaxlt import languages
from jaxlt.features import sizes, typology
from jaxlt.stats.metaregression import TransferRegressor, ValidatedLasso, loto_cross_validate
from jaxlt.stats.nshot import fit_alpha, loto_alpha

KEY = ["source", "target"]
SCORE_RANGE = (0.0, 100.0)
RANGE_SLACK = 0.05  # a feature value more than 5% of its fitted span outside [min, max] is flagged


def conformal_quantile(residuals, coverage: float) -> float:
    """The split-conformal quantile: the ceil((n+1) * coverage)-th smallest absolute residual."""
    residuals = np.sort(np.asarray(residuals, float))
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must be in (0, 1), got {coverage}")
    rank = min(len(residuals), int(np.ceil((len(residuals) + 1) * coverage)))
    return float(residuals[rank - 1])


def _name(code: str) -> str:
    return languages.name(code) if languages.is_known(code) else code


class _Bootstrap:
    """Lasso refits on resampled target languages (with seed noise), with the fitted model's
    features, penalty, imputation and scaling held fixed; predictions are (rows, replicates)."""

    def __init__(self, model: TransferRegressor, frame: pd.DataFrame, y: np.ndarray, noise_sd: np.ndarray,
                 n_bootstrap: int, rng: np.random.Generator):
        prep = model.pipeline_[:-1]
        X = prep.transform(frame[model.selected_].to_numpy(float))
        targets = frame["target"].to_numpy()
        codes = np.unique(targets)
        members = {c: np.flatnonzero(targets == c) for c in codes}
        coefs, intercepts = [], []
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):  # many tiny fits
            for _ in range(n_bootstrap):
                rows = np.concatenate([members[c] for c in rng.choice(codes, size=len(codes), replace=True)])
                target = y[rows] + rng.normal(size=len(rows)) * noise_sd[rows]
                fit = ValidatedLasso(alpha=model.alpha_, max_iter=100_000).fit(X[rows], target)
                coefs.append(fit.coef_)
                intercepts.append(fit.intercept_)
        self.prep, self.features = prep, list(model.selected_)
        self.coefs, self.intercepts = np.array(coefs), np.array(intercepts)

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        X = self.prep.transform(rows[self.features].to_numpy(float))
        return X @ self.coefs.T + self.intercepts[None, :]


class SourceRecommender(BaseEstimator):
    """Rank source languages for a target by predicted S_T(n) = S_T(0) + alpha * log(n+1).

    Fit on the analysis frame of one task and model. Intervals are split-conformal style (the
    ``coverage`` quantile of absolute leave-one-target-out residuals, for zero-shot scores and
    for alpha, widened by log(n+1)) and clipped to 0-100. ``n_bootstrap`` refits on resampled
    target languages, with each cell's seed noise (between-seed sd / sqrt(seeds)) added, give
    the probability that each source is best.
    """

    def __init__(self, features=None, n_features="cv", alpha="cv", coverage: float = 0.9, n_bootstrap: int = 100, seed: int = 0):
        self.features = features
        self.n_features = n_features
        self.alpha = alpha
        self.coverage = coverage
        self.n_bootstrap = n_bootstrap
        self.seed = seed

    def fit(self, frame: pd.DataFrame, y=None, zero_cv: pd.DataFrame | None = None, alpha_cv: pd.DataFrame | None = None,
            zero_model: TransferRegressor | None = None, alpha_model: TransferRegressor | None = None,
            typology_file: pd.DataFrame | None = None) -> "SourceRecommender":
        """Fit on one task's analysis frame. ``zero_cv`` / ``alpha_cv`` (LOTO predictions) and
        ``zero_model`` / ``alpha_model`` (fitted on all data) may come from the analysis, to avoid refitting."""
        groups = frame[["task", "model"]].drop_duplicates()
        if len(groups) != 1:
            raise ValueError(f"fit one recommender per task and model; got {groups.to_dict('records')}")
        self.task_, self.model_ = groups.iloc[0]["task"], groups.iloc[0]["model"]
        zero = frame[frame["n_target"] == 0].reset_index(drop=True)
        features = list(self.features) if self.features is not None else [c for c in zero.columns if c in _DEFAULT]
        self.features_ = [f for f in features if zero[f].notna().any() and zero[f].nunique() > 1]
        estimator = TransferRegressor(features=self.features_, n_features=self.n_features, alpha=self.alpha)
        self.zero_model_ = zero_model if zero_model is not None else clone(estimator).fit(zero, zero["S_T"])
        predictions = zero_cv if zero_cv is not None else loto_cross_validate(zero, self.features_, estimator=estimator)[0]
        self.zero_halfwidth_ = conformal_quantile(np.abs(predictions["observed"] - predictions["meta_regression"]), self.coverage)
        rng = np.random.default_rng(self.seed)
        noise = (zero["score_std"].fillna(0) / np.sqrt(zero["n_seeds"].clip(lower=1))).where(zero["n_seeds"] >= 2, 0.0) \
            if {"score_std", "n_seeds"} <= set(zero.columns) else pd.Series(0.0, index=zero.index)
        self.zero_boot_ = _Bootstrap(self.zero_model_, zero, zero["S_T"].to_numpy(float), noise.to_numpy(float), self.n_bootstrap, rng)
        self.alpha_model_, self.alpha_boot_ = None, None
        self.alpha_halfwidth_ = np.nan
        self.max_n_ = int(frame["n_target"].max())
        if (frame["n_target"] > 0).any():
            alphas = fit_alpha(frame)
            if alphas["target"].nunique() >= 2:
                alpha_features = [f for f in dict.fromkeys([*self.features_, "S_T0"]) if alphas[f].notna().any()]
                self.alpha_model_ = alpha_model if alpha_model is not None else clone(estimator).set_params(
                    features=alpha_features).fit(alphas, alphas["alpha"])
                cv = alpha_cv if alpha_cv is not None else loto_alpha(frame, alphas, self.features_, estimator=estimator)[0]
                cv = cv.drop_duplicates(["source", "target"])
                self.alpha_halfwidth_ = conformal_quantile(np.abs(cv["alpha"] - cv["alpha_predicted"]), self.coverage)
                self.alpha_boot_ = _Bootstrap(self.alpha_model_, alphas.reset_index(drop=True), alphas["alpha"].to_numpy(float),
                                              np.zeros(len(alphas)), self.n_bootstrap, rng)
        used = set(self.zero_model_.selected_) | (set(self.alpha_model_.selected_) if self.alpha_model_ else set())
        self.ranges_ = {f: (float(zero[f].min()), float(zero[f].max())) for f in sorted(used - {"S_T0"}) if zero[f].notna().any()}
        self.targets_ = sorted(set(zero["target"]))
        self.known_ = zero.set_index(KEY)
        self.source_features_ = zero.groupby("source")[["S_S"] + [c for c in zero.columns if c.endswith("_S") and c != "S_S"]].first()
        self.observed_n_ = frame.set_index(KEY + ["n_target"])["S_T"]
        # the per-source-mean baseline at any n: the source's mean zero-shot score plus its mean alpha log(n+1)
        self.baseline_zero_ = zero.groupby("source")["S_T"].mean()
        self.baseline_alpha_ = fit_alpha(frame).groupby("source")["alpha"].mean() if (frame["n_target"] > 0).any() else pd.Series(dtype=float)
        self.typology_ = typology_file
        return self

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Zero-shot S_T for rows of features (sklearn convention)."""
        return self.zero_model_.predict(X)

    def pair_rows(self, target: str, sources: list[str]) -> pd.DataFrame:
        """Feature rows for (source, target): from the fitted data when the pair is known,
        otherwise built from offline features (typology, SIZE, the source's in-language score)."""
        known = self.known_.xs(target, level="target", drop_level=False) if target in self.known_.index.get_level_values("target") else None
        have = set(known.index.get_level_values("source")) if known is not None else set()
        parts = [known.reset_index()] if known is not None else []
        new = [s for s in sources if s not in have]
        if new:
            built = typology.pair_features([(s, target) for s in new], user=self.typology_)
            built = built.join(self.source_features_, on="source")
            if "SIZE_T" in self.features_:
                built["SIZE_T"] = sizes.log_size(sizes.corpus_for_model(self.model_)).get(target, np.nan)
            parts.append(built)
        frame = pd.concat(parts, ignore_index=True).set_index("source").loc[sources].reset_index()
        used = set(self.zero_model_.selected_) | (set(self.alpha_model_.selected_) - {"S_T0"} if self.alpha_model_ else set())
        fresh = frame["source"].isin(new).to_numpy()
        lacking = sorted(f for f in used if f not in frame.columns or (f not in _COMPUTABLE and frame.loc[fresh, f].isna().any()))
        if lacking:
            raise ValueError(f"cannot recommend for target {target!r}: the fitted model uses {lacking}, which are not "
                             "available for this target (only typology, SIZE and the sources' in-language scores can be "
                             "computed for a pair outside the results)")
        missing = frame[sorted(used)].isna()  # sparse WALS: mean-imputed, as in training; say which
        frame["imputed"] = [",".join(missing.columns[row]) for row in missing.to_numpy()]
        return frame

    def _flags(self, rows: pd.DataFrame, target: str, n: int) -> list[str]:
        flags = []
        for _, row in rows.iterrows():
            out = []
            if target not in self.targets_:
                out.append("target not in the fitted data")
            if n > self.max_n_:
                out.append(f"n beyond fitted range (max {self.max_n_})")
            for feature, (lo, hi) in self.ranges_.items():
                value, slack = row.get(feature, np.nan), RANGE_SLACK * (hi - lo)
                if not np.isnan(value) and (value < lo - slack or value > hi + slack):
                    out.append(f"{feature} {value:.2f} outside fitted [{lo:.2f}, {hi:.2f}]")
            flags.append("; ".join(out))
        return flags

    def recommend(self, target: str, n: int = 0, sources: list[str] | None = None, extrapolate: bool = False) -> pd.DataFrame:
        """Sources ranked by predicted score on ``target`` with ``n`` target examples.

        Refuses n beyond the largest n in the results unless ``extrapolate``; flags rows whose
        features lie outside the fitted range and targets outside the fitted data."""
        extra = set(self.typology_.index) if self.typology_ is not None else set()
        target = target if target in extra else languages.normalize(target)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if n > self.max_n_ and not extrapolate:
            raise ValueError(f"n = {n} is outside the fitted range (the results have n <= {self.max_n_}); "
                             "pass --extrapolate to predict anyway (rows are then flagged)")
        candidates = [s if s in extra else languages.normalize(s) for s in sources] if sources else list(self.source_features_.index)
        unknown = [s for s in candidates if s not in self.source_features_.index]
        if unknown:
            raise ValueError(f"no in-language score for source(s) {unknown}; known sources: {list(self.source_features_.index)}")
        candidates = [s for s in candidates if s != target]
        if not candidates:
            raise ValueError(f"no candidate source for target {target!r}: the only candidate is {target!r} itself "
                             "(a source is never its own target)")
        rows = self.pair_rows(target, candidates)
        zero = self.zero_model_.predict(rows).to_numpy()
        predicted, width, boot = zero, np.full(len(rows), self.zero_halfwidth_), self.zero_boot_.predict(rows)
        slope = np.full(len(rows), np.nan)
        if n > 0:
            if self.alpha_model_ is None:
                raise ValueError(f"{self.task_}: no n-shot results to fit alpha; only --n 0 is possible")
            alpha_rows = rows.assign(S_T0=np.clip(zero, *SCORE_RANGE))
            slope = self.alpha_model_.predict(alpha_rows).to_numpy()
            predicted = zero + slope * np.log1p(n)
            width = width + self.alpha_halfwidth_ * np.log1p(n)
            boot = boot + self.alpha_boot_.predict(alpha_rows.assign(S_T0=np.clip(boot.mean(axis=1), *SCORE_RANGE))) * np.log1p(n)
        # tied predictions (e.g. a model that uses only target features) share the credit of being best; a single
        # candidate (one-source results, or --sources with one code) is best by construction: P(best) = 1, which
        # compares it with nothing (attrs n_candidates = 1; budget_answer says so instead of quoting the bootstrap)
        top = np.isclose(boot, boot.max(axis=0, keepdims=True), rtol=0, atol=1e-9)
        p_best = (top / top.sum(axis=0, keepdims=True)).mean(axis=1)
        out = pd.DataFrame({"source": rows["source"], "source_name": rows["source"].map(_name),
                            "predicted": np.clip(predicted, *SCORE_RANGE),
                            "lower": np.clip(predicted - width, *SCORE_RANGE), "upper": np.clip(predicted + width, *SCORE_RANGE),
                            "p_best": p_best,
                            "gain_per_doubling": slope * (np.log1p(2 * n) - np.log1p(n)) if n > 0 else np.nan,
                            "baseline": [self.baseline_zero_.get(s, np.nan) + self.baseline_alpha_.get(s, 0.0) * np.log1p(n)
                                         for s in rows["source"]]})
        out["clipped"] = (predicted < SCORE_RANGE[0]) | (predicted > SCORE_RANGE[1])
        out["flags"] = self._flags(rows, target, n)
        out["imputed"] = rows["imputed"].to_numpy()
        out["observed"] = [self.observed_n_.get((s, target, n), np.nan) for s in out["source"]]
        out["baseline_rank"] = out["baseline"].rank(ascending=False, method="min").astype("Int64")
        out = out.sort_values("predicted", ascending=False, kind="stable").reset_index(drop=True)
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        baseline_best = out.loc[out["baseline"].idxmax(), "source"] if out["baseline"].notna().any() else None
        tied = np.isclose(out["predicted"], out["predicted"].iloc[0], rtol=0, atol=1e-6) if len(out) else np.array([])
        out.attrs.update(task=self.task_, model=self.model_, target=target, n=n, coverage=self.coverage, n_tied_at_top=int(tied.sum()),
                         best=out["source"].iloc[0] if len(out) else None, baseline_best=baseline_best,
                         n_bootstrap=self.n_bootstrap, n_candidates=len(out))
        return out


def budget_answer(table: pd.DataFrame) -> str:
    """One plain sentence answering: for this target and n, which source, and what does doubling n buy?"""
    a = table.attrs
    if table.empty:
        return "no candidate sources"
    top = table.iloc[0]
    if a.get("n_candidates", len(table)) == 1:
        text = (f"For {a['target']} with n = {a['n']}: {top['source']} ({top['source_name']}) is the only candidate "
                f"source, predicted {top['predicted']:.1f} [{top['lower']:.1f}, {top['upper']:.1f}]; its P(best) = 1 holds "
                "by construction and compares it with no other source")
    elif a.get("n_tied_at_top", 1) > 1:
        text = (f"For {a['target']} with n = {a['n']}: the model does not tell {a['n_tied_at_top']} sources apart (tied at "
                f"{top['predicted']:.1f} [{top['lower']:.1f}, {top['upper']:.1f}]; it uses no feature that differs between "
                f"them)")
    else:
        text = (f"For {a['target']} with n = {a['n']}: fine-tune on {top['source']} ({top['source_name']}), predicted "
                f"{top['predicted']:.1f} [{top['lower']:.1f}, {top['upper']:.1f}], best in {100 * top['p_best']:.0f}% of "
                f"{a['n_bootstrap']} bootstrap refits")
    if a["n"] > 0 and not np.isnan(top["gain_per_doubling"]):
        text += f"; doubling n to {2 * a['n']} adds about {top['gain_per_doubling']:.1f} points"
    if a.get("baseline_best") and a.get("n_candidates", len(table)) > 1:
        text += f". The per-source-mean baseline would pick {a['baseline_best']}"
        text += "." if a.get("n_tied_at_top", 1) > 1 else (" (the same)." if a["baseline_best"] == top["source"] else " (a different source).")
    else:
        text += "."
    if top["flags"]:
        text += f" Caution: {top['flags']}."
    return text


from jaxlt.features.frame import PAPER_FEATURES as _DEFAULT, TYPOLOGY_FEATURES  # noqa: E402  (frame imports stats)

_COMPUTABLE = set(TYPOLOGY_FEATURES) | {"S_S", "SIZE_S", "SIZE_T"}
