"""The grid runner: enumerate cells, validate, partition, skip finished work, run, record.

Order of work for one source run (task, source, seed): fine-tune on the source
(or load its finished checkpoint), evaluate zero-shot on every target, then run
each few-shot cell. A source checkpoint is loaded at most once per process and
kept in memory for all of its cells.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from collections.abc import Callable

from tqdm.auto import tqdm

from jaxlt.grid import partition
from jaxlt.grid.cells import Cell, SourceRun, cells_needing_source_checkpoint, enumerate_cells, source_runs
from jaxlt.grid.executor_api import CellExecutor, Timings
from jaxlt.grid.settings import GridSettings, config_hash
from jaxlt.grid.spec import GridSpec, normalize_spec, validate_spec
from jaxlt.grid.store import ResultsStore

log = logging.getLogger(__name__)
STAGES = ("all", "source", "fewshot")


class MissingSourceCheckpointError(RuntimeError):
    """A few-shot stage needs source checkpoints that no source stage has finished."""


@dataclasses.dataclass
class Plan:
    """This worker's share of the grid, before anything runs."""

    config_hash: str
    all_cells: list[Cell]
    my_cells: list[Cell]
    todo: list[Cell]
    source_runs_to_train: list[SourceRun]
    stage: str
    worker_index: int
    num_workers: int

    def summary(self, settings: GridSettings, finished_records: list[dict] = ()) -> dict:
        """Counts of work; with finished records of this config, also an estimated time."""
        fewshot = [c for c in self.todo if not c.zero_shot]
        # Joint cells train the source + target mixture from scratch for the source budget.
        steps = len(self.source_runs_to_train) * settings.source_steps + sum(
            settings.source_steps if c.strategy == "joint" else settings.fewshot_steps for c in fewshot)
        return {
            "config_hash": self.config_hash, "stage": self.stage,
            "worker": f"{self.worker_index}/{self.num_workers}",
            "cells_in_grid": len(self.all_cells), "cells_for_this_worker": len(self.my_cells),
            "cells_finished": len(self.my_cells) - len(self.todo), "cells_to_run": len(self.todo),
            "zero_shot_evaluations": sum(c.zero_shot for c in self.todo),
            "fewshot_cells": len(fewshot), "source_fine_tunes": len(self.source_runs_to_train),
            "training_steps": steps, "examples_seen": steps * settings.batch_size,
            "evaluations": len(self.todo),
            **_time_estimate(finished_records, steps, len(self.todo)),
        }


def _time_estimate(records, steps: int, evaluations: int) -> dict:
    """Seconds per training step and per evaluation measured on finished cells (compile excluded)."""
    timed = [r["timings"] for r in records if r.get("n", 0) > 0 and r["timings"].get("steps")]
    evals = [r["timings"]["eval_seconds"] for r in records if "eval_seconds" in r.get("timings", {})]
    if not timed or not evals:
        return {"estimated_hours": None, "estimate_note": "no finished cells of this config to time yet"}
    per_step = sum(t["train_seconds"] for t in timed) / sum(t["steps"] for t in timed)
    per_eval = sum(evals) / len(evals)
    seconds = steps * per_step + evaluations * per_eval
    return {"seconds_per_step": per_step, "seconds_per_evaluation": per_eval,
            "estimated_hours": seconds / 3600, "estimate_note": f"from {len(timed)} finished few-shot cells"}


