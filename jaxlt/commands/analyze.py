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
Features that cannot be computed are listed, with counts and reasons, in the report."""


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
    parser.add_argument("--tasks", help="comma-separated tasks to analyse (default: all)")
    parser.add_argument("--metric", action="append", default=[], metavar="TASK=METRIC", help="metric per task when several exist")
    parser.add_argument("--strategy", help="n-shot strategy when the results hold several (zero_shot rows are always used)")
    parser.add_argument("--sampling", help="n-shot sampling when the results hold several")
    parser.add_argument("--features", help="comma-separated regression features (default: the paper's, where available); "
                        "'all' adds the lang2vec/URIEL distances dist_*")
    parser.add_argument("--n-features", type=int, default=5, help="features kept by recursive elimination (default: %(default)s)")
    parser.add_argument("--lasso-alpha", type=float, default=0.01, help="Lasso penalty on [0,1]-scaled features (default: %(default)s)")
    parser.add_argument("--permutations", type=int, default=999, help="language permutations per correlation (default: %(default)s)")
    parser.add_argument("--coverage", type=float, default=0.9, help="recommendation interval coverage (default: %(default)s)")
    parser.add_argument("--size-corpus", choices=["mc4", "wiki", "cc100"], help="corpus for SIZE (default: from the model name)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", help="cache for text statistics (default: OUT/cache)")
    parser.add_argument("--no-models", action="store_true", help="do not save fitted recommenders")
    parser.add_argument("--jobs", type=int, default=1, help="processes for rendering figures (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def long_to_wide(table, features=None):
    """Long pair table (task, source, target, feature, value [, model]) -> one column per feature."""
    index = ["task", "source", "target"] + (["model"] if "model" in table.columns else [])
    sub = table if features is None else table[table["feature"].isin(features)]
    return sub.pivot_table(index=index, columns="feature", values="value", aggfunc="first").reset_index()


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    import pandas as pd

    from jaxlt.features import model_features, text
    from jaxlt.features.frame import TEXT_FEATURES, build_frame
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
        results = load_results(args.results, ledger)
        if args.tasks:
            wanted = [t.strip() for t in args.tasks.split(",") if t.strip()]
            unknown = sorted(set(wanted) - set(results["task"]))
            if unknown:
                raise ResultsError(f"--tasks {unknown} not in results; tasks: {sorted(set(results['task']))}")
            results = results[results["task"].isin(wanted)]
        pair_tables = [model_features.read_pair_features(p) for p in args.pair_features]
        model_dir = pathlib.Path(args.model_features) if args.model_features else None
        if model_dir is not None and model_dir.is_dir():
            found = [model_dir / n for n in ("language_features.parquet", "language_features.csv") if (model_dir / n).exists()]
            if not found:
                raise FileNotFoundError(f"{model_dir}: no language_features.csv/.parquet (output of `jaxlt features model`)")
            args.model_features = str(found[0])
            if not args.embeddings and (model_dir / "centroids.npz").exists():
                args.embeddings = str(model_dir / "centroids.npz")
        if args.embeddings:
            pair_tables.append(model_features.embedding_similarity(args.embeddings))
        pairs_long = pd.concat(pair_tables, ignore_index=True) if pair_tables else None
        text_pairs = None
        if args.text:
            text_pairs, _ = text.compute_text_features(args.text, cache_dir=args.cache_dir or out / "cache")
        elif pairs_long is not None and pairs_long["feature"].isin(TEXT_FEATURES).any():
            text_pairs = long_to_wide(pairs_long, TEXT_FEATURES)
            text_pairs = text_pairs.drop(columns=[c for c in ("model",) if c in text_pairs.columns])
        language = model_features.read_language_features(args.model_features) if args.model_features else None
        data = build_frame(results, ledger, text_pairs=text_pairs, language_features=language, pair_features=pairs_long,
                           metrics=metrics, strategy=args.strategy, sampling=args.sampling, size_corpus=args.size_corpus)
        if args.features == "all":  # cos_X = 1 - dist_X, so the distances alone carry the lang2vec information
            features = [f for f in data.correlation_features if not f.startswith("cos_")]
        else:
            features = [f.strip() for f in args.features.split(",")] if args.features else None
        result = analyze(data, n_features=args.n_features, lasso_alpha=args.lasso_alpha, n_permutations=args.permutations,
                         seed=args.seed, features=features, coverage=args.coverage)
        inputs = {"results": str(args.results), "text": str(args.text or "none"),
                  "pair features": ", ".join(args.pair_features) or "none", "model features": str(args.model_features or "none"),
                  "embeddings": str(args.embeddings or "none"), "result rows": str(len(results))}
        report = write_report(result, out, inputs=inputs, save_models=not args.no_models, n_jobs=args.jobs)
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
