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

import numpy as np
import pandas as pd

from jaxlt import atomic, languages

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
    l2v = import_lang2vec()
    path = pathlib.Path(path or snapshot_path())
    codes = codes or languages.codes()
    arrays = {"languages": np.array(codes)}
    for feature_set in feature_sets or FEATURE_SETS:
        known = _database_languages(l2v, feature_set)
        candidates = {c: [x for x in candidate_codes(c) if x in known] or candidate_codes(c)[:1] for c in codes}
        every = sorted({code for options in candidates.values() for code in options})
        table = l2v.get_features(every, feature_set, header=True)
        names = table.pop("CODE")
        vectors_by_code = {code: np.array([np.nan if v == "--" else float(v) for v in table[code]], dtype=np.float32) for code in every}
        # per language, the candidate code with the most known values in this feature set (ties: the default)
        chosen = [max(candidates[c], key=lambda code: (int(np.sum(~np.isnan(vectors_by_code[code]))), code == candidates[c][0]))
                  for c in codes]
        arrays[f"{feature_set}/names"] = np.array(names)
        arrays[f"{feature_set}/values"] = np.stack([vectors_by_code[code] for code in chosen])
        arrays[f"{feature_set}/codes"] = np.array(chosen)
    with atomic.atomic_path(str(path)) as tmp, open(tmp, "wb") as f:  # a file object: no ".npz" appended
        np.savez_compressed(f, **arrays)
    _snapshot.cache_clear()
    return path


def import_lang2vec():
    """``lang2vec.lang2vec``, also from a console script: lang2vec installs a script named
    ``lang2vec.py`` next to the interpreter, which shadows the package when that directory is
    first on sys.path (as it is for ``jaxlt`` and ``pytest`` run from a virtualenv's bin)."""
    import importlib
    import sys
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lang2vec imports the deprecated pkg_resources
        try:
            return importlib.import_module("lang2vec.lang2vec")
        except (ImportError, FileNotFoundError):
            for name in [n for n in sys.modules if n == "lang2vec" or n.startswith("lang2vec.")]:
                del sys.modules[name]
            saved = list(sys.path)
            sys.path[:] = [p for p in sys.path if not (pathlib.Path(p or ".") / "lang2vec.py").is_file()]
            try:
                return importlib.import_module("lang2vec.lang2vec")
            finally:
                sys.path[:] = saved


def candidate_codes(code: str) -> list[str]:
    """lang2vec codes that may stand for a language: jaxlt's default first, then the individual
    language and the macrolanguage (Arabic: arb, then ara, which alone has WALS phonology)."""
    lang = languages.get(code)
    return list(dict.fromkeys([lang.lang2vec, lang.individual, lang.iso3]))


def _database_languages(l2v, feature_set: str) -> set[str]:
    """Codes present in the lang2vec database file behind one feature set (lang2vec's own
    available_languages() lists only those with family features, which leaves out e.g. 'ara')."""
    filename = l2v.FEATURE_SETS_DICT[feature_set][0]
    with np.load(pathlib.Path(l2v.__file__).parent / "data" / filename, allow_pickle=True) as data:
        return set(map(str, data["langs"]))


def chosen_codes(path: str | pathlib.Path | None = None) -> pd.DataFrame:
    """Language x feature set: the lang2vec code whose vector the snapshot holds."""
    path = pathlib.Path(path or snapshot_path())
    data = _snapshot(str(path))
    columns = {fs: data[f"{fs}/codes"] for fs in FEATURE_SETS if f"{fs}/codes" in data}
    return pd.DataFrame(columns, index=pd.Index(data["languages"], name="language"))


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


WALS_PREFIX = {"SYNT": "S_", "PHONO": "P_"}  # lang2vec's names of WALS syntax / phonology properties


def _wals_row(feature: str, code: str, tables: dict, user: pd.DataFrame | None) -> pd.Series | None:
    """Property name -> value for one language: the user's typology file first, then lang2vec."""
    parts = []
    if user is not None and code in user.index:
        columns = [c for c in user.columns if c.startswith(WALS_PREFIX[feature])]
        parts.append(user.loc[code, columns])
    if languages.is_known(code):
        known = tables[WALS_SETS[feature]]
        if code in known.index:
            parts.append(known.loc[code])
    if not parts:
        return None
    row = pd.concat(parts)
    return row[~row.index.duplicated(keep="first")]