class GridRunner:
    def __init__(self, spec: GridSpec, settings: GridSettings, store: ResultsStore,
                 executor_factory: Callable[[], CellExecutor], *, worker_index: int = 0, num_workers: int = 1,
                 stage: str = "all", progress: bool = True, catalog=None, writer: bool = True):
        """`catalog` (optional) answers `available_languages(task)` and `has_checkpoint(dir)` without
        building the executor (no model loading for --dry_run or for failing validation).
        `writer=False` on all but the first process of a multi-host worker: every process runs
        the same cells (collectively, on one mesh); only the writer writes the store."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
        self.spec = normalize_spec(spec)
        self.settings, self.store, self.stage = settings, store, stage
        self.worker_index, self.num_workers = worker_index, num_workers
        self.hash = config_hash(settings, self.spec.model)
        self._executor_factory = executor_factory
        self._executor: CellExecutor | None = None
        self.progress = progress
        self._catalog = catalog
        self.writer = writer

    @property
    def catalog(self):
        return self._catalog if self._catalog is not None else self.executor

    @property
    def executor(self) -> CellExecutor:
        if self._executor is None:
            self._executor = self._executor_factory()
        return self._executor

    # ---- planning (no training)
    def plan(self) -> Plan:
        cells = enumerate_cells(self.spec)
        if self.stage == "source":
            units = partition.round_robin(source_runs(cells), self.worker_index, self.num_workers)
            mine = [c for c in cells if c.source_run in set(units) and c.zero_shot]
        elif self.stage == "fewshot":
            mine = partition.contiguous([c for c in cells if not c.zero_shot], self.worker_index, self.num_workers)
        else:  # whole source-run groups, so a source is trained by exactly one worker
            units = set(partition.round_robin(source_runs(cells), self.worker_index, self.num_workers))
            mine = [c for c in cells if c.source_run in units]
        todo = [c for c in mine if not self.store.is_finished(c)]
        need = {c.source_run for c in cells_needing_source_checkpoint(todo)}
        to_train = sorted(r for r in need if self.store.source_marker(r) is None)
        return Plan(self.hash, cells, mine, todo, to_train, self.stage, self.worker_index, self.num_workers)

    def validate(self, plan: Plan) -> None:
        """Everything that can fail before training: spec, results dir, source checkpoints."""
        validate_spec(self.spec, self.catalog.available_languages)
        if self.stage == "fewshot" and plan.source_runs_to_train:
            missing = [f"{r.key} (expected {self.store.checkpoint_dir(r)})" for r in plan.source_runs_to_train]
            raise MissingSourceCheckpointError(
                f"{len(missing)} source checkpoint(s) needed by this worker's few-shot cells are not finished; "
                "run `jaxlt grid --stage=source` first:\n  " + "\n  ".join(missing))
        for run in {c.source_run for c in cells_needing_source_checkpoint(plan.todo)}:
            marker = self.store.source_marker(run)
            if marker is not None and not self.catalog.has_checkpoint(self.store.checkpoint_dir(run)):
                raise MissingSourceCheckpointError(
                    f"source run {run.key} is marked finished in {self.store.source_marker_path(run)} but its "
                    f"checkpoint {self.store.checkpoint_dir(run)} is missing; delete the marker to retrain")

    def description(self) -> dict:
        return {"model": self.spec.model, "settings": self.settings.hashed_dict()}

    # ---- running
    def run(self) -> Plan:
        plan = self.plan()
        self.validate(plan)
        self.store.check_or_write_manifest(self.hash, self.description(), write=self.writer)
        if self.writer:
            self.store.remove_stale_temp_files()
        log.info("grid %s worker %d/%d stage %s: %d of %d cells to run", self.hash, self.worker_index,
                 self.num_workers, self.stage, len(plan.todo), len(plan.my_cells))
        if not plan.todo:
            return plan
        self.executor.prepare(plan.todo)
        groups: dict[SourceRun, list[Cell]] = {}
        for cell in plan.todo:
            groups.setdefault(cell.source_run, []).append(cell)
        bar = tqdm(total=len(plan.todo), desc=f"grid {self.hash} w{self.worker_index}", disable=not self.progress)
        for run, cells in groups.items():
            self._run_group(run, cells, bar)
        bar.close()
        return plan

    def _source_model(self, run: SourceRun):
        """The source model, trained now (and checkpointed) or loaded once from its checkpoint."""
        ckpt = self.store.checkpoint_dir(run)
        marker = self.store.source_marker(run)
        if marker is not None:
            return self.executor.load_source(run, ckpt), marker
        # An unmarked checkpoint is from a killed run: it may be partial, so start over.
        if self.writer:
            shutil.rmtree(ckpt, ignore_errors=True)
        model, timings = self.executor.train_source(run, ckpt)
        marker = {"source_run": dataclasses.asdict(run), "checkpoint": ckpt, "config_hash": self.hash,
                  "timings": timings.to_dict()}
        if self.writer:
            self.store.write_source_marker(run, marker)
        return model, marker

    def _run_group(self, run: SourceRun, cells: list[Cell], bar) -> None:
        needs_source = bool(cells_needing_source_checkpoint(cells))
        source_model, marker = self._source_model(run) if needs_source else (None, None)
        for cell in cells:
            bar.set_postfix_str(cell.key)
            t0 = time.perf_counter()
            if cell.zero_shot:
                metrics, eval_t, details = self.executor.evaluate(source_model, cell.task, cell.target)
                train_t, checkpoint = Timings(**marker["timings"]), marker["checkpoint"]
                # The source fine-tune is shared by all zero-shot cells: its cost is reported once per
                # cell under source_* and the cell's own wall time is its evaluation.
                timings = {"steps": train_t.steps, "wall_seconds": time.perf_counter() - t0,
                           "compile_seconds": eval_t.compile_seconds, "eval_seconds": eval_t.eval_seconds,
                           "source_wall_seconds": train_t.wall_seconds,
                           "source_compile_seconds": train_t.compile_seconds}
            else:
                model, train_t = self.executor.train_fewshot(
                    cell, source_model if cell.strategy == "sequential" else None)
                metrics, eval_t, details = self.executor.evaluate(model, cell.task, cell.target)
                checkpoint = marker["checkpoint"] if cell.strategy == "sequential" else None
                timings = {"steps": train_t.steps, "wall_seconds": time.perf_counter() - t0,
                           "compile_seconds": train_t.compile_seconds + eval_t.compile_seconds,
                           "train_seconds": train_t.train_seconds, "eval_seconds": eval_t.eval_seconds}
                del model
            record = {"cell_id": cell.cell_id(self.hash), **cell.fields(), "model": self.spec.model,
                      "metrics": {k: float(v) for k, v in metrics.items()}, "eval_details": details,
                      "checkpoint": checkpoint,
                      "timings": timings, "config_hash": self.hash,
                      "worker": f"{self.worker_index}/{self.num_workers}"}
            if self.writer:
                self.store.write_record(cell, record)
            bar.update(1)
