"""Run every analysis of the stage on an AnalysisData and collect the tables."""

from __future__ import annotations

import dataclasses
import logging

import pandas as pd
from sklearn.base import clone

from jaxlt.console import Progress
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


def language_codes(frame: pd.DataFrame) -> pd.DataFrame:
    """lang2vec code per feature set for the analysed languages, where the coverage-based choice
    differs between feature sets (e.g. Arabic: 'ara' for WALS, 'arb' elsewhere)."""
    from jaxlt import languages
    from jaxlt.features import typology

    codes = typology.chosen_codes()
    present = [c for c in sorted(set(frame["source"]) | set(frame["target"])) if c in codes.index]
    codes = codes.loc[present]
    differs = codes.nunique(axis=1) > 1
    out = codes[differs].reset_index()
    out.insert(1, "default", [languages.lang2vec_code(c) for c in out["language"]])
    return out


def correlation_table(zero: pd.DataFrame, features: list[str], ledger, n_permutations: int, seed: int) -> pd.DataFrame:
    """Correlations with the transfer gap S_T - S_S; with S_T where a task has no in-language scores."""
    parts = []
    for (task, model), group in zero.groupby(["task", "model"], sort=True):
        outcome = "gap" if group["gap"].notna().sum() >= 3 else "S_T"
        if outcome == "S_T":
            ledger.note("correlations", f"{task}/{model}: correlations with S_T instead of the gap S_T - S_S",
                        "no in-language scores S_S", len(group))
        table = correlations.bivariate(group, [f for f in features if f != "S_S" or outcome == "gap"], outcome,
                                       n_permutations=n_permutations, seed=seed)
        if not table.empty:
            parts.append(table.assign(outcome=outcome))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def recommendation_table(name: str, recommender: SourceRecommender, targets, top: int = 3) -> pd.DataFrame:
    """The report's table: per target, the ``top`` recommended sources (zero-shot) with interval and P(best),
    the baseline's pick and the flags; a target the model cannot rank says why."""
    rows = []
    for target in sorted(set(targets)):
        try:
            table = recommender.recommend(target)
        except ValueError as error:
            rows.append({"task/model": name, "target": target, "recommended": f"not available: {error}"})
            continue
        head = table.head(top)
        rows.append({"task/model": name, "target": target, "recommended": ", ".join(
            f"{s} {p:.1f} [{lo:.1f}, {hi:.1f}] " + ("P(best) 1 (only candidate)" if len(table) == 1 else f"P(best) {pb:.2f}")
            for s, p, lo, hi, pb in
            zip(head["source"], head["predicted"], head["lower"], head["upper"], head["p_best"])),
            "baseline picks": table.attrs.get("baseline_best") or "", "flags": table["flags"].iloc[0] if len(table) else ""})
    return pd.DataFrame(rows)


def _usable(group: pd.DataFrame, features: list[str]) -> list[str]:
    return [f for f in features if group[f].notna().any() and group[f].nunique() > 1]


