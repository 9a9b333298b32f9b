"""`jaxlt grid`: run (or --dry_run) the task x source x target x n x seed grid declared in gin."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jaxlt.gin_flags import add_gin_arguments, parse_gin, split_gin_bindings

EPILOG = """examples:
  jaxlt grid --gin_file=runs/grid_tiny.gin --results_dir=/tmp/grid --dry_run
  jaxlt grid --gin_file=runs/grid_xnli.gin --results_dir=gs://.../xnli --gin.grid_spec.seeds=[0,1]
  jaxlt grid --gin_file=runs/grid_xnli.gin --results_dir=R --stage=source      # then:
  jaxlt grid --gin_file=runs/grid_xnli.gin --results_dir=R --stage=fewshot --worker_index=3 --num_workers=16
Workers default to SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT. Finished cells are skipped."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jaxlt grid", description=__doc__, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results_dir", help="results store directory (one per configuration)")
    p.add_argument("--dry_run", action="store_true", help="print the cells and a work estimate; train nothing")
    p.add_argument("--stage", choices=("all", "source", "fewshot"), default="all",
                   help="all: whole source-run groups per worker; source: source fine-tunes + zero-shot only; "
                        "fewshot: few-shot cells only (needs finished source checkpoints)")
    p.add_argument("--worker_index", type=int, default=None, help="this worker (default $SLURM_ARRAY_TASK_ID or 0)")
    p.add_argument("--num_workers", type=int, default=None, help="workers in all (default $SLURM_ARRAY_TASK_COUNT or 1)")
    p.add_argument("--list_cells", action="store_true", help="with --dry_run: print every cell id")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_gin_arguments(p)
    return p


def main(argv: list[str]) -> int:
    from jaxlt.grid.runner import MissingSourceCheckpointError
    from jaxlt.grid.spec import GridSpecError
    from jaxlt.grid.store import ResultsDirConfigError

    try:
        return _main(argv)
    except (GridSpecError, ResultsDirConfigError, MissingSourceCheckpointError) as e:
        # Raised before any training: a clean message, no traceback.
        print(f"jaxlt grid: error: {e}", file=sys.stderr)
        return 2


def _main(argv: list[str]) -> int:
    bindings, rest = split_gin_bindings(argv)
    args = build_parser().parse_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.gin_file and not bindings:
        print("jaxlt grid: give a grid with --gin_file (e.g. runs/grid_tiny.gin)", file=sys.stderr)
        return 2
    from jaxlt.grid import configurables, partition
    from jaxlt.grid.runner import GridRunner
    from jaxlt.grid.store import ResultsStore

    parse_gin(args.gin_file, bindings, args.gin_search_paths)
    spec, settings = configurables.from_gin()
    worker_index, num_workers = partition.worker_from_env(args.worker_index, args.num_workers)
    if not args.results_dir:
        print("jaxlt grid: --results_dir is required", file=sys.stderr)
        return 2
    runner = GridRunner(spec, settings, ResultsStore(args.results_dir), lambda: make_executor(settings),
                        worker_index=worker_index, num_workers=num_workers, stage=args.stage,
                        progress=not args.no_progress)
    if args.dry_run:
        plan = runner.plan()
        runner.validate(plan)
        if args.list_cells:
            for cell in plan.my_cells:
                print(("done " if cell not in plan.todo else "todo ") + cell.cell_id(plan.config_hash))
        print(json.dumps(plan.summary(settings), indent=1))
        return 0
    runner.run()
    return 0


def make_executor(settings):
    """The executor named by `grid_settings.executor`."""
    if settings.executor == "toy":
        from jaxlt.grid.toy import ToyExecutor

        return ToyExecutor(settings)
    from jaxlt.grid.executor import TrainerExecutor

    return TrainerExecutor(settings)
