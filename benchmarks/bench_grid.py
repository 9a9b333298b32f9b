"""Few-shot cells per hour: one process per cell, the grid runner one cell at a time (K = 1),
and the grid runner with packed cells (`grid_settings.pack_cells` = K: K cells per compiled
step, parameters stacked, jax.vmap), on the same tiny grid, in one run.

All sides start from the same finished source stage (source fine-tunes are not timed) and
write the same cells' records; every side's metrics and prediction digests are checked
against the K = 1 grid's. Each side runs in its own process (start-up, model load and
compilation included: that is what a worker pays), the sides interleaved, `--repeats`
times; min and median are printed. The one-process-per-cell side is timed on a sample of
cells (`--naive_cells`) and reported as a rate.

    python benchmarks/bench_grid.py                          # tiny mT5 on CPU
    python benchmarks/bench_grid.py --pretrained init:mt5_small --hardware hardware/gpu_1.gin  # accelerator
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def jaxlt(args: list[str], env=None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "jaxlt.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"jaxlt {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t0


def records(results_dir: str) -> dict:
    out = {}
    base = os.path.join(results_dir, "records")
    for dirpath, _, files in os.walk(base):
        for f in files:
            if f.endswith(".json") and not f.startswith("."):
                with open(os.path.join(dirpath, f)) as fh:
                    r = json.load(fh)
                out[r["cell_id"]] = r
    return out


def fewshot(results_dir: str) -> dict:
    return {k: v for k, v in records(results_dir).items() if v["n"] > 0}


def same_results(a: dict, b: dict) -> bool:
    return all(a[k]["metrics"] == b[k]["metrics"] and a[k]["eval_details"]["predictions_sha256"]
               == b[k]["eval_details"]["predictions_sha256"] for k in b)


def parameter_count(pretrained: str) -> int | None:
    if not pretrained.startswith("init:"):
        return None
    import jax

    from jaxlt.model.config import get_config
    from jaxlt.model.network import init_params

    shapes = jax.eval_shape(lambda k: init_params(get_config(pretrained[5:]), k), jax.random.key(0))
    return sum(x.size for x in jax.tree.leaves(shapes))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{os.cpu_count()} CPUs ({cpu}); load average {load} (1/5/15 min)"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrained", default="init:mt5_tiny")
    p.add_argument("--sources", default="en,de")
    p.add_argument("--targets", default="en,de,ru,sw")
    p.add_argument("--n_values", default="10,50")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--fewshot_steps", type=int, default=10)
    p.add_argument("--packs", default="4,8,16", help="pack sizes K to time besides K = 1")
    p.add_argument("--repeats", type=int, default=2, help="interleaved repetitions of every side")
    p.add_argument("--naive_cells", type=int, default=2, help="cells timed one process each (rate extrapolated)")
    p.add_argument("--model_features_languages", type=int, default=0,
                   help="also time `jaxlt features model` on this many languages (panx tiny data has 8)")
    p.add_argument("--hardware", default="", help="gin/hardware file, e.g. hardware/gpu_1.gin")
    args = p.parse_args()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    quote = lambda xs: "[" + ",".join(f"'{x}'" for x in xs.split(",")) + "]"  # noqa: E731
    common = ["--gin_file=runs/grid_tiny.gin", *([f"--gin_file={args.hardware}"] if args.hardware else []),
              f"--gin.grid_spec.sources={quote(args.sources)}", f"--gin.grid_spec.targets={quote(args.targets)}",
              f"--gin.grid_spec.n_values=[{args.n_values}]", f"--gin.grid_spec.seeds=[{args.seeds}]",
              f"--gin.jaxlt.train.model_settings.pretrained='{args.pretrained}'",
              f"--gin.grid_settings.fewshot_steps={args.fewshot_steps}", "--no_progress"]
    packs = [int(k) for k in args.packs.split(",") if k]
    sides = [1, *packs]
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()}")
    count = parameter_count(args.pretrained)
    print(f"model {args.pretrained}" + (f" ({count:,} parameters)" if count else "")
          + f"; {args.fewshot_steps} steps per few-shot cell; {args.repeats} interleaved repetitions")
    work = tempfile.mkdtemp(prefix="bench_grid_")
    try:
        base = os.path.join(work, "base")
        t_source = jaxlt(["grid", *common, f"--results_dir={base}", "--stage=source"], env)
        print(f"setup: source stage (not timed below) {t_source:.1f}s")

        times: dict = {k: [] for k in [*sides, "naive"]}
        compile_s: dict = {k: [] for k in sides}
        train_s: dict = {k: [] for k in sides}
        eval_s: dict = {k: [] for k in sides}
        reference, agree, n_cells, sample = None, True, 0, []
        for rep in range(args.repeats):
            for k in sides:
                out = os.path.join(work, f"grid_k{k}_{rep}")
                shutil.copytree(base, out)
                times[k].append(jaxlt(["grid", *common, f"--results_dir={out}", "--stage=fewshot",
                                       f"--gin.grid_settings.pack_cells={k}"], env))
                got = fewshot(out)
                compile_s[k].append(sum(r["timings"]["compile_seconds"] for r in got.values()))
                train_s[k].append(sum(r["timings"]["train_seconds"] for r in got.values()))
                eval_s[k].append(sum(r["timings"]["eval_seconds"] for r in got.values()))
                if reference is None:
                    reference, n_cells = got, len(got)
                    sample = sorted(got.values(), key=lambda r: r["cell_id"])[:args.naive_cells]
                elif sorted(got) != sorted(reference) or not same_results(got, reference):
                    agree = False
                    print(f"!! K={k} repetition {rep}: records differ from the K=1 grid's")
                shutil.rmtree(out, ignore_errors=True)
            naive_dir = os.path.join(work, f"naive_{rep}")
            shutil.copytree(base, naive_dir)
            t_naive = 0.0
            for r in sample:  # one process per cell: start-up, model load, compile, checkpoint read, eval set
                t_naive += jaxlt(["grid", *common, f"--results_dir={naive_dir}", "--stage=fewshot",
                                  f"--gin.grid_spec.sources=['{r['source']}']",
                                  f"--gin.grid_spec.targets=['{r['target']}']", f"--gin.grid_spec.n_values=[{r['n']}]",
                                  f"--gin.grid_spec.seeds=[{r['seed']}]"], env)
            times["naive"].append(t_naive)
            naive = fewshot(naive_dir)
            if not same_results(reference, naive) or len(naive) != len(sample):
                agree = False
                print(f"!! one-process-per-cell repetition {rep}: records differ from the grid's")
            shutil.rmtree(naive_dir, ignore_errors=True)

        def rate(k, stat):
            cells = len(sample) if k == "naive" else n_cells
            return cells / stat(times[k]) * 3600

        base_rate = rate(1, statistics.median)
        print(f"\n{n_cells} few-shot cells per grid run (naive: {len(sample)} sampled cells, one process each)")
        print("(process wall time; compile, train and eval: medians of the records' timings, in-process)")
        print(f"{'side':<26}{'min s':>9}{'median s':>10}{'cells/hour (median)':>21}{'vs K=1':>8}"
              f"{'compile s':>11}{'train s':>9}{'eval s':>8}")
        for k in ["naive", *sides]:
            name = "one process per cell" if k == "naive" else (
                "grid, K=1 (today)" if k == 1 else f"grid, packed K={k}")
            parts = "".join(f"{statistics.median(d[k]):{w}.1f}" if k in d else f"{'-':>{w}}"
                            for d, w in ((compile_s, 11), (train_s, 9), (eval_s, 8)))
            print(f"{name:<26}{min(times[k]):9.1f}{statistics.median(times[k]):10.1f}"
                  f"{rate(k, statistics.median):21.0f}{rate(k, statistics.median) / base_rate:7.2f}x{parts}")
        if 8 in packs:
            ratio = rate(8, statistics.median) / base_rate
            best = rate(8, min) / rate(1, min)
            print(f"packed K=8 vs K=1: {ratio:.2f}x median, {best:.2f}x min (goal >= 3x: "
                  f"{'met' if ratio >= 3 else 'not met'})")
        print(f"grid K=1 vs one process per cell: {base_rate / rate('naive', statistics.median):.1f}x")
        print(f"same metrics and predictions on every side: {agree}")
        print(f"after the run: {machine()}")

        if args.model_features_languages:
            langs = ["ar", "bn", "en", "fi", "hi", "id", "ru", "sw"][:args.model_features_languages]
            out = os.path.join(work, "mf")
            t_mf = jaxlt(["features", "model", "--checkpoint", args.pretrained, "--data_dir",
                          os.path.join(REPO, "jaxlt", "resources", "tiny_data"), "--tasks", "panx",
                          "--languages", ",".join(langs), "--out", out, "--num_sentences", "64",
                          "--no_progress"], env)
            with open(os.path.join(out, "model_features.json")) as f:
                inner = json.load(f)["seconds"]
            print(f"model features: {len(langs)} languages (EMB, LM_L, LM_EM; 64 sentences each) in "
                  f"{t_mf:.1f}s end to end, {inner:.1f}s after start-up and model load")
        return 0 if agree else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
