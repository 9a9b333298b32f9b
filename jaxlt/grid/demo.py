"""The grid demo (`jaxlt demo`): tiny grid -> tidy results -> model features -> analysis.

Everything runs on CPU from bundled resources (tiny mT5 at random init, tiny XNLI
data in 4 languages) and is resumable: run it again and finished cells are skipped.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)
DEMO_GIN = "runs/demo.gin"


def run(out_dir: str, *, gin_files=(DEMO_GIN,), bindings=(), analyze: bool = True, progress: bool = True,
        num_sentences: int = 32) -> dict:
    """Runs the demo into `out_dir`; returns the paths it wrote and timings."""
    from jaxlt.commands.grid import make_catalog, make_executor, parse_grid_gin
    from jaxlt.grid import configurables, export
    from jaxlt.grid.model_features import FeatureSettings, compute
    from jaxlt.grid.runner import GridRunner
    from jaxlt.grid.store import ResultsStore

    logging.getLogger("absl").setLevel(logging.ERROR)
    parse_grid_gin(list(gin_files), list(bindings), "")
    spec, settings = configurables.from_gin()
    out_dir = os.path.abspath(out_dir)
    paths, seconds = {}, {}

    t0 = time.perf_counter()
    executor = []
    runner = GridRunner(spec, settings, ResultsStore(os.path.join(out_dir, "grid")),
                        lambda: executor.append(make_executor(settings)) or executor[0],
                        progress=progress, catalog=make_catalog(settings))
    runner.run()
    seconds["grid"] = time.perf_counter() - t0
    paths["results_csv"] = os.path.join(out_dir, "results.csv")
    df = export.export(runner.store.root, paths["results_csv"], os.path.join(out_dir, "results.parquet"))
    print(f"grid: {df.cell_id.nunique()} cells in {seconds['grid']:.0f}s -> {paths['results_csv']}")

    t0 = time.perf_counter()
    feature_dir = os.path.join(out_dir, "model_features")
    languages = sorted({lang for t in spec.tasks for lang in (*spec.sources_for(t), *spec.targets_for(t))})
    compute(spec.model, settings.pretrained, list(spec.tasks), languages, feature_dir,
            FeatureSettings(num_sentences=num_sentences, batch_size=16, input_length=96, target_length=48),
            progress=progress, init_seed=settings.init_seed)
    seconds["model_features"] = time.perf_counter() - t0
    paths["language_features"] = os.path.join(feature_dir, "language_features.csv")
    paths["centroids"] = os.path.join(feature_dir, "centroids.npz")
    print(f"model features: {len(languages)} languages in {seconds['model_features']:.0f}s -> {feature_dir}")

    paths["text"] = write_training_text(os.path.join(out_dir, "text.jsonl"), list(spec.tasks), languages)

    if analyze:
        try:
            from jaxlt.commands import analyze as analyze_command
        except ImportError as e:  # the analysis stage is optional for the accelerator stage
            print(f"analysis stage not available ({e}); skipped")
        else:
            t0 = time.perf_counter()
            paths["analysis"] = os.path.join(out_dir, "analysis")
            rc = analyze_command.main(["--results", paths["results_csv"], "--text", paths["text"],
                                       "--model-features",
                                       paths["language_features"], "--embeddings", paths["centroids"],
                                       "--out", paths["analysis"]])
            seconds["analysis"] = time.perf_counter() - t0
            if rc:
                raise RuntimeError(f"jaxlt analyze failed with exit status {rc}")
            print(f"analysis in {seconds['analysis']:.0f}s -> {paths['analysis']}")
    return {"paths": paths, "seconds": seconds}


def write_training_text(path: str, tasks: list[str], languages: list[str]) -> str:
    """The tasks' training text as JSONL {task, language, text}: the input of the text features
    (LEX, Vr, SENTLEN, MORPH) in `jaxlt analyze --text`."""
    import json

    from jaxlt.data import sources
    from jaxlt.data.span_corruption import record_text

    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for task in tasks:
            for lang in languages:
                for record in sources.load_records(task, lang, "train"):
                    f.write(json.dumps({"task": task, "language": lang, "text": record_text(task, record)},
                                       ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def main(argv: list[str]) -> int:
    """Standalone entry until `jaxlt demo` points here: python -m jaxlt.grid.demo OUT_DIR."""
    import argparse

    from jaxlt.gin_flags import split_gin_bindings

    bindings, rest = split_gin_bindings(argv)
    p = argparse.ArgumentParser(prog="jaxlt demo", description=__doc__)
    p.add_argument("out_dir", nargs="?", default="jaxlt_demo", help="output directory (default ./jaxlt_demo)")
    p.add_argument("--gin_file", action="append", default=None, help=f"default {DEMO_GIN}")
    p.add_argument("--no_analysis", action="store_true")
    p.add_argument("--no_progress", action="store_true")
    args = p.parse_args(rest)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(args.out_dir, gin_files=args.gin_file or [DEMO_GIN], bindings=bindings, analyze=not args.no_analysis,
        progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
