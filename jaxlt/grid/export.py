"""`jaxlt results export`: the results store as the tidy table of DESIGN.md (one row per evaluation metric)."""

from __future__ import annotations

import logging
import os

import pandas as pd

from jaxlt import atomic
from jaxlt.grid.store import ResultsStore

log = logging.getLogger(__name__)

# DESIGN.md "Tidy results table": required columns, then extra columns.
TIDY_COLUMNS = ["task", "model", "source", "target", "n_target", "seed", "strategy", "sampling", "metric", "score"]
EXTRA_COLUMNS = ["status", "steps", "wall_seconds", "compile_seconds", "config_hash", "checkpoint", "cell_id",
                 "origin", "diverged_step", "diverged_reason"]
STATUSES = ("ok", "diverged")


def record_status(rec: dict) -> str:
    """A record's status; records written before statuses existed are "ok"."""
    status = rec.get("status", "ok")
    if status not in STATUSES:
        raise ValueError(f"record {rec.get('cell_id')} has an unknown status {status!r}; known: {', '.join(STATUSES)}")
    return status


def records_to_tidy(records, origin: str = "jaxlt-grid") -> pd.DataFrame:
    """One row per (record, metric). Non-numeric metric values are an error, not silently dropped.

    A diverged cell has no metrics: it gets one row per metric that finished cells of its task
    report (one row with an empty metric if none did), with status "diverged" and no score,
    so the analysis stage can count what it excludes."""
    records = list(records)
    task_metrics: dict[str, set] = {}
    for rec in records:
        if record_status(rec) == "ok":
            task_metrics.setdefault(rec["task"], set()).update(rec["metrics"])
    rows = []
    for rec in records:
        status = record_status(rec)
        if status == "ok":
            scores = sorted(rec["metrics"].items())
        else:
            scores = [(m, None) for m in sorted(task_metrics.get(rec["task"], ()))] or [(None, None)]
        divergence = rec.get("divergence", {})
        for metric, score in scores:
            if status == "ok" and (isinstance(score, bool) or not isinstance(score, (int, float))):
                raise ValueError(f"record {rec.get('cell_id')} has a non-numeric metric {metric}={score!r}")
            t = rec.get("timings", {})
            rows.append({
                "task": rec["task"], "model": rec["model"], "source": rec["source"], "target": rec["target"],
                "n_target": int(rec["n"]), "seed": int(rec["seed"]), "strategy": rec["strategy"],
                "sampling": rec["sampling"] or None, "metric": metric,
                "score": float(score) if score is not None else float("nan"), "status": status,
                "steps": t.get("steps"), "wall_seconds": t.get("wall_seconds"),
                "compile_seconds": t.get("compile_seconds"), "config_hash": rec["config_hash"],
                "checkpoint": rec.get("checkpoint"), "cell_id": rec["cell_id"], "origin": origin,
                "diverged_step": divergence.get("step"), "diverged_reason": divergence.get("reason"),
            })
    df = pd.DataFrame(rows, columns=TIDY_COLUMNS + EXTRA_COLUMNS)
    df = df.astype({"n_target": "int64", "seed": "Int64", "score": "float64", "steps": "Int64",
                    "sampling": "string", "checkpoint": "string", "metric": "string", "status": "string",
                    "diverged_step": "Int64", "diverged_reason": "string"})
    return df.sort_values(["task", "source", "target", "n_target", "seed", "strategy", "metric"],
                          kind="stable").reset_index(drop=True)


def export(results_dir: str, csv_path: str | None, parquet_path: str | None, origin: str | None = None) -> pd.DataFrame:
    store = ResultsStore(results_dir)
    if not os.path.isfile(store.manifest_path):
        raise FileNotFoundError(f"{results_dir} is not a grid results directory (no grid.json)")
    df = records_to_tidy(store.iter_records(), origin=origin or f"jaxlt-grid:{store.manifest()['config_hash']}")
    if csv_path:
        atomic.write_with(csv_path, lambda p: df.to_csv(p, index=False))
    if parquet_path:
        atomic.write_with(parquet_path, lambda p: df.to_parquet(p, index=False))
    return df