def _language_matrix(rows: list[pd.Series | None]) -> np.ndarray:
    """Stack per-language property rows on the union of their names (NaN where a language lacks one)."""
    names = pd.Index([]).append([r.index for r in rows if r is not None]).unique() if any(r is not None for r in rows) else pd.Index([])
    out = np.full((len(rows), len(names)), np.nan)
    for i, row in enumerate(rows):
        if row is not None:
            out[i] = row.reindex(names).to_numpy(float)
    return out


def _iou_matrices(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`wals_iou` for every pair of rows at once: (iou, known for both, union), each languages x languages.

    A property unknown for either language of a pair counts for neither, as in wals_iou; with
    K = known and B = has the property: shared = K K', intersection = B B', union = B K' + K B' - B B'."""
    known = (~np.isnan(matrix)).astype(float)
    has = (matrix == 1).astype(float)
    inter = has @ has.T
    union = has @ known.T + known @ has.T - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, np.nan)
    return iou, np.rint(known @ known.T).astype(int), np.rint(union).astype(int)


def _cosine_matrix(matrix: np.ndarray) -> np.ndarray:
    """:func:`cosine` for every pair of rows at once, each pair over the entries both rows know."""
    known = (~np.isnan(matrix)).astype(float)
    values = np.nan_to_num(matrix)
    squares = values * values
    with np.errstate(invalid="ignore", divide="ignore"):
        norm = np.sqrt((squares @ known.T) * (known @ squares.T))
        return np.where(norm > 0, (values @ values.T) / norm, np.nan)


def pair_features(pairs: list[tuple[str, str]], path: str | pathlib.Path | None = None,
                  user: pd.DataFrame | None = None) -> pd.DataFrame:
    """Wide table: one row per (source, target) with SYNT, PHONO (+ counts), cosines and distances.

    ``user``: a typology file (jaxlt.features.user.read_typology) for languages lang2vec does not
    know or to extend it: its ``S_*`` / ``P_*`` properties join SYNT / PHONO (aligned with
    lang2vec's by name), and TYPO is the IoU over all its properties when both languages are in it.
    Computed once per language and as matrix products over the distinct languages (the same
    numbers as :func:`wals_iou` and :func:`cosine` pair by pair, without a Python loop over pairs).
    """
    extra = set(user.index) if user is not None else set()
    pairs = [(s if s in extra else languages.normalize(s), t if t in extra else languages.normalize(t)) for s, t in pairs]
    tables = {fs: vectors(fs, path) for fs in FEATURE_SETS}
    codes = sorted({c for pair in pairs for c in pair})
    index = {c: i for i, c in enumerate(codes)}
    si = np.array([index[s] for s, _ in pairs], dtype=int)
    ti = np.array([index[t] for _, t in pairs], dtype=int)
    out = pd.DataFrame({"source": [s for s, _ in pairs], "target": [t for _, t in pairs]})
    for feature in WALS_SETS:
        iou, shared, union = _iou_matrices(_language_matrix([_wals_row(feature, c, tables, user) for c in codes]))
        out[feature], out[f"{feature}_n_shared"], out[f"{feature}_n_union"] = iou[si, ti], shared[si, ti], union[si, ti]
    if user is not None:
        rows = [user.loc[c] if c in extra else None for c in codes]
        out["TYPO"] = _iou_matrices(_language_matrix(rows))[0][si, ti]
    for name, fs in COSINE_SETS.items():
        known = tables[fs]
        rows = [known.loc[c] if c in known.index else None for c in codes]
        out[f"cos_{name}"] = _cosine_matrix(_language_matrix(rows))[si, ti] if len(pairs) else np.array([])
    return out


def all_pairs(codes: list[str]) -> list[tuple[str, str]]:
    return [(s, t) for s, t in itertools.product(codes, codes) if s != t]
