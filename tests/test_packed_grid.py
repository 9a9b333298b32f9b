"""Packed few-shot cells in the grid (grid_settings.pack_cells): the records of a packed
few-shot stage equal the one-cell-at-a-time records (same metrics, same predictions)."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

from jaxlt.grid.cells import Cell
from jaxlt.grid.packing import bytes_per_member, default_pack_size, next_pack
from jaxlt.grid.runner import GridRunner
from jaxlt.grid.settings import GridSettings, config_hash
from jaxlt.grid.spec import GridSpec
from jaxlt.grid.store import ResultsStore

TINY_DATA = os.path.join(os.path.dirname(__file__), "..", "jaxlt", "resources", "tiny_data")
SPEC = GridSpec(tasks=["xnli"], sources=["de"], targets=["sw"], n_values=[4, 8], seeds=[0, 1],
                strategy="sequential", model="mt5-tiny", zero_shot=False)
SETTINGS = GridSettings(executor="trainer", pretrained="init:mt5_tiny", data_dir=os.path.abspath(TINY_DATA),
                        source_size=-1, source_steps=10, fewshot_steps=5, learning_rate=1e-3, batch_size=8,
                        input_length=64, target_length=8, eval_batch_size=16, max_decode_length=8)
FAST = {"xla_backend_optimization_level": 0}


def test_next_pack_groups_by_step_count_in_runner_order():
    seq = [Cell("xnli", s, 0, "sw", n, "sequential", "random") for s in ("de", "en") for n in (4, 8)]
    joint = Cell("xnli", "de", 0, "ru", 4, "joint", "random")
    steps = lambda c: 5 if c.strategy == "sequential" else 10  # noqa: E731
    pending = [seq[0], joint, *seq[1:]]
    assert next_pack(seq[0], pending, 3, steps) == seq[:3]
    assert next_pack(joint, pending, 3, steps) == [joint]
    assert next_pack(seq[0], pending, 8, steps, can_pack=lambda c: c.source == "de") == seq[:2]


def test_pack_cells_is_a_speed_setting():
    assert config_hash(SETTINGS, "m") == config_hash(dataclasses.replace(SETTINGS, pack_cells=8), "m")
    with pytest.raises(ValueError, match="pack_cells"):
        GridSettings(pack_cells=-1)


@pytest.fixture(scope="module")
def trainer():
    from jaxlt.grid.executor import load_pretrained
    from jaxlt.train.engine import Trainer
    from jaxlt.train.optimizer import make_optimizer

    config = load_pretrained(SETTINGS)[0]
    return Trainer(config, batch_size=SETTINGS.batch_size, feature_lengths={"inputs": 64, "targets": 8},
                   optimizer=make_optimizer(learning_rate=SETTINGS.learning_rate), compiler_options=FAST)


def records(root):
    return {r["cell_id"].split("/", 1)[1]: r for r in ResultsStore(str(root)).iter_records()}


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory, trainer):
    from jaxlt.grid.executor import TrainerExecutor

    one = tmp_path_factory.mktemp("one")
    GridRunner(SPEC, SETTINGS, ResultsStore(str(one)), lambda: TrainerExecutor(SETTINGS, trainer=trainer),
               progress=False).run()
    return one


# The CPU default, and the accelerator path (slow: a second packed compile on CPU).
@pytest.mark.parametrize("batching", ["loop", pytest.param("vmap", marks=pytest.mark.slow)])
def test_packed_fewshot_stage_reproduces_the_unpacked_records(tmp_path, trainer, unpacked, batching):
    from jaxlt.grid.executor import TrainerExecutor

    expected = {k: r for k, r in records(unpacked).items() if r["n"] > 0}
    assert len(expected) == 4

    packed_dir = tmp_path / "packed"
    shutil.copytree(unpacked, packed_dir)
    store = ResultsStore(str(packed_dir))
    for key, r in expected.items():
        os.unlink(store.record_path(Cell(**{f: r[f] for f in ("task", "source", "seed", "target", "n",
                                                               "strategy", "sampling")})))
    # 3 per pack: the first pack holds cells of two source models (seeds 0 and 1); the second one
    # cell and two empty slots
    settings = dataclasses.replace(SETTINGS, pack_cells=3)
    executor = TrainerExecutor(settings, trainer=trainer)
    executor.packer.batching = batching
    loads = []
    load_source = executor.load_source
    executor.load_source = lambda run, ckpt: loads.append(run.key) or load_source(run, ckpt)
    GridRunner(SPEC, settings, store, lambda: executor, progress=False, stage="fewshot").run()
    # seed 1's model, loaded for the first pack, is kept for its own group: each checkpoint read once
    assert sorted(loads) == sorted(set(loads)) and len(loads) == 2
    got = {k: r for k, r in records(packed_dir).items() if r["n"] > 0}
    assert sorted(got) == sorted(expected)
    assert executor.packer.packed_trainer.pack_size == 3
    assert executor.packer.packed_trainer.batching == batching
    for key in expected:
        assert got[key]["metrics"] == expected[key]["metrics"], key
        assert got[key]["eval_details"]["predictions_sha256"] == expected[key]["eval_details"]["predictions_sha256"]
        assert got[key]["eval_details"]["packed_cells"] == (1 if key.endswith(".n8.seed1.sequential-random") else 3)
        assert got[key]["timings"]["steps"] == SETTINGS.fewshot_steps


def test_a_cell_another_worker_holds_is_not_packed(tmp_path, trainer, unpacked):
    """--schedule dynamic: a pending cell leased by another live process since prepare() stays out
    of every pack (packing it would train it twice); the other cells pack without it."""
    from jaxlt.grid import lease
    from jaxlt.grid.executor import TrainerExecutor

    expected = {k: r for k, r in records(unpacked).items() if r["n"] > 0}
    shutil.copytree(unpacked, tmp_path / "r")
    store = ResultsStore(str(tmp_path / "r"))
    cells = [Cell(**{f: r[f] for f in ("task", "source", "seed", "target", "n", "strategy", "sampling")})
             for r in sorted(expected.values(), key=lambda r: r["cell_id"])]
    for c in cells:
        os.unlink(store.record_path(c))
    held = cells[1]
    settings = dataclasses.replace(SETTINGS, pack_cells=3)
    executor = TrainerExecutor(settings, trainer=trainer)
    runner = GridRunner(SPEC, settings, store, lambda: executor, progress=False, stage="fewshot",
                        schedule="dynamic", poll_s=0.01)
    prepare = executor.prepare

    def prepare_then_lose_one(todo):  # another worker takes a cell right after this one planned
        prepare(todo)
        runner.other = lease.try_acquire(os.path.join(store.root, "leases", "cells", held.key + lease.SUFFIX),
                                         "cells/" + held.key)

    executor.prepare = prepare_then_lose_one
    runner.run()
    runner.other.release()
    got = {k: r for k, r in records(tmp_path / "r").items() if r["n"] > 0}
    assert len(got) == 3 and held.key not in got
    assert all(r["eval_details"]["packed_cells"] == 3 for r in got.values())  # one pack, without `held`
    for key, r in got.items():
        assert r["metrics"] == expected[key]["metrics"], key


@pytest.mark.slow  # a second whole grid run
def test_packed_cells_in_a_whole_grid_run_train_later_sources_early(tmp_path, trainer, unpacked):
    """Stage "all": the first pack needs seed 1's source model before its group comes up, so the
    runner trains it then; its group later loads it from the checkpoint. Same records."""
    from jaxlt.grid.executor import TrainerExecutor

    expected = {k: r for k, r in records(unpacked).items() if r["n"] > 0}
    settings = dataclasses.replace(SETTINGS, pack_cells=3)
    executor = TrainerExecutor(settings, trainer=trainer)
    GridRunner(SPEC, settings, ResultsStore(str(tmp_path)), lambda: executor, progress=False).run()
    got = {k: r for k, r in records(tmp_path).items() if r["n"] > 0}
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert got[key]["metrics"] == expected[key]["metrics"], key
        assert got[key]["eval_details"]["predictions_sha256"] == expected[key]["eval_details"]["predictions_sha256"]


def test_default_pack_size_from_memory(trainer):
    import jax

    params = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(trainer.abstract_params))
    assert bytes_per_member(trainer) > 4 * params  # params, gradients, two Adam moments, activations
    assert default_pack_size(trainer, num_cells=5) == 5  # the tiny model: memory is no limit
    assert default_pack_size(trainer, num_cells=0) == 1


def test_packed_cells_replay_and_skip_the_warmup_like_single_cells(tmp_path):
    """`fewshot_replay`, `fewshot_warmup=False` and `fewshot_learning_rate` act inside packs as in
    single-cell runs: the packed few-shot stage reproduces the unpacked records."""
    from jaxlt.grid.executor import TrainerExecutor, load_pretrained
    from jaxlt.train.engine import Trainer

    settings = dataclasses.replace(SETTINGS, fewshot_replay=0.5, fewshot_warmup=False, fewshot_learning_rate=2e-3,
                                   optimizer=dataclasses.replace(SETTINGS.optimizer, warmup_steps=3))
    assert {"fewshot_replay", "fewshot_warmup", "fewshot_learning_rate"} <= set(settings.hashed_dict())
    trainer = Trainer(load_pretrained(settings)[0], batch_size=settings.batch_size,
                      feature_lengths={"inputs": 64, "targets": 8}, optimizer=settings.optimizer.make(),
                      compiler_options=FAST)
    one = tmp_path / "one"
    GridRunner(SPEC, settings, ResultsStore(str(one)), lambda: TrainerExecutor(settings, trainer=trainer),
               progress=False).run()
    expected = {k: r for k, r in records(one).items() if r["n"] > 0}
    assert len(expected) == 4
    shutil.copytree(one, tmp_path / "packed")
    store = ResultsStore(str(tmp_path / "packed"))
    for r in expected.values():
        os.unlink(store.record_path(Cell(**{f: r[f] for f in ("task", "source", "seed", "target", "n",
                                                               "strategy", "sampling")})))
    packed = dataclasses.replace(settings, pack_cells=4)
    GridRunner(SPEC, packed, store, lambda: TrainerExecutor(packed, trainer=trainer), progress=False,
               stage="fewshot").run()
    got = {k: r for k, r in records(tmp_path / "packed").items() if r["n"] > 0}
    assert sorted(got) == sorted(expected)
    for key in expected:
        assert got[key]["eval_details"]["packed_cells"] == 4
        assert got[key]["eval_details"]["predictions_sha256"] == expected[key]["eval_details"]["predictions_sha256"]
        assert got[key]["metrics"] == expected[key]["metrics"], key
