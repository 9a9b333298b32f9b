"""The analysis report: CSV tables, PNG figures and one Markdown document linking them."""

from __future__ import annotations

import datetime
import pathlib

import numpy as np
import pandas as pd

from jaxlt import atomic
from jaxlt.report import figures
from jaxlt.stats.pipeline import AnalysisResult


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    atomic.write_text(str(path), text)


def write_csv(frame: pd.DataFrame, path: pathlib.Path) -> pathlib.Path:
    atomic.write_with(str(path), lambda tmp: frame.to_csv(tmp, index=False))
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


def _observed_panel(group: pd.DataFrame) -> pd.DataFrame:
    """Zero-shot or n-shot cells plus the diagonal (S_S, gap 0), coloured by the gap when known."""
    diag = group.dropna(subset=["S_S"]).drop_duplicates("source")
    diag = pd.DataFrame({"source": diag["source"], "target": diag["source"], "S_T": diag["S_S"], "gap": 0.0})
    return pd.concat([group[["source", "target", "S_T", "gap"]], diag], ignore_index=True)


def _heatmap_job(observed: pd.DataFrame, predicted: pd.DataFrame | None, column: str, label: str, title: str, path,
                 paper: pd.DataFrame | None = None):
    """Observed (coloured by the gap), predicted (coloured by |error|) and residual panels; with
    ``paper`` (rows holding published_prediction) a fourth panel for the paper's predictions."""
    has_gap = observed["gap"].notna().any()
    panels = [figures.heatmap_panel(_observed_panel(observed), "S_T", "gap" if has_gap else "S_T", "observed S_T",
                                    "S_T - S_S (gap)" if has_gap else "S_T", cmap="RdYlGn")]
    for frame, col, what in ((predicted, column, label), (paper, "published_prediction", "paper")):
        if frame is None or not len(frame):
            continue
        pred = frame.drop(columns=[c for c in ("S_T",) if c in frame.columns])
        pred = pred.merge(observed[["source", "target", "S_T"]], on=["source", "target"], how="inner")
        pred = pred.assign(abs_error=(pred[col] - pred["S_T"]).abs(), residual=pred[col] - pred["S_T"])
        panels.append(figures.heatmap_panel(pred, col, "abs_error", f"predicted ({what})", "|predicted - observed|", cmap="Reds"))
        if what != "paper":
            panels.append(figures.heatmap_panel(pred, None, "residual", "residual (predicted - observed)", "points",
                                                cmap="RdBu_r", centre=True))  # numbers are in the two panels before
    return (figures.heatmaps, panels, title, path)


def _figure_cost(job: tuple) -> float:
    """A rough drawing cost of a figure job, only to order the jobs: a heatmap by its panels (axes, colour bar)
    and cells, then learning curves, the correlation map and the coefficient plots (cheapest)."""
    function, *args = job
    if function is figures.heatmaps:
        return sum(150 + len(panel["frame"]) for panel in args[0])
    return {figures.learning_curves: 500, figures.correlation_map: 300}.get(function, 100)


def _parse_losses(text: str) -> dict[str, list[str]]:
    """'source_mean (RMSE, ndcg@3); always_english (top1)' -> {'source_mean': ['RMSE', 'ndcg@3'], ...}."""
    out = {}
    for part in filter(None, (p.strip() for p in str(text or "").split(";"))):
        name, _, what = part.partition(" (")
        out[name] = [w.strip() for w in what.rstrip(")").split(",") if w.strip()]
    return out


