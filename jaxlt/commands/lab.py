"""`jaxlt lab`: the synthetic-language lab (see `jaxlt.lab`).

    jaxlt lab data DIR            write lab_nli / lab_ner JSONL files, languages.csv, typology.csv
    jaxlt lab languages           print the planted parameters of the lab languages
    jaxlt lab pretrain [--out D]  the deterministic pre-training recipe of the shipped lab model
    jaxlt lab probe [--model D]   translation-retrieval alignment probe (words and sentences)
"""

from __future__ import annotations

import argparse
import os
import sys

USAGE = __doc__.split("\n\n", 1)[1]


def _data(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="jaxlt lab data", description="Writes the lab's data files "
                                "({DIR}/{task}/{lang}/{split}.jsonl), languages.csv and typology.csv.")
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    from jaxlt import atomic
    from jaxlt.lab import data, truth
    from jaxlt.lab.tasks import ensure_lab_data

    ensure_lab_data(args.out_dir)
    atomic.write_text(os.path.join(args.out_dir, "languages.csv"),
                      truth.languages_table(data.DEFAULT_LANGUAGES).to_csv(index=False))
    atomic.write_text(os.path.join(args.out_dir, "typology.csv"),
                      truth.typology_table(data.DEFAULT_LANGUAGES).to_csv(index=False))
    print(f"wrote the lab data, languages.csv and typology.csv under {args.out_dir}")
    return 0


def _languages(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="jaxlt lab languages", description="Prints the planted parameters.").parse_args(argv)
    from jaxlt.lab import data, truth

    print(truth.languages_table(data.DEFAULT_LANGUAGES).to_string(index=False))
    return 0


def _probe(argv: list[str]) -> int:
    from jaxlt.lab.pretrain import SHIPPED_MODEL

    p = argparse.ArgumentParser(prog="jaxlt lab probe", description="Translation retrieval by mean-pooled "
                                "encoder states: per language pair, the share of words (forms that differ) "
                                "and of parallel sentences whose nearest neighbour is their translation.")
    p.add_argument("--model", default=SHIPPED_MODEL, help="checkpoint directory (default: the shipped lab model)")
    p.add_argument("--sentences", type=int, default=200)
    args = p.parse_args(argv)
    if not os.path.isdir(args.model):
        print(f"jaxlt lab probe: no checkpoint directory {args.model}", file=sys.stderr)
        return 2
    import pandas as pd

    from jaxlt.lab.probe import alignment

    result = alignment(args.model, num_sentences=args.sentences)
    rows = [{"source": a, "target": b, "word_retrieval": result["words"].get((a, b)),
             "words": result["word_items"].get((a, b)), "sentence_retrieval": s}
            for (a, b), s in result["sentences"].items()]
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: jaxlt lab {data,languages,pretrain,probe} [options]\n\n" + USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "pretrain":
        from jaxlt.lab import pretrain

        return pretrain.main(rest)
    handlers = {"data": _data, "languages": _languages, "probe": _probe}
    if command not in handlers:
        print(f"jaxlt lab: unknown sub-command {command!r}; known: data, languages, pretrain, probe",
              file=sys.stderr)
        return 2
    return handlers[command](rest)
