"""`jaxlt analyze`: correlations, meta-regression, n-shot model and a report from a tidy results table."""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys
import time

EPILOG = """examples:
  jaxlt analyze --results published:muller2022 --out analysis/
  jaxlt analyze --results grid_results.csv --text text_dir/ --model-features lang_features.csv \\
      --embeddings centroids.npz --out analysis/ --metric panx=f1

inputs:
  --results       tidy results table (csv/parquet/jsonl, DESIGN.md) or published:NAME (bundled: muller2022)
  --text          training text: DIR/<task>/<lang>.txt (one example per line) or JSONL {task, language, text}
  --pair-features long pair table task,source,target,feature,value (e.g. `jaxlt features text` output, EMB)
  --model-features language table model,task,language,feature,value (LM_L, LM_EM from `jaxlt features model`)
  --embeddings    .npz of encoder centroids keyed "model/task/language" (EMB = cosine of centroids)
  --language-features  your own per-language features: long [model,][task,]language,feature,value or wide
                  [model,][task,]language,<one column per feature>; feature F enters as F_S and F_T
  --typology      binary properties per language (CSV: `language` + one 0/1 column per property, empty =
                  unknown) for languages lang2vec lacks (e.g. synthetic ones, whose codes the results may
                  then use); columns S_* feed SYNT, P_* feed PHONO, all feed TYPO
Pair features may be named anything (long feature/value, or wide: task,source,target,<columns>); a table
without task/model columns applies to every task/model. Rows whose `status` is not "ok" are left out and
counted. Scores must be 0-100; scores all within [0, 1] are read as fractions and rescaled (--score-scale).
Features that cannot be computed are listed, with counts and reasons, in the report."""


