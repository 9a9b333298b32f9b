"""`jaxlt results`: inspect a grid results store and export it as the tidy table."""

from __future__ import annotations

import argparse
import json
import os
import sys

EPILOG = """examples:
  jaxlt results summary --results_dir=/tmp/grid
  jaxlt results export --results_dir=/tmp/grid --csv=results.csv --parquet=results.parquet
  jaxlt results forget --status=diverged --results_dir=/tmp/grid   # then rerun jaxlt grid to retry them"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxlt results", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    e = sub.add_parser("export", help="write the tidy CSV (and Parquet) table the analysis stage reads")
    e.add_argument("--results_dir", required=True)
    e.add_argument("--csv", help="output CSV path")
    e.add_argument("--parquet", help="output Parquet path")
    e.add_argument("--origin", help="value of the origin column (default jaxlt-grid:CONFIG_HASH)")
    s = sub.add_parser("summary", help="counts of finished cells per status (ok, diverged) and task / strategy / n")
    s.add_argument("--results_dir", required=True)
    f = sub.add_parser("forget", help="delete the records (and source markers) of diverged cells so that the "
                                      "next jaxlt grid run computes them again")
    f.add_argument("--results_dir", required=True)
    f.add_argument("--status", required=True, choices=("diverged",), help="which records to forget")
    f.add_argument("--dry_run", action="store_true", help="only list what would be deleted")
    return p


def _leases(root: str) -> dict:
    """Work leased right now (live: a worker holds it; stale: its worker stopped without finishing)."""
    from jaxlt.grid import lease

    out = {"live": [], "stale": []}
    for kind in ("sources", "cells"):
        directory = os.path.join(root, "leases", kind)
        for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
            if name.endswith(lease.SUFFIX):
                path = os.path.join(directory, name)
                info = lease.read(path)
                if info is not None:
                    state = "stale" if lease.is_stale(info, lease.DEFAULT_STALE_AFTER_S) else "live"
                    out[state].append(f"{kind}/{name[:-len(lease.SUFFIX)]} ({info.get('host', '?')}:"
                                      f"{info.get('pid', '?')}, heartbeat {info['age_s']:.0f}s ago)")
    return out


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from jaxlt.grid import export

    if args.action == "export":
        if not args.csv and not args.parquet:
            print("jaxlt results export: give --csv and/or --parquet", file=sys.stderr)
            return 2
        try:
            df = export.export(args.results_dir, args.csv, args.parquet, args.origin)
        except (FileNotFoundError, ValueError) as e:
            print(f"jaxlt results export: error: {e}", file=sys.stderr)
            return 2
        cells = df.drop_duplicates("cell_id")
        print(f"wrote {len(df)} rows ({len(cells)} cells: {int((cells['status'] == 'ok').sum())} ok, "
              f"{int((cells['status'] == 'diverged').sum())} diverged) to "
              + " and ".join(p for p in (args.csv, args.parquet) if p))
        return 0
    from jaxlt.grid.store import ResultsStore

    store = ResultsStore(args.results_dir)
    if not os.path.isfile(store.manifest_path):
        print(f"jaxlt results: {args.results_dir} is not a grid results directory (no grid.json)", file=sys.stderr)
        return 2
    if args.action == "forget":
        records, markers = store.forget(args.status, dry_run=args.dry_run)
        verb = "would delete" if args.dry_run else "deleted"
        for path in records + markers:
            print(f"{verb} {os.path.relpath(path, store.root)}")
        print(f"{verb} {len(records)} {args.status} record(s) and {len(markers)} source marker(s); "
              + ("" if args.dry_run else "rerun jaxlt grid (with the same configuration) to compute them again"))
        return 0
    records = list(store.iter_records())
    df = export.records_to_tidy(records)
    cells = df.drop_duplicates("cell_id")
    counts = cells.groupby(["task", "strategy", "n_target"]).size()
    by_status = {s: int((cells["status"] == s).sum()) for s in export.STATUSES}
    diverged = [{"cell": r["cell_id"], "stage": r["divergence"].get("stage"), "step": r["divergence"].get("step"),
                 "reason": r["divergence"].get("reason")} for r in records if export.record_status(r) == "diverged"]
    print(json.dumps({"config_hash": store.manifest().get("config_hash"), "cells": int(df["cell_id"].nunique()),
                      "by_status": by_status,
                      "by_task_strategy_n": {" ".join(map(str, k)): int(v) for k, v in counts.items()},
                      "diverged": diverged,
                      "interrupted_writes": len(store.leftover_temp_files()),
                      "in_progress": _leases(store.root)}, indent=1))
    return 0
