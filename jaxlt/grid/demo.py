"""The grid demo (`jaxlt demo`): the synthetic-language lab, end to end, against a planted truth.

The shipped lab model (`jaxlt/resources/lab_model`, a tiny mT5 pre-trained with span corruption on
the lab's synthetic languages, see `jaxlt.lab`) is fine-tuned over a small lab grid (zero-shot and
few-shot, 2 seeds), then model features and the analysis run, and the report's first section says
what the demo found against the truth that was planted. Everything runs on CPU from bundled
resources and is resumable: run it again and finished cells are skipped.

Writes into DIR: results.csv (tidy), languages.csv (planted parameters), lab.json (chance per
task), typology.csv (binary properties), findings.json, model_features/, analysis/report.md.
"""

from __future__ import annotations

import json
import logging
import os
import time

log = logging.getLogger(__name__)
DEMO_GIN = "runs/demo.gin"
XLA_CACHE = "xla_cache"  # jaxlt demo: JAX's persistent compilation cache, inside DIR


def cpu_groups(workers: int, cpus=None) -> list[set[int]] | None:
    """One CPU per grid worker (the first usable ones, in order), or None when there are fewer CPUs
    than workers or a single worker. A tiny model's step is too small to share between cores: two
    unpinned workers each size XLA's and TensorFlow's thread pools to every core, so 4+ busy
    threads share 2 cores. Pinned, a worker's pools have one thread; and since XLA's multi-threaded
    matmuls split their sums between threads (a 1- and a 2-thread run of the same steps differ in
    the last digits), the numbers no longer depend on how many cores the machine has."""
    if cpus is None and not hasattr(os, "sched_getaffinity"):  # not Linux: no pinning
        return None
    cpus = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    if workers < 2 or len(cpus) < workers:
        return None
    return [{c} for c in cpus[:workers]]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished child processes (the workers)."""
    import resource

    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def use_compilation_cache(directory: str) -> None:
    """JAX's persistent compilation cache in `directory` (every program, however fast it compiled):
    a rerun, and a worker that compiles after another, load the executables instead of compiling."""
    import jax

    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _configure(out_dir: str, gin_files, bindings, pretrained: str | None):
    """Writes (or finds) the lab data under `out_dir`, parses the grid's gin, declares the lab
    datasets over that data: (lab data directory, spec, settings)."""
    from jaxlt.commands.grid import parse_grid_gin
    from jaxlt.grid import configurables
    from jaxlt.lab.pretrain import SHIPPED_MODEL
    from jaxlt.lab.tasks import ensure_lab_data, register_lab_datasets

    lab_dir = ensure_lab_data(os.path.join(out_dir, "lab_data"))
    model = os.path.abspath(pretrained or SHIPPED_MODEL)
    parse_grid_gin(list(gin_files), [f"grid_settings.pretrained = '{model}'", *bindings], "")
    register_lab_datasets(lab_dir)  # after gin: a gin `import jaxlt.lab.register` must not win
    spec, settings = configurables.from_gin()
    return lab_dir, spec, settings


def _run_grid(out_dir: str, spec, settings, worker_index: int, num_workers: int, progress: bool):
    from jaxlt.commands.grid import make_catalog, make_executor
    from jaxlt.grid.runner import GridRunner
    from jaxlt.grid.store import ResultsStore

    executor = []
    runner = GridRunner(spec, settings, ResultsStore(os.path.join(out_dir, "grid")),
                        lambda: executor.append(make_executor(settings)) or executor[0],
                        worker_index=worker_index, num_workers=num_workers,
                        progress=progress, catalog=make_catalog(settings))
    runner.run()
    return runner.store.root


def run(out_dir: str, *, gin_files=(DEMO_GIN,), bindings=(), analyze: bool = True, progress: bool = True,
        num_sentences: int = 32, pretrained: str | None = None, workers: int = 2, pin: bool = True,
        compile_cache: str | None = None) -> dict:
    """Runs the demo into `out_dir`; returns the paths it wrote, timings and the findings.

    `workers`: grid worker processes (the static schedule splits the source runs between them):
    a tiny model's training step uses about one core, so 2 workers use both cores of a laptop.
    `pin`: each worker on a CPU of its own (`cpu_groups`) while the grid runs, then all CPUs back for
    the analysis. The model features are computed by the first process to finish its cells
    (`compute_features_if_first`), overlapping the others' last cells.
    `compile_cache`: a directory for JAX's persistent compilation cache, this process and the
    workers (None: no cache; `jaxlt demo` uses DIR/xla_cache)."""
    if workers < 1:
        raise ValueError(f"demo workers must be >= 1, got {workers}")
    logging.getLogger("absl").setLevel(logging.ERROR)
    out_dir = os.path.abspath(out_dir)
    paths, seconds = {}, {}
    groups = cpu_groups(workers) if pin else None
    all_cpus = os.sched_getaffinity(0) if groups else None
    if groups:  # before TensorFlow and XLA size their thread pools in this process
        os.sched_setaffinity(0, groups[0])
    try:
        return _run(out_dir, gin_files, bindings, analyze, progress, num_sentences, pretrained, workers,
                    groups, compile_cache, all_cpus, paths, seconds)
    finally:
        if groups:
            os.sched_setaffinity(0, all_cpus)


def _run(out_dir, gin_files, bindings, analyze, progress, num_sentences, pretrained, workers, groups,
         compile_cache, all_cpus, paths, seconds) -> dict:
    import subprocess
    import sys

    from jaxlt import atomic, malloc_env
    from jaxlt.grid import export
    from jaxlt.lab import data as lab_data
    from jaxlt.lab import truth

    if compile_cache:
        use_compilation_cache(compile_cache)
    cpu = {}  # CPU seconds per stage (all processes): what a timing under load still tells
    t0, c0 = time.perf_counter(), cpu_seconds()
    paths["lab_data"], spec, settings = _configure(out_dir, gin_files, bindings, pretrained)
    seconds["data"], cpu["data"] = time.perf_counter() - t0, cpu_seconds() - c0

    languages = demo_languages(spec)
    params = [p for p in lab_data.DEFAULT_LANGUAGES if p.code in languages]
    paths["languages_csv"] = os.path.join(out_dir, "languages.csv")
    atomic.write_text(paths["languages_csv"], truth.languages_table(params).to_csv(index=False))
    paths["typology_csv"] = os.path.join(out_dir, "typology.csv")
    atomic.write_text(paths["typology_csv"], truth.typology_table(params).to_csv(index=False))
    chance = truth.chance_scores(paths["lab_data"], languages)
    paths["lab_json"] = os.path.join(out_dir, "lab.json")
    atomic.write_json(paths["lab_json"], {t: {"chance": chance[t]["chance"]} for t in spec.tasks}, indent=2)

    t0, c0 = time.perf_counter(), cpu_seconds()
    feature_dir = os.path.join(out_dir, "model_features")
    claim = os.path.join(feature_dir, FEATURES_CLAIM)
    if os.path.exists(claim):  # a previous run's: the features are computed again
        os.remove(claim)
    others = []
    for index in range(1, workers):  # the other workers in their own processes (own JAX runtime)
        command = [sys.executable, "-m", "jaxlt.grid.demo", out_dir, "--grid_worker", f"{index}/{workers}",
                   f"--num_sentences={num_sentences}",
                   *[f"--gin_file={f}" for f in gin_files], *[f"--gin.{b}" for b in _flag_bindings(bindings)]]
        if pretrained:
            command.append(f"--pretrained={os.path.abspath(pretrained)}")
        if groups:
            command.append("--cpus=" + ",".join(str(c) for c in sorted(groups[index])))
        if compile_cache:
            command.append(f"--compile_cache={os.path.abspath(compile_cache)}")
        others.append(subprocess.Popen(command, env=malloc_env.environment()))  # see jaxlt/malloc_env.py
    try:
        store_root = _run_grid(out_dir, spec, settings, 0, workers, progress)
        if groups:  # this worker's cells are done: free to move to whichever core is idle
            os.sched_setaffinity(0, all_cpus)
        t1, c1 = time.perf_counter(), cpu_seconds()
        if compute_features_if_first(out_dir, spec, settings, num_sentences, progress):
            seconds["model_features"], cpu["model_features"] = time.perf_counter() - t1, cpu_seconds() - c1
            print(f"model features: {len(languages)} languages in {seconds['model_features']:.0f}s "
                  f"({cpu['model_features']:.0f} CPU s, this process) -> {feature_dir}")
    finally:
        failed = [p.args[5] for p in others if p.wait() != 0]
    if failed:
        raise RuntimeError(f"demo grid worker(s) {', '.join(failed)} failed (their log is above)")
    paths["language_features"] = os.path.join(feature_dir, "language_features.csv")
    paths["centroids"] = os.path.join(feature_dir, "centroids.npz")
    if not (os.path.isfile(paths["language_features"]) and os.path.isfile(paths["centroids"])):
        raise RuntimeError(f"the model features were not written to {feature_dir} (a worker's log is above)")
    seconds["grid"], cpu["grid"] = time.perf_counter() - t0, cpu_seconds() - c0
    paths["results_csv"] = os.path.join(out_dir, "results.csv")
    df = export.export(store_root, paths["results_csv"], os.path.join(out_dir, "results.parquet"))
    print(f"grid: {df.cell_id.nunique()} cells in {seconds['grid']:.0f}s, model features included "
          f"({cpu['grid']:.0f} CPU s, all workers) -> {paths['results_csv']}")

    found = truth.findings(df, truth.languages_table(params), chance)
    for task in found:  # how chance was computed
        found[task]["chance_predictor"] = chance[task]["predictor"]
    paths["findings"] = os.path.join(out_dir, "findings.json")
    atomic.write_json(paths["findings"], found, indent=2)
    summary = truth.findings_markdown(found)
    print(summary)

    paths["text"] = write_training_text(os.path.join(out_dir, "text.jsonl"), list(spec.tasks), languages)

    if analyze:
        try:
            from jaxlt.commands import analyze as analyze_command
        except ImportError as e:  # the analysis stage is optional for the accelerator stage
            print(f"analysis stage not available ({e}); skipped")
        else:
            t0, c0 = time.perf_counter(), cpu_seconds()
            paths["analysis"] = os.path.join(out_dir, "analysis")
            rc = analyze_command.main(["--results", paths["results_csv"], "--text", paths["text"],
                                       "--model-features", paths["language_features"],
                                       "--embeddings", paths["centroids"], "--typology", paths["typology_csv"],
                                       "--metric", "lab_nli=accuracy", "--metric", "lab_ner=f1",
                                       "--permutations", "199", "--out", paths["analysis"]])
            seconds["analysis"], cpu["analysis"] = time.perf_counter() - t0, cpu_seconds() - c0
            if rc:
                raise RuntimeError(f"jaxlt analyze failed with exit status {rc}")
            report = os.path.join(paths["analysis"], "report.md")
            if os.path.isfile(report):  # the lab's findings come first
                with open(report, encoding="utf-8") as f:
                    body = f.read()
                atomic.write_text(report, summary + "\n" + body)
            print(f"analysis in {seconds['analysis']:.0f}s ({cpu['analysis']:.0f} CPU s) -> {paths['analysis']}")
    return {"paths": paths, "seconds": seconds, "cpu_seconds": cpu, "findings": found}


FEATURES_CLAIM = ".claimed"


def demo_languages(spec) -> list[str]:
    """Every language the demo's grid uses, as a source or a target."""
    return sorted({lang for t in spec.tasks for lang in (*spec.all_sources_for(t), *spec.all_targets_for(t))})


