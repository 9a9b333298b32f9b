"""`jaxlt predict`: greedy-decode a JSONL file of inputs with a checkpoint."""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    from jaxlt.gin_flags import add_gin_arguments

    parser = argparse.ArgumentParser(
        prog="jaxlt predict",
        description="Greedy decoding (with a key/value cache) of every input line. Each line "
                    '{"inputs": "..."} gets "prediction" (text) and "prediction_ids" (token ids without '
                    "EOS/padding); other fields are kept. Inputs are tokenised with the checkpoint's "
                    "spiece.model and end with EOS; decoding starts from id 0.",
        epilog="example: jaxlt predict --checkpoint google/mt5-base --input in.jsonl --output out.jsonl "
               "--max_decode_length 32")
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="Hugging Face directory (config.json + weights + spiece.model), hub id, "
                             "or jaxlt checkpoint directory")
    parser.add_argument("--step", type=int, default=None,
                        help="step of a jaxlt checkpoint (default: its best, else latest)")
    parser.add_argument("--input", required=True, metavar="IN.jsonl")
    parser.add_argument("--output", required=True, metavar="OUT.jsonl", help="written atomically")
    parser.add_argument("--max_decode_length", type=int, default=64, help="generated tokens per input (default 64)")
    parser.add_argument("--max_input_length", type=int, default=None,
                        help="truncate longer inputs (EOS kept; the count is logged); default: no limit")
    parser.add_argument("--batch_size", type=int, default=16, help="examples per device batch (default 16)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_gin_arguments(parser)
    return parser


def main(argv: list[str]) -> int:
    from jaxlt.gin_flags import split_gin_bindings

    bindings, argv = split_gin_bindings(argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.max_decode_length < 1 or args.batch_size < 1:
        print("jaxlt predict: --max_decode_length and --batch_size must be >= 1", file=sys.stderr)
        return 2
    import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
    from jaxlt.model.hf_io import CheckpointError
    from jaxlt.model.inference import InputError, predict_records, read_jsonl, write_jsonl_atomic
    from jaxlt.commands._inference_gin import apply_gin
    from jaxlt.model.loading import load_checkpoint

    try:
        records = read_jsonl(args.input, ("inputs",))
        loaded = load_checkpoint(args.checkpoint, step=args.step)
        loaded = apply_gin(loaded, args.gin_file, bindings, args.gin_search_paths)
    except (InputError, CheckpointError, FileNotFoundError) as e:
        print(f"jaxlt predict: error: {e}", file=sys.stderr)
        return 2
    out = predict_records(loaded, records, batch_size=args.batch_size, max_decode_length=args.max_decode_length,
                          max_input_length=args.max_input_length, progress=not args.no_progress)
    write_jsonl_atomic(args.output, out)
    print(f"wrote {len(out)} predictions to {args.output}")
    return 0
