"""`jaxlt tasks`: the registered seqio tasks, their languages and split sizes."""

from __future__ import annotations

import argparse
import json
import os
import sys

TINY_DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "tiny_data")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxlt tasks",
        description="List the seqio tasks '{dataset}.{lang}' registered by jaxlt.data.tasks, "
                    "with split sizes counted from a local data directory (the hub's sizes are "
                    "not fetched: '?' when no directory is given).",
        epilog="examples: jaxlt tasks --tiny | jaxlt tasks --data_dir /data/jaxlt --dataset panx")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data_dir", default=None,
                        help="local data directory ({hub_id}/{config}/{split}.jsonl); default: "
                             "env JAXLT_DATA_DIR")
    source.add_argument("--tiny", action="store_true",
                        help=f"use the bundled tiny fixtures ({TINY_DATA})")
    parser.add_argument("--dataset", help="only this dataset (see jaxlt.data.datasets; e.g. xnli, "
                                           "panx, tydiqa, pawsx, xquad)")
    parser.add_argument("--hub_info", action="store_true",
                        help="without a data directory, read split sizes from the Hugging Face "
                             "dataset info (the local HF cache, or the hub when online)")
    parser.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    return parser


def hub_split_sizes(hub_id: str, config: str) -> dict[str, int]:
    """Split sizes the hub's dataset info records ({} when unavailable, e.g. offline, not cached)."""
    import datasets

    try:
        info = datasets.load_dataset_builder(hub_id, config).info
    except Exception as e:  # offline, not cached, or a hub error: sizes stay unknown
        print(f"jaxlt tasks: no dataset info for {hub_id} {config}: {type(e).__name__}",
              file=sys.stderr)
        return {}
    return {name: split.num_examples for name, split in (info.splits or {}).items()}


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from jaxlt.data import datasets, examples, sources, tasks

    if args.dataset and not datasets.is_registered(args.dataset):
        print(f"jaxlt tasks: error: unknown dataset {args.dataset!r}; known: "
              f"{', '.join(datasets.dataset_names())}", file=sys.stderr)
        return 2
    data_dir = TINY_DATA if args.tiny else sources.get_data_dir(args.data_dir)
    if data_dir and not os.path.isdir(data_dir):
        print(f"jaxlt tasks: error: data directory {data_dir} does not exist", file=sys.stderr)
        return 2
    rows = []
    for name in tasks.registered_tasks(args.dataset):
        dataset, lang = name.split(".", 1)
        spec = sources.get_spec(dataset)
        if data_dir and lang not in sources.local_languages(dataset, data_dir):
            continue  # the directory has no data for this language: not usable here
        sizes = {}
        hub_sizes = {}
        if not data_dir and args.hub_info and spec.language_of_record is None and spec.hub_id:
            hub_sizes = hub_split_sizes(spec.hub_id, spec.config_for(lang))
        for split in spec.splits:
            if data_dir and split in sources.available_splits(dataset, lang, data_dir):
                sizes[split] = len(examples.load_examples(dataset, lang, split, data_dir))
            else:
                sizes[split] = hub_sizes.get(split)
        rows.append({"task": name, "dataset": dataset, "language": lang, "splits": sizes,
                     "eval_only": not spec.has_train(lang)})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"data: {data_dir or 'Hugging Face hub (sizes unknown offline)'}")
    for row in rows:
        sizes = "  ".join(f"{split}={'?' if n is None else n}" for split, n in row["splits"].items())
        print(f"  {row['task']:<12} {sizes}")
    print(f"{len(rows)} tasks", file=sys.stderr)
    return 0
