"""`jaxlt grid`: run (or --dry_run) the task x source x target x n x seed grid declared in gin."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile

from jaxlt.gin_flags import add_gin_arguments, parse_gin, split_gin_bindings

EPILOG = """examples:
  jaxlt grid --gin_file=runs/grid_paper.gin --dry_run --json   # the paper's cells + resolved config
  jaxlt grid --gin_file=runs/grid_tiny.gin --results_dir=/tmp/grid --dry_run
  jaxlt grid --gin_file=runs/grid_xnli.gin --results_dir=gs://.../xnli --gin.grid_spec.seeds=[0,1]
  jaxlt grid --gin_file=runs/grid_xnli.gin --results_dir=R --stage=source      # then:
  jaxlt grid --gin_file=runs/grid_xnli.gin --results_dir=R --stage=fewshot --worker_index=3 --num_workers=16
Workers default to SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT. Finished cells are skipped."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxlt grid", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results_dir", help="results store directory (one per configuration; "
                                         "optional with --dry_run)")
    p.add_argument("--dry_run", action="store_true", help="print the cells and a work estimate; train nothing")
    p.add_argument("--stage", choices=("all", "source", "fewshot"), default="all",
                   help="all: whole source-run groups per worker; source: source fine-tunes + zero-shot only; "
                        "fewshot: few-shot cells only (needs finished source checkpoints)")
    p.add_argument("--worker_index", type=int, default=None, help="this worker (default $SLURM_ARRAY_TASK_ID or 0)")
    p.add_argument("--num_workers", type=int, default=None, help="workers in all (default $SLURM_ARRAY_TASK_COUNT or 1)")
    p.add_argument("--multihost", action="store_true",
                   help="call jax.distributed.initialize() first: one worker spans several hosts (TPU pod "
                        "slice, multi-node GPU); every host runs the same cells, host 0 writes results")
    p.add_argument("--list_cells", action="store_true", help="with --dry_run: print every cell id")
    p.add_argument("--json", action="store_true",
                   help="with --dry_run: one JSON object per planned cell (task, source, target, n, seed, "
                        "strategy, sampling, eval_split, done), then one with the config hash and the whole "
                        "resolved configuration")
    p.add_argument("--compiled_memory", action="store_true",
                   help="with --dry_run: the memory estimate from XLA's compiled train step (the default on an "
                        "accelerator; on a CPU host the instant analytic estimate is printed instead)")
    p.add_argument("--schedule", choices=("static", "dynamic"), default="static",
                   help="static: each worker runs its fixed share (--worker_index of --num_workers); dynamic: "
                        "every worker takes the next unleased source run or cell from the shared results "
                        "directory, so uneven cell costs leave no worker idle")
    p.add_argument("--lease_timeout", type=float, default=600.0, metavar="SECONDS",
                   help="a lease (source run or cell in progress) without a heartbeat for this long belongs to a "
                        "dead worker and is taken over (default 600; a dead process on the same host at once)")
    p.add_argument("--progress_every", type=int, default=10, metavar="N",
                   help="when output is not a terminal: a progress line every N cells (or every minute)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="also show orbax/seqio (absl) logs")
    add_gin_arguments(p)
    return p


def main(argv: list[str]) -> int:
    from jaxlt.errors import UserError, one_line
    from jaxlt.grid.runner import MissingSourceCheckpointError
    from jaxlt.grid.spec import GridSpecError
    from jaxlt.grid.store import ResultsDirConfigError

    try:
        return _main(argv)
    except (GridSpecError, ResultsDirConfigError, MissingSourceCheckpointError, UserError) as e:
        # Raised before any training: a clean message, no traceback.
        print(f"jaxlt grid: error: {one_line(e)}", file=sys.stderr)
        return 2


def _main(argv: list[str]) -> int:
    bindings, rest = split_gin_bindings(argv)
    args = build_parser().parse_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # orbax and seqio log every save and pipeline at INFO/WARNING through absl: keep the grid's own lines.
    logging.getLogger("absl").setLevel(logging.INFO if args.verbose else logging.ERROR)
    if not args.gin_file and not bindings:
        print("jaxlt grid: give a grid with --gin_file (e.g. runs/grid_tiny.gin)", file=sys.stderr)
        return 2
    from jaxlt.grid import configurables, partition
    from jaxlt.grid.runner import GridRunner
    from jaxlt.grid.store import ResultsStore

    writer = True
    if args.multihost:
        import jax

        jax.distributed.initialize()  # coordinator etc. from the TPU / SLURM environment
        writer = jax.process_index() == 0
    parse_grid_gin(args.gin_file, bindings, args.gin_search_paths)
    try:
        spec, settings = configurables.from_gin()
        settings.check_tasks(spec.tasks)
    except (KeyError, ValueError) as e:
        from jaxlt.errors import ConfigError

        raise ConfigError(f"bad grid configuration: {e.args[0] if e.args else e}") from None
    worker_index, num_workers = partition.worker_from_env(args.worker_index, args.num_workers)
    if not args.results_dir:
        if not args.dry_run:
            print("jaxlt grid: --results_dir is required", file=sys.stderr)
            return 2
        # a plan of the whole grid: a results directory that does not exist (nothing finished)
        args.results_dir = os.path.join(tempfile.gettempdir(), f"jaxlt-dry-run-{os.getpid()}-none")
    runner = GridRunner(spec, settings, ResultsStore(args.results_dir), lambda: make_executor(settings),
                        worker_index=worker_index, num_workers=num_workers, stage=args.stage,
                        progress=not args.no_progress and writer, catalog=make_catalog(settings),
                        writer=writer, schedule=args.schedule, use_leases=writer and not args.multihost,
                        lease_timeout_s=args.lease_timeout, progress_every=args.progress_every)
    if args.dry_run:
        plan = runner.plan()
        runner.validate(plan)
        runner.store.check_or_write_manifest(runner.hash, runner.description(), write=False)
        memory = memory_estimate(spec, settings, compiled=True if args.compiled_memory else None)
        if args.json:
            for cell in plan.my_cells:
                print(json.dumps(cell_plan(cell, settings, done=cell not in plan.todo)))
            print(json.dumps({"config_hash": runner.hash, "model": runner.spec.model,
                              "cells": len(plan.my_cells), "grid_spec": runner.spec.to_dict(),
                              "config": settings.to_dict(), "hashed": settings.hashed_dict(spec.tasks),
                              "memory_per_device_bytes": memory[0].total_bytes if memory else None}))
            return 0
        if args.list_cells:
            for cell in plan.my_cells:
                print(("done " if cell not in plan.todo else "todo ") + cell.cell_id(plan.config_hash))
        mine = [r for r in runner.store.iter_records() if r.get("config_hash") == runner.hash] \
            if os.path.isdir(runner.store.root) else []
        print(json.dumps(plan.summary(settings, mine), indent=1))
        if memory:
            print(memory[1])
        return 0
    try:
        runner.run()
    except BaseException:
        if writer and (runner.counts["done"] or runner.counts["diverged"]):  # what was saved before the failure
            print(runner.summary_line(), file=sys.stderr, flush=True)
        raise
    if writer:
        print(runner.summary_line(), file=sys.stderr, flush=True)
    return 0


def parse_grid_gin(gin_files, bindings, search_paths) -> None:
    """Parses gin after importing the modules whose configurables the chosen executor reads.

    Gin refuses bindings to configurables that are not imported yet, and the Trainer
    executor's modules (TensorFlow, JAX) are slow to import, so a first lenient pass
    reads `grid_settings.executor` and the heavy modules are imported only when needed.
    """
    import gin

    from jaxlt.gin_flags import expand_aliases, grid_alias_groups
    from jaxlt.grid import configurables

    # A command-line binding of `grid_settings.X` or of the typed field it names rebinds both: the
    # command line wins over the files; two files binding the two names differently are refused.
    bindings = expand_aliases(bindings, grid_alias_groups())
    # One configuration per call: the demo and tests call this in-process, after gin was finalized.
    with gin.unlock_config():
        gin.clear_config()
        parse_gin(gin_files, bindings, search_paths, finalize=False, skip_unknown=True)
        try:
            executor = gin.query_parameter("grid_settings.executor")
        except ValueError:  # not bound: the default
            executor = "trainer"
        gin.clear_config()
        if executor != "toy":
            import_trainer_modules()
        parse_gin(gin_files, bindings, search_paths, finalize=False)
    if not gin.config_is_locked():
        gin.finalize()


def memory_estimate(spec, settings, compiled: bool | None = None):
    """(estimate, line) of the training memory per device for the grid's model on the gin/hardware
    mesh (`jaxlt.train.memory.step_memory`); None for the toy executor or an unknown architecture."""
    if settings.executor == "toy":
        return None
    from jaxlt import experiment_gin
    from jaxlt.train import memory

    config = memory.architecture(settings.model.pretrained, spec.model)
    if config is None:
        return None
    hardware = experiment_gin.from_gin("hardware")  # the gin/hardware file's (read here, at the command layer)
    estimate = memory.step_memory(config.replace(**settings.model.overrides()), settings.data.batch_size,
                                  settings.data.lengths, hardware,
                                  accumulation_steps=settings.data.accumulation_steps,
                                  optimizer=settings.optimizer.make(), compiled=compiled)
    return estimate, memory.format_estimate(estimate, memory.hardware_device_bytes(hardware))


def import_trainer_modules() -> None:
    """Everything whose gin configurables a Trainer-based grid may bind."""
    import jaxlt.data.sources  # noqa: F401
    import jaxlt.data.tasks  # noqa: F401
    import jaxlt.partitioning  # noqa: F401


def cell_plan(cell, settings, done: bool = False) -> dict:
    """One planned cell as `--dry_run --json` prints it."""
    return {"task": cell.task, "source": cell.source, "target": cell.target, "n": cell.n, "seed": cell.seed,
            "strategy": cell.strategy, "sampling": cell.sampling, "eval_split": settings.eval_split_for(cell.task),
            "done": done}


def make_catalog(settings):
    """Language and checkpoint checks without loading a model."""
    if settings.executor == "toy":
        from jaxlt.grid.toy import ToyExecutor

        return ToyExecutor(settings)
    from jaxlt.grid.executor import TrainerCatalog

    return TrainerCatalog(settings)


def make_executor(settings, hardware=None):
    """The executor named by `grid_settings.executor`; the Trainer one on `hardware` (a
    PartitioningConfig; None: the one gin/hardware files bind, read here at the command layer)."""
    if settings.executor == "toy":
        from jaxlt.grid.toy import ToyExecutor

        return ToyExecutor(settings)
    from jaxlt import experiment_gin
    from jaxlt.grid.executor import TrainerExecutor

    return TrainerExecutor(settings, hardware=hardware if hardware is not None else experiment_gin.from_gin("hardware"))
