"""`jaxlt recommend`: rank source languages for a target language with predicted scores and intervals."""

from __future__ import annotations

import argparse
import sys

TASK_ALIASES = {"qa": "tydiqa", "ner": "panx", "nli": "xnli"}

EPILOG = """examples:
  jaxlt recommend --task tydiqa --target fi
  jaxlt recommend --task ner --target sw --n 100 --top 3
  jaxlt recommend --task xnli_new --target de          (a target outside the results: offline features only)
  jaxlt recommend --fitted analysis/models/panx__mt5-base.joblib --target fi --format csv

The model is fitted on --results (default: the bundled published results) unless --fitted
points at a recommender saved by `jaxlt analyze` (OUT/models/*.joblib). Columns:
  predicted, lower, upper  score and interval from leave-one-target-out residuals (--coverage), clipped to 0-100
  p_best            share of bootstrap refits (target languages resampled, seed noise added) where the source is best
  baseline          the per-source-mean baseline's score for this source at this n (baseline_rank: its ranking)
  gain_per_doubling expected points from doubling n (n > 0)
  flags             target outside the fitted data, features outside the fitted range, n beyond the fitted range
n beyond the largest n in the results is refused unless --extrapolate. The last line answers the
budget question: which source for this target and n, and what doubling n is expected to buy."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxlt recommend", description=__doc__.split(":", 1)[1].strip(),
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", help="task (tydiqa/qa, panx/ner, xnli, xnli_new, ...); required without --fitted")
    parser.add_argument("--target", required=True, help="target language (any code jaxlt.languages knows)")
    parser.add_argument("--n", type=int, default=0, help="target-language training examples (default: %(default)s)")
    parser.add_argument("--results", default="published:muller2022", help="results to fit on (default: %(default)s)")
    parser.add_argument("--model", help="model name in the results when several (e.g. mt5-base)")
    parser.add_argument("--fitted", help="a fitted recommender (.joblib from `jaxlt analyze`)")
    parser.add_argument("--sources", help="comma-separated candidate sources (default: all in the results)")
    parser.add_argument("--top", type=int, help="show only the best K")
    parser.add_argument("--coverage", type=float, default=0.9, help="interval coverage (default: %(default)s)")
    parser.add_argument("--extrapolate", action="store_true", help="allow n beyond the fitted range (flagged)")
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap refits for p_best (default: %(default)s)")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        recommender = _load(args) if args.fitted else _fit(args)
        sources = [s.strip() for s in args.sources.split(",")] if args.sources else None
        table = recommender.recommend(args.target, n=args.n, sources=sources, extrapolate=args.extrapolate)
    except (ValueError, FileNotFoundError, KeyError) as error:
        print(f"jaxlt recommend: error: {error}", file=sys.stderr)
        return 2
    if args.top:
        table = table.head(args.top)
    if args.format == "csv":
        table.to_csv(sys.stdout, index=False)
    elif args.format == "json":
        print(table.to_json(orient="records", indent=1))
    else:
        attrs = table.attrs
        print(f"{attrs['task']} ({attrs['model']}): sources for target {attrs['target']}, n = {attrs['n']}, "
              f"{int(100 * attrs['coverage'])}% interval")
        print(table.drop(columns=["source_name"]).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        from jaxlt.stats.recommend import budget_answer

        print(budget_answer(table))
    return 0


def _load(args):
    import joblib

    from jaxlt.stats.recommend import SourceRecommender

    recommender = joblib.load(args.fitted)
    if not isinstance(recommender, SourceRecommender):
        raise ValueError(f"{args.fitted} holds a {type(recommender).__name__}, not a SourceRecommender")
    return recommender


def _fit(args):
    import logging

    from jaxlt.features.frame import build_frame
    from jaxlt.stats.ledger import Ledger
    from jaxlt.stats.recommend import SourceRecommender
    from jaxlt.stats.results import load_results

    logging.getLogger("jaxlt.analysis").setLevel(logging.ERROR)  # exclusions are reported by `jaxlt analyze`
    if not args.task:
        raise ValueError("--task is required unless --fitted is given")
    task = TASK_ALIASES.get(args.task, args.task)
    results = load_results(args.results, Ledger())
    tasks = sorted(set(results["task"]))
    if task not in tasks:
        raise ValueError(f"task {args.task!r} not in {args.results}; tasks: {tasks} (aliases: {TASK_ALIASES})")
    results = results[results["task"] == task]
    models = sorted(set(results["model"]))
    model = args.model or (models[0] if len(models) == 1 else None)
    if model not in models:
        raise ValueError(f"choose --model among {models}")
    data = build_frame(results[results["model"] == model], Ledger())
    return SourceRecommender(features=data.regression_features, coverage=args.coverage, n_bootstrap=args.bootstrap).fit(data.frame)
