"""`jaxlt train`: gin-configured fine-tuning (see gin/runs/finetune.gin)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jaxlt.gin_flags import add_gin_arguments, split_gin_bindings

RUN_FILE = "runs/finetune.gin"

EPILOG = """\
gin/runs/finetune.gin is always parsed first; required macros: MODEL_DIR,
MIXTURE_OR_TASK_NAME, TRAIN_STEPS, BATCH_SIZE, INITIAL_CHECKPOINT_PATH,
TASK_FEATURE_LENGTHS. Re-running with the same MODEL_DIR resumes exactly.

examples:
  jaxlt train --gin_file models/mt5_base.gin --gin_file tasks/xnli.gin \\
      --gin_file hardware/tpu_v5e_8.gin --gin.MODEL_DIR="'/ckpt/xnli_en'" \\
      --gin.INITIAL_CHECKPOINT_PATH="'google/mt5-base'" --gin.TRAIN_STEPS=2000 --gin.BATCH_SIZE=128

  # CPU smoke test on the bundled fixture task, random init:
  jaxlt train --gin_file models/mt5_tiny.gin --gin_file tasks/fixture.gin \\
      --gin.MODEL_DIR="'/tmp/fixture'" --gin.INITIAL_CHECKPOINT_PATH=None \\
      --gin.TRAIN_STEPS=200 --gin.BATCH_SIZE=8 --gin.OptimizerConfig.learning_rate=3e-3
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxlt train", description="Fine-tune an mT5 model (gin-configured, t5x style).",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_gin_arguments(parser)
    parser.add_argument("--no_progress", action="store_true", help="no progress bar (logs only)")
    parser.add_argument("--print_config", action="store_true", help="print the operative gin config at the end")
    return parser


def main(argv: list[str]) -> int:
    bindings, rest = split_gin_bindings(argv)
    args = build_parser().parse_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every file it writes at INFO
    from jaxlt.train import run
    from jaxlt.commands.run_config import configure

    try:
        cfg = configure("train_run", RUN_FILE, run.TRAIN_MACROS, "INITIAL_CHECKPOINT_PATH", args.gin_file, bindings,
                        args.gin_search_paths)
    except ValueError as e:
        print(f"jaxlt train: error: {e}", file=sys.stderr)
        return 2
    summary = run.train_run(progress=not args.no_progress, model=cfg.model, optimizer=cfg.optimizer,
                            hardware=cfg.hardware, **cfg.arguments)
    print(json.dumps(summary))
    if args.print_config:
        import gin

        print(gin.config_str())  # every parsed binding (the run functions are not called through gin)
    return 0
