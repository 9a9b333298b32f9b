"""Reading, validating and aggregating the tidy results table (DESIGN.md).

One row per evaluation: task, model, source, target, n_target, seed, strategy,
sampling, metric, score (0-100), plus free extra columns. ``published:NAME``
loads results bundled with jaxlt.
"""

from __future__ import annotations

import importlib.resources
import pathlib

import numpy as np
import pandas as pd

from jaxlt import languages
from jaxlt.stats.ledger import Ledger

REQUIRED = ("task", "model", "source", "target", "n_target", "score")
DEFAULTS = {"seed": pd.NA, "strategy": None, "sampling": "random", "metric": "score"}
CELL = ("task", "model", "source", "target", "n_target", "strategy", "sampling", "metric")
PUBLISHED = {"muller2022": "muller2022_mt5_base_appendix.csv"}
_PUBLISHED_TASKS = {  # appendix task -> (tidy task, metric)
    "qa": ("tydiqa", "exact_match"),
    "ner": ("panx", "f1"),
    "xnli": ("xnli", "accuracy"),
    "xnli_new": ("xnli_new", "accuracy"),
}


class ResultsError(ValueError):
    """The results table is malformed; the message names the file, rows and columns."""


def published_path(name: str) -> pathlib.Path:
    if name not in PUBLISHED:
        raise ResultsError(f"unknown published results {name!r}; known: {', '.join(sorted(PUBLISHED))}")
    return pathlib.Path(str(importlib.resources.files("jaxlt") / "resources" / "published" / PUBLISHED[name]))


def load_published(name: str = "muller2022") -> pd.DataFrame:
    """The bundled appendix matrices as a tidy results table."""
    raw = pd.read_csv(published_path(name))
    unknown = sorted(set(raw["task"]) - set(_PUBLISHED_TASKS))
    if unknown:
        raise ResultsError(f"{published_path(name)}: unknown task(s) {unknown}")
    tidy = pd.DataFrame(
        {
            "task": raw["task"].map(lambda t: _PUBLISHED_TASKS[t][0]),
            "model": "mt5-base",
            "source": raw["source"],
            "target": raw["target"],
            "n_target": raw["n_target"].astype(int),
            "seed": pd.array([pd.NA] * len(raw), dtype="Int64"),
            "strategy": np.where(raw["n_target"] == 0, "zero_shot", "few_shot"),
            "sampling": "random",
            "metric": raw["task"].map(lambda t: _PUBLISHED_TASKS[t][1]),
            "score": raw["observed"].astype(float),
            "published_prediction": raw["predicted"].astype(float),
            "figure": raw["figure"],
            "origin": f"published:{name}",
        }
    )
    return tidy


def read_table(path: str | pathlib.Path) -> pd.DataFrame:
    path = pathlib.Path(path)
    if not path.exists():
        raise ResultsError(f"results file not found: {path}")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix in (".csv", ".csv.gz"):
        return pd.read_csv(path, keep_default_na=True)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".jsonl", ".jsonl.gz", ".json"):
        return pd.read_json(path, lines=suffix != ".json")
    raise ResultsError(f"{path}: unsupported results format {suffix!r}; use .csv, .parquet or .jsonl")


def load_results(spec: str | pathlib.Path, ledger: Ledger | None = None, *, score_scale: str = "auto",
                 extra_languages: frozenset = frozenset()) -> pd.DataFrame:
    """Load ``published:NAME`` or a file (csv / parquet / jsonl) and validate it."""
    ledger = ledger if ledger is not None else Ledger()
    if isinstance(spec, str) and spec.startswith("published:"):
        frame, where = load_published(spec.split(":", 1)[1]), spec
    else:
        frame, where = read_table(spec), str(spec)
    return validate(frame, ledger, where, score_scale=score_scale, extra_languages=extra_languages)


def _rows(frame: pd.DataFrame, mask) -> str:
    """Human row numbers: the line in a CSV with a header is index + 2."""
    idx = list(frame.index[np.asarray(mask)])[:5]
    return ", ".join(str(i + 2) for i in idx)


SCORE_SCALES = ("auto", "percent", "fraction")


