"""The analysis report: CSV tables, PNG figures and one Markdown document linking them."""

from __future__ import annotations

import datetime
import os
import pathlib
import tempfile

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from jaxlt.report import figures
from jaxlt.stats.pipeline import AnalysisResult


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_csv(frame: pd.DataFrame, path: pathlib.Path) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    if frame.empty:
        return "_(empty)_\n"
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _correlation_table(corr: pd.DataFrame) -> pd.DataFrame:
    corr = corr.assign(column=corr["task"] + " / " + corr["model"],
                       cell=[f"{100 * r:.1f}{'*' if p <= 0.05 else ''}" if not np.isnan(r) else "n/a"
                             for r, p in zip(corr["pearson_r"], corr["pearson_p"])])
    table = corr.pivot_table(index="feature", columns="column", values="cell", aggfunc="first")
    table = table.reindex(list(dict.fromkeys(corr["feature"]))).reset_index()
    return table


def write_report(result: AnalysisResult, out_dir: str | pathlib.Path, *, inputs: dict[str, str], save_models: bool = True,
                 n_jobs: int = 1) -> pathlib.Path:
    """Write tables/, figures/, models/ and report.md under ``out_dir``; return the report path.

    n_jobs > 1 renders figures in that many forked processes (matplotlib is single-threaded)."""
    out = pathlib.Path(out_dir)
    tables, frame, ledger = result.tables, result.data.frame, result.data.ledger
    for name, table in tables.items():
        write_csv(table, out / "tables" / f"{name}.csv")
    jobs: dict[str, tuple] = {}  # figure key -> (function, *args, [kwargs dict]); rendered below
    zero = frame[frame["n_target"] == 0]
    if not tables["correlations"].empty:
        jobs["correlations"] = (figures.correlation_map, tables["correlations"], out / "figures" / "correlations.png")
    predictions = tables["metaregression_predictions"]
    work = list(zero.groupby(["task", "model"], sort=True))
    for (task, model), group in work:
        name = f"{task}/{model}"
        stem = _safe(f"{task}__{model}")
        diag = group.groupby("source")["S_S"].first()
        pred = predictions[(predictions["task"] == task) & (predictions["model"] == model)] if not predictions.empty else None
        panels = {"observed": group, "predicted (jaxlt, leave-one-target-out)": pred}
        values = {"observed": "S_T", "predicted (jaxlt, leave-one-target-out)": "meta_regression"}
        if "published_prediction" in group.columns and group["published_prediction"].notna().any():
            panels["predicted (paper)"] = group.dropna(subset=["published_prediction"])
            values["predicted (paper)"] = "published_prediction"
        jobs[f"heatmap:{name}:0"] = (figures.heatmaps, panels, values, f"{task} ({model}), zero-shot: S_T per source (rows) and target (columns)",
                                                    out / "figures" / f"heatmap_{stem}_n0.png", {"diagonal": diag})
        for n in sorted(set(frame.loc[(frame["task"] == task) & (frame["model"] == model) & (frame["n_target"] > 0), "n_target"])):
            few = frame[(frame["task"] == task) & (frame["model"] == model) & (frame["n_target"] == n)]
            nshot = tables["nshot_predictions"]
            nshot = nshot[(nshot["task"] == task) & (nshot["model"] == model) & (nshot["n_target"] == n)] if not nshot.empty else None
            jobs[f"heatmap:{name}:{n}"] = (figures.heatmaps, 
                {"observed": few, "predicted (jaxlt, alpha model, leave-one-target-out)": nshot},
                {"observed": "S_T", "predicted (jaxlt, alpha model, leave-one-target-out)": "predicted"},
                f"{task} ({model}), n = {n}: S_T per source and target", out / "figures" / f"heatmap_{stem}_n{n}.png")
        coef = tables["metaregression_coefficients"]
        coef = coef[(coef["task"] == task) & (coef["model"] == model)] if not coef.empty else coef
        if len(coef):
            jobs[f"coef:{name}"] = (figures.coefficients, coef, f"{task} ({model}): S_T(0) refit on all pairs", out / "figures" / f"coefficients_{stem}.png")
        alphas = tables["nshot_alpha"]
        alphas = alphas[(alphas["task"] == task) & (alphas["model"] == model)] if not alphas.empty else alphas
        if len(alphas):
            full = frame[(frame["task"] == task) & (frame["model"] == model)]
            jobs[f"curves:{name}"] = (figures.learning_curves, full, alphas, f"{task} ({model}): S_T vs n with S_T(0) + alpha log(n+1)",
                                                             out / "figures" / f"learning_curves_{stem}.png")
    figs = figures.render_all(jobs, n_jobs=n_jobs)
    if save_models:
        import joblib

        for name, recommender in result.recommenders.items():
            path = out / "models" / f"{_safe(name.replace('/', '__'))}.joblib"
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(fd)
            joblib.dump(recommender, tmp)
            os.replace(tmp, path)

    def link(key: str, alt: str) -> str:
        return f"![{alt}]({figs[key].relative_to(out).as_posix()})\n" if key in figs else ""

    md = [f"# jaxlt analysis report\n\n",
          f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} by `jaxlt analyze`.\n\n",
          "## Inputs\n\n", markdown_table(pd.DataFrame({"input": list(inputs), "value": list(inputs.values())})),
          "\n", markdown_table(frame.groupby(["task", "model"]).agg(
              pairs=("S_T", "size"), sources=("source", "nunique"), targets=("target", "nunique"),
              n_values=("n_target", lambda n: ", ".join(map(str, sorted(set(n)))))).reset_index()),
          f"\nRegression features: `{', '.join(result.options['features'])}`; RFE keeps {result.options['n_features']}; "
          f"Lasso alpha {result.options['lasso_alpha']}; {result.options['n_permutations']} language permutations.\n",
          "\n## Exclusions and unavailable features\n\n",
          "Nothing is dropped silently: every row left out and every feature that could not be computed is listed "
          "here with its count and reason (also in `tables/ledger.csv`).\n\n"]
    md.append(markdown_table(tables["ledger"]) if not tables["ledger"].empty else "_None._\n")
    md += ["\n## Bivariate correlations with the transfer gap S_T - S_S (zero-shot; paper Table 1)\n\n",
           "Pearson r x 100; `*` two-tailed p <= 0.05 (uncorrected, as the paper). `tables/correlations.csv` adds "
           "Spearman, a language-permutation p-value (one permutation of language labels applied to sources and targets "
           "alike, since pairs share languages), and Holm / Benjamini-Hochberg corrections.\n\n",
           markdown_table(_correlation_table(tables["correlations"])) if not tables["correlations"].empty else "",
           "\n", link("correlations", "correlation map"),
           "\n## Correlation of S_T with transformations of n (paper Table 2)\n\n",
           "log and log2 differ by a constant factor, so their Pearson r are equal by construction; with two distinct n "
           "(the published data: 0 and 100) every transformation gives the same r.\n\n"]
    nt = tables["n_transformations"]
    if not nt.empty:
        md.append(markdown_table(nt.assign(column=nt["task"] + " / " + nt["model"]).pivot_table(
            index="transform", columns="column", values="pearson_r", aggfunc="first").reindex(list(dict.fromkeys(nt["transform"]))).reset_index()))
        md.append("\n" + markdown_table(nt.groupby(["task", "model"])["distinct_n"].first().reset_index()))
    md += ["\n## Zero-shot meta-regression (paper Table 3a)\n\n",
           "Leave-one-target-language-out cross-validation; imputation and [0, 1] scaling fitted inside each training fold; "
           "Lasso with recursive feature elimination. RMSE is the mean over target folds (as the paper) and pooled; "
           "top-1 is the share of targets whose best observed source is ranked first; NDCG@3 grades the ranking of sources "
           "by observed score. Baselines: training-fold mean, per-source training mean, always English, largest "
           "pre-training corpus (ranking only).\n\n"]
    cv = tables["metaregression_cv"]
    if not cv.empty:
        md.append(markdown_table(cv.drop(columns=["selection_frequency"])))
        md.append("\nFeature selection frequency over folds:\n\n")
        md.append(markdown_table(cv[cv["method"] == "meta_regression"][["task", "model", "selection_frequency"]]))
    md.append("\n### Final equations, refit on all pairs with OLS (paper Figure 2)\n\nFeatures scaled to [0, 1] on all data; "
              "standard errors and p-values from statsmodels.\n\n")
    coef = tables["metaregression_coefficients"]
    for name, eq in result.equations.items():
        task, model = name.split("/", 1)
        sub = coef[(coef["task"] == task) & (coef["model"] == model)]
        md += [f"**{name}** (R² = {sub['r2'].iloc[0]:.2f}, n = {sub['n'].iloc[0]}): `{eq}`\n\n",
               markdown_table(sub[["term", "coef", "std_err", "t", "p_value", "ci_low", "ci_high"]]), "\n",
               link(f"coef:{name}", f"coefficients {name}"), "\n"]
    md.append("\n## n-shot model S_T = S_T(0) + alpha log(n+1) (paper Table 3b, Figure 1)\n\n\n")
    ns = tables["nshot_cv"]
    if ns.empty:
        md.append("_No task has n > 0 results for at least three targets._\n")
    else:
        md += ["alpha is fitted per pair by least squares; its regression on the features is cross-validated leaving one "
               "target out. `rmse_S_T` rebuilds S_T(n) from the observed S_T(0) and the predicted alpha.\n\n", markdown_table(ns), "\n"]
        for name in result.equations:
            md.append(link(f"curves:{name}", f"learning curves {name}"))
    md.append("\n## Observed and predicted scores (paper Figures 3-8)\n\n\n")
    for key in sorted(k for k in figs if k.startswith("heatmap:")):
        md.append(link(key, key) + "\n")
    md += ["\n## Related analyses\n\n### Relative zero-shot ability and source ranking\n\n\n",
           "Z(S->T) = E(M_S, T) / E(M_T, T) (zero-shot score over the target's in-language score); advantage over English "
           "= S_T(S) - S_T(en). Mean over targets, per target script group, ranked by mean Z.\n\n",
           markdown_table(tables["source_ranking"]),
           "\n### Greedy forward feature selection (leave-one-out linear regression)\n\n\n",
           "Adds the feature that most lowers leave-one-out MAE, until none does.\n\n",
           markdown_table(tables["greedy_selection"]) if not tables["greedy_selection"].empty else "_(none)_\n",
           "\n## Recommended sources\n\nTop 3 predicted sources per target (zero-shot) with a "
           f"{int(100 * result.options['coverage'])}% interval from leave-one-target-out residuals "
           "(`jaxlt recommend` for any target).\n\n"]
    rec_rows = []
    for name, recommender in result.recommenders.items():
        for target in sorted(set(frame.loc[(frame["task"] + "/" + frame["model"]) == name, "target"])):
            top = recommender.recommend(target).head(3)
            rec_rows.append({"task/model": name, "target": target, "recommended": ", ".join(
                f"{s} {p:.1f} [{lo:.1f}, {hi:.1f}]" for s, p, lo, hi in zip(top["source"], top["predicted"], top["lower"], top["upper"]))})
    md.append(markdown_table(pd.DataFrame(rec_rows)))
    md.append("\n## Files\n\n- `tables/*.csv`: every table above, and `analysis_frame.csv` (scores joined with features)\n\n"
              "- `figures/*.png`\n- `models/*.joblib`: fitted `SourceRecommender`s (`jaxlt recommend --fitted PATH`)\n")
    path = out / "report.md"
    atomic_write_text(path, "".join(md))
    return path