def compute_features_if_first(out_dir: str, spec, settings, num_sentences: int, progress: bool) -> bool:
    """The model features, computed by whichever demo process finishes its grid cells first (they
    need only the pre-trained model, so they overlap the other workers' last cells): the first to
    create the claim file computes them; the others return False at once."""
    from jaxlt.grid.model_features import FeatureSettings, compute

    feature_dir = os.path.join(out_dir, "model_features")
    os.makedirs(feature_dir, exist_ok=True)
    try:
        os.close(os.open(os.path.join(feature_dir, FEATURES_CLAIM), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    compute(spec.model, settings.pretrained, list(spec.tasks), demo_languages(spec), feature_dir,
            FeatureSettings(num_sentences=num_sentences, batch_size=16, input_length=64, target_length=16),
            progress=progress, init_seed=settings.init_seed)
    return True


def _flag_bindings(bindings) -> list[str]:
    """Gin bindings `name = value` as `--gin.` flag bodies `name=value`."""
    return [b.replace(" = ", "=", 1) if " = " in b else b for b in bindings]


def write_training_text(path: str, tasks: list[str], languages: list[str]) -> str:
    """The tasks' training text as JSONL {task, language, text}: the input of the text features
    (LEX, Vr, SENTLEN, MORPH) in `jaxlt analyze --text`."""
    from jaxlt import atomic
    from jaxlt.data import sources
    from jaxlt.data.span_corruption import record_text

    lines = []
    for task in tasks:
        for lang in languages:
            for record in sources.load_records(task, lang, "train"):
                lines.append(json.dumps({"task": task, "language": lang, "text": record_text(task, record)},
                                        ensure_ascii=False) + "\n")
    atomic.write_text(path, "".join(lines))
    return path


def main(argv: list[str]) -> int:
    """Standalone entry: python -m jaxlt.grid.demo OUT_DIR."""
    import argparse

    from jaxlt.gin_flags import split_gin_bindings

    bindings, rest = split_gin_bindings(argv)
    p = argparse.ArgumentParser(prog="jaxlt demo", description=__doc__)
    p.add_argument("out_dir", nargs="?", default="jaxlt_demo", help="output directory (default ./jaxlt_demo)")
    p.add_argument("--gin_file", action="append", default=None, help=f"default {DEMO_GIN}")
    p.add_argument("--no_analysis", action="store_true")
    p.add_argument("--no_progress", action="store_true")
    p.add_argument("--workers", type=int, default=2, help="grid worker processes (default 2)")
    p.add_argument("--pretrained", default=None, help="lab model directory (default: the shipped one)")
    p.add_argument("--no_pin", action="store_true", help="do not pin each grid worker to its own CPUs")
    p.add_argument("--grid_worker", default=None, metavar="I/N", help=argparse.SUPPRESS)  # run() starts these
    p.add_argument("--num_sentences", type=int, default=32, help=argparse.SUPPRESS)  # model features (run())
    p.add_argument("--cpus", default=None, help=argparse.SUPPRESS)  # a grid worker's CPUs, e.g. 1 or 2,3
    p.add_argument("--compile_cache", default=None, metavar="DIR",
                   help=f"JAX's persistent compilation cache (default OUT_DIR/{XLA_CACHE})")
    args = p.parse_args(rest)
    if args.cpus:  # first: before TensorFlow and XLA size their thread pools (run() passes it on Linux only)
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gin_files = args.gin_file or [DEMO_GIN]
    if args.grid_worker:  # one grid worker of a demo run: only its share of the cells
        index, count = (int(x) for x in args.grid_worker.split("/"))
        logging.getLogger("absl").setLevel(logging.ERROR)
        out_dir = os.path.abspath(args.out_dir)
        if args.compile_cache:
            use_compilation_cache(args.compile_cache)
        _, spec, settings = _configure(out_dir, gin_files, bindings, args.pretrained)
        _run_grid(out_dir, spec, settings, index, count, progress=False)
        compute_features_if_first(out_dir, spec, settings, args.num_sentences, progress=False)
        return 0
    run(args.out_dir, gin_files=gin_files, bindings=bindings, analyze=not args.no_analysis,
        progress=not args.no_progress, pretrained=args.pretrained, workers=args.workers, pin=not args.no_pin,
        compile_cache=args.compile_cache or os.path.join(args.out_dir, XLA_CACHE))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
