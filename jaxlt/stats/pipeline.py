"""Run every analysis of the stage on an AnalysisData and collect the tables."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jaxlt.features.frame import AnalysisData
from jaxlt.stats import correlations, metaregression, nshot, transfer
from jaxlt.stats.recommend import SourceRecommender

log = logging.getLogger("jaxlt.analysis")


@dataclasses.dataclass
class AnalysisResult:
    data: AnalysisData
    tables: dict[str, pd.DataFrame]  # name -> table (written as CSV)
    equations: dict[str, str]  # "task/model" -> refit equation
    recommenders: dict[str, SourceRecommender]  # "task/model" -> fitted recommender
    options: dict


def pair_feature_table(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The pair features actually used, long as DESIGN.md: task, model, source, target, feature, value."""
    pair = [f for f in features if f in frame.columns and f not in ("S_S",)]
    unique = frame.drop_duplicates(["task", "model", "source", "target"])
    long = unique.melt(id_vars=["task", "model", "source", "target"], value_vars=pair, var_name="feature", value_name="value")
    return long.dropna(subset=["value"]).sort_values(["task", "model", "source", "target", "feature"]).reset_index(drop=True)


def analyze(data: AnalysisData, *, n_features: int = 5, lasso_alpha: float = 0.01, n_permutations: int = 999,
            seed: int = 0, features: list[str] | None = None, coverage: float = 0.9) -> AnalysisResult:
    frame = data.frame
    features = list(features) if features else list(data.regression_features)
    unknown = [f for f in features if f not in frame.columns or frame[f].isna().all()]
    if unknown:
        raise ValueError(f"regression feature(s) {unknown} unavailable; available: {data.correlation_features}")
    zero = frame[frame["n_target"] == 0]
    tables: dict[str, pd.DataFrame] = {}
    tables["analysis_frame"] = frame
    tables["correlations"] = correlations.bivariate(zero, data.correlation_features, "gap",
                                                    n_permutations=n_permutations, seed=seed)
    tables["n_transformations"] = correlations.n_transformations(frame)
    cv_rows, predictions, coefficients, nshot_rows, nshot_predictions, alphas, greedy = [], [], [], [], [], [], []
    equations, recommenders = {}, {}
    groups = list(zero.groupby(["task", "model"], sort=True))
    for (task, model), group in tqdm(groups, desc="meta-regression", disable=len(groups) < 3):
        name = f"{task}/{model}"
        if group["target"].nunique() < 3:
            data.ledger.exclude("meta-regression", f"{name} pairs", "fewer than 3 target languages for leave-one-target-out CV", len(group))
            continue
        estimator = metaregression.TransferRegressor(features=features, n_features=n_features, alpha=lasso_alpha)
        pred, metrics = metaregression.loto_cross_validate(group, features, estimator=estimator)
        metrics.insert(0, "task", task)
        metrics.insert(1, "model", model)
        metrics["selection_frequency"] = ""
        metrics.loc[metrics["method"] == "meta_regression", "selection_frequency"] = str(
            {k: round(v, 2) for k, v in metrics.attrs["selection_frequency"].items()})
        if "published_prediction" in group.columns and group["published_prediction"].notna().any():
            paper = group.dropna(subset=["published_prediction"])
            metrics = pd.concat([metrics, pd.DataFrame([{
                "task": task, "model": model, "method": "paper_published_prediction (in-sample, for reference)",
                "rmse_pooled": metaregression.rmse(paper["S_T"], paper["published_prediction"]),
                **metaregression.ranking_metrics(paper.rename(columns={"S_T": "observed"}), score="published_prediction")}])],
                ignore_index=True)
            pred["published_prediction"] = group["published_prediction"].to_numpy()
        cv_rows.append(metrics)
        predictions.append(pred)
        final = estimator.fit(group, group["S_T"])
        table = metaregression.refit_ols(group, final.selected_)
        table.insert(0, "task", task)
        table.insert(1, "model", model)
        table["r2"] = table.attrs["r2"]
        table["n"] = table.attrs["n"]
        coefficients.append(table)
        equations[name] = metaregression.equation(table)
        greedy.append(transfer.greedy_forward_selection(group, data.correlation_features, "S_T").assign(task=task, model=model))
        full = frame[(frame["task"] == task) & (frame["model"] == model)]
        few = None
        if (full["n_target"] > 0).any():
            alpha = nshot.fit_alpha(full)
            if alpha["target"].nunique() >= 3:
                few, m = nshot.loto_alpha(full, alpha, features, estimator=estimator)
                nshot_rows.append(m.assign(task=task, model=model))
                nshot_predictions.append(few)
                alphas.append(alpha[["task", "model", "source", "target", "S_T0", "alpha", "n_points", "max_n"]])
        recommenders[name] = SourceRecommender(features=features, n_features=n_features, alpha=lasso_alpha,
                                               coverage=coverage).fit(full, zero_cv=pred, alpha_cv=few)
    tables["metaregression_cv"] = pd.concat(cv_rows, ignore_index=True) if cv_rows else pd.DataFrame()
    tables["metaregression_predictions"] = pd.concat(predictions, ignore_index=True) if predictions else pd.DataFrame()
    tables["metaregression_coefficients"] = pd.concat(coefficients, ignore_index=True) if coefficients else pd.DataFrame()
    tables["nshot_cv"] = pd.concat(nshot_rows, ignore_index=True) if nshot_rows else pd.DataFrame()
    tables["nshot_predictions"] = pd.concat(nshot_predictions, ignore_index=True) if nshot_predictions else pd.DataFrame()
    tables["nshot_alpha"] = pd.concat(alphas, ignore_index=True) if alphas else pd.DataFrame()
    relative = transfer.relative_zero_shot(frame)
    tables["relative_transfer"] = relative
    tables["source_ranking"] = transfer.source_ranking(relative)
    tables["greedy_selection"] = pd.concat(greedy, ignore_index=True) if greedy else pd.DataFrame()
    tables["pair_features"] = pair_feature_table(frame, data.correlation_features)
    tables["ledger"] = pd.DataFrame(data.ledger.records(), columns=["kind", "stage", "what", "reason", "count", "examples"])
    options = dict(n_features=n_features, lasso_alpha=lasso_alpha, n_permutations=n_permutations, seed=seed,
                   features=features, coverage=coverage)
    return AnalysisResult(data, tables, equations, recommenders, options)