def _findings(result: AnalysisResult) -> list[str]:
    """The first section: what the analysis found, in plain words."""
    tables, ledger = result.tables, result.data.ledger
    lines = []
    cv, ns, corr = tables["metaregression_cv"], tables["nshot_cv"], tables["correlations"]
    for (task, model), group in (cv.groupby(["task", "model"], sort=True) if not cv.empty else []):
        m = group.set_index("method")
        me = m.loc["meta_regression"]
        bits = [f"**{task} ({model})**: zero-shot scores of unseen target languages are predicted with an RMSE of "
                f"{me['rmse_mean_over_folds']:.1f} points (per-source-mean baseline {m.loc['source_mean', 'rmse_mean_over_folds']:.1f}, "
                f"training mean {m.loc['training_mean', 'rmse_mean_over_folds']:.1f})"]
        losses = _parse_losses(me["loses_to"])
        by_rmse = [b for b, what in losses.items() if "RMSE" in what]
        by_rank = [b for b, what in losses.items() if "RMSE" not in what or len(what) > 1]
        if by_rmse:
            bits.append(f"in RMSE the model is **no better than a baseline**: {', '.join(by_rmse)} predicts better")
        else:
            bits.append("in RMSE it beats every baseline")
        if by_rank:
            bits.append(f"for choosing a source, **a baseline ranks better**: {', '.join(f'{b} ({chr(44).join(losses[b])})' for b in by_rank)}")
        if not np.isnan(me["top1_accuracy"]):
            bits.append(f"it names the best source for {100 * me['top1_accuracy']:.0f}% of targets")
        folds = tables["metaregression_folds"]
        sub = folds[(folds["task"] == task) & (folds["model"] == model)] if not folds.empty else folds
        if len(sub):
            counts = pd.Series([f for sel in sub["selected"] for f in sel.split("+") if f]).value_counts() / len(sub)
            kept = [f"{f} ({100 * v:.0f}%)" for f, v in counts.items() if v >= 0.5]
            bits.append("features kept in at least half of the folds: " + (", ".join(kept) if kept else "none"))
        c = corr[(corr["task"] == task) & (corr["model"] == model)] if not corr.empty else corr
        if len(c):
            strong = c[c["permutation_p_holm"] <= 0.05].sort_values("pearson_r", key=np.abs, ascending=False)
            outcome = c["outcome"].iloc[0] if "outcome" in c.columns else "gap"
            what = "the transfer gap S_T - S_S" if outcome == "gap" else "S_T"
            if len(strong):
                bits.append(f"features correlated with {what} after accounting for shared languages (permutation test, Holm): "
                            + ", ".join(f"{f} (r = {r:.2f})" for f, r in zip(strong["feature"], strong["pearson_r"])))
            else:
                naive = c[c["pearson_p"] <= 0.05]
                bits.append(f"no feature's correlation with {what} survives the language-permutation test with Holm's correction"
                            + (f" (plain p <= 0.05, as the paper counts: {', '.join(naive['feature'])})" if len(naive) else ""))
        n = ns[(ns["task"] == task) & (ns["model"] == model)] if not ns.empty else ns
        if len(n):
            nm = n.set_index("method")
            model_row = nm.loc["nshot_model"]
            bits.append(f"with n > 0 target examples, S_T(n) is predicted with RMSE {model_row['rmse_mean_over_folds']:.1f} "
                        f"(S_T(0) + mean alpha log(n+1): {nm.loc['mean_alpha', 'rmse_mean_over_folds']:.1f}; per-source mean: "
                        f"{nm.loc['source_mean', 'rmse_mean_over_folds']:.1f})"
                        + (f"; baselines that beat it: {model_row['loses_to']}" if model_row["loses_to"] else ", better than each baseline"))
        lines.append("- " + "; ".join(bits) + ".\n")
    unavailable = sorted({e.what for e in ledger.unavailable if "missing for" not in e.reason})
    if unavailable:
        lines.append(f"- Not computed (see Exclusions): {', '.join(unavailable)}.\n")
    excluded = sum(e.count for e in ledger.exclusions)
    if excluded:
        lines.append(f"- {excluded} result rows were left out, for {len(ledger.exclusions)} reason(s) listed below.\n")
    return lines


