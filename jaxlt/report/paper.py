"""The paper's own numbers (Muller et al. 2022, transcribed in resources/published) beside jaxlt's,
with the reasons they differ, for `jaxlt analyze --results published:muller2022`."""

from __future__ import annotations

import importlib.resources
import pathlib

import numpy as np
import pandas as pd

TASKS = {"tydiqa": "QA (TyDiQA)", "panx": "NER (PAN-X)", "xnli": "XNLI"}
OFFLINE_MISSING = {
    "LM_L_S": "needs the mT5 checkpoint (`jaxlt features model`)", "LM_L_T": "needs the mT5 checkpoint",
    "LM_EM_S": "needs the mT5 checkpoint", "LM_EM_T": "needs the mT5 checkpoint",
    "EMB": "needs mT5 encoder centroids", "LEX": "needs the training text", "Vr": "needs the training text",
    "SENTLEN": "needs the training text", "MORPH": "needs the training text",
}


def paper_tables(name: str = "muller2022") -> pd.DataFrame:
    path = pathlib.Path(str(importlib.resources.files("jaxlt") / "resources" / "published" / f"{name}_paper_tables.csv"))
    return pd.read_csv(path)


def _reason_feature(feature: str, ours: float, unavailable: set[str]) -> str:
    if feature in unavailable or np.isnan(ours):
        return OFFLINE_MISSING.get(feature, "unavailable (see the ledger)")
    if feature == "PHONO":
        return "WALS phonology is sparse: IoU over the few properties both languages have; lang2vec codes per the table below"
    if feature == "SYNT":
        return "WALS syntax from lang2vec; the paper's WALS extraction may differ (which properties, which language codes)"
    return ""


def table1(correlations: pd.DataFrame, unavailable: set[str]) -> pd.DataFrame:
    paper = paper_tables()
    paper = paper[paper["table"] == "table1"]
    ours = correlations[correlations["model"] == "mt5-base"].set_index(["task", "feature"]) if not correlations.empty else None
    rows = []
    for task, item, value, sig in paper[["task", "item", "value", "significant"]].itertuples(index=False):
        r = ours["pearson_r"].get((task, item), np.nan) * 100 if ours is not None else np.nan
        p = ours["pearson_p"].get((task, item), np.nan) if ours is not None else np.nan
        perm = ours["permutation_p"].get((task, item), np.nan) if ours is not None else np.nan
        rows.append({"task": TASKS[task], "feature": item, "paper r x100": f"{value:.1f}{'*' if sig else ''}",
                     "jaxlt r x100": "n/a" if np.isnan(r) else f"{r:.1f}{'*' if p <= 0.05 else ''}",
                     "jaxlt permutation p": perm, "why they differ": _reason_feature(item, r, unavailable)})
    return pd.DataFrame(rows)


def table2(n_transformations: pd.DataFrame) -> pd.DataFrame:
    paper = paper_tables()
    paper = paper[paper["table"] == "table2"]
    ours = n_transformations.set_index(["task", "transform"]) if not n_transformations.empty else None
    rows = []
    for task, item, value in paper[["task", "item", "value"]].itertuples(index=False):
        r = ours["pearson_r"].get((task, item), np.nan) * 100 if ours is not None else np.nan
        distinct = ours["distinct_n"].get((task, item), np.nan) if ours is not None else np.nan
        why = ("the published results have n = 0 and 100 only (the paper used n up to 1000), so every transform "
               "of n gives the same r" if distinct == 2 else "no n > 0 results published for this task" if np.isnan(r) else "")
        rows.append({"task": TASKS[task], "transform": item, "paper r x100": value,
                     "jaxlt r x100": "n/a" if np.isnan(r) else round(r, 1), "why they differ": why})
    return pd.DataFrame(rows)


def table3(cv: pd.DataFrame, nshot: pd.DataFrame) -> pd.DataFrame:
    paper = paper_tables()
    rows = []
    for task in TASKS:
        a = paper[(paper["table"] == "table3a") & (paper["task"] == task)].set_index("item")["value"]
        b = paper[(paper["table"] == "table3b") & (paper["task"] == task)].set_index("item")["value"]
        mine = cv[(cv["task"] == task) & (cv["method"] == "meta_regression")] if not cv.empty else cv
        base = cv[(cv["task"] == task) & (cv["method"] == "source_mean")] if not cv.empty else cv
        few = nshot[(nshot["task"] == task) & (nshot["method"] == "nshot_model")] if not nshot.empty else nshot
        rows.append({
            "task": TASKS[task], "paper zero-shot RMSE (3a)": a.get("rmse"),
            "jaxlt zero-shot RMSE": mine["rmse_mean_over_folds"].iloc[0] if len(mine) else np.nan,
            "per-source-mean baseline RMSE": base["rmse_mean_over_folds"].iloc[0] if len(base) else np.nan,
            "paper top-1 (3a)": a.get("top1_accuracy"),
            "jaxlt top-1": mine["top1_accuracy"].iloc[0] if len(mine) else np.nan,
            "paper n-shot RMSE (3b)": b.get("rmse"),
            "jaxlt n-shot RMSE": few["rmse_mean_over_folds"].iloc[0] if len(few) else np.nan,
            "why they differ": "fewer features offline (no LM_*, EMB, text features); jaxlt's CV is nested (features and "
                               "penalty chosen inside each training fold); n-shot: the published data has n = 100 only"
                               + ("; no n > 0 published for XNLI" if task == "xnli" else ""),
        })
    return pd.DataFrame(rows)


def figure2(coefficients: pd.DataFrame) -> pd.DataFrame:
    paper = paper_tables()
    paper = paper[paper["table"] == "figure2"]
    ours = coefficients.set_index(["task", "term"]) if not coefficients.empty else None
    rows = []
    terms = {(t, i) for t, i in paper[["task", "item"]].itertuples(index=False)}
    if ours is not None:
        terms |= {(t, i) for t, i in ours.index if t in TASKS}
    for task, term in sorted(terms, key=lambda k: (list(TASKS).index(k[0]), k[1] != "const", k[1])):
        value = paper[(paper["task"] == task) & (paper["item"] == term)]["value"]
        mine = ours.loc[(task, term)] if ours is not None and (task, term) in ours.index else None
        why = ""
        if mine is None:
            why = OFFLINE_MISSING.get(term, "not selected by jaxlt's recursive elimination")
        elif value.empty:
            why = "selected by jaxlt, not in the paper's equation"
        if term == "S_S":
            why = (why + "; " if why else "") + "the paper's S_S coefficient (~1) suggests S_S was not scaled to [0, 1]"
        rows.append({"task": TASKS[task], "term": term, "paper coef": value.iloc[0] if len(value) else np.nan,
                     "jaxlt coef": mine["coef"] if mine is not None else np.nan,
                     "jaxlt p": mine["p_value"] if mine is not None else np.nan,
                     "jaxlt p (language jackknife)": mine["p_value_jackknife"] if mine is not None else np.nan,
                     "why they differ": why})
    return pd.DataFrame(rows)
