"""The results store: a directory with one JSON record per finished cell.

Layout of a results directory::

    grid.json                          config hash + settings that wrote it (checked on every start)
    records/TASK/CELL_KEY.json         one record per finished cell
    sources/SOURCE_RUN_KEY.json        a finished source fine-tune (its checkpoint is complete),
                                       or one that diverged ("status": "diverged")
    checkpoints/TASK/SOURCE/seedK/     source checkpoints, kept for the few-shot cells
    leases/{sources,cells}/KEY.lease   work in progress (jaxlt.grid.lease); absent when idle

Every file is written to a temporary name in the same directory and renamed
(`os.replace` is atomic, through `jaxlt.atomic`), so a killed process leaves
either the whole record or none of it. Files are readable as the umask allows
(0644 by default). Writers never write the same record: cells are partitioned
across workers and each cell is leased while it runs.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator

from jaxlt import atomic
from jaxlt.errors import ResultsDirError
from jaxlt.grid.cells import Cell, SourceRun

log = logging.getLogger(__name__)
MANIFEST = "grid.json"
TMP_SUFFIX = atomic.TMP_SUFFIX


class ResultsDirConfigError(ResultsDirError):
    """The results directory was written by a different grid configuration."""


def atomic_write_json(path: str, payload: dict) -> None:
    """Writes JSON to `path` atomically (temp file in the same directory, fsync, rename)."""
    atomic.write_json(path, payload, fsync=True)


class ResultsStore:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    # ---- paths
    @property
    def manifest_path(self) -> str:
        return os.path.join(self.root, MANIFEST)

    def record_path(self, cell: Cell) -> str:
        return os.path.join(self.root, "records", cell.task, cell.key + ".json")

    def source_marker_path(self, run: SourceRun) -> str:
        return os.path.join(self.root, "sources", run.key + ".json")

    def checkpoint_dir(self, run: SourceRun) -> str:
        return os.path.join(self.root, "checkpoints", run.task, run.source, f"seed{run.seed}")

    # ---- manifest
    def check_or_write_manifest(self, config_hash: str, description: dict, write: bool = True) -> None:
        """Claims an empty directory for this config, or checks that it already belongs to it
        (`write=False`: only check, as --dry_run does)."""
        if os.path.exists(self.manifest_path):
            with open(self.manifest_path) as f:
                try:
                    existing = json.load(f)
                except json.JSONDecodeError as e:
                    raise ResultsDirConfigError(f"{self.manifest_path} is not valid JSON ({e})") from None
            if existing.get("config_hash") != config_hash:
                old, new = existing.get("settings", {}), description.get("settings", {})
                diff = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
                if existing.get("model") != description.get("model"):
                    diff["model"] = (existing.get("model"), description.get("model"))
                named = "; ".join(f"{k}: {a!r} there, {b!r} here" for k, (a, b) in diff.items()) or "none named"
                raise ResultsDirConfigError(
                    f"results directory {self.root} was written by config {existing.get('config_hash')}, "
                    f"this run's is {config_hash}; differing settings: {named}. "
                    "Use a new --results_dir for a new configuration, or the settings it was written with.")
            return
        if os.path.isdir(self.root) and any(not n.startswith(".") for n in os.listdir(self.root)):
            raise ResultsDirConfigError(
                f"results directory {self.root} is not empty and has no {MANIFEST}: "
                "it was not written by `jaxlt grid`; choose an empty or new directory")
        if not write:
            return
        atomic_write_json(self.manifest_path, {"config_hash": config_hash, **description,
                                               "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def manifest(self) -> dict:
        with open(self.manifest_path) as f:
            return json.load(f)

    # ---- records
    def is_finished(self, cell: Cell) -> bool:
        return os.path.exists(self.record_path(cell))

    def write_record(self, cell: Cell, record: dict) -> None:
        record = {**record, "written_by": f"{socket.gethostname()}:{os.getpid()}",
                  "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_json(self.record_path(cell), record)

    def source_marker(self, run: SourceRun) -> dict | None:
        path = self.source_marker_path(run)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def write_source_marker(self, run: SourceRun, payload: dict) -> None:
        atomic_write_json(self.source_marker_path(run), payload)

    def iter_records(self) -> Iterator[dict]:
        """Every finished record; a file that does not parse is an error naming it."""
        base = os.path.join(self.root, "records")
        if not os.path.isdir(base):
            return
        for task in sorted(os.listdir(base)):
            for name in sorted(os.listdir(os.path.join(base, task))):
                if not name.endswith(".json") or name.startswith("."):
                    continue
                path = os.path.join(base, task, name)
                with open(path) as f:
                    try:
                        yield json.load(f)
                    except json.JSONDecodeError as e:
                        raise ValueError(f"corrupt result record {path}: {e}") from None

    def forget(self, status: str, dry_run: bool = False) -> tuple[list[str], list[str]]:
        """Deletes the records (and source-run markers) with `status` (e.g. "diverged"), so that a
        rerun computes those cells again; returns the (record, marker) paths. Source checkpoints are
        left to the next run, which replaces them under its lease."""
        def matching(directory: str) -> list[str]:
            out = []
            for dirpath, _, files in os.walk(directory):
                for name in sorted(files):
                    if name.endswith(".json") and not name.startswith("."):
                        path = os.path.join(dirpath, name)
                        with open(path) as f:
                            try:
                                if json.load(f).get("status", "ok") == status:
                                    out.append(path)
                            except json.JSONDecodeError as e:
                                raise ResultsDirError(f"corrupt file {path}: {e}",
                                                      hint="delete it; the rerun recomputes it") from None
            return sorted(out)

        records = matching(os.path.join(self.root, "records"))
        markers = matching(os.path.join(self.root, "sources"))
        if not dry_run:
            for path in records + markers:
                os.unlink(path)
        return records, markers

    def leftover_temp_files(self) -> list[str]:
        """Temporary files of writes that were interrupted (harmless, never read as records)."""
        out = []
        for dirpath, _, files in os.walk(self.root):
            out += [os.path.join(dirpath, f) for f in files if f.startswith(".") and f.endswith(TMP_SUFFIX)]
        return sorted(out)

    def remove_stale_temp_files(self, older_than_s: float = 600.0) -> int:
        """Deletes interrupted writes older than `older_than_s` (younger ones may belong to a live worker)."""
        now, removed = time.time(), 0
        for path in self.leftover_temp_files():
            try:
                if now - os.path.getmtime(path) > older_than_s:
                    os.unlink(path)
                    removed += 1
            except FileNotFoundError:
                pass
        if removed:
            log.info("removed %d stale temporary file(s) of interrupted writes under %s", removed, self.root)
        return removed
