"""Typological features from lang2vec / URIEL: SYNT, PHONO, cosine similarities, distances.

lang2vec is slow to query (its family matrix takes seconds to load), so the
vectors of every language in :mod:`jaxlt.languages` are read once into a
snapshot (``features/data/lang2vec_snapshot.npz``, bundled) and all features are
computed from it. ``build_snapshot`` regenerates it from lang2vec.
"""

from __future__ import annotations

import functools
import importlib.resources
import itertools
import os
import pathlib
import tempfile

import numpy as np
import pandas as pd

from jaxlt import languages

WALS_SETS = {"SYNT": "syntax_wals", "PHONO": "phonology_wals"}
# URIEL's distances (Littell et al. 2017) are cosine distances between these vectors.
COSINE_SETS = {
    "syntax": "syntax_knn",
    "phonology": "phonology_knn",
    "inventory": "inventory_knn",
    "family": "fam",
    "geography": "geo",
}
FEATURE_SETS = tuple(WALS_SETS.values()) + tuple(COSINE_SETS.values())


def bundled_snapshot_path() -> pathlib.Path:
    return pathlib.Path(str(importlib.resources.files("jaxlt") / "features" / "data" / "lang2vec_snapshot.npz"))


def cache_snapshot_path() -> pathlib.Path:
    root = os.environ.get("JAXLT_CACHE_DIR") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jaxlt")
    return pathlib.Path(root) / "lang2vec_snapshot.npz"


def snapshot_path() -> pathlib.Path:
    """The bundled snapshot when the install has it, else the user cache (built on first use)."""
    bundled = bundled_snapshot_path()
    return bundled if bundled.exists() else cache_snapshot_path()


def build_snapshot(path: str | pathlib.Path | None = None, codes: list[str] | None = None,
                   feature_sets: tuple[str, ...] | None = None) -> pathlib.Path:
    """Query lang2vec for every language and write the snapshot atomically (default: where
    :func:`snapshot_path` points, i.e. the bundled file when it exists)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lang2vec.lang2vec as l2v
    path = pathlib.Path(path or snapshot_path())
    codes = codes or languages.codes()
    l2v_codes = [languages.lang2vec_code(c) for c in codes]
    arrays = {"languages": np.array(codes)}
    for feature_set in feature_sets or FEATURE_SETS:
        table = l2v.get_features(sorted(set(l2v_codes)), feature_set, header=True)
        names = table.pop("CODE")
        matrix = np.array(
            [[np.nan if v == "--" else float(v) for v in table[code]] for code in l2v_codes], dtype=np.float32
        )
        arrays[f"{feature_set}/names"] = np.array(names)
        arrays[f"{feature_set}/values"] = matrix
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    _snapshot.cache_clear()
    return path


@functools.lru_cache(maxsize=4)
def _snapshot(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def vectors(feature_set: str, path: str | pathlib.Path | None = None) -> pd.DataFrame:
    """lang2vec vectors of one feature set: rows are canonical codes, NaN where unknown."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; known: {FEATURE_SETS}")
    path = pathlib.Path(path or snapshot_path())
    if not path.exists():
        if path != cache_snapshot_path():
            raise FileNotFoundError(f"lang2vec snapshot {path} missing; build it with `jaxlt features typology --refresh --snapshot {path}`")
        import logging

        logging.getLogger("jaxlt.analysis").warning("building the lang2vec snapshot in %s (once, about 15 s)", path)
        build_snapshot(path)
    data = _snapshot(str(path))
    return pd.DataFrame(data[f"{feature_set}/values"], index=data["languages"], columns=data[f"{feature_set}/names"])


def wals_iou(source: np.ndarray, target: np.ndarray) -> tuple[float, int, int]:
    """Intersection over union of the WALS properties two languages have.

    Only properties known for *both* languages are compared (WALS is sparse: a
    property missing for one language is neither shared nor different). Returns
    (iou, number of properties known for both, size of the union); iou is NaN
    when the union is empty.
    """
    source, target = np.asarray(source, float), np.asarray(target, float)
    if source.shape != target.shape:
        raise ValueError(f"source and target vectors differ in shape: {source.shape} vs {target.shape}")
    known = ~np.isnan(source) & ~np.isnan(target)
    s, t = source[known] == 1, target[known] == 1
    union = int(np.sum(s | t))
    inter = int(np.sum(s & t))
    return (inter / union if union else float("nan")), int(known.sum()), union


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    u, v = np.asarray(u, float), np.asarray(v, float)
    known = ~np.isnan(u) & ~np.isnan(v)
    u, v = u[known], v[known]
    norm = np.linalg.norm(u) * np.linalg.norm(v)
    return float(u @ v / norm) if norm > 0 else float("nan")


def pair_features(pairs: list[tuple[str, str]], path: str | pathlib.Path | None = None) -> pd.DataFrame:
    """Wide table: one row per (source, target) with SYNT, PHONO (+ counts), cosines and distances."""
    pairs = [(languages.normalize(s), languages.normalize(t)) for s, t in pairs]
    tables = {fs: vectors(fs, path) for fs in FEATURE_SETS}
    rows = []
    for s, t in pairs:
        row = {"source": s, "target": t}
        for feature, fs in WALS_SETS.items():
            iou, shared, union = wals_iou(tables[fs].loc[s].to_numpy(), tables[fs].loc[t].to_numpy())
            row[feature] = iou
            row[f"{feature}_n_shared"] = shared
            row[f"{feature}_n_union"] = union
        for name, fs in COSINE_SETS.items():
            sim = cosine(tables[fs].loc[s].to_numpy(), tables[fs].loc[t].to_numpy())
            row[f"cos_{name}"] = sim
            row[f"dist_{name}"] = 1.0 - sim
        rows.append(row)
    return pd.DataFrame(rows)


def all_pairs(codes: list[str]) -> list[tuple[str, str]]:
    return [(s, t) for s, t in itertools.product(codes, codes) if s != t]
