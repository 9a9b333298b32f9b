"""Benchmark: the full analysis of the bundled published results on this CPU (target < 10 s).

Prints wall and CPU seconds per stage, the machine's load average before each run, and the
median and best of --repeats runs. Peer in the same run: the language-permutation test,
jaxlt's vectorised permutations vs a loop of scipy.stats.pearsonr over the same draws.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import tempfile
import time


class Timer:
    def __init__(self, name: str, rows: list):
        self.name, self.rows = name, rows

    @staticmethod
    def _cpu() -> float:
        """CPU seconds of this process and of its finished children (the forked workers)."""
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc):
        self.rows.append((self.name, time.perf_counter() - self.wall, self._cpu() - self.cpu))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--permutations", type=int, default=999)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="figure-rendering processes (default: %(default)s)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    rows: list = []
    with Timer("import analysis stage", rows):
        from jaxlt.features.frame import build_frame
        from jaxlt.report.markdown import write_report
        from jaxlt.stats.pipeline import analyze
        from jaxlt.stats.results import load_results
    import statistics

    for repeat in range(args.repeats):
        print(f"run {repeat + 1}: load average before {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs", flush=True)
        with tempfile.TemporaryDirectory() as out, Timer(f"full analysis + report, run {repeat + 1}", rows):
            with Timer("  load + features", rows):
                data = build_frame(load_results("published:muller2022"))
            with Timer(f"  statistics (correlations, nested-CV meta-regression, n-shot, ranking; {args.jobs} process(es))", rows):
                result = analyze(data, n_permutations=args.permutations, n_jobs=args.jobs)
            with Timer(f"  report (figures in {args.jobs} process(es), tables, Markdown, models)", rows):
                write_report(result, pathlib.Path(out), inputs={"results": "published:muller2022"}, n_jobs=args.jobs)
    print(f"{'stage':64s} {'wall s':>8s} {'cpu s':>8s}   (cpu: this process and its worker processes)")
    for name, wall, cpu in rows:
        print(f"{name:64s} {wall:8.2f} {cpu:8.2f}")
    total = [w for n, w, _ in rows if n.startswith("full")]
    median = statistics.median(total)
    cpu = [c for n, _, c in rows if n.startswith("full")]
    print(f"CPU seconds of a full run (all processes): median {statistics.median(cpu):.2f}; on an idle 2-core machine the "
          f"wall time is at least half of that")
    print(f"full analysis wall time: median {median:.2f} s, best {min(total):.2f} s of {len(total)} (target < 10 s) -> "
          f"{'OK' if median < 10 else 'OVER'}; load average now {os.getloadavg()[0]:.2f}")

    # --- peer --------------------------------------------------------------------------------
    import numpy as np
    from scipy import stats as sps

    from jaxlt.stats.correlations import language_permutation_test

    zero = data.frame[(data.frame.task == "xnli_new") & (data.frame.n_target == 0)].reset_index(drop=True)
    n_perm = 999
    t = time.perf_counter()
    p_ours, _ = language_permutation_test(zero, "SYNT", "gap", n_permutations=n_perm, seed=0)
    ours = time.perf_counter() - t
    codes = sorted(set(zero.source))  # a square design: one role class, every language relabelled jointly
    lookup = {(s, g): v for s, g, v in zip(zero.source, zero.target, zero.SYNT)}
    draws = np.random.default_rng(0).permuted(np.tile(np.arange(len(codes)), (n_perm, 1)), axis=1)  # the same draws
    observed = abs(sps.pearsonr(zero.SYNT, zero.gap).statistic)
    t = time.perf_counter()
    hits = 0
    for perm in draws:
        relabel = dict(zip(codes, np.array(codes)[perm]))
        x = [lookup[(relabel[s], relabel[g])] for s, g in zip(zero.source, zero.target)]
        hits += abs(sps.pearsonr(x, zero.gap).statistic) >= observed - 1e-12
    loop = time.perf_counter() - t
    print(f"\npermutation test, {n_perm} permutations, {len(zero)} pairs: jaxlt vectorised {ours * 1e3:.1f} ms "
          f"vs scipy.pearsonr loop {loop * 1e3:.1f} ms ({loop / ours:.0f}x); p = {p_ours:.4f} vs {(hits + 1) / (n_perm + 1):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
