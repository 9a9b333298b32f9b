"""`jaxlt train`: gin-configured fine-tuning (see gin/runs/finetune.gin)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from jaxlt.gin_flags import add_gin_arguments, parse_gin, split_gin_bindings

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

    import gin

    run.import_before_parsing()
    # Not finalized yet: gin's own check would report only the first missing macro.
    parse_gin([RUN_FILE, *args.gin_file], bindings, args.gin_search_paths, finalize=False)
    try:
        run.check_required_macros(run.TRAIN_MACROS, RUN_FILE)
    except run.MissingMacroError as e:
        print(f"jaxlt train: {e}", file=sys.stderr)
        return 2
    gin.finalize()
    run.setup_jax()
    from jaxlt import experiment

    # The one configuration: typed configs from gin, and the process's data and vocabulary (the
    # tasks tokenise with the checkpoint's SentencePiece model unless the model config names one).
    model, data = experiment.from_gin("model"), experiment.from_gin("data")
    try:
        run.check_data_config_agrees(data, gin.query_parameter("%BATCH_SIZE"),
                                     gin.query_parameter("%TASK_FEATURE_LENGTHS"),
                                     gin.query_parameter("jaxlt.train.train_run.accumulation_steps"))
    except ValueError as e:
        print(f"jaxlt train: error: {e}", file=sys.stderr)
        return 2
    run.configure_process(data.data_dir,
                          model.vocabulary or run.checkpoint_vocabulary(gin.query_parameter("%INITIAL_CHECKPOINT_PATH")))
    try:
        evaluation = run.evaluation_kwargs("train_run")
    except ValueError as e:
        print(f"jaxlt train: error: {e}", file=sys.stderr)
        return 2
    summary = run.train_run(progress=not args.no_progress, model=model, optimizer=experiment.from_gin("optimizer"),
                            **evaluation)
    print(json.dumps(summary))
    if args.print_config:
        print(gin.operative_config_str())
    return 0
