"""`jaxlt score`: log-likelihood of targets given inputs."""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    from jaxlt.gin_flags import add_gin_arguments

    parser = argparse.ArgumentParser(
        prog="jaxlt score",
        description='Teacher-forced log-likelihood of each line\'s "targets" given its "inputs". Each line gets '
                    '"log_likelihood" (natural-log sum over the target tokens, EOS included) and '
                    '"num_tokens" (target tokens, EOS included). Both texts are tokenised with the '
                    "checkpoint's spiece.model and end with EOS.",
        epilog="example: jaxlt score --checkpoint ./my_model --input pairs.jsonl --output scored.jsonl")
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="Hugging Face directory, hub id, or jaxlt checkpoint directory")
    parser.add_argument("--step", type=int, default=None,
                        help="step of a jaxlt checkpoint (default: its best, else latest)")
    parser.add_argument("--input", required=True, metavar="IN.jsonl")
    parser.add_argument("--output", required=True, metavar="OUT.jsonl", help="written atomically")
    parser.add_argument("--max_input_length", type=int, default=None,
                        help="truncate longer inputs (EOS kept; the count is logged); targets are never truncated")
    parser.add_argument("--batch_size", type=int, default=16, help="examples per device batch (default 16)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_gin_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    from jaxlt.gin_flags import split_gin_bindings

    bindings, argv = split_gin_bindings(argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.batch_size < 1:
        print("jaxlt score: --batch_size must be >= 1", file=sys.stderr)
        return 2
    import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
    from jaxlt.model.hf_io import CheckpointError
    from jaxlt.model.inference import InputError, read_jsonl, score_records, write_jsonl_atomic
    from jaxlt.commands._inference_gin import apply_gin
    from jaxlt.model.loading import load_checkpoint

    try:
        records = read_jsonl(args.input, ("inputs", "targets"))
        loaded = load_checkpoint(args.checkpoint, step=args.step)
        loaded = apply_gin(loaded, args.gin_file, bindings, args.gin_search_paths)
    except (InputError, CheckpointError, FileNotFoundError) as e:
        print(f"jaxlt score: error: {e}", file=sys.stderr)
        return 2
    out = score_records(loaded, records, batch_size=args.batch_size, max_input_length=args.max_input_length,
                        progress=not args.no_progress)
    write_jsonl_atomic(args.output, out)
    print(f"wrote {len(out)} scores to {args.output}")
    return 0
