"""`jaxlt features`: compute and cache language feature tables (text, typology; model delegates)."""

from __future__ import annotations

import argparse
import pathlib
import sys

EPILOG = """sub-commands:
  text      LEX, Vr, SENTLEN, MORPH from training text (DIR/<task>/<lang>.txt or JSONL {task, language, text})
  typology  SYNT, PHONO (WALS intersection over union, shared-feature counts) and lang2vec cosine similarities
  model     EMB, LM_L, LM_EM from a checkpoint (accelerator stage; see `jaxlt features model --help`)

examples:
  jaxlt features text --text text_dir/ --out features/
  jaxlt features typology --languages en,ar,bn,fi,id,ru,sw --out features/typology.csv
  jaxlt features typology --refresh          (re-read lang2vec into the bundled snapshot)
  jaxlt features typology --typology lab_typology.csv --languages syn_a,syn_b,en

Typology file (--typology, also accepted by `jaxlt analyze`): a CSV with a `language` column and one
column per binary property (1 has, 0 lacks, empty unknown), for languages lang2vec does not know
(e.g. synthetic ones; any code jaxlt does not know is kept as written) or to extend it. Columns named
S_* count toward SYNT and P_* toward PHONO (lang2vec's WALS names, so a real language's WALS row lines
up); all columns give TYPO, the intersection over union of every property. Without --languages, all
languages of the file are used.

Pair tables are long (task, source, target, feature, value) as DESIGN.md; pass them to
`jaxlt analyze --pair-features`. Text statistics are cached by content hash (--cache-dir)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxlt features", description=__doc__.split(":", 1)[1].strip(),
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="kind", metavar="{text,typology,model}")
    text = sub.add_parser("text", prog="jaxlt features text", help="LEX, Vr, SENTLEN, MORPH from training text")
    text.add_argument("--text", required=True, help="DIR/<task>/<lang>.txt or a JSONL file")
    text.add_argument("--out", required=True, help="output directory: text_pair_features.csv, text_language_features.csv")
    text.add_argument("--cache-dir", help="cache of per-language statistics (default: OUT/cache)")
    typo = sub.add_parser("typology", prog="jaxlt features typology", help="WALS SYNT/PHONO and lang2vec similarities")
    typo.add_argument("--languages", help="comma-separated codes; all ordered pairs are written")
    typo.add_argument("--task", default="*", help="task column value (typology does not depend on the task; default: %(default)s)")
    typo.add_argument("--out", help="output CSV (long pair table)")
    typo.add_argument("--refresh", action="store_true", help="rebuild the lang2vec snapshot first")
    typo.add_argument("--snapshot", help="snapshot path (default: the bundled one)")
    typo.add_argument("--typology", help="typology CSV: language + one 0/1 column per property (see below)")
    sub.add_parser("model", prog="jaxlt features model", help="EMB, LM_L, LM_EM (delegates to jaxlt.grid.model_features)",
                   add_help=False)
    return parser


def to_long(wide, features, task=None):
    import pandas as pd

    index = ["task", "source", "target"] if task is None else ["source", "target"]
    long = wide.melt(id_vars=index, value_vars=list(features), var_name="feature", value_name="value")
    if task is not None:
        long.insert(0, "task", task)
    return long.sort_values(["task", "source", "target", "feature"]).reset_index(drop=True)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "model":
        from jaxlt.grid.model_features import main as model_main  # accelerator stage: imported only here

        return model_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.kind is None:
        parser.print_help()
        return 2
    from jaxlt.report.markdown import write_csv

    try:
        if args.kind == "text":
            from jaxlt.features import text

            out = pathlib.Path(args.out)
            pairs, langs = text.compute_text_features(args.text, cache_dir=args.cache_dir or out / "cache")
            p = write_csv(to_long(pairs, ["LEX", "Vr", "SENTLEN", "MORPH", "JSD", "TTR_ratio"]), out / "text_pair_features.csv")
            l = write_csv(langs, out / "text_language_features.csv")
            print(f"wrote {p} ({len(pairs)} pairs, {pairs['task'].nunique()} tasks) and {l}")
            return 0
        from jaxlt.features import typology, user

        if args.refresh:
            print(f"snapshot: {typology.build_snapshot(args.snapshot)}")
        table = user.read_typology(args.typology) if args.typology else None
        extra = user.extra_languages(table)
        if not args.languages and table is None:
            if args.refresh:
                return 0
            parser.error("typology needs --languages, --typology or --refresh")
        listed = [c.strip() for c in args.languages.split(",") if c.strip()] if args.languages else list(table.index)
        codes = [user.code(c, extra) for c in listed]
        wide = typology.pair_features(typology.all_pairs(codes), args.snapshot, user=table)
        features = [c for c in wide.columns if c not in ("source", "target")]
        long = to_long(wide, features, task=args.task)
        if args.out:
            print(f"wrote {write_csv(long, pathlib.Path(args.out))} ({len(wide)} pairs)")
        else:
            wide.to_csv(sys.stdout, index=False)
        return 0
    except (ValueError, FileNotFoundError) as error:
        print(f"jaxlt features: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
