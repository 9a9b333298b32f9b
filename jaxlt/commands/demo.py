"""`jaxlt demo`: the embedded default, end to end on CPU from bundled resources.

By default the grid demo (`jaxlt.grid.demo`): the synthetic-language lab (the shipped lab mT5
fine-tuned on lab_nli / lab_ner over 8 lab languages with planted typology, zero-shot and
n in {10, 50}, 2 seeds) -> tidy results -> model features -> analysis, with a report that
compares what was found with the planted truth.
`--quick` only loads a checkpoint, predicts and scores (seconds, no training).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

TINY_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "tiny_model")

# XNLI-style prompts in a few languages, with the gold label as the scored target.
EXAMPLES = [
    ("xnli premise: The cat sleeps on the sofa. hypothesis: An animal is resting.", "entailment"),
    ("xnli premise: Der Zug ist pünktlich angekommen. hypothesis: Der Zug hatte Verspätung.", "contradiction"),
    ("xnli premise: El mercado abre los domingos. hypothesis: Venden fruta allí.", "neutral"),
    ("xnli premise: Поезд прибыл вовремя. hypothesis: Поезд опоздал.", "contradiction"),
    ("xnli premise: 猫はソファで寝ている。 hypothesis: 動物が休んでいる。", "entailment"),
]


def build_parser() -> argparse.ArgumentParser:
    from jaxlt.gin_flags import add_gin_arguments

    parser = argparse.ArgumentParser(
        prog="jaxlt demo",
        description="The embedded default, on CPU from bundled resources. Default: the synthetic-language "
                    "lab (the shipped lab mT5 fine-tuned on lab_nli and lab_ner over 8 synthetic languages "
                    "with planted word order, morphology, lexicon and script; zero-shot and n in {10, 50}, "
                    "2 seeds), then model-derived features and the analysis report, whose first section "
                    "compares the findings with the planted truth; writes results.csv, languages.csv, "
                    "lab.json, typology.csv, analysis/report.md; resumable (run again to skip finished cells). "
                    "--quick: load a checkpoint (default: the bundled random tiny mT5), greedy-decode a few "
                    "multilingual inputs and score their gold targets (the untrained model's predictions are "
                    "arbitrary text: it shows the pipeline, not accuracy).",
        epilog="examples: jaxlt demo jaxlt_demo   |   jaxlt demo --quick --workdir /tmp/q")
    parser.add_argument("out_dir", nargs="?", default="jaxlt_demo",
                        help="grid demo output directory (default ./jaxlt_demo)")
    parser.add_argument("--no_analysis", action="store_true", help="grid demo: skip the analysis stage")
    parser.add_argument("--no_progress", action="store_true", help="grid demo: no progress bars")
    parser.add_argument("--workers", type=int, default=2,
                        help="grid demo: grid worker processes sharing the cells (default 2, one per core)")
    parser.add_argument("--no_pin", action="store_true",
                        help="grid demo: do not pin each grid worker to a CPU of its own")
    parser.add_argument("--compile_cache", default=None, metavar="DIR",
                        help="grid demo: JAX's persistent compilation cache (default OUT_DIR/xla_cache; "
                             "a rerun loads the compiled programs instead of compiling them)")
    add_gin_arguments(parser)
    quick = parser.add_argument_group("--quick (model only)")
    quick.add_argument("--quick", action="store_true", help="only load, predict and score; no training")
    quick.add_argument("--checkpoint", default=TINY_MODEL, metavar="DIR",
                       help="Hugging Face or jaxlt checkpoint directory (default: the bundled tiny mT5)")
    quick.add_argument("--workdir", default=None, help="where to write the JSONL files (default: a temp dir)")
    quick.add_argument("--max_decode_length", type=int, default=16)
    return parser


def main(argv: list[str]) -> int:
    from jaxlt.gin_flags import split_gin_bindings

    bindings, rest = split_gin_bindings(argv)
    args = build_parser().parse_args(rest)
    if not args.quick:
        from jaxlt.grid import demo

        if args.workers < 1:
            print(f"jaxlt demo: --workers must be >= 1, got {args.workers}", file=sys.stderr)
            return 2

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        demo.run(args.out_dir, gin_files=args.gin_file or [demo.DEMO_GIN], bindings=bindings,
                 analyze=not args.no_analysis, progress=not args.no_progress, workers=args.workers,
                 pin=not args.no_pin,
                 compile_cache=args.compile_cache or os.path.join(args.out_dir, demo.XLA_CACHE))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
    import jax

    from jaxlt.model.hf_io import CheckpointError
    from jaxlt.model.inference import predict_records, score_records, write_jsonl_atomic
    from jaxlt.model.loading import load_checkpoint

    workdir = args.workdir or tempfile.mkdtemp(prefix="jaxlt_demo_")
    os.makedirs(workdir, exist_ok=True)
    t0 = time.perf_counter()
    try:
        loaded = load_checkpoint(args.checkpoint)
    except (CheckpointError, FileNotFoundError) as e:
        print(f"jaxlt demo: {e}", file=sys.stderr)
        return 1
    c = loaded.config
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(loaded.params))
    print(f"loaded {args.checkpoint}: d_model={c.d_model} layers={c.num_layers}+{c.num_decoder_layers} "
          f"heads={c.num_heads} vocab={c.vocab_size} params={n_params:,} ({time.perf_counter() - t0:.1f}s) "
          f"on {jax.default_backend()}")
    records = [{"inputs": x, "targets": y} for x, y in EXAMPLES]
    t0 = time.perf_counter()
    predictions = predict_records(loaded, [{"inputs": r["inputs"]} for r in records], batch_size=8,
                                  max_decode_length=args.max_decode_length, progress=False)
    t_predict = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = score_records(loaded, records, batch_size=8, progress=False)
    t_score = time.perf_counter() - t0
    write_jsonl_atomic(os.path.join(workdir, "predictions.jsonl"), predictions)
    write_jsonl_atomic(os.path.join(workdir, "scores.jsonl"), scores)
    for p, s in zip(predictions, scores):
        print(f"- {p['inputs'][:60]}\n    prediction: {p['prediction'][:60]!r} ({len(p['prediction_ids'])} ids)"
              f"\n    log p({s['targets']!r}) = {s['log_likelihood']:.3f} over {s['num_tokens']} tokens")
    print(f"predict: {t_predict:.1f}s, score: {t_score:.1f}s (both include compilation)")
    print(f"wrote {os.path.join(workdir, 'predictions.jsonl')} and {os.path.join(workdir, 'scores.jsonl')}")
    return 0