def _cv_or(kind):
    def parse(text: str):
        return text if text == "cv" else kind(text)

    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxlt analyze", description=__doc__.split(":", 1)[1].strip(),
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="published:muller2022", help="results table or published:NAME (default: %(default)s)")
    parser.add_argument("--out", required=True, help="output directory (report.md, tables/, figures/, models/)")
    parser.add_argument("--text", help="training text directory or JSONL (for LEX, Vr, SENTLEN, MORPH)")
    parser.add_argument("--pair-features", action="append", default=[], help="long pair-feature table; repeatable")
    parser.add_argument("--model-features", help="language-features table (LM_L, LM_EM), or the output directory of "
                        "`jaxlt features model` (language_features.csv + centroids.npz, which then also gives EMB)")
    parser.add_argument("--embeddings", help="encoder centroid .npz for EMB")
    parser.add_argument("--language-features", action="append", default=[], help="per-language feature table, any "
                        "feature names (long or wide); repeatable")
    parser.add_argument("--typology", help="typology CSV: language + one 0/1 column per property (S_* syntax, P_* phonology)")
    parser.add_argument("--score-scale", choices=["auto", "percent", "fraction"], default="auto",
                        help="auto: scores all in [0, 1] for a task are fractions (x100, reported); default: %(default)s")
    parser.add_argument("--tasks", help="comma-separated tasks to analyse (default: all)")
    parser.add_argument("--metric", action="append", default=[], metavar="TASK=METRIC", help="metric per task when several exist")
    parser.add_argument("--strategy", help="n-shot strategy when the results hold several (zero_shot rows are always used)")
    parser.add_argument("--sampling", help="n-shot sampling when the results hold several")
    parser.add_argument("--features", help="comma-separated regression features (default: the paper's, where available); "
                        "'all' adds the lang2vec/URIEL similarities cos_*")
    parser.add_argument("--n-features", type=_cv_or(int), default="cv", help="features kept by recursive elimination, or 'cv' "
                        "to choose by RFECV over target languages inside each training fold (default: %(default)s)")
    parser.add_argument("--lasso-alpha", type=_cv_or(float), default="cv", help="Lasso penalty on [0,1]-scaled features, or "
                        "'cv' for LassoCV over target languages inside each training fold (default: %(default)s)")
    parser.add_argument("--target-groups", help="target groups for relative transfer, 'NAME=code,code;NAME=code' (default: "
                        "Latin-script high-resource / Latin-script low-resource / other-script)")
    parser.add_argument("--permutations", type=int, default=999, help="language permutations per correlation (default: %(default)s)")
    parser.add_argument("--coverage", type=float, default=0.9, help="recommendation interval coverage (default: %(default)s)")
    parser.add_argument("--size-corpus", choices=["mc4", "wiki", "cc100"], help="corpus for SIZE (default: from the model name)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", help="cache for text statistics (default: OUT/cache)")
    parser.add_argument("--no-models", action="store_true", help="do not save fitted recommenders")
    parser.add_argument("--no-figures", action="store_true", help="tables and report text only (faster)")
    parser.add_argument("--jobs", type=int, default=1, help="processes for the per-task regressions and for rendering figures "
                        "(default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    import pandas as pd

    from jaxlt.features import model_features, text, user
    from jaxlt.features.frame import build_frame
    from jaxlt.report.markdown import write_report
    from jaxlt.stats.ledger import Ledger
    from jaxlt.stats.pipeline import analyze
    from jaxlt.stats.results import ResultsError, load_results

    start = time.perf_counter()
    try:
        metrics = dict(item.split("=", 1) for item in args.metric)
    except ValueError:
        print(f"jaxlt analyze: --metric expects TASK=METRIC, got {args.metric}", file=sys.stderr)
        return 2
    out = pathlib.Path(args.out)
    ledger = Ledger()
    try:
        typology_file = user.read_typology(args.typology) if args.typology else None
        extra = user.extra_languages(typology_file)
        results = load_results(args.results, ledger, score_scale=args.score_scale, extra_languages=extra)
        if args.tasks:
            wanted = [t.strip() for t in args.tasks.split(",") if t.strip()]
            unknown = sorted(set(wanted) - set(results["task"]))
            if unknown:
                raise ResultsError(f"--tasks {unknown} not in results; tasks: {sorted(set(results['task']))}")
            results = results[results["task"].isin(wanted)]
        pair_tables = [user.read_pair_table(p, extra) for p in args.pair_features]
        model_dir = pathlib.Path(args.model_features) if args.model_features else None
        if model_dir is not None and model_dir.is_dir():
            found = [model_dir / n for n in ("language_features.parquet", "language_features.csv") if (model_dir / n).exists()]
            if not found:
                raise FileNotFoundError(f"{model_dir}: no language_features.csv/.parquet (output of `jaxlt features model`)")
            args.model_features = str(found[0])
            if not args.embeddings and (model_dir / "centroids.npz").exists():
                args.embeddings = str(model_dir / "centroids.npz")
        if args.embeddings:
            emb = model_features.embedding_similarity(args.embeddings, extra)
            pair_tables.append(emb[["task", "model", "source", "target", "feature", "value"]])
        pairs_long = pd.concat(pair_tables, ignore_index=True) if pair_tables else None
        text_pairs = None
        if args.text:
            text_pairs, _ = text.compute_text_features(args.text, cache_dir=args.cache_dir or out / "cache", extra=extra)
        language_tables = [user.read_language_table(p, extra) for p in [args.model_features] * bool(args.model_features)
                           + args.language_features]
        language = pd.concat(language_tables, ignore_index=True) if language_tables else None
        data = build_frame(results, ledger, text_pairs=text_pairs, language_features=language, pair_features=pairs_long,
                           metrics=metrics, strategy=args.strategy, sampling=args.sampling, size_corpus=args.size_corpus,
                           typology_file=typology_file)
        if args.features == "all":
            features = list(data.correlation_features)
        else:
            features = [f.strip() for f in args.features.split(",")] if args.features else None
        from jaxlt.stats import transfer

        groups = transfer.parse_groups(args.target_groups) if args.target_groups else None
        result = analyze(data, n_features=args.n_features, lasso_alpha=args.lasso_alpha, n_permutations=args.permutations,
                         target_groups=groups, n_jobs=args.jobs,
                         seed=args.seed, features=features, coverage=args.coverage)
        inputs = {"results": str(args.results), "text": str(args.text or "none"),
                  "pair features": ", ".join(args.pair_features) or "none", "model features": str(args.model_features or "none"),
                  "embeddings": str(args.embeddings or "none"), "language features": ", ".join(args.language_features) or "none",
                  "typology file": str(args.typology or "none"), "result rows": str(len(results))}
        report = write_report(result, out, inputs=inputs, save_models=not args.no_models, n_jobs=args.jobs,
                              draw_figures=not args.no_figures)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"jaxlt analyze: error: {error}", file=sys.stderr)
        return 2
    excluded = sum(e.count for e in ledger.exclusions)
    print(f"report: {report}")
    print(f"tables: {out / 'tables'}  figures: {out / 'figures'}")
    print(f"excluded rows: {excluded} ({len(ledger.exclusions)} reasons); unavailable features: "
          f"{', '.join(sorted({e.what for e in ledger.unavailable})) or 'none'} (see the report)")
    for name, eq in result.equations.items():
        print(f"{name}: {eq}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
