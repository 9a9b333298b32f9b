"""Leases: exclusive work per source run and cell, stale takeover, duplicate and dynamic workers.

The multi-process tests run the toy executor through `jaxlt grid` with a simulated step time so
that the processes really overlap."""

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time

import pytest

from jaxlt.grid import lease
from jaxlt.grid.cells import enumerate_cells
from jaxlt.grid.runner import GridRunner
from jaxlt.grid.settings import GridSettings, config_hash
from jaxlt.grid.spec import GridSpec
from jaxlt.grid.store import ResultsStore
from jaxlt.grid.toy import ToyExecutor

GIN = ["--gin_file=runs/grid_toy.gin"]
TOY_CELLS = 36  # runs/grid_toy.gin: 2 sources x 2 seeds x 3 targets x (zero-shot + 2 n)


def _write_lease(path, **info):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"token": "theirs", **info}, f)


# ---- the lease file itself
def test_exclusive_while_held_free_after_release(tmp_path):
    path = str(tmp_path / "a.lease")
    first = lease.try_acquire(path, "a")
    assert first is not None and lease.try_acquire(path, "a") is None
    info = lease.read(path)
    assert info["host"] == socket.gethostname() and info["pid"] == os.getpid() and info["started"]
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask())
    first.release()
    assert not os.path.exists(path)
    second = lease.try_acquire(path, "a")
    assert second is not None
    second.release()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_heartbeat_keeps_a_lease_live(tmp_path):
    path = str(tmp_path / "b.lease")
    held = lease.try_acquire(path, "b", stale_after_s=0.5, heartbeat_s=0.05)
    time.sleep(1.0)
    assert lease.read(path)["age_s"] < 0.5 and lease.is_live(path, 0.5)
    held.release()


def test_stale_lease_of_another_host_is_taken_over_and_logged(tmp_path, caplog):
    path = str(tmp_path / "c.lease")
    _write_lease(path, host="elsewhere", pid=1, work="cells/x")
    assert lease.try_acquire(path, "x", stale_after_s=60) is None  # fresh heartbeat: live
    old = time.time() - 120
    os.utime(path, (old, old))
    with caplog.at_level(logging.WARNING, logger="jaxlt.grid.lease"):
        taken = lease.try_acquire(path, "x", stale_after_s=60)
    assert taken is not None and lease.read(path)["token"] == taken.token
    assert "took over the stale lease" in caplog.text and "elsewhere" in caplog.text
    taken.release()