def _analyze_task(job: tuple) -> dict:
    """One job of one task and model (tasks run in parallel processes), in two parts so that the workers stay
    balanced: "screening" (correlations, greedy forward selection) and "models" (meta-regression, refit,
    n-shot model, recommender and its table)."""
    from jaxlt.stats.ledger import Ledger

    task, model, group, full, settings, part = job
    ledger, out = Ledger(), {}
    out["ledger"] = ledger.entries  # replayed into the analysis ledger by the parent
    name = f"{task}/{model}"
    features = settings["features"]
    usable = _usable(group, features)
    if part == "screening":
        out["correlations"] = correlation_table(group, settings["correlation_features"], ledger, settings["n_permutations"], settings["seed"])
        if group["target"].nunique() >= 3 and usable:
            out["greedy"] = transfer.greedy_forward_selection(group, usable, "S_T").assign(task=task, model=model)
        return out
    if group["target"].nunique() < 3:
        ledger.exclude("meta-regression", f"{name} pairs", "fewer than 3 target languages for leave-one-target-out CV", len(group))
        return out
    dropped = [f for f in features if f not in usable]
    if dropped:
        ledger.note("meta-regression", f"{name}: feature(s) {', '.join(dropped)} left out of the regression",
                    "no values, or one constant value, for this task", len(dropped))
    if not usable:
        ledger.exclude("meta-regression", f"{name} pairs", "no feature varies for this task", len(group))
        return out
    estimator = metaregression.TransferRegressor(features=usable, n_features=settings["n_features"], alpha=settings["lasso_alpha"])
    pred, metrics = metaregression.loto_cross_validate(group, usable, estimator=estimator)
    out["folds"] = metrics.attrs["folds"].assign(task=task, model=model)
    metrics.attrs = {}  # frames in attrs break pd.concat
    metrics.insert(0, "task", task)
    metrics.insert(1, "model", model)
    if "published_prediction" in group.columns and group["published_prediction"].notna().any():
        paper = group.dropna(subset=["published_prediction"])
        metrics = pd.concat([metrics, pd.DataFrame([{
            "task": task, "model": model, "method": "paper_published_prediction (in-sample, for reference)",
            "rmse_pooled": metaregression.rmse(paper["S_T"], paper["published_prediction"]),
            **metaregression.ranking_metrics(paper.rename(columns={"S_T": "observed"}), score="published_prediction")}])],
            ignore_index=True)
        pred["published_prediction"] = group["published_prediction"].to_numpy()
    out["cv"], out["predictions"] = metrics, pred
    final = clone(estimator).fit(group, group["S_T"])
    table = metaregression.refit_ols(group, final.selected_)
    table.insert(0, "task", task)
    table.insert(1, "model", model)
    table["r2"] = table.attrs["r2"]
    table["n"] = table.attrs["n"]
    table.attrs = {}
    out["coefficients"] = table
    out["name"], out["equation"] = name, metaregression.equation(table)
    few, alpha_model = None, None
    if (full["n_target"] > 0).any():
        alpha = nshot.fit_alpha(full)
        if alpha["target"].nunique() >= 3:
            few, m = nshot.loto_alpha(full, alpha, usable, estimator=estimator)
            out["nshot_folds"] = m.attrs["folds"].assign(task=task, model=model)
            alpha_features = m.attrs["features"]
            m.attrs = {}
            out["nshot_cv"], out["nshot_predictions"] = m.assign(task=task, model=model), few
            out["alphas"] = alpha[["task", "model", "source", "target", "S_T0", "alpha", "n_points", "max_n"]]
            alpha_model = clone(estimator).set_params(features=alpha_features).fit(alpha, alpha["alpha"])
    out["recommender"] = SourceRecommender(features=usable, n_features=settings["n_features"], alpha=settings["lasso_alpha"],
                                           coverage=settings["coverage"], seed=settings["seed"]).fit(
        full, zero_cv=pred, alpha_cv=few, zero_model=final, alpha_model=alpha_model)
    out["recommendations"] = recommendation_table(name, out["recommender"], full["target"])
    return out


