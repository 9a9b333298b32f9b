"""Reading the model-derived features the grid writes (EMB, LM_L, LM_EM).

Language-features table (DESIGN.md): one row per ``model, task, language, feature, value``
(csv / parquet / jsonl), e.g. feature ``LM_L`` (mean over span-corrupted chunks of the summed
log-likelihood of the masked tokens) and ``LM_EM`` (per-span exact match, 0-1). EMB is pairwise: either rows of a pair table
``task, source, target, feature=EMB, value`` (with or without ``model``), or centroid
vectors in an ``.npz`` whose keys are ``"{model}/{task}/{language}"``, from which
EMB(T,S) = cos(centroid_S, centroid_T) is derived here.
"""

from __future__ import annotations

import itertools
import pathlib

import numpy as np
import pandas as pd

from jaxlt import languages
from jaxlt.stats.results import read_table

LANGUAGE_COLUMNS = ("model", "task", "language", "feature", "value")
PAIR_COLUMNS = ("task", "source", "target", "feature", "value")


def read_language_features(path: str | pathlib.Path) -> pd.DataFrame:
    table = read_table(path)
    missing = [c for c in LANGUAGE_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: language-features table lacks column(s) {missing}; needs {list(LANGUAGE_COLUMNS)}")
    table = table.copy()
    table["language"] = table["language"].astype(str).map(languages.normalize)
    table["value"] = pd.to_numeric(table["value"], errors="raise")
    dup = table.duplicated(["model", "task", "language", "feature"], keep=False)
    if dup.any():
        raise ValueError(f"{path}: {int(dup.sum())} duplicate (model, task, language, feature) rows, e.g. "
                         f"{table[dup].head(3).to_dict('records')}")
    return table


def read_pair_features(path: str | pathlib.Path) -> pd.DataFrame:
    """A long pair-feature table (task, source, target, feature, value [, model])."""
    table = read_table(path)
    missing = [c for c in PAIR_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: pair-features table lacks column(s) {missing}; needs {list(PAIR_COLUMNS)}")
    table = table.copy()
    for column in ("source", "target"):
        table[column] = table[column].astype(str).map(languages.normalize)
    table["value"] = pd.to_numeric(table["value"], errors="raise")
    return table


def embedding_similarity(path: str | pathlib.Path, extra: frozenset = frozenset()) -> pd.DataFrame:
    """EMB pair rows (model, task, source, target, feature, value) from centroid vectors; codes in
    ``extra`` (synthetic languages declared by a typology file) are kept as written."""
    with np.load(path, allow_pickle=False) as data:
        centroids = {}
        for key in data.files:
            parts = key.split("/")
            if len(parts) != 3:
                raise ValueError(f"{path}: centroid key {key!r} is not 'model/task/language'")
            model, task, lang = parts
            code = lang if lang in extra else languages.normalize(lang)
            centroids[(model, task, code)] = np.asarray(data[key], float)
    rows = []
    groups = sorted({(m, t) for m, t, _ in centroids})
    for model, task in groups:
        langs = sorted(l for m, t, l in centroids if (m, t) == (model, task))
        for s, t in itertools.permutations(langs, 2):
            u, v = centroids[(model, task, s)], centroids[(model, task, t)]
            if u.shape != v.shape:
                raise ValueError(f"{path}: centroids of {s} and {t} ({model}/{task}) differ in shape: {u.shape} vs {v.shape}")
            rows.append({"model": model, "task": task, "source": s, "target": t, "feature": "EMB",
                         "value": float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))})
    return pd.DataFrame(rows, columns=["model", "task", "source", "target", "feature", "value"])