def test_lease_of_a_dead_process_on_this_host_is_stale_at_once(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    path = str(tmp_path / "d.lease")
    _write_lease(path, host=socket.gethostname(), pid=proc.pid)
    taken = lease.try_acquire(path, "d", stale_after_s=3600)
    assert taken is not None
    taken.release()


def test_a_holder_learns_that_its_lease_was_taken(tmp_path):
    path = str(tmp_path / "e.lease")
    held = lease.try_acquire(path, "e", stale_after_s=1, heartbeat_s=0.05)
    _write_lease(path, host="elsewhere", pid=1)  # another process took it over
    time.sleep(0.3)
    assert held.lost
    held.release()
    assert lease.read(path)["token"] == "theirs"  # release never deletes another's lease


def test_takeover_never_moves_a_fresh_lease(tmp_path):
    """Two processes judge the same lease stale; the second must not evict the first's new lease."""
    path = str(tmp_path / "f.lease")
    _write_lease(path, host="elsewhere", pid=1)
    stale_view = {**lease.read(path), "token": "theirs"}
    winner = lease.try_acquire(path, "f", stale_after_s=-1)  # everything counts as stale
    assert winner is not None
    assert lease._take_over(path, stale_view) is False  # it finds the winner's token and puts it back
    assert lease.read(path)["token"] == winner.token
    winner.release()


# ---- the runner
SPEC = GridSpec(tasks=["toy_nli"], sources=["en", "de"], targets=["en", "sw"], n_values=[10], seeds=[0],
                strategy="sequential", sampling="random", model="toy-logreg")
SETTINGS = GridSettings(executor="toy", source_steps=50, fewshot_steps=10, batch_size=16)


def test_a_checkpoint_directory_is_not_deleted_while_a_live_lease_holds_it(tmp_path):
    store = ResultsStore(str(tmp_path))
    runner = GridRunner(SPEC, SETTINGS, store, lambda: ToyExecutor(SETTINGS), progress=False, poll_s=0.05)
    store.check_or_write_manifest(runner.hash, runner.description())  # a killed earlier run's directory
    run = enumerate_cells(SPEC)[0].source_run
    ckpt = store.checkpoint_dir(run)
    os.makedirs(ckpt)
    open(os.path.join(ckpt, "partial"), "w").close()
    source_lease = os.path.join(str(tmp_path), "leases", "sources", run.key + lease.SUFFIX)
    _write_lease(source_lease, host="elsewhere", pid=1)
    worker = threading.Thread(target=runner.run)
    worker.start()
    time.sleep(1.0)  # the other source run finishes; this one waits for its (live) holder
    assert worker.is_alive() and os.path.exists(os.path.join(ckpt, "partial"))
    done = {r["source"] for r in store.iter_records()}
    assert done == {"en"}
    os.unlink(source_lease)  # the holder goes away without finishing: now it is ours to redo
    worker.join(30)
    assert not worker.is_alive()
    assert not os.path.exists(os.path.join(ckpt, "partial")) and len(list(store.iter_records())) == 7


def run_cli(args):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-m", "jaxlt.cli", "grid", *GIN, "--no_progress", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _done_counts(stderr: str) -> tuple[int, int]:
    m = re.search(r"(\d+) cells done, (\d+) skipped", stderr)
    assert m, stderr[-2000:]
    return int(m.group(1)), int(m.group(2))


def _check_once(results_dir):
    recs = list(ResultsStore(str(results_dir)).iter_records())
    ids = [r["cell_id"] for r in recs]
    h = config_hash(GridSettings(executor="toy", source_steps=200, fewshot_steps=50, batch_size=16), "toy-logreg",
                    ["toy_nli"])
    assert len(ids) == len(set(ids)) == TOY_CELLS
    return recs, h


def test_two_processes_with_the_same_worker_index_compute_every_cell_once(tmp_path):
    slow = "--gin.grid_settings.toy_step_seconds=0.005"  # ~12 s of work: the processes overlap
    procs = [run_cli([f"--results_dir={tmp_path}", "--worker_index=0", "--num_workers=1", slow]) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    done = [_done_counts(err)[0] for _, err in outs]
    assert sum(done) == TOY_CELLS and min(done) > 0, done  # both worked, no cell twice
    recs, _ = _check_once(tmp_path)
    assert len({r["written_by"] for r in recs}) == 2
    assert not os.listdir(tmp_path / "leases" / "cells") and not os.listdir(tmp_path / "leases" / "sources")
    # the same numbers as one process alone
    single = tmp_path.parent / (tmp_path.name + "-single")
    p = run_cli([f"--results_dir={single}"])
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    metrics = lambda d: {r["cell_id"]: r["metrics"] for r in ResultsStore(str(d)).iter_records()}  # noqa: E731
    assert metrics(tmp_path) == metrics(single)


def test_three_dynamic_workers_do_every_cell_exactly_once(tmp_path):
    slow = "--gin.grid_settings.toy_step_seconds=0.005"  # ~12 s of work: the processes overlap
    procs = [run_cli([f"--results_dir={tmp_path}", "--schedule=dynamic", slow]) for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    done = [_done_counts(err)[0] for _, err in outs]
    assert sum(done) == TOY_CELLS and sum(d > 0 for d in done) >= 2, done
    recs, _ = _check_once(tmp_path)
    markers = os.listdir(tmp_path / "sources")
    assert len(markers) == 4  # each source run trained once (its marker written once)


def test_dynamic_needs_leases():
    from jaxlt.errors import ConfigError

    with pytest.raises(ConfigError, match="dynamic needs leases"):
        GridRunner(SPEC, SETTINGS, ResultsStore("/nonexistent"), lambda: None, schedule="dynamic", writer=False)


def test_results_summary_lists_work_in_progress(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.check_or_write_manifest("h", {"model": "m", "settings": {}})
    _write_lease(str(tmp_path / "leases" / "cells" / ("t.en-de.n0.seed0.zero_shot" + lease.SUFFIX)),
                 host="node7", pid=4242)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lease(str(tmp_path / "leases" / "sources" / ("t.en.seed0" + lease.SUFFIX)),
                 host=socket.gethostname(), pid=dead.pid)
    out = subprocess.run([sys.executable, "-m", "jaxlt.cli", "results", "summary", f"--results_dir={tmp_path}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    progress = json.loads(out.stdout)["in_progress"]
    assert len(progress["live"]) == 1 and progress["live"][0].startswith("cells/t.en-de.n0.seed0.zero_shot (node7:4242")
    assert len(progress["stale"]) == 1 and progress["stale"][0].startswith("sources/t.en.seed0")


def test_a_worker_skips_a_live_cell_lease_and_takes_over_a_stale_one(tmp_path):
    """Through the command: a cell leased by a live worker elsewhere is left to it; once that lease
    has had no heartbeat for --lease_timeout seconds, a rerun takes it over (logged) and runs it."""
    p = run_cli([f"--results_dir={tmp_path}", "--gin.grid_spec.seeds=[1]"])  # the seed-1 half, first
    p.communicate(timeout=300)
    assert p.returncode == 0
    cell_lease = tmp_path / "leases" / "cells" / ("toy_nli.de-en.n10.seed0.sequential-random" + lease.SUFFIX)
    _write_lease(str(cell_lease), host="node7", pid=4242, work="cells/x")
    p = run_cli([f"--results_dir={tmp_path}", "--lease_timeout=60"])
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    assert "17 cells done, 19 skipped" in err.strip().splitlines()[-1]
    assert cell_lease.exists()
    old = time.time() - 120
    os.utime(cell_lease, (old, old))
    p = run_cli([f"--results_dir={tmp_path}", "--lease_timeout=60"])
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    assert "took over the stale lease" in err and "node7" in err
    assert "1 cells done" in err.strip().splitlines()[-1]
    assert len(list(ResultsStore(str(tmp_path)).iter_records())) == TOY_CELLS and not cell_lease.exists()
