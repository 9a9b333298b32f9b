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
TYPOLOGY_FEATURES = ("SYNT", "PHONO", "TYPO") + tuple(f"cos_{n}" for n in typology.COSINE_SETS)
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
    typology_file: pd.DataFrame | None = None,
) -> AnalysisData:
    """Join scores and features. ``results`` is a validated tidy table (see jaxlt.stats.results).

    Any design works: one source, no in-language (diagonal) scores (then S_S and the gap are
    unavailable and say so), any subset of text features. ``language_features`` and
    ``pair_features`` are long user tables (jaxlt.features.user) with features under any name:
    a language feature F becomes F_S and F_T; ``typology_file`` adds a user typology.
    """
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
    if no_ss.all():
        ledger.unavailable_feature("S_S", "the results have no in-language (source == target, n = 0) scores; the transfer "
                                   "gap S_T - S_S is unavailable, so correlations use S_T instead", len(pairs))
    elif no_ss.any():
        examples = sorted({f"{t}:{s}" for t, s in pairs.loc[no_ss, ["task", "source"]].itertuples(index=False)})
        ledger.unavailable_feature("S_S", f"no in-language score for source(s) {', '.join(examples[:5])} "
                                   f"({int(no_ss.sum())} pairs); their gap S_T - S_S is unavailable", int(no_ss.sum()))
    pairs["gap"] = pairs["S_T"] - pairs["S_S"]

    # typology (lang2vec snapshot, plus a user typology file)
    unique_pairs = sorted(set(zip(pairs["source"], pairs["target"])))
    pairs = pairs.merge(typology.pair_features(unique_pairs, user=typology_file), on=["source", "target"], how="left")
    for feature in ("SYNT", "PHONO"):
        _report_missing(pairs, [feature], ledger, "lang2vec (WALS) has no " + ("syntax" if feature == "SYNT" else "phonology")
                        + " property known for both languages of the pair (sparse WALS, or a language lang2vec does not know)")

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

    # text features (any subset of LEX, Vr, SENTLEN, MORPH)
    given = [f for f in TEXT_FEATURES if text_pairs is not None and f in text_pairs.columns]
    from_pair_table = set(pair_features["feature"]) if pair_features is not None else set()
    if given:
        cols = ["task", "source", "target"] + given
        pairs = pairs.merge(text_pairs[cols].drop_duplicates(["task", "source", "target"]), on=["task", "source", "target"], how="left")
        _report_missing(pairs, given, ledger, "no training text for this task/language")
    for feature in TEXT_FEATURES:
        if feature not in given and feature not in from_pair_table:
            ledger.unavailable_feature(feature, "no training text supplied (--text DIR|JSONL, or LEX/Vr/SENTLEN/MORPH rows in --pair-features); "
                                       "published results ship without text" if text_pairs is None else
                                       "not in the supplied text-feature table", len(pairs))
            pairs[feature] = np.nan

    # per-language features under any name (model-derived LM_L, LM_EM, or the user's own): F -> F_S, F_T
    names = sorted(set(language_features["feature"])) if language_features is not None else []
    for name in names:
        for side, column in (("S", "source"), ("T", "target")):
            pairs[f"{name}_{side}"] = _lookup_language(language_features, name, pairs, column)
        _report_missing(pairs, [f"{name}_S", f"{name}_T"], ledger, "no row for this model/task/language in the language-feature table")
    for feature in MODEL_LANGUAGE_FEATURES:
        if feature not in names:
            for side in ("S", "T"):
                ledger.unavailable_feature(f"{feature}_{side}", "no model-feature table supplied (--model-features); "
                                           "computed by `jaxlt features model` on an accelerator", len(pairs))
                pairs[f"{feature}_{side}"] = np.nan
    user_language = [f"{n}_{side}" for n in names if n not in MODEL_LANGUAGE_FEATURES for side in "ST"]

    # pair features under any name (EMB, or the user's own); text features come through text_pairs
    pair_names = sorted(from_pair_table - set(given))
    for name in pair_names:
        values = _lookup_pair(pair_features, name, pairs)
        if name in pairs.columns and name != "EMB":  # e.g. a saved `jaxlt features typology` table: the user's values win
            ledger.note("features", f"{name}: supplied values replace jaxlt's where given", "--pair-features has a column "
                        "jaxlt also computes", int((~np.isnan(values)).sum()))
            values = np.where(np.isnan(values), pairs[name].to_numpy(float), values)
        pairs[name] = values
        _report_missing(pairs, [name], ledger, f"no {name} value for this pair")
    if "EMB" not in pair_names:
        ledger.unavailable_feature("EMB", "no encoder centroids or EMB pair rows supplied (--embeddings NPZ or --pair-features)", len(pairs))
        pairs["EMB"] = np.nan
    computed = set(CORRELATION_FEATURES) | {f"{w}_{k}" for w in ("SYNT", "PHONO") for k in ("n_shared", "n_union")}
    user_pair = [n for n in pair_names if n not in MODEL_PAIR_FEATURES + TEXT_FEATURES and n not in computed]

    candidates = list(CORRELATION_FEATURES) + user_pair + user_language
    available = [f for f in candidates if f in pairs.columns and pairs[f].notna().any()]
    regression = [f for f in list(PAPER_FEATURES) + ["TYPO"] + user_pair + user_language if f in available]
    pairs = pairs.sort_values(["task", "model", "n_target", "source", "target"]).reset_index(drop=True)
    return AnalysisData(pairs, regression, available, ledger)


def _lookup_language(long: pd.DataFrame, name: str, pairs: pd.DataFrame, column: str) -> np.ndarray:
    """Value of language feature ``name`` for each pair's ``column`` language; exact task/model rows
    win over '*' rows (a table without task or model columns applies to all)."""
    sub = long[long["feature"] == name]
    out = np.full(len(pairs), np.nan)
    for exact in (False, True):  # '*' first, then exact matches overwrite
        for (task, model), rows in pairs.groupby(["task", "model"], sort=False).groups.items():
            mask = (sub["task"] == task if exact else sub["task"].isin([task, "*"])) & \
                   (sub["model"] == model if exact else sub["model"].isin([model, "*"]))
            values = sub[mask].drop_duplicates("language", keep="last").set_index("language")["value"]
            mapped = pairs.loc[rows, column].map(values).to_numpy(float)
            position = pairs.index.get_indexer(rows)
            out[position] = np.where(np.isnan(mapped), out[position], mapped)
    return out


def _lookup_pair(long: pd.DataFrame, name: str, pairs: pd.DataFrame) -> np.ndarray:
    sub = long[long["feature"] == name]
    out = np.full(len(pairs), np.nan)
    for exact in (False, True):
        for (task, model), rows in pairs.groupby(["task", "model"], sort=False).groups.items():
            mask = (sub["task"] == task if exact else sub["task"].isin([task, "*"])) & \
                   (sub["model"] == model if exact else sub["model"].isin([model, "*"]))
            values = sub[mask].drop_duplicates(["source", "target"], keep="last").set_index(["source", "target"])["value"]
            index = pd.MultiIndex.from_frame(pairs.loc[rows, ["source", "target"]])
            mapped = values.reindex(index).to_numpy(float)
            position = pairs.index.get_indexer(rows)
            out[position] = np.where(np.isnan(mapped), out[position], mapped)
    return out
