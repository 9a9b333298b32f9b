"""The grid runner's bookkeeping, on the numpy toy executor (fast): cells, resume, SIGKILL,
workers, bad inputs, export. The Trainer-based executor is tested in test_grid_trainer.py."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from jaxlt.grid import partition
from jaxlt.grid.cells import Cell, enumerate_cells
from jaxlt.grid.export import TIDY_COLUMNS, records_to_tidy
from jaxlt.grid.runner import GridRunner, MissingSourceCheckpointError
from jaxlt.grid.settings import GridSettings, config_hash
from jaxlt.grid.spec import GridSpec, GridSpecError
from jaxlt.grid.store import ResultsDirConfigError, ResultsStore
from jaxlt.grid.toy import ToyExecutor

SPEC = GridSpec(tasks=["toy_nli"], sources=["en", "de"], targets=["en", "de", "sw"], n_values=[10, 50],
                seeds=[0, 1], strategy="sequential", sampling="random", model="toy-logreg",
                fewshot_same_language=True)
SETTINGS = GridSettings(executor="toy", source_steps=200, fewshot_steps=50, batch_size=16)
GIN = ["--gin_file=runs/grid_toy.gin"]


class CountingToy(ToyExecutor):
    """Counts what the runner asks for."""

    def __init__(self, settings):
        super().__init__(settings)
        self.calls = {"train_source": 0, "load_source": 0, "train_fewshot": 0, "evaluate": 0}

    def train_source(self, *a):
        self.calls["train_source"] += 1
        return super().train_source(*a)

    def load_source(self, *a):
        self.calls["load_source"] += 1
        return super().load_source(*a)

    def train_fewshot(self, *a):
        self.calls["train_fewshot"] += 1
        return super().train_fewshot(*a)

    def evaluate(self, *a):
        self.calls["evaluate"] += 1
        return super().evaluate(*a)


def make_runner(tmp_path, spec=SPEC, settings=SETTINGS, **kw):
    ex = CountingToy(settings)
    return GridRunner(spec, settings, ResultsStore(str(tmp_path)), lambda: ex, progress=False, **kw), ex


def record_set(results_dir):
    recs = list(ResultsStore(str(results_dir)).iter_records())
    ids = [r["cell_id"] for r in recs]
    assert len(ids) == len(set(ids)), "duplicate cell records"
    return {r["cell_id"]: r["metrics"] for r in recs}


def run_cli(args, **kw):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "jaxlt.cli", "grid", *GIN, "--no_progress", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


# ---- cells and hashes
def test_cells_enumerated_with_zero_shot_and_paper_counts():
    cells = enumerate_cells(SPEC)
    # 2 sources x 2 seeds x 3 targets x (zero-shot + 2 n values)
    assert len(cells) == 2 * 2 * 3 * 3 == len(set(cells))
    assert sum(c.zero_shot for c in cells) == 12
    assert {c.strategy for c in cells if c.zero_shot} == {"zero_shot"}
    # The paper's grid: 8 n values x 4 seeds; zero-shot shares one fine-tune per (source, seed).
    paper = GridSpec(tasks=["x"], sources=["en"], targets=["de", "fr"], model="mt5-base")
    assert len(enumerate_cells(paper)) == 1 * 4 * 2 * (1 + 8)
    # by default no few-shot cells on the diagonal (source == target): zero-shot S_S only
    diag = GridSpec(tasks=["x"], sources=["en", "de"], targets=["en", "de"], n_values=[10], seeds=[0], model="m")
    cells = enumerate_cells(diag)
    assert sorted((c.source, c.target, c.n) for c in cells) == [
        ("de", "de", 0), ("de", "en", 0), ("de", "en", 10), ("en", "de", 0), ("en", "de", 10), ("en", "en", 0)]


def test_config_hash_is_stable_and_changes_with_config():
    h = config_hash(SETTINGS, "toy-logreg")
    assert h == config_hash(GridSettings(executor="toy", source_steps=200, fewshot_steps=50, batch_size=16),
                            "toy-logreg")
    assert h != config_hash(GridSettings(executor="toy", source_steps=201, fewshot_steps=50, batch_size=16),
                            "toy-logreg")
    assert h != config_hash(SETTINGS, "mt5-small")
    # Speed-only knobs do not change results, so they keep the hash.
    assert h == config_hash(GridSettings(executor="toy", source_steps=200, fewshot_steps=50, batch_size=16,
                                         eval_batch_size=99), "toy-logreg")
    cell = Cell("t", "en", 0, "de", 10, "sequential", "random")
    assert cell.cell_id(h) != cell.cell_id(config_hash(GridSettings(executor="toy", learning_rate=1e-3), "m"))


# ---- resume
def test_resume_skips_finished_cells_and_loads_each_source_once(tmp_path):
    runner, ex = make_runner(tmp_path)
    runner.run()
    assert ex.calls == {"train_source": 4, "load_source": 0, "train_fewshot": 24, "evaluate": 36}
    first = record_set(tmp_path)
    assert len(first) == 36
    runner2, ex2 = make_runner(tmp_path)
    runner2.run()
    assert ex2.calls == {"train_source": 0, "load_source": 0, "train_fewshot": 0, "evaluate": 0}
    # Remove some few-shot records: only those run again; each source checkpoint is loaded once.
    store = ResultsStore(str(tmp_path))
    lost = [c for c in enumerate_cells(SPEC) if c.n == 50]
    for c in lost:
        os.unlink(store.record_path(c))
    runner3, ex3 = make_runner(tmp_path)
    runner3.run()
    assert ex3.calls == {"train_source": 0, "load_source": 4, "train_fewshot": 12, "evaluate": 12}
    assert record_set(tmp_path) == first


def test_extending_the_grid_reuses_finished_cells(tmp_path):
    runner, _ = make_runner(tmp_path)
    runner.run()
    bigger = GridSpec(**{**SPEC.to_dict(), "targets": ["en", "de", "sw", "fr"]})
    runner2, ex2 = make_runner(tmp_path, spec=bigger)
    runner2.run()
    # only the new target's cells: 2 sources x 2 seeds x 3 cells, from the kept source checkpoints
    assert ex2.calls == {"train_source": 0, "load_source": 4, "train_fewshot": 8, "evaluate": 12}


# ---- SIGKILL
def test_sigkill_at_random_moments_then_restart_gives_the_uninterrupted_record_set(tmp_path):
    slow = ["--gin.grid_settings.toy_step_seconds=0.002"]
    ref_dir, dir_ = tmp_path / "ref", tmp_path / "killed"
    proc = run_cli([f"--results_dir={ref_dir}", *slow])
    t0 = time.time()
    out, err = proc.communicate(timeout=120)
    duration = time.time() - t0
    assert proc.returncode == 0, err[-3000:]
    reference = record_set(ref_dir)
    assert len(reference) == 36

    seed = random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)
    kills = []
    for _ in range(5):
        done = len(record_set(dir_)) if dir_.exists() else 0
        # a random moment within the work that is left (the reference run's duration, scaled)
        moment = rng.uniform(0.3, max(0.4, 0.7 * duration * (1 - done / 36)))
        proc = run_cli([f"--results_dir={dir_}", *slow])
        time.sleep(moment)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        kills.append((round(moment, 2), proc.returncode, len(record_set(dir_))))
    killed = [k for k in kills if k[1] == -signal.SIGKILL]
    assert len(killed) >= 3, f"seed {seed}: runs ended before their kill: {kills}"
    assert any(0 < n < 36 for _, _, n in killed), f"seed {seed}: no kill landed mid-grid: {kills}"
    proc = run_cli([f"--results_dir={dir_}", *slow])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert record_set(dir_) == reference, f"seed {seed}, kills {kills}"
    # every record file is complete JSON (iter_records raises otherwise) and nothing else is read as one
    files = [f for d, _, fs in os.walk(dir_ / "records") for f in fs if not f.startswith(".")]
    assert len(files) == 36


# ---- workers
@pytest.mark.parametrize("num_workers", [1, 2, 3, 5, 7])
def test_partitions_have_no_overlap_and_no_gap(tmp_path, num_workers):
    for stage in ("all", "source", "fewshot"):
        shares = []
        for w in range(num_workers):
            runner, _ = make_runner(tmp_path, worker_index=w, num_workers=num_workers, stage=stage)
            shares.append(runner.plan().my_cells)
        everything = [c for s in shares for c in s]
        expected = [c for c in enumerate_cells(SPEC)
                    if stage == "all" or (c.zero_shot if stage == "source" else not c.zero_shot)]
        assert len(everything) == len(set(everything)) == len(expected)
        assert set(everything) == set(expected)
        if stage != "fewshot":  # a source run belongs to one worker only
            owners = {}
            for w, share in enumerate(shares):
                for c in share:
                    assert owners.setdefault(c.source_run, w) == w


def test_two_workers_on_a_shared_results_dir(tmp_path):
    procs = [run_cli([f"--results_dir={tmp_path}", f"--worker_index={w}", "--num_workers=2"]) for w in (0, 1)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-3000:]
    recs = list(ResultsStore(str(tmp_path)).iter_records())
    by_worker = {w: {r["cell_id"] for r in recs if r["worker"] == f"{w}/2"} for w in (0, 1)}
    assert by_worker[0] and by_worker[1] and not by_worker[0] & by_worker[1]
    h = config_hash(SETTINGS, "toy-logreg", SPEC.tasks)
    assert by_worker[0] | by_worker[1] == {c.cell_id(h) for c in enumerate_cells(SPEC)}
    # the same metrics as one worker doing everything
    single = tmp_path.parent / (tmp_path.name + "-single")
    make_runner(single)[0].run()
    assert record_set(tmp_path) == record_set(single)


def test_worker_defaults_come_from_slurm_array_variables():
    assert partition.worker_from_env(environ={}) == (0, 1)
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0"}
    assert partition.worker_from_env(environ=env) == (3, 4)
    assert partition.worker_from_env(environ={**env, "SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1"}) == (3, 4)
    assert partition.worker_from_env(1, 2, environ=env) == (1, 2)  # flags win
    with pytest.raises(ValueError, match="not in"):
        partition.worker_from_env(environ={"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"})


def test_slurm_variables_reach_the_command(tmp_path):
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
    out = subprocess.run([sys.executable, "-m", "jaxlt.cli", "grid", *GIN, f"--results_dir={tmp_path}",
                          "--dry_run"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout[out.stdout.index("{"):])
    assert summary["worker"] == "1/2" and summary["cells_for_this_worker"] == 18


# ---- bad input fails before any training
def _assert_nothing_trained(ex):
    assert ex.calls["train_source"] == ex.calls["train_fewshot"] == 0


@pytest.mark.parametrize("change, message", [
    ({"targets": ["en", "de", "xx"]}, "unknown language code 'xx'"),
    ({"targets": ["en", "de", "fi"]}, "task 'toy_nli' has no target language(s) ['fi']"),
    ({"sources": ["en", "ja"]}, "has no source language(s) ['ja']"),
    ({"tasks": ["toy_nli", "no_such_task"], "sources": {"toy_nli": ["en"], "no_such_task": ["en"]}},
     "unknown task 'no_such_task'"),
])
def test_unknown_language_or_task_fails_before_training(tmp_path, change, message):
    spec = GridSpec(**{**SPEC.to_dict(), **change})
    ex = None
    with pytest.raises(GridSpecError) as e:
        runner, ex = make_runner(tmp_path / "r", spec=spec)
        runner.run()
    assert message in str(e.value)
    if ex is not None:
        _assert_nothing_trained(ex)
    assert not (tmp_path / "r").exists()


def test_bad_spec_values_are_named():
    with pytest.raises(GridSpecError, match="unknown n-shot strategy 'mixed'"):
        GridSpec(**{**SPEC.to_dict(), "strategy": "mixed"})
    with pytest.raises(GridSpecError, match="n_values must be positive"):
        GridSpec(**{**SPEC.to_dict(), "n_values": [0, 10]})
    with pytest.raises(GridSpecError, match="missing"):
        GridSpec(**{**SPEC.to_dict(), "targets": {"other": ["en"]}})


def test_results_dir_from_another_config_fails_before_training(tmp_path):
    make_runner(tmp_path)[0].run()
    other = GridSettings(executor="toy", source_steps=300, fewshot_steps=50, batch_size=16)
    runner, ex = make_runner(tmp_path, settings=other)
    with pytest.raises(ResultsDirConfigError, match=r"source_steps: 200 there, 300 here"):
        runner.run()
    _assert_nothing_trained(ex)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    runner, ex = make_runner(foreign)
    with pytest.raises(ResultsDirConfigError, match="not empty and has no grid.json"):
        runner.run()


def test_missing_source_checkpoint_fails_before_training(tmp_path):
    runner, ex = make_runner(tmp_path, stage="fewshot")
    with pytest.raises(MissingSourceCheckpointError, match=r"(?s)4 source checkpoint\(s\).*toy_nli.de.seed0"):
        runner.run()
    _assert_nothing_trained(ex)
    # source stage, then a checkpoint disappears: few-shot refuses to start, naming it
    make_runner(tmp_path, stage="source")[0].run()
    store = ResultsStore(str(tmp_path))
    run = enumerate_cells(SPEC)[0].source_run
    import shutil
    shutil.rmtree(store.checkpoint_dir(run))
    runner, ex = make_runner(tmp_path, stage="fewshot")
    with pytest.raises(MissingSourceCheckpointError, match="checkpoint .* is missing"):
        runner.run()
    _assert_nothing_trained(ex)


def test_cli_reports_bad_input_cleanly(tmp_path):
    p = run_cli([f"--results_dir={tmp_path}", "--gin.grid_spec.targets=['en','zz']"])
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "jaxlt grid: error:" in err and "'zz'" in err and "Traceback" not in err


# ---- export
def test_export_writes_the_tidy_table(tmp_path):
    make_runner(tmp_path)[0].run()
    csv, parquet = tmp_path / "out.csv", tmp_path / "out.parquet"
    out = subprocess.run([sys.executable, "-m", "jaxlt.cli", "results", "export", f"--results_dir={tmp_path}",
                          f"--csv={csv}", f"--parquet={parquet}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    df = pd.read_csv(csv, keep_default_na=False, na_values=[""])
    assert list(df.columns[:len(TIDY_COLUMNS)]) == TIDY_COLUMNS
    assert {"steps", "wall_seconds", "config_hash", "checkpoint", "origin"} <= set(df.columns)
    pq = pd.read_parquet(parquet)
    assert len(pq) == len(df) == 36
    # each row is the record it came from, field by field
    store = ResultsStore(str(tmp_path))
    for rec in store.iter_records():
        row = df[df.cell_id == rec["cell_id"]]
        assert len(row) == 1
        row = row.iloc[0]
        assert (row.task, row.source, row.target, row.n_target, row.seed, row.strategy) == (
            rec["task"], rec["source"], rec["target"], rec["n"], rec["seed"], rec["strategy"])
        assert row.metric == "accuracy" and row.score == rec["metrics"]["accuracy"]
        assert pd.isna(row.sampling) if rec["n"] == 0 else row.sampling == "random"
    assert set(df.strategy) == {"zero_shot", "sequential"}
    assert df.score.between(0, 100).all()


def test_export_refuses_non_numeric_metrics():
    rec = {"cell_id": "h/x", "task": "t", "model": "m", "source": "en", "target": "de", "n": 0, "seed": 0,
           "strategy": "zero_shot", "sampling": "", "metrics": {"accuracy": "high"}, "config_hash": "h"}
    with pytest.raises(ValueError, match="non-numeric metric accuracy='high'"):
        records_to_tidy([rec])


def test_joint_cells_train_from_the_pretrained_model_and_need_no_source_checkpoint(tmp_path):
    joint = GridSpec(**{**SPEC.to_dict(), "strategy": "joint", "fewshot_same_language": False})
    runner, ex = make_runner(tmp_path, spec=joint, stage="fewshot")
    plan = runner.run()  # no source stage first: joint cells start from the pre-trained model
    assert len(plan.todo) == 2 * 2 * 2 * 2 and ex.calls["train_source"] == ex.calls["load_source"] == 0
    recs = list(ResultsStore(str(tmp_path)).iter_records())
    assert {r["strategy"] for r in recs} == {"joint"} and all(r["checkpoint"] is None for r in recs)
    assert all(r["timings"]["steps"] == SETTINGS.source_steps for r in recs)


def test_results_commands_refuse_a_directory_that_is_not_a_results_store(tmp_path):
    for args in (["summary"], ["export", "--csv", str(tmp_path / "o.csv")]):
        out = subprocess.run([sys.executable, "-m", "jaxlt.cli", "results", *args, f"--results_dir={tmp_path}"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and "not a grid results directory" in out.stderr
    assert not (tmp_path / "o.csv").exists()