def validate(frame: pd.DataFrame, ledger: Ledger, where: str = "<results>", *, score_scale: str = "auto",
             extra_languages: frozenset = frozenset()) -> pd.DataFrame:
    """Check columns, codes, scores and duplicates; normalise codes; return a clean copy.

    Rows whose ``status`` is not "ok" (e.g. "diverged") are left out and counted. Scores must be on
    a 0-100 scale; ``score_scale="auto"`` rescales a (task, metric) whose scores all lie in [0, 1]
    by 100 and says so in the ledger, "fraction" rescales everything, "percent" rescales nothing.
    ``extra_languages``: codes outside jaxlt.languages accepted as written (synthetic languages
    declared in a typology file)."""
    if score_scale not in SCORE_SCALES:
        raise ResultsError(f"score scale {score_scale!r} unknown; choose one of {SCORE_SCALES}")
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ResultsError(
            f"{where}: missing required column(s) {missing}; has {list(frame.columns)}; "
            f"required: {list(REQUIRED)}"
        )
    frame = frame.reset_index(drop=True).copy()
    for column, default in DEFAULTS.items():
        if column not in frame.columns:
            frame[column] = default
    frame["strategy"] = frame["strategy"].where(
        frame["strategy"].notna(), np.where(frame["n_target"] == 0, "zero_shot", "unspecified")
    )
    if "status" in frame.columns:
        status = frame["status"].fillna("ok").astype(str).str.strip().replace("", "ok")
        for value, count in status[status != "ok"].value_counts().sort_index().items():
            ledger.exclude("results", "rows", f"status {value!r} (only status 'ok' rows are analysed)", int(count),
                           [f"line {i + 2}" for i in frame.index[status == value]])
        frame = frame[status == "ok"]
    for column in ("source", "target"):
        codes = frame[column].astype(str).str.strip()
        bad = ~codes.map(lambda c: c in extra_languages or languages.is_known(c))
        if bad.any():
            examples = sorted(set(codes[bad]))[:5]
            raise ResultsError(
                f"{where}: unknown language code(s) {examples} in column {column!r} at line(s) "
                f"{_rows(frame, bad)}; see jaxlt.languages.codes()"
            )
        frame[column] = codes.map(lambda c: c if c in extra_languages else languages.normalize(c))
    n = pd.to_numeric(frame["n_target"], errors="coerce")
    if n.isna().any() or (n < 0).any() or (n != n.round()).any():
        bad = n.isna() | (n < 0) | (n != n.round())
        raise ResultsError(f"{where}: n_target must be a non-negative integer; bad at line(s) {_rows(frame, bad)}")
    frame["n_target"] = n.astype(int)
    frame["score"] = pd.to_numeric(frame["score"], errors="coerce")
    nan = frame["score"].isna()
    if nan.any():
        ledger.exclude(
            "results", "rows", f"score is NaN or not a number in {where}", int(nan.sum()),
            [f"line {i + 2}" for i in frame.index[nan]],
        )
        frame = frame[~nan]
    frame = _rescale(frame, ledger, where, score_scale)
    out_of_range = (frame["score"] < 0) | (frame["score"] > 100)
    if out_of_range.any():
        raise ResultsError(
            f"{where}: scores must be on a 0-100 scale; {int(out_of_range.sum())} outside at line(s) "
            f"{_rows(frame, out_of_range)}"
        )
    key = list(CELL) + ["seed"]
    dup = frame.duplicated(subset=key, keep=False)
    if dup.any():
        first = frame[dup].sort_values(key).head(4)
        raise ResultsError(
            f"{where}: {int(dup.sum())} rows share a cell {key} (duplicate cells) at line(s) "
            f"{_rows(frame, dup)}; first: {first[key + ['score']].to_dict('records')}"
        )
    return frame.reset_index(drop=True)


def _rescale(frame: pd.DataFrame, ledger: Ledger, where: str, score_scale: str) -> pd.DataFrame:
    if score_scale == "percent" or frame.empty:
        return frame
    frame = frame.copy()
    metric = frame["metric"].fillna("score").astype(str)
    for (task, name), rows in frame.groupby([frame["task"], metric]).groups.items():
        scores = frame.loc[rows, "score"]
        if score_scale == "fraction" or (scores.between(0, 1).all() and scores.max() > 0):
            frame.loc[rows, "score"] = scores * 100
            ledger.note("results", f"{task} {name} scores multiplied by 100",
                        "--score-scale fraction" if score_scale == "fraction" else
                        f"all {len(scores)} scores lie in [0, 1] in {where}: read as fractions (pass --score-scale percent "
                        "if they really are percentages below 1)", len(scores))
    return frame


def aggregate_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean score over seeds per cell, with the number of seeds and their standard deviation."""
    keys = list(CELL)
    grouped = frame.groupby(keys, dropna=False, sort=True)
    out = grouped["score"].agg(score="mean", score_std="std", n_rows="size").reset_index()
    out["n_seeds"] = grouped["seed"].count().to_numpy()  # non-missing seeds; 0 for published aggregates
    extra = [c for c in ("published_prediction",) if c in frame.columns]
    if extra:
        out = out.merge(grouped[extra].first().reset_index(), on=keys, how="left")
    return out