def write_report(result: AnalysisResult, out_dir: str | pathlib.Path, *, inputs: dict[str, str], save_models: bool = True,
                 n_jobs: int = 1, draw_figures: bool = True) -> pathlib.Path:
    """Write tables/, figures/, models/ and report.md under ``out_dir``; return the report path.

    n_jobs > 1 renders figures in that many forked processes (matplotlib is single-threaded);
    draw_figures=False writes tables and text only."""
    out = pathlib.Path(out_dir)
    tables, frame, ledger = result.tables, result.data.frame, result.data.ledger

    def write_tables_and_models() -> None:  # runs while the figure workers draw
        for name, table in tables.items():
            write_csv(table, out / "tables" / f"{name}.csv")
        if save_models:
            import joblib

            for name, recommender in result.recommenders.items():
                path = out / "models" / f"{_safe(name.replace('/', '__'))}.joblib"
                atomic.write_with(str(path), lambda tmp, r=recommender: joblib.dump(r, tmp))

    jobs: dict[str, tuple] = {}  # figure key -> (function, *args, [kwargs dict]); rendered below
    zero = frame[frame["n_target"] == 0]
    if not tables["correlations"].empty:
        jobs["correlations"] = (figures.correlation_map, tables["correlations"], out / "figures" / "correlations.png")
    predictions = tables["metaregression_predictions"]
    nshot = tables["nshot_predictions"]
    for (task, model), group in zero.groupby(["task", "model"], sort=True):
        name, stem = f"{task}/{model}", _safe(f"{task}__{model}")
        pred = predictions[(predictions["task"] == task) & (predictions["model"] == model)] if not predictions.empty else None
        paper = None
        if pred is not None and "published_prediction" in pred.columns and pred["published_prediction"].notna().any():
            paper = pred.dropna(subset=["published_prediction"])[["source", "target", "published_prediction"]]
        jobs[f"heatmap:{name}:0"] = _heatmap_job(group, pred, "meta_regression", "jaxlt, leave-one-target-out",
                                                 f"{task} ({model}), zero-shot: source (rows) x target (columns)",
                                                 out / "figures" / f"heatmap_{stem}_n0.png", paper=paper)
        full = frame[(frame["task"] == task) & (frame["model"] == model)]
        for n in sorted(set(full.loc[full["n_target"] > 0, "n_target"])):
            few = full[full["n_target"] == n]
            sub = nshot[(nshot["task"] == task) & (nshot["model"] == model) & (nshot["n_target"] == n)] if not nshot.empty else None
            jobs[f"heatmap:{name}:{n}"] = _heatmap_job(few, sub, "predicted", "alpha model, leave-one-target-out",
                                                       f"{task} ({model}), n = {n}", out / "figures" / f"heatmap_{stem}_n{n}.png")
        coef = tables["metaregression_coefficients"]
        coef = coef[(coef["task"] == task) & (coef["model"] == model)] if not coef.empty else coef
        if len(coef):
            jobs[f"coef:{name}"] = (figures.coefficients, coef, f"{task} ({model}): S_T(0) refit on all pairs", out / "figures" / f"coefficients_{stem}.png")
        alphas = tables["nshot_alpha"]
        alphas = alphas[(alphas["task"] == task) & (alphas["model"] == model)] if not alphas.empty else alphas
        if len(alphas):
            jobs[f"curves:{name}"] = (figures.learning_curves, full[["target", "source", "n_target", "S_T"]], alphas,
                                      f"{task} ({model}): S_T vs n with S_T(0) + alpha log(n+1)",
                                      out / "figures" / f"learning_curves_{stem}.png")
    if draw_figures:
        # longest first, so that no worker starts a big heatmap when the others are done (the order of
        # `jobs` does not matter otherwise: figures are linked by key)
        jobs = dict(sorted(jobs.items(), key=lambda item: -_figure_cost(item[1])))
        figs = figures.render_all(jobs, n_jobs=n_jobs, meanwhile=write_tables_and_models)
    else:
        figs = {}
        write_tables_and_models()

    def link(key: str, alt: str) -> str:
        return f"![{alt}]({figs[key].relative_to(out).as_posix()})\n" if key in figs else ""

    opts = result.options
    md = ["# jaxlt analysis report\n\n",
          f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC} by `jaxlt analyze`.\n\n",
          "## What the analysis found\n\n", *_findings(result),
          "\nRMSE is in score points, from leave-one-target-language-out cross-validation: each target language is "
          "predicted by a model that never saw it. A model row that a baseline beats is flagged in the tables below.\n",
          "\n## Inputs\n\n", markdown_table(pd.DataFrame({"input": list(inputs), "value": list(inputs.values())})),
          "\n", markdown_table(frame.groupby(["task", "model"]).agg(
              pairs=("S_T", "size"), sources=("source", "nunique"), targets=("target", "nunique"),
              n_values=("n_target", lambda n: ", ".join(map(str, sorted(set(n)))))).reset_index()),
          f"\nRegression features: `{', '.join(opts['features'])}`; features kept by recursive elimination: "
          f"{opts['n_features']}; Lasso penalty: {opts['lasso_alpha']} ('cv': chosen inside each training fold over target "
          f"languages); {opts['n_permutations']} language permutations.\n",
          "\n## Exclusions, unavailable features and changes to the input\n\n",
          "Nothing is dropped silently: every row left out, every feature that could not be computed and every change made "
          "to the input (rescaled scores, features left out of a task's regression) is listed here with its count and reason "
          "(also in `tables/ledger.csv`).\n\n"]
    md.append(markdown_table(tables["ledger"]) if not tables["ledger"].empty else "_None._\n")
    codes = tables.get("language_codes")
    if codes is not None and not codes.empty:
        md += ["\n### lang2vec codes per feature set\n\nFor each language and lang2vec feature set, the code with the most "
               "known values among the language's ISO 639-3 macrolanguage and individual codes (e.g. Arabic `ara` has WALS "
               "phonology, `arb` has none). Shown where the choice differs between feature sets or from the default.\n\n",
               markdown_table(codes)]
    corr = tables["correlations"]
    md += ["\n## Bivariate correlations with the transfer gap S_T - S_S (zero-shot; paper Table 1)\n\n",
           "Pearson r x 100; `*` two-tailed p <= 0.05 (uncorrected, as the paper). Pairs share languages, so the plain p-value "
           "overstates the evidence; `tables/correlations.csv` adds a language-permutation p-value (languages relabelled within "
           "their roles, only valid relabellings counted, their number in `n_permutations`; exact), a delete-one-language "
           "jackknife p-value (`jackknife_p`: the slope refit without each language in turn, t with G - 1 df), a two-way "
           "cluster-robust p-value (`cluster_p`, source and target language) and Holm / Benjamini-Hochberg corrections. Under "
           "a simulated null with language effects the permutation and jackknife p-values reject about 5% at 0.05; the "
           "cluster-robust one rejects 10-23% with 8-14 languages (too few clusters), so it overstates the evidence. Tasks "
           "without in-language scores correlate with S_T instead (column `outcome`).\n\n",
           markdown_table(_correlation_table(corr)) if not corr.empty else "_(none)_\n", "\n",
           markdown_table(corr[["task", "model", "feature", "n", "pearson_r", "pearson_p", "permutation_p", "n_permutations",
                                "jackknife_p", "cluster_p", "permutation_p_holm", "note"]]) if not corr.empty else "",
           "\n", link("correlations", "correlation map"),
           "\n## Correlation of S_T with transformations of n (paper Table 2)\n\n",
           "log and log2 differ by a constant factor, so their Pearson r are equal by construction; with two distinct n "
           "every transformation gives the same r.\n\n"]
    nt = tables["n_transformations"]
    if not nt.empty:
        md.append(markdown_table(nt.assign(column=nt["task"] + " / " + nt["model"]).pivot_table(
            index="transform", columns="column", values="pearson_r", aggfunc="first").reindex(list(dict.fromkeys(nt["transform"]))).reset_index()))
        md.append("\n" + markdown_table(nt.groupby(["task", "model"])["distinct_n"].first().reset_index()))
    md += ["\n## Zero-shot meta-regression against baselines (paper Table 3a)\n\n",
           "Leave-one-target-language-out cross-validation. Inside each training fold: mean imputation, [0, 1] scaling, the "
           "Lasso penalty (LassoCV) and the number of features (RFECV, recursive elimination by |coefficient|) chosen by "
           "cross-validation over the fold's target languages. RMSE: mean over target folds (as the paper) and pooled; top-1: "
           "share of targets whose best observed source is ranked first; NDCG@3 grades the ranking by observed score. "
           "Baselines: training-fold mean, per-source training mean, always English and largest pre-training corpus (the last "
           "two rank only). `loses_to` names each baseline that beats the model, and on which measure.\n\n"]
    cv = tables["metaregression_cv"]
    if not cv.empty:
        shown = cv.assign(flag=np.where(cv["loses_to"].fillna("") != "", "LOSES to a baseline", ""))
        md.append(markdown_table(shown[["task", "model", "method", "rmse_mean_over_folds", "rmse_pooled", "top1_accuracy",
                                        "ndcg@3", "n_rankings", "flag", "loses_to"]]))
    folds = tables["metaregression_folds"]
    if not folds.empty:
        md += ["\nWhat was selected in each fold (features kept by RFECV, penalty chosen by LassoCV, features with a non-zero "
               "coefficient):\n\n", markdown_table(folds[["task", "model", "fold", "selected", "n_selected", "lasso_alpha", "nonzero"]])]
    md.append("\n### Final equations, refit on all pairs with OLS (paper Figure 2)\n\nFeatures scaled to [0, 1] on all data "
              "(the features RFECV keeps on all pairs); plain standard errors and p-values from statsmodels, which treat pairs "
              "as independent; delete-one-language jackknife ones (`_jackknife`, calibrated under a simulated null), which "
              "account for pairs sharing languages; and two-way cluster-robust ones (`_cluster`, source and target language; "
              "too small with this few languages, in `tables/metaregression_coefficients.csv` only).\n\n")
    coef = tables["metaregression_coefficients"]
    for name, eq in result.equations.items():
        task, model = name.split("/", 1)
        sub = coef[(coef["task"] == task) & (coef["model"] == model)]
        md += [f"**{name}** (R² = {sub['r2'].iloc[0]:.2f}, n = {sub['n'].iloc[0]}): `{eq}`\n\n",
               markdown_table(sub[["term", "coef", "std_err", "p_value", "std_err_jackknife", "p_value_jackknife", "ci_low", "ci_high"]]),
               "\n", link(f"coef:{name}", f"coefficients {name}"), "\n"]
    md.append("\n## n-shot model S_T = S_T(0) + alpha log(n+1) against baselines (paper Table 3b, Figure 1)\n\n")
    ns = tables["nshot_cv"]
    if ns.empty:
        md.append("_No task has n > 0 results for at least three targets._\n")
    else:
        md += ["alpha is fitted per pair by least squares; its regression on the features and on S_T(0) (the paper's main "
               "predictor, section 3.2.2) is cross-validated leaving one target out, as above, and S_T(n) for n > 0 is rebuilt "
               "from the observed S_T(0) and the predicted alpha. Baselines: S_T(0) + training-mean alpha log(n+1) "
               "(`mean_alpha`), per-source training mean at the same n, training mean at the same n.\n\n",
               markdown_table(ns.assign(flag=np.where(ns["loses_to"].fillna("") != "", "LOSES to a baseline", ""))[
                   ["task", "model", "method", "rmse_alpha", "rmse_mean_over_folds", "rmse_S_T", "top1_accuracy", "ndcg@3",
                    "flag", "loses_to", "rmse_S_T_of_fitted_curve"]]), "\n"]
        for name in result.equations:
            md.append(link(f"curves:{name}", f"learning curves {name}"))
    if any(str(v).startswith("published:muller2022") for v in inputs.values()):
        md += _paper_section(result)
    md.append("\n## Observed and predicted scores (paper Figures 3-8)\n\nObserved S_T coloured by the transfer gap "
              "S_T - S_S (bold: the in-language score S_S on the diagonal), predicted S_T coloured by the absolute error, and "
              "the residual predicted - observed on a scale centred at 0.\n\n")
    for key in sorted(k for k in figs if k.startswith("heatmap:")):
        md.append(link(key, key) + "\n")
    md += ["\n## Related analyses\n\n### Relative zero-shot ability and advantage over English\n\n",
           "Z(S->T) = E(M_S, T) / E(M_T, T), the zero-shot score over the target's in-language score, self-transfer "
           "included (Z(T->T) = 1); advantage over English = Z(S->T) - Z(en->T). Means over all targets and per target group "
           "(`--target-groups`; preset: Latin-script high-resource (>= 10B mC4 tokens), Latin-script low-resource, "
           "other-script); ranked by mean Z.\n\n", markdown_table(tables["source_ranking"]),
           "\n### The zero-shot drop from one source and language similarity\n\n",
           "Pearson and Spearman of S_S - S_T from one source (English where present) with lang2vec similarities "
           "(cos_*: URIEL syntax, phonology, inventory, family, geography vectors) and the target's pre-training size.\n\n",
           markdown_table(tables["drop_correlations"]) if not tables["drop_correlations"].empty else "_(none)_\n",
           "\n### Greedy forward feature selection (scikit-learn SequentialFeatureSelector)\n\n\n",
           "Linear regression, features added while leave-one-target-out MAE improves; compared with predicting the "
           "training mean (`mae_of_mean`).\n\n",
           markdown_table(tables["greedy_selection"]) if not tables["greedy_selection"].empty else "_(none)_\n",
           "\n## Recommended sources\n\nTop 3 predicted sources per target (zero-shot) with a "
           f"{int(100 * opts['coverage'])}% interval from leave-one-target-out residuals, clipped to 0-100, and the probability "
           "that the source is best (bootstrap over target languages and seeds); the per-source-mean baseline's choice beside "
           "it (`jaxlt recommend` for any target and n).\n\n"]
    md.append(markdown_table(tables.get("recommendations", pd.DataFrame())))
    md.append("\n## Files\n\n- `tables/*.csv`: every table above, and `analysis_frame.csv` (scores joined with features)\n"
              "- `figures/*.png`\n- `models/*.joblib`: fitted `SourceRecommender`s (`jaxlt recommend --fitted PATH`)\n")
    path = out / "report.md"
    atomic_write_text(path, "".join(md))
    return path


