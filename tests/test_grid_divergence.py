"""Divergence in the grid (toy executor, fast): a diverged source run or cell is recorded with
status "diverged" (step, reason) for each of its cells, the worker goes on, summaries and the
export count them, reruns do not redo them, and the few-shot stage honours a diverged source."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from jaxlt.errors import DivergenceError
from jaxlt.grid.cells import cells_needing_source_checkpoint, enumerate_cells
from jaxlt.grid.runner import GridRunner
from jaxlt.grid.settings import GridSettings, config_hash
from jaxlt.grid.spec import GridSpec
from jaxlt.grid.store import ResultsStore
from jaxlt.grid.toy import ToyExecutor

SPEC = GridSpec(tasks=["toy_nli"], sources=["en", "de"], targets=["en", "de", "sw"], n_values=[10, 50],
                seeds=[0], strategy="sequential", sampling="random", model="toy-logreg",
                fewshot_same_language=True)
SETTINGS = GridSettings(executor="toy", source_steps=100, fewshot_steps=20, batch_size=16)


class DivergingToy(ToyExecutor):
    """The toy executor with a learning rate of 1e30 for some source languages / n values."""

    def __init__(self, settings, sources=(), n_values=()):
        super().__init__(settings)
        self.bad_sources, self.bad_n = set(sources), set(n_values)
        self.source_lrs = []

    def train_source(self, run, checkpoint_dir, learning_rate=None):
        self.source_lrs.append((run.source, learning_rate))
        if run.source in self.bad_sources and learning_rate is None:
            learning_rate = 1e30
        return super().train_source(run, checkpoint_dir, learning_rate)

    def train_fewshot(self, cell, source_model):
        if cell.n in self.bad_n:
            return self._sgd(source_model, *self._nshot(cell), 20, (cell.key, "fewshot"), learning_rate=1e30)
        return super().train_fewshot(cell, source_model)


def records(root):
    return {r["cell_id"].split("/", 1)[1]: r for r in ResultsStore(str(root)).iter_records()}


def test_the_toy_diverges_only_with_an_absurd_learning_rate():
    toy = ToyExecutor(SETTINGS)
    run = enumerate_cells(SPEC)[0].source_run
    x = np.random.default_rng(0).normal(size=(64, 16))
    y = (x[:, 0] > 0).astype(float)
    w, _ = toy._sgd(np.zeros(16), x, y, 100, (run.key,))
    assert np.isfinite(w).all()
    with pytest.raises(DivergenceError) as e:
        toy._sgd(np.zeros(16), x, y, 100, (run.key,), learning_rate=1e30)
    assert e.value.step == 2 and "loss" in e.value.reason  # step 1 jumps to ~1e32, step 2 overflows


def test_a_diverged_source_run_records_its_cells_and_the_worker_goes_on(tmp_path):
    ex = DivergingToy(SETTINGS, sources=["de"])
    runner = GridRunner(SPEC, SETTINGS, ResultsStore(str(tmp_path)), lambda: ex, progress=False)
    runner.run()
    recs = records(tmp_path)
    assert len(recs) == len(enumerate_cells(SPEC)) == 2 * 3 * 3
    for key, r in recs.items():
        if r["source"] == "de":
            assert r["status"] == "diverged" and r["metrics"] == {}, key
            assert r["divergence"]["stage"] == "source" and r["divergence"]["step"] == 2
            assert "loss" in r["divergence"]["reason"]
        else:
            assert r["status"] == "ok" and 0 <= r["metrics"]["accuracy"] <= 100, key
    assert runner.counts == {"done": 9, "skipped": 0, "diverged": 9, "failed": 0}
    assert "9 cells done, 0 skipped (finished or taken by another worker), 9 diverged, 0 failed" \
        in runner.summary_line()
    marker = json.load(open(ResultsStore(str(tmp_path)).source_marker_path(enumerate_cells(SPEC)[0].source_run)))
    assert marker["status"] == "diverged" and marker["step"] == 2
    # A rerun treats diverged cells as finished: nothing is trained again.
    ex2 = DivergingToy(SETTINGS, sources=["de"])
    rerun = GridRunner(SPEC, SETTINGS, ResultsStore(str(tmp_path)), lambda: ex2, progress=False)
    rerun.run()
    assert ex2.source_lrs == [] and rerun.counts["skipped"] == 18 and records(tmp_path) == recs


def test_a_diverged_fewshot_cell_is_recorded_alone(tmp_path):
    ex = DivergingToy(SETTINGS, n_values=[50])
    GridRunner(SPEC, SETTINGS, ResultsStore(str(tmp_path)), lambda: ex, progress=False).run()
    recs = records(tmp_path)
    bad = {k for k, r in recs.items() if r["status"] == "diverged"}
    assert bad == {k for k, r in recs.items() if r["n"] == 50} and len(bad) == 6
    assert all(recs[k]["divergence"]["stage"] == "fewshot" for k in bad)
    assert all(r["status"] == "ok" for k, r in recs.items() if k not in bad)


def test_fewshot_stage_after_a_diverged_source_stage(tmp_path):
    ex = DivergingToy(SETTINGS, sources=["de"])
    GridRunner(SPEC, SETTINGS, ResultsStore(str(tmp_path)), lambda: ex, progress=False, stage="source").run()
    # the few-shot stage does not ask for the diverged source's checkpoint; its cells are diverged too
    runner = GridRunner(SPEC, SETTINGS, ResultsStore(str(tmp_path)), lambda: ToyExecutor(SETTINGS),
                        progress=False, stage="fewshot")
    runner.run()
    recs = records(tmp_path)
    assert len(recs) == 18
    de = [r for r in recs.values() if r["source"] == "de"]
    assert len(de) == 9 and all(r["status"] == "diverged" for r in de)
    assert runner.counts["diverged"] == 6


def test_joint_cells_do_not_need_a_diverged_source(tmp_path):
    joint = GridSpec(**{**SPEC.to_dict(), "strategy": "joint"})
    ex = DivergingToy(SETTINGS, sources=["de"])
    GridRunner(joint, SETTINGS, ResultsStore(str(tmp_path)), lambda: ex, progress=False).run()
    recs = records(tmp_path)
    de = [r for r in recs.values() if r["source"] == "de"]
    assert {(r["strategy"], r["status"]) for r in de} == {("zero_shot", "diverged"), ("joint", "ok")}


def _settings_with_retries(retries, factor):
    return GridSettings(executor="toy", source_steps=100, fewshot_steps=20, batch_size=16,
                        divergence_retries=retries, retry_lr_factor=factor)


def test_a_retry_at_a_lower_learning_rate_rescues_a_source_run(tmp_path):
    settings = _settings_with_retries(2, 1e-29)
    assert config_hash(settings, "toy-logreg") != config_hash(SETTINGS, "toy-logreg")

    class TooHigh(ToyExecutor):  # the base learning rate is 1e30 for every source; retries use theirs
        lrs = []

        def train_source(self, run, checkpoint_dir, learning_rate=None):
            self.lrs.append(learning_rate)
            return super().train_source(run, checkpoint_dir, 1e30 if learning_rate is None else learning_rate)

    ex = TooHigh(settings)
    GridRunner(SPEC, settings, ResultsStore(str(tmp_path)), lambda: ex, progress=False).run()
    recs = records(tmp_path)
    assert all(r["status"] == "ok" for r in recs.values())
    assert ex.lrs == [None, pytest.approx(settings.learning_rate * 1e-29)] * 2
    uses_source = {c.key for c in cells_needing_source_checkpoint(enumerate_cells(SPEC))}
    assert all(r["source_learning_rate"] == pytest.approx(settings.learning_rate * 1e-29)
               for k, r in recs.items() if k in uses_source)


def test_cli_with_learning_rate_1e30_exits_0_and_summary_and_export_count_diverged(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-m", "jaxlt.cli", "grid", "--gin_file=runs/grid_toy.gin",
                          f"--results_dir={tmp_path}", "--gin.grid_settings.learning_rate=1e30", "--no_progress"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    recs = list(ResultsStore(str(tmp_path)).iter_records())
    assert len(recs) == 36 and {r["status"] for r in recs} == {"diverged"}
    summary = subprocess.run([sys.executable, "-m", "jaxlt.cli", "results", "summary", f"--results_dir={tmp_path}"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert summary.returncode == 0, summary.stderr
    counts = json.loads(summary.stdout)
    assert counts["by_status"] == {"ok": 0, "diverged": 36} and len(counts["diverged"]) == 36
    csv = tmp_path / "out.csv"
    exp = subprocess.run([sys.executable, "-m", "jaxlt.cli", "results", "export", f"--results_dir={tmp_path}",
                          f"--csv={csv}"], capture_output=True, text=True, env=env, timeout=60)
    assert exp.returncode == 0 and "0 ok, 36 diverged" in exp.stdout, exp.stderr
    df = pd.read_csv(csv)
    assert len(df) == 36 and set(df.status) == {"diverged"} and df.score.isna().all()
    assert (df.diverged_step == 2).all()


def test_export_rows_for_diverged_cells_take_the_task_metrics():
    from jaxlt.grid.export import records_to_tidy

    base = {"task": "t", "model": "m", "source": "en", "target": "de", "n": 0, "seed": 0, "strategy": "zero_shot",
            "sampling": "", "config_hash": "h"}
    ok = {**base, "cell_id": "h/a", "status": "ok", "metrics": {"f1": 50.0, "exact_match": 40.0}}
    old = {**base, "cell_id": "h/c", "target": "fr", "metrics": {"f1": 10.0, "exact_match": 5.0}}  # no status
    bad = {**base, "cell_id": "h/b", "target": "sw", "status": "diverged", "metrics": {},
           "divergence": {"stage": "source", "step": 7, "reason": "loss is nan"}}
    df = records_to_tidy([ok, old, bad])
    rows = df[df.cell_id == "h/b"]
    assert sorted(rows.metric) == ["exact_match", "f1"] and rows.score.isna().all()
    assert set(rows.status) == {"diverged"} and set(rows.diverged_step) == {7}
    assert set(df[df.cell_id != "h/b"].status) == {"ok"}
    with pytest.raises(ValueError, match="unknown status 'weird'"):
        records_to_tidy([{**ok, "status": "weird"}])


@pytest.mark.slow
def test_tiny_real_grid_with_learning_rate_1e30_finishes_with_diverged_records(tmp_path):
    """The real Trainer executor: both source runs diverge at step 2 (Adam at 1e30 overflows the logits),
    nothing is checkpointed past step 0, the command exits 0 and every cell is recorded as diverged."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run([sys.executable, "-m", "jaxlt.cli", "grid", "--gin_file=runs/grid_tiny.gin",
                          f"--results_dir={tmp_path}", "--gin.OptimizerConfig.learning_rate=1e30",
                          "--gin.grid_spec.targets=['en','sw']", "--no_progress"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    for noise in ("cuInit", "cudart", "InitializeLog", "system_path_file_exists"):  # quiet start-up
        assert noise not in out.stderr, out.stderr[-3000:]
    recs = list(ResultsStore(str(tmp_path)).iter_records())
    assert len(recs) == 2 * 2 + 3 * 2 and {r["status"] for r in recs} == {"diverged"}
    assert {r["divergence"]["stage"] for r in recs} == {"source"}
    assert {r["divergence"]["step"] for r in recs} == {2}
    assert "0 cells done" in out.stderr and "10 diverged" in out.stderr
    # no step of a diverged run was saved (the run checkpoints only at its end)
    for source in ("en", "de"):
        ckpt = tmp_path / "checkpoints" / "xnli" / source / "seed0"
        assert not [p for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.exists() else True


def test_results_forget_diverged_lets_a_rerun_compute_them(tmp_path):
    GridRunner(SPEC, SETTINGS, ResultsStore(str(tmp_path)), lambda: DivergingToy(SETTINGS, sources=["de"]),
               progress=False).run()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    forget = [sys.executable, "-m", "jaxlt.cli", "results", "forget", "--status=diverged", f"--results_dir={tmp_path}"]
    dry = subprocess.run(forget + ["--dry_run"], capture_output=True, text=True, env=env, timeout=60)
    assert dry.returncode == 0 and "would delete 9 diverged record(s) and 1 source marker(s)" in dry.stdout
    assert sum(r["status"] == "diverged" for r in records(tmp_path).values()) == 9
    out = subprocess.run(forget, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and "deleted 9 diverged record(s) and 1 source marker(s)" in out.stdout, out.stderr
    assert len(records(tmp_path)) == 9
    # e.g. after a fix (here: an executor that no longer diverges), the rerun computes exactly those cells
    ex = ToyExecutor(SETTINGS)
    runner = GridRunner(SPEC, SETTINGS, ResultsStore(str(tmp_path)), lambda: ex, progress=False)
    runner.run()
    assert runner.counts["done"] == 9 and runner.counts["skipped"] == 9
    assert {r["status"] for r in records(tmp_path).values()} == {"ok"} and len(records(tmp_path)) == 18
