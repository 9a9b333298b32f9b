"""`jaxlt evaluate`: gin-configured evaluation of a checkpoint (see gin/runs/eval.gin)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jaxlt.gin_flags import add_gin_arguments, split_gin_bindings

RUN_FILE = "runs/eval.gin"

EPILOG = """\
gin/runs/eval.gin is always parsed first; required macros: CHECKPOINT_PATH,
MIXTURE_OR_TASK_NAME, EVAL_OUTPUT_DIR, BATCH_SIZE, TASK_FEATURE_LENGTHS.
Writes {task}.{split}.metrics.json and {task}.{split}.predictions.jsonl per task.

examples:
  jaxlt evaluate --gin_file tasks/xnli.gin --gin.CHECKPOINT_PATH="'/ckpt/xnli_en'" \\
      --gin.MIXTURE_OR_TASK_NAME="'xnli.de'" --gin.EVAL_OUTPUT_DIR="'/ckpt/xnli_en/eval_de'" \\
      --gin.BATCH_SIZE=64 --gin.jaxlt.train.evaluate_run.rank_classification=True

  jaxlt evaluate --gin_file tasks/fixture.gin --gin.CHECKPOINT_PATH="'/tmp/fixture'" \\
      --gin.EVAL_OUTPUT_DIR="'/tmp/fixture/eval'" --gin.BATCH_SIZE=8
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxlt evaluate",
                                     description="Evaluate a checkpoint on tasks (gin-configured, t5x style).",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_gin_arguments(parser)
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str]) -> int:
    bindings, rest = split_gin_bindings(argv)
    args = build_parser().parse_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    from jaxlt.train import run
    from jaxlt.commands.run_config import configure

    try:
        cfg = configure("evaluate_run", RUN_FILE, run.EVAL_MACROS, "CHECKPOINT_PATH", args.gin_file, bindings,
                        args.gin_search_paths)
    except ValueError as e:
        print(f"jaxlt evaluate: error: {e}", file=sys.stderr)
        return 2
    results = run.evaluate_run(progress=not args.no_progress, model=cfg.model, hardware=cfg.hardware,
                               **cfg.arguments)
    print(json.dumps(results))
    return 0
