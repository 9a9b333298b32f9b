"""`jaxlt metrics`: score a JSONL file of predictions against references with the study's metrics."""

from __future__ import annotations

import argparse
import json
import sys

from jaxlt.data.datasets import dataset_names, get_dataset

TASKS = dataset_names()  # every declared dataset (jaxlt.data.datasets)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxlt metrics",
        description="Score {\"prediction\": ..., \"reference\": ...} lines and print one JSON "
                    "object: accuracy (xnli, pawsx); f1, precision, recall (panx, entity-level, "
                    "seqeval semantics, from 'tok : TAG | ...' strings); exact_match, f1 "
                    "(tydiqa, xquad, SQuAD v1.1 normalisation; a reference may be a list of "
                    "answers). Scores are 0-100.",
        epilog="example: jaxlt metrics --task panx --input predictions.jsonl")
    parser.add_argument("--task", required=True, choices=TASKS, help="which metric to apply")
    parser.add_argument("--input", required=True, metavar="FILE.jsonl",
                        help="one JSON object per line with 'prediction' and 'reference'")
    return parser


def read_pairs(path: str) -> tuple[list, list]:
    references, predictions = [], []
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise SystemExit(f"jaxlt metrics: cannot read {path}: {e.strerror}") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"jaxlt metrics: {path}:{lineno}: not JSON: {e.msg}") from None
            if not isinstance(record, dict) or "prediction" not in record \
                    or "reference" not in record:
                raise SystemExit(f"jaxlt metrics: {path}:{lineno}: expected an object with "
                                 f"'prediction' and 'reference'")
            if not isinstance(record["prediction"], str):
                raise SystemExit(f"jaxlt metrics: {path}:{lineno}: 'prediction' must be a string")
            reference = record["reference"]
            if not (isinstance(reference, str) or (isinstance(reference, list) and reference
                                                   and all(isinstance(r, str) for r in reference))):
                raise SystemExit(f"jaxlt metrics: {path}:{lineno}: 'reference' must be a string "
                                 f"or a non-empty list of strings")
            references.append(reference)
            predictions.append(record["prediction"])
    return references, predictions


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from jaxlt.data import metrics

    references, predictions = read_pairs(args.input)
    if not references:
        raise SystemExit(f"jaxlt metrics: {args.input} has no records")
    if not get_dataset(args.task).multiple_references and any(not isinstance(r, str) for r in references):
        raise SystemExit(f"jaxlt metrics: {args.task} references must be strings")
    result = metrics.score(args.task, references, predictions)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0