def _paper_section(result: AnalysisResult) -> list[str]:
    from jaxlt.report import paper

    tables = result.tables
    unavailable = {e.what for e in result.data.ledger.unavailable if "missing for" not in e.reason}
    return ["\n## The paper's numbers beside jaxlt's (Muller et al. 2022)\n\n",
            "The paper's values are transcribed from its text (`jaxlt/resources/published/muller2022_paper_tables.csv`). "
            "jaxlt starts from the published score matrices only: the features that need the mT5 checkpoint (LM_L, LM_EM, "
            "EMB) or the training text (LEX, Vr, SENTLEN, MORPH) cannot be computed offline, the published matrices have "
            "n = 0 and 100 only, and XNLI here is the Figure 7 run.\n\n",
            "### Table 1: correlations with the transfer gap\n\n", markdown_table(paper.table1(tables["correlations"], unavailable)),
            "\n### Table 2: S_T and transformations of n\n\n", markdown_table(paper.table2(tables["n_transformations"])),
            "\n### Tables 3a and 3b: meta-regression error and top-1 source accuracy\n\n",
            markdown_table(paper.table3(tables["metaregression_cv"], tables["nshot_cv"])),
            "\n### Figure 2: the refit equations\n\n", markdown_table(paper.figure2(tables["metaregression_coefficients"]))]