def analyze(data: AnalysisData, *, n_features: int | str = "cv", lasso_alpha: float | str = "cv", n_permutations: int = 999,
            seed: int = 0, features: list[str] | None = None, coverage: float = 0.9,
            target_groups: dict[str, str] | None = None, n_jobs: int = 1) -> AnalysisResult:
    """Every analysis of the stage; ``n_jobs`` > 1 runs the tasks' meta-regressions in that many forked processes."""
    frame = data.frame
    features = list(features) if features else list(data.regression_features)
    unknown = [f for f in features if f not in frame.columns or frame[f].isna().all()]
    if unknown:
        raise ValueError(f"regression feature(s) {unknown} unavailable; available: {data.correlation_features}")
    zero = frame[frame["n_target"] == 0]
    tables: dict[str, pd.DataFrame] = {}
    tables["analysis_frame"] = frame

    def whole_frame_tables() -> dict[str, pd.DataFrame]:  # computed here while the task workers run
        relative = transfer.relative_zero_shot(frame)
        return {"n_transformations": correlations.n_transformations(frame), "relative_transfer": relative,
                "source_ranking": transfer.source_ranking(relative, target_groups),
                "drop_correlations": transfer.drop_correlations(frame),
                "pair_features": pair_feature_table(frame, data.correlation_features), "language_codes": language_codes(frame)}

    groups = [(task, model, group) for (task, model), group in zero.groupby(["task", "model"], sort=True)]
    settings = dict(features=features, n_features=n_features, lasso_alpha=lasso_alpha, coverage=coverage, seed=seed,
                    correlation_features=list(data.correlation_features), n_permutations=n_permutations)
    jobs = [(task, model, group, frame[(frame["task"] == task) & (frame["model"] == model)], settings, part)
            for task, model, group in groups for part in ("screening", "models")]
    # a bar on a terminal; in a log file plain lines (every 30 s and at the end), never carriage returns
    progress = Progress(len(jobs), "meta-regression", enabled=len(jobs) >= 6, every_cells=len(jobs), every_s=30, unit="jobs")
    if n_jobs > 1 and len(jobs) > 1:
        import concurrent.futures
        import multiprocessing

        # Longest first (fits ~ target folds, twice with n-shot results; the screening part ~ 3 folds) so no worker
        # is left with a big job at the end; outputs are put back in job order. fork: workers inherit the
        # imported modules and the data.
        def cost(job: tuple) -> int:
            full, part = job[3], job[5]
            return 3 if part == "screening" else full["target"].nunique() * (1 + int((full["n_target"] > 0).any()))

        order = sorted(range(len(jobs)), key=lambda k: -cost(jobs[k]))
        with concurrent.futures.ProcessPoolExecutor(min(n_jobs, len(jobs)), mp_context=multiprocessing.get_context("fork")) as pool:
            pending = pool.map(_analyze_task, [jobs[k] for k in order])  # submits every task now
            whole = whole_frame_tables()
            done = list(progress.track(pending))
        outputs = [done[order.index(k)] for k in range(len(jobs))]
    else:
        whole = whole_frame_tables()
        outputs = [_analyze_task(job) for job in progress.track(jobs)]
    parts: dict[str, list] = {}
    equations, recommenders = {}, {}
    for output in outputs:
        for entry in output.pop("ledger"):
            data.ledger.replay(entry)
        if "name" in output:  # absent where the task could not be modelled (its correlations still count)
            equations[output["name"]] = output.pop("equation")
            recommenders[output["name"]] = output.pop("recommender")
        for key, value in output.items():
            if isinstance(value, pd.DataFrame) and not value.empty:
                parts.setdefault(key, []).append(value)

    def joined(key: str) -> pd.DataFrame:
        return pd.concat(parts[key], ignore_index=True) if parts.get(key) else pd.DataFrame()

    for key, name in (("correlations", "correlations"), ("recommendations", "recommendations"), ("folds", "metaregression_folds"),
                      ("nshot_folds", "nshot_folds"), ("cv", "metaregression_cv"), ("predictions", "metaregression_predictions"),
                      ("coefficients", "metaregression_coefficients"), ("nshot_cv", "nshot_cv"),
                      ("nshot_predictions", "nshot_predictions"), ("alphas", "nshot_alpha")):
        tables[name] = joined(key)
    tables["n_transformations"] = whole["n_transformations"]
    tables["relative_transfer"] = whole["relative_transfer"]
    tables["source_ranking"] = whole["source_ranking"]
    tables["drop_correlations"] = whole["drop_correlations"]
    tables["greedy_selection"] = joined("greedy")
    tables["pair_features"] = whole["pair_features"]
    tables["language_codes"] = whole["language_codes"]
    tables["ledger"] = pd.DataFrame(data.ledger.records(), columns=["kind", "stage", "what", "reason", "count", "examples"])
    options = dict(n_features=n_features, lasso_alpha=lasso_alpha, n_permutations=n_permutations, seed=seed,
                   features=features, coverage=coverage)
    return AnalysisResult(data, tables, equations, recommenders, options)
