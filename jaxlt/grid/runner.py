"""The grid runner: enumerate cells, validate, partition, skip finished work, run, record.

Order of work for one source run (task, source, seed): fine-tune on the source
(or load its finished checkpoint), evaluate zero-shot on every target, then run
each few-shot cell. A source checkpoint is loaded at most once per group and
kept in memory for all of its cells.

Divergence: a source run whose training diverges (`jaxlt.errors.DivergenceError`)
is retried `divergence_retries` times at a lower learning rate; if it still
diverges, its source marker says so and every cell that needs it gets a record
with status "diverged" (step and reason); a diverged few-shot cell likewise. The
worker goes on with the rest. Successful records have status "ok".

Leases (`jaxlt.grid.lease`): each source run and each cell is taken with an
exclusive-create lease file under `leases/` before it runs, so two processes on
one results directory (a resubmitted array task, a restarted job whose old copy
still runs) never compute the same work, and a source checkpoint directory is
only deleted by the holder of its lease. `schedule="dynamic"`: every worker
considers the whole grid and takes the next unleased source run or cell.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Callable

from jaxlt.console import Progress, format_seconds
from jaxlt.errors import ConfigError, DivergenceError, UserError
from jaxlt.grid import lease as leases
from jaxlt.grid import partition
from jaxlt.grid.cells import Cell, SourceRun, cells_needing_source_checkpoint, enumerate_cells, source_runs
from jaxlt.grid.executor_api import CellExecutor, Timings
from jaxlt.grid.settings import GridSettings, config_hash
from jaxlt.grid.spec import GridSpec, normalize_spec, validate_spec
from jaxlt.grid.store import ResultsStore

log = logging.getLogger(__name__)
STAGES = ("all", "source", "fewshot")
SCHEDULES = ("static", "dynamic")
OK, DIVERGED = "ok", "diverged"


def divergence_retry_settings(settings) -> tuple[int, float]:
    """(retries, learning-rate factor) for a diverged source run: `divergence_retries` and
    `retry_lr_factor` of the grid settings (hashed: they change results); (0, 0.1) without them."""
    return int(getattr(settings, "divergence_retries", 0)), float(getattr(settings, "retry_lr_factor", 0.1))


class MissingSourceCheckpointError(UserError, RuntimeError):
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
        steps = sum(settings.source_steps_for(r.task) for r in self.source_runs_to_train) + sum(
            settings.cell_steps(c) for c in fewshot)
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
                 stage: str = "all", progress: bool = True, catalog=None, writer: bool = True,
                 schedule: str = "static", use_leases: bool | None = None,
                 lease_timeout_s: float = leases.DEFAULT_STALE_AFTER_S, poll_s: float = 5.0,
                 progress_every: int = 10, progress_every_s: float = 60.0):
        """`catalog` (optional) answers `available_languages(task)` and `has_checkpoint(dir)` without
        building the executor (no model loading for --dry_run or for failing validation).
        `writer=False` on all but the first process of a multi-host worker: every process runs
        the same cells (collectively, on one mesh); only the writer writes the store. Leases are
        used by default except in multi-host workers (whose processes must run the same cells);
        `lease_timeout_s`: a lease without a heartbeat for this long is stale and taken over;
        `poll_s`: how often a worker waiting for another's source run looks again."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {schedule!r}; known: {', '.join(SCHEDULES)}")
        self.spec = normalize_spec(spec)
        self.settings, self.store, self.stage, self.schedule = settings, store, stage, schedule
        self.worker_index, self.num_workers = worker_index, num_workers
        self.hash = config_hash(settings, self.spec.model, self.spec.tasks)
        self._executor_factory = executor_factory
        self._executor: CellExecutor | None = None
        self.progress = progress
        self._catalog = catalog
        self.writer = writer
        self.use_leases = writer if use_leases is None else use_leases
        if schedule == "dynamic" and not self.use_leases:
            raise ConfigError("--schedule dynamic needs leases, which multi-host workers do not use",
                              hint="use the static schedule with --multihost")
        self.lease_timeout_s, self.poll_s = float(lease_timeout_s), float(poll_s)
        self._handed_over: dict = {}  # SourceRun -> (model, marker) loaded for a pack before its group
        self.progress_every, self.progress_every_s = progress_every, progress_every_s
        self.counts = {"done": 0, "skipped": 0, "diverged": 0, "failed": 0}
        self.seconds = 0.0

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
        dynamic = self.schedule == "dynamic"  # every worker considers everything; leases split it
        if self.stage == "source":
            units = set(source_runs(cells)) if dynamic else set(
                partition.round_robin(source_runs(cells), self.worker_index, self.num_workers))
            mine = [c for c in cells if c.source_run in units and c.zero_shot]
        elif self.stage == "fewshot":
            fewshot = [c for c in cells if not c.zero_shot]
            mine = fewshot if dynamic else partition.contiguous(fewshot, self.worker_index, self.num_workers)
        else:  # whole source-run groups, so a source is trained by exactly one worker
            units = set(source_runs(cells)) if dynamic else set(
                partition.round_robin(source_runs(cells), self.worker_index, self.num_workers))
            mine = [c for c in cells if c.source_run in units]
        todo = [c for c in mine if not self.store.is_finished(c)]
        need = {c.source_run for c in cells_needing_source_checkpoint(todo)}
        to_train = sorted(r for r in need if self.store.source_marker(r) is None)
        return Plan(self.hash, cells, mine, todo, to_train, self.stage, self.worker_index, self.num_workers)

    def validate(self, plan: Plan) -> None:
        """Everything that can fail before training: spec, source checkpoints, and (through the
        catalog's `check`) data files, n-shot pools, the pre-trained checkpoint and the vocabulary.
        Runs before the results directory is claimed, and in --dry_run."""
        validate_spec(self.spec, self.catalog.available_languages)
        if self.stage == "fewshot" and plan.source_runs_to_train:
            missing = [f"{r.key} (expected {self.store.checkpoint_dir(r)})" for r in plan.source_runs_to_train]
            raise MissingSourceCheckpointError(
                f"{len(missing)} source checkpoint(s) needed by this worker's few-shot cells are not finished; "
                "run `jaxlt grid --stage=source` first:\n  " + "\n  ".join(missing))
        for run in {c.source_run for c in cells_needing_source_checkpoint(plan.todo)}:
            marker = self.store.source_marker(run)
            if marker is not None and marker.get("status", OK) == OK \
                    and not self.catalog.has_checkpoint(self.store.checkpoint_dir(run)):
                raise MissingSourceCheckpointError(
                    f"source run {run.key} is marked finished in {self.store.source_marker_path(run)} but its "
                    f"checkpoint {self.store.checkpoint_dir(run)} is missing; delete the marker to retrain")
        check = getattr(self.catalog, "check", None)
        if check is not None:
            check(plan.todo)

    def description(self) -> dict:
        # settings: what the hash covers (compared on every start); config: the whole resolved configuration.
        return {"model": self.spec.model, "settings": self.settings.hashed_dict(self.spec.tasks), "config": self.settings.to_dict()}

    # ---- running
    def run(self) -> Plan:
        t0 = time.perf_counter()
        plan = self.plan()
        self.validate(plan)
        self.store.check_or_write_manifest(self.hash, self.description(), write=self.writer)
        if self.writer:
            self.store.remove_stale_temp_files()
        log.info("grid %s worker %d/%d stage %s schedule %s: %d of %d cells to run", self.hash, self.worker_index,
                 self.num_workers, self.stage, self.schedule, len(plan.todo), len(plan.my_cells))
        self.counts["skipped"] += len(plan.my_cells) - len(plan.todo)
        try:
            if plan.todo:
                self._run_all(plan.todo)
        except BaseException:
            self.counts["failed"] += 1
            raise
        finally:
            self.seconds = time.perf_counter() - t0
        return plan

    def summary_line(self) -> str:
        c = self.counts
        return (f"grid {self.hash} worker {self.worker_index}/{self.num_workers}: {c['done']} cells done, "
                f"{c['skipped']} skipped (finished or taken by another worker), {c['diverged']} diverged, "
                f"{c['failed']} failed in {format_seconds(self.seconds)}")

    def _run_all(self, todo: list[Cell]) -> None:
        self.executor.prepare(todo)
        if hasattr(self.executor, "use_source_models"):  # packed few-shot cells may span source runs
            # None (diverged, or being trained by another process): those cells are not packed now;
            # neither are cells finished or leased by another process since prepare().
            self.executor.use_source_models(self._hand_over_source_model, available=self._available)
        groups: dict[SourceRun, list[Cell]] = {}
        for cell in todo:
            groups.setdefault(cell.source_run, []).append(cell)
        # Worker i starts at its i-th source run: workers sharing a persistent compilation cache
        # then compile different tasks' shapes first and load each other's afterwards.
        order = list(groups)
        start = self.worker_index % len(order) if order else 0
        groups = {run: groups[run] for run in order[start:] + order[:start]}
        bar = Progress(len(todo), f"grid {self.hash} w{self.worker_index}", enabled=self.progress,
                       every_cells=self.progress_every, every_s=self.progress_every_s)
        try:
            while groups:
                # A group whose source run another live process is training waits for its marker
                # (dynamic workers and duplicate static ones help with its cells afterwards).
                waiting = {}
                for run, cells in groups.items():
                    left = self._run_group(run, cells, bar)
                    if left:
                        waiting[run] = left
                if waiting:
                    log.info("waiting for %d source run(s) trained by other workers: %s", len(waiting),
                             ", ".join(r.key for r in waiting))
                    time.sleep(self.poll_s)
                groups = waiting
        finally:
            bar.close()
            self._handed_over.clear()  # models handed to packs are not held past the run

    def _available(self, cell: Cell) -> bool:
        """Not finished, and not held by another live process (its lease)."""
        return not self.store.is_finished(cell) and not (
            self.use_leases and leases.is_live(self._lease_path("cells", cell.key), self.lease_timeout_s))

    def _hand_over_source_model(self, run: SourceRun):
        """A source model a pack of few-shot cells needs before its group comes up: kept (with its
        marker) until the group runs, so its checkpoint is loaded once."""
        if run not in self._handed_over:
            model, marker = self._source_model(run, wait=False)
            if marker is None:  # another process is training it: ask again later
                return None
            self._handed_over[run] = (model, marker)
        return self._handed_over[run][0]

    # ---- leases
    def _lease_path(self, kind: str, name: str) -> str:
        return os.path.join(self.store.root, "leases", kind, name + leases.SUFFIX)

    def _acquire(self, kind: str, name: str):
        """A held lease, True when leases are off, or None when another live process has the work."""
        if not self.use_leases:
            return True
        return leases.try_acquire(self._lease_path(kind, name), f"{kind}/{name}",
                                  stale_after_s=self.lease_timeout_s)

    @staticmethod
    def _release(lease) -> None:
        if lease is not True and lease is not None:
            lease.release()

    # ---- one source run
    def _source_model(self, run: SourceRun, wait: bool = True):
        """(model, marker): the source model trained now (and checkpointed) or loaded from its
        checkpoint; (None, marker) when the run diverged. With `wait=False`, (None, None) when
        another live process holds the run's lease (it is training it)."""
        ckpt = self.store.checkpoint_dir(run)
        while True:
            marker = self.store.source_marker(run)
            if marker is not None:
                if marker.get("status", OK) == DIVERGED:
                    return None, marker
                return self.executor.load_source(run, ckpt), marker
            lease = self._acquire("sources", run.key)
            if lease is not None:
                break
            if not wait:
                return None, None
            time.sleep(self.poll_s)
        try:
            marker = self.store.source_marker(run)  # finished by another process meanwhile?
            if marker is not None:
                return (None if marker.get("status", OK) == DIVERGED
                        else self.executor.load_source(run, ckpt)), marker
            return self._train_source(run, ckpt)
        finally:
            self._release(lease)

    def _train_source(self, run: SourceRun, ckpt: str):
        """Trains a source run (we hold its lease), retrying at lower learning rates if it diverges."""
        retries, factor = divergence_retry_settings(self.settings)
        rates = [self.settings.learning_rate * factor ** k for k in range(retries + 1)]
        attempts = []
        for k, lr in enumerate(rates):
            # An unmarked checkpoint is from a killed or diverged attempt: it may be partial, so start
            # over. Only the lease holder gets here, so no other process is writing it.
            if self.writer:
                shutil.rmtree(ckpt, ignore_errors=True)
            try:
                model, timings = (self.executor.train_source(run, ckpt) if k == 0
                                  else self.executor.train_source(run, ckpt, learning_rate=lr))
            except DivergenceError as e:
                attempts.append({"learning_rate": lr, "step": e.step, "reason": e.reason or str(e)})
                log.warning("source run %s diverged at step %s with learning rate %g: %s%s", run.key, e.step, lr,
                            e.reason or e, "; retrying at %g" % rates[k + 1] if k + 1 < len(rates) else "")
                continue
            marker = {"source_run": dataclasses.asdict(run), "status": OK, "checkpoint": ckpt,
                      "config_hash": self.hash, "timings": timings.to_dict(), "learning_rate": lr,
                      "diverged_attempts": attempts}
            if self.writer:
                self.store.write_source_marker(run, marker)
            return model, marker
        last = attempts[-1]
        marker = {"source_run": dataclasses.asdict(run), "status": DIVERGED, "checkpoint": ckpt,
                  "config_hash": self.hash, "step": last["step"], "reason": last["reason"],
                  "learning_rate": last["learning_rate"], "diverged_attempts": attempts}
        if self.writer:
            self.store.write_source_marker(run, marker)
        return None, marker

    def _run_group(self, run: SourceRun, cells: list[Cell], bar) -> list[Cell]:
        """Runs the group's cells that no other process holds; returns those that wait for a source
        run another process is training."""
        handed_over = self._handed_over.pop(run, None)  # loaded for a pack earlier: not again
        live = [c for c in cells if self._available(c)]
        self.counts["skipped"] += len(cells) - len(live)
        needs = set(cells_needing_source_checkpoint(live))
        source_model = marker = None
        if needs:
            source_model, marker = handed_over or self._source_model(run, wait=False)
            if marker is None:  # another process is training it
                live = [c for c in live if c not in needs]
                waiting = [c for c in cells if c in needs]
            else:
                waiting = []
        else:
            waiting = []
        for cell in live:
            lease = self._acquire("cells", cell.key)
            if lease is None:
                self.counts["skipped"] += 1
                continue
            try:
                if self.store.is_finished(cell):  # finished by another process before we took the lease
                    self.counts["skipped"] += 1
                    continue
                record = self._cell_record(cell, source_model, marker)
                if lease is not True and lease.lost:
                    log.error("lease of %s was taken over while it ran; its record is left to the new holder",
                              cell.key)
                    self.counts["skipped"] += 1
                    continue
                if self.writer:
                    self.store.write_record(cell, record)
                self.counts["diverged" if record["status"] == DIVERGED else "done"] += 1
                bar.update(1, cell.key)
            finally:
                self._release(lease)
        return waiting

    def _cell_record(self, cell: Cell, source_model, marker) -> dict:
        base = {"cell_id": cell.cell_id(self.hash), **cell.fields(), "model": self.spec.model,
                "config_hash": self.hash, "worker": f"{self.worker_index}/{self.num_workers}"}
        uses_source = cell.zero_shot or cell.strategy == "sequential"
        if uses_source and marker.get("status", OK) == DIVERGED:
            return {**base, "status": DIVERGED, "metrics": {}, "checkpoint": None,
                    "divergence": {"stage": "source", "step": marker["step"], "reason": marker["reason"],
                                   "learning_rate": marker["learning_rate"],
                                   "attempts": marker.get("diverged_attempts", [])},
                    "timings": {}}
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
            try:
                model, train_t = self.executor.train_fewshot(
                    cell, source_model if cell.strategy == "sequential" else None)
            except DivergenceError as e:
                log.warning("few-shot cell %s diverged at step %s: %s", cell.key, e.step, e.reason or e)
                return {**base, "status": DIVERGED, "metrics": {}, "checkpoint": None,
                        "divergence": {"stage": "fewshot", "step": e.step, "reason": e.reason or str(e),
                                       "learning_rate": self.settings.learning_rate_for(cell)},
                        "timings": {"wall_seconds": time.perf_counter() - t0}}
            metrics, eval_t, details = self.executor.evaluate(model, cell.task, cell.target)
            checkpoint = marker["checkpoint"] if cell.strategy == "sequential" else None
            timings = {"steps": train_t.steps, "wall_seconds": time.perf_counter() - t0,
                       "compile_seconds": train_t.compile_seconds + eval_t.compile_seconds,
                       "train_seconds": train_t.train_seconds, "eval_seconds": eval_t.eval_seconds}
            del model
        record = {**base, "status": OK, "metrics": {k: float(v) for k, v in metrics.items()},
                  "eval_details": details, "checkpoint": checkpoint, "timings": timings}
        if uses_source and marker.get("diverged_attempts"):  # trained at a lower learning rate
            record["source_learning_rate"] = marker["learning_rate"]
        return record
