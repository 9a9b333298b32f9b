"""Few-shot cells per hour: the grid runner (one process, compile once, source model kept in
memory, eval sets cached) vs the naive way (one process per cell), on the same tiny grid.

Both start from the same finished source stage (source fine-tunes are not timed); both write
the same cells' records, and the metrics are checked to agree. The naive way is timed on a
sample of cells (`--naive_cells`) and reported as a rate. With `--model_features_languages`
the script also times `jaxlt features model` for that many languages.

    python benchmarks/bench_grid.py                          # tiny mT5 on CPU
    python benchmarks/bench_grid.py --pretrained init:mt5_small --steps_scale 1   # accelerator
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrained", default="init:mt5_tiny")
    p.add_argument("--targets", default="de,ru,sw")
    p.add_argument("--n_values", default="10,50")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--fewshot_steps", type=int, default=10)
    p.add_argument("--naive_cells", type=int, default=3, help="cells timed the naive way (rate extrapolated)")
    p.add_argument("--model_features_languages", type=int, default=0,
                   help="also time `jaxlt features model` on this many languages (panx tiny data has 8)")
    p.add_argument("--hardware", default="", help="gin/hardware file, e.g. hardware/gpu_1.gin")
    args = p.parse_args()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    quote = lambda xs: "[" + ",".join(f"'{x}'" for x in xs.split(",")) + "]"  # noqa: E731
    common = ["--gin_file=runs/demo.gin", *([f"--gin_file={args.hardware}"] if args.hardware else []),
              "--gin.grid_spec.sources=['en']", f"--gin.grid_spec.targets={quote(args.targets)}",
              f"--gin.grid_spec.n_values=[{args.n_values}]", f"--gin.grid_spec.seeds=[{args.seeds}]",
              f"--gin.grid_settings.pretrained='{args.pretrained}'",
              f"--gin.grid_settings.fewshot_steps={args.fewshot_steps}", "--no_progress"]
    work = tempfile.mkdtemp(prefix="bench_grid_")
    try:
        base = os.path.join(work, "base")
        t_source = jaxlt(["grid", *common, f"--results_dir={base}", "--stage=source"], env)
        print(f"setup: source stage (not timed below) {t_source:.1f}s")

        grid_dir = os.path.join(work, "grid")
        shutil.copytree(base, grid_dir)
        t_grid = jaxlt(["grid", *common, f"--results_dir={grid_dir}", "--stage=fewshot"], env)
        grid_records = {k: v for k, v in records(grid_dir).items() if v["n"] > 0}
        n_cells = len(grid_records)

        naive_dir = os.path.join(work, "naive")
        shutil.copytree(base, naive_dir)
        sample = sorted(grid_records.values(), key=lambda r: r["cell_id"])[:args.naive_cells]
        t_naive = 0.0
        for r in sample:  # one process per cell: startup, model load, compile, checkpoint read, eval set
            t_naive += jaxlt(["grid", *common, f"--results_dir={naive_dir}", "--stage=fewshot",
                              f"--gin.grid_spec.targets=['{r['target']}']", f"--gin.grid_spec.n_values=[{r['n']}]",
                              f"--gin.grid_spec.seeds=[{r['seed']}]"], env)
        naive_records = {k: v for k, v in records(naive_dir).items() if v["n"] > 0}
        agree = all(naive_records[k]["metrics"] == grid_records[k]["metrics"] for k in naive_records)

        grid_rate, naive_rate = n_cells / t_grid * 3600, len(sample) / t_naive * 3600
        compile_s = sum(r["timings"]["compile_seconds"] for r in grid_records.values())
        print(f"model {args.pretrained}; few-shot cells: {n_cells} (grid), {len(sample)} (naive sample); "
              f"{args.fewshot_steps} steps each")
        print(f"grid runner : {t_grid:7.1f}s for {n_cells} cells -> {grid_rate:8.0f} cells/hour "
              f"(compile {compile_s:.1f}s once, in-process)")
        print(f"naive       : {t_naive:7.1f}s for {len(sample)} cells -> {naive_rate:8.0f} cells/hour "
              f"({t_naive / len(sample):.1f}s per cell)")
        print(f"speed-up    : {grid_rate / naive_rate:.1f}x (target >= 5x); same metrics on the shared cells: {agree}")

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
