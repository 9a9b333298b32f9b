"""The analysis frame: one row per (task, model, source, target, n_target, setting) with the
transfer scores and every available feature, plus a ledger of what was missing and why."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from jaxlt.features import sizes, typology
from jaxlt.stats.ledger import Ledger
from jaxlt.stats.results import aggregate_seeds

DEFAULT_METRIC = {
    "xnli": "accuracy", "xnli_new": "accuracy", "pawsx": "accuracy",
    "panx": "f1", "tydiqa": "exact_match", "xquad": "exact_match",
}
TEXT_FEATURES = ("LEX", "Vr", "SENTLEN", "MORPH")
MODEL_LANGUAGE_FEATURES = ("LM_L", "LM_EM")
MODEL_PAIR_FEATURES = ("EMB",)
TYPOLOGY_FEATURES = ("SYNT", "PHONO") + tuple(f"{k}_{n}" for n in typology.COSINE_SETS for k in ("cos", "dist"))
# The paper's predictors (Table 1, Figure 2) plus SIZE; the regression starts from these.
PAPER_FEATURES = (
    "S_S", "SYNT", "PHONO", "MORPH", "LEX", "EMB", "Vr", "SENTLEN",
    "LM_L_S", "LM_L_T", "LM_EM_S", "LM_EM_T", "SIZE_S", "SIZE_T",
)
CORRELATION_FEATURES = PAPER_FEATURES + tuple(f for f in TYPOLOGY_FEATURES if f not in PAPER_FEATURES)


@dataclasses.dataclass
class AnalysisData:
    frame: pd.DataFrame  # pairs (source != target); columns S_T, S_S, S_S_target, gap + features
    regression_features: list[str]  # PAPER_FEATURES that are available
    correlation_features: list[str]  # CORRELATION_FEATURES that are available
    ledger: Ledger


def select_metric(agg: pd.DataFrame, ledger: Ledger, metrics: dict[str, str] | None = None) -> pd.DataFrame:
    """One metric per task: the user's choice, the only one present, or the task's primary metric."""
    metrics = dict(metrics or {})
    keep = []
    for task, group in agg.groupby("task", sort=True):
        present = sorted(set(group["metric"]))
        chosen = metrics.get(task) or (present[0] if len(present) == 1 else DEFAULT_METRIC.get(task))
        if chosen not in present:
            raise ValueError(f"task {task!r}: metric {chosen!r} not in results; choose one of {present} (--metric {task}=NAME)")
        other = group["metric"] != chosen
        ledger.exclude("results", f"{task} rows", f"metric other than {chosen!r} (analysis uses one metric per task)", int(other.sum()), sorted(set(group.loc[other, "metric"])))
        keep.append(group[~other])
    return pd.concat(keep, ignore_index=True)


def select_setting(agg: pd.DataFrame, strategy: str | None = None, sampling: str | None = None) -> pd.DataFrame:
    """n > 0 rows must come from one (strategy, sampling) per task and model; choose it when several exist."""
    out = []
    for (task, model), group in agg.groupby(["task", "model"], sort=True):
        few = group[group["n_target"] > 0]
        if strategy:
            few = few[few["strategy"] == strategy]
        if sampling:
            few = few[few["sampling"] == sampling]
        settings = sorted({(str(a), str(b)) for a, b in zip(few["strategy"], few["sampling"])})
        if len(settings) > 1:
            raise ValueError(
                f"{task}/{model}: n-shot results come from several (strategy, sampling) settings {settings}; "
                "pick one with --strategy / --sampling"
            )
        out.append(pd.concat([group[group["n_target"] == 0], few]))
    return pd.concat(out, ignore_index=True)


def _report_missing(frame: pd.DataFrame, columns, ledger: Ledger, why: str) -> None:
    for column in columns:
        missing = frame[column].isna()
        if missing.all():
            ledger.unavailable_feature(column, why, int(missing.sum()))
        elif missing.any():
            examples = sorted({f"{t}:{s}->{g}" for t, s, g in frame.loc[missing, ["task", "source", "target"]].itertuples(index=False)})
            ledger.unavailable_feature(column, f"missing for {int(missing.sum())} of {len(frame)} pairs (e.g. {', '.join(examples[:3])}); "
                                       "imputed with the training-fold mean in regressions, pairwise-complete in correlations", int(missing.sum()))


def build_frame(
    results: pd.DataFrame,
    ledger: Ledger | None = None,
    *,
    text_pairs: pd.DataFrame | None = None,
    language_features: pd.DataFrame | None = None,
    pair_features: pd.DataFrame | None = None,
    metrics: dict[str, str] | None = None,
    strategy: str | None = None,
    sampling: str | None = None,
    size_corpus: str | None = None,
) -> AnalysisData:
    """Join scores and features. ``results`` is a validated tidy table (see jaxlt.stats.results)."""
    ledger = ledger if ledger is not None else Ledger()
    agg = select_setting(select_metric(aggregate_seeds(results), ledger, metrics), strategy, sampling)
    key = ["task", "model"]
    diag = agg[(agg["source"] == agg["target"]) & (agg["n_target"] == 0)]
    in_language = diag[key + ["source", "score"]].rename(columns={"source": "language"})
    pairs = agg[agg["source"] != agg["target"]].rename(columns={"score": "S_T"})
    ledger.exclude("results", "rows", "source == target with n_target > 0 (not a transfer pair, not S_S)",
                   int(((agg["source"] == agg["target"]) & (agg["n_target"] > 0)).sum()))
    pairs = pairs.merge(in_language.rename(columns={"language": "source", "score": "S_S"}), on=key + ["source"], how="left")
    pairs = pairs.merge(in_language.rename(columns={"language": "target", "score": "S_S_target"}), on=key + ["target"], how="left")
    no_ss = pairs["S_S"].isna()
    ledger.exclude("results", "pair rows", "no zero-shot in-language score S_S for the source (needed for the transfer gap)",
                   int(no_ss.sum()), sorted({f"{t}:{s}" for t, s in pairs.loc[no_ss, ["task", "source"]].itertuples(index=False)}))
    pairs = pairs[~no_ss].copy()
    pairs["gap"] = pairs["S_T"] - pairs["S_S"]

    # typology (lang2vec snapshot)
    unique_pairs = sorted(set(zip(pairs["source"], pairs["target"])))
    pairs = pairs.merge(typology.pair_features(unique_pairs), on=["source", "target"], how="left")
    _report_missing(pairs, ["SYNT", "PHONO"], ledger, "no WALS properties shared by the pair")

    # SIZE: log10 pre-training tokens of the model's corpus
    pairs["SIZE_S"] = np.nan
    pairs["SIZE_T"] = np.nan
    for model in sorted(set(pairs["model"])):
        try:
            corpus = size_corpus or sizes.corpus_for_model(model)
        except ValueError as error:
            ledger.unavailable_feature("SIZE", f"model {model}: {error}")
            continue
        logs = sizes.log_size(corpus)
        rows = pairs["model"] == model
        pairs.loc[rows, "SIZE_S"] = pairs.loc[rows, "source"].map(logs)
        pairs.loc[rows, "SIZE_T"] = pairs.loc[rows, "target"].map(logs)
    _report_missing(pairs, ["SIZE_S", "SIZE_T"], ledger, "language not in the pre-training size table")

    # text features
    if text_pairs is None:
        for feature in TEXT_FEATURES:
            ledger.unavailable_feature(feature, "no training text supplied (--text DIR|JSONL, or LEX/Vr/SENTLEN/MORPH rows in --pair-features); "
                                       "published results ship without text", len(pairs))
            pairs[feature] = np.nan
    else:
        cols = ["task", "source", "target"] + [f for f in TEXT_FEATURES if f in text_pairs.columns]
        pairs = pairs.merge(text_pairs[cols], on=["task", "source", "target"], how="left")
        _report_missing(pairs, TEXT_FEATURES, ledger, "no training text for this task/language")

    # model-derived features
    if language_features is None:
        for feature in MODEL_LANGUAGE_FEATURES:
            for side in ("S", "T"):
                ledger.unavailable_feature(f"{feature}_{side}", "no model-feature table supplied (--model-features); "
                                           "computed by `jaxlt features model` on an accelerator", len(pairs))
                pairs[f"{feature}_{side}"] = np.nan
    else:
        wide = language_features.pivot_table(index=["model", "task", "language"], columns="feature", values="value").reset_index()
        for feature in MODEL_LANGUAGE_FEATURES:
            if feature not in wide.columns:
                wide[feature] = np.nan
        for side, column in (("S", "source"), ("T", "target")):
            renamed = wide[["model", "task", "language", *MODEL_LANGUAGE_FEATURES]].rename(
                columns={"language": column, **{f: f"{f}_{side}" for f in MODEL_LANGUAGE_FEATURES}})
            pairs = pairs.merge(renamed, on=["model", "task", column], how="left")
        _report_missing(pairs, [f"{f}_{s}" for f in MODEL_LANGUAGE_FEATURES for s in "ST"], ledger,
                        "no model-feature row for this model/task/language")
    if pair_features is None or "EMB" not in set(pair_features.get("feature", [])):
        ledger.unavailable_feature("EMB", "no encoder centroids or EMB pair rows supplied (--embeddings NPZ or --pair-features)", len(pairs))
        pairs["EMB"] = np.nan
    else:
        emb = pair_features[pair_features["feature"] == "EMB"]
        on = ["task", "source", "target"] + (["model"] if "model" in emb.columns else [])
        pairs = pairs.merge(emb[on + ["value"]].rename(columns={"value": "EMB"}), on=on, how="left")
        _report_missing(pairs, ["EMB"], ledger, "no EMB value for this pair")

    available = [f for f in CORRELATION_FEATURES if f in pairs.columns and pairs[f].notna().any()]
    regression = [f for f in PAPER_FEATURES if f in available]
    pairs = pairs.sort_values(["task", "model", "n_target", "source", "target"]).reset_index(drop=True)
    return AnalysisData(pairs, regression, available, ledger)
