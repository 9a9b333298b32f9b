"""Kill-and-resume with the real Trainer executor (Flax mT5 tiny, bundled tiny XNLI data).

A reference run goes through uninterrupted. A second results directory is SIGKILLed three
times, each at a moment observed on the filesystem: during source training (its lease is held,
no marker yet), during the source checkpoint write (orbax's temporary step directory exists) and
during the record writes (the first record or its temporary file exists). A last run finishes
the grid. The record set must equal the reference's: same cells, once each, same metrics and
prediction digests; no temporary file is read as a record and no lease is left behind.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

from jaxlt.grid.store import ResultsStore

pytestmark = pytest.mark.slow

ARGS = ["--gin_file=runs/grid_tiny.gin", "--gin.grid_spec.sources=['en']", "--gin.grid_spec.targets=['en','sw']",
        "--gin.grid_spec.n_values=[8]", "--gin.grid_settings.source_steps=30", "--gin.grid_settings.fewshot_steps=5",
        "--no_progress"]
CELLS = 3  # en-en and en-sw zero-shot, en-sw n=8


def start(results_dir):
    # One CPU device (not the 8 fake ones of the in-process tests) and XLA -O0: each of the five
    # worker starts costs ~30 s of CPU instead of ~45 s. Every run uses the same settings.
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "XLA_FLAGS": "--xla_backend_optimization_level=0"}
    return subprocess.Popen([sys.executable, "-m", "jaxlt.cli", "grid", *ARGS, f"--results_dir={results_dir}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def run_and_kill_when(results_dir, moment, timeout=400):
    """Starts a worker and SIGKILLs it as soon as `moment()` is true; returns what happened."""
    proc = start(results_dir)
    t0 = time.time()
    while proc.poll() is None and time.time() - t0 < timeout:
        if moment():
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.003)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def records(results_dir):
    recs = list(ResultsStore(str(results_dir)).iter_records())
    ids = [r["cell_id"] for r in recs]
    assert len(ids) == len(set(ids))
    return {r["cell_id"]: (r["status"], r["metrics"], r["eval_details"]["predictions_sha256"]) for r in recs}


def test_sigkills_during_training_checkpointing_and_recording_then_resume(tmp_path):
    ref_dir, dir_ = tmp_path / "ref", tmp_path / "killed"
    proc = start(ref_dir)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    reference = records(ref_dir)
    assert len(reference) == CELLS and {s for s, _, _ in reference.values()} == {"ok"}

    source_lease = dir_ / "leases" / "sources" / "xnli.en.seed0.lease"
    marker = dir_ / "sources" / "xnli.en.seed0.json"
    ckpt = dir_ / "checkpoints" / "xnli" / "en" / "seed0"
    record_dir = dir_ / "records" / "xnli"
    seen = {}

    def training():  # the source run is leased and unfinished, and has been for a second
        if source_lease.exists() and not marker.exists():
            seen.setdefault("lease", time.time())
            return time.time() - seen["lease"] > 1.0
        return False

    def checkpoint_write():
        return ckpt.is_dir() and any("tmp" in name for name in os.listdir(ckpt))

    def record_write():
        return record_dir.is_dir() and len(os.listdir(record_dir)) > 0

    kills = []
    for name, moment in (("training", training), ("checkpoint write", checkpoint_write),
                         ("record write", record_write)):
        rc, err = run_and_kill_when(dir_, moment)
        kills.append((name, rc))
        assert rc == -signal.SIGKILL, f"{name}: the worker ended before the moment ({rc}): {err[-2000:]}"
        if name == "training":
            assert not marker.exists()
    assert len(records(dir_)) < CELLS
    proc = start(dir_)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert records(dir_) == reference, kills
    files = [f for d, _, fs in os.walk(dir_ / "records") for f in fs if not f.startswith(".")]
    assert len(files) == CELLS  # a killed write's temp file (".NAME.*.tmp") is never read as a record
    assert not [f for d, _, fs in os.walk(dir_ / "leases") for f in fs]
