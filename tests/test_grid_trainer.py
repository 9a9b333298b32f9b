"""End-to-end grid on the tiny mT5 with the real Trainer executor and the bundled tiny data.

The zero-shot metric of a cell is recomputed independently (checkpoint read back
from disk, SentencePiece tokenisation, `greedy_decode`, accuracy by hand); a
few-shot cell re-run alone, after a restart, reproduces its predictions exactly.
"""

import json
import os

import numpy as np
import pytest

from jaxlt.grid.cells import Cell
from jaxlt.grid.runner import GridRunner
from jaxlt.grid.settings import GridSettings
from jaxlt.grid.spec import GridSpec
from jaxlt.grid.store import ResultsStore

TINY_DATA = os.path.join(os.path.dirname(__file__), "..", "jaxlt", "resources", "tiny_data")
SPEC = GridSpec(tasks=["xnli"], sources=["en", "de"], targets=["en", "sw"], n_values=[8], seeds=[0],
                strategy="sequential", model="mt5-tiny")
SETTINGS = GridSettings(executor="trainer", pretrained="init:mt5_tiny", data_dir=os.path.abspath(TINY_DATA),
                        source_size=-1, source_steps=20, fewshot_steps=5, learning_rate=1e-3, batch_size=8,
                        input_length=64, target_length=8, eval_batch_size=16, max_decode_length=8)


@pytest.fixture(scope="module")
def executor():
    from jaxlt.grid.executor import TrainerExecutor

    ex = TrainerExecutor(SETTINGS)
    ex.loads = 0
    original = ex.load_source

    def counting_load(*a):
        ex.loads += 1
        return original(*a)

    ex.load_source = counting_load
    return ex


@pytest.fixture(scope="module")
def finished(tmp_path_factory, executor):
    root = tmp_path_factory.mktemp("grid")
    GridRunner(SPEC, SETTINGS, ResultsStore(str(root)), lambda: executor, progress=False).run()
    return root


def records(root):
    return {r["cell_id"].split("/", 1)[1]: r for r in ResultsStore(str(root)).iter_records()}


def test_every_cell_recorded_with_timings_and_one_compile(finished, executor):
    recs = records(finished)
    assert len(recs) == 2 * 2 + 3  # zero-shot on both targets; few-shot except en->en
    for r in recs.values():
        assert 0 <= r["metrics"]["accuracy"] <= 100 and r["eval_details"]["examples"] == 16
        assert r["timings"]["wall_seconds"] > 0 and r["timings"]["steps"] in (20, 5)
    fewshot = [r for r in recs.values() if r["n"] > 0]
    # the train step compiled once, for the first source run; no few-shot cell recompiled
    assert all(r["timings"]["compile_seconds"] == 0 for r in fewshot)
    sources = [json.load(open(os.path.join(finished, "sources", f)))
               for f in sorted(os.listdir(os.path.join(finished, "sources")))]
    assert [s["timings"]["compile_seconds"] > 0 for s in sources] == [True, False]  # de first, then en
    assert len([k for k in executor.trainer._decode_fns if k[0] == "predict"]) == 1
    assert executor.loads == 0  # source models came straight from training, never reloaded


def test_zero_shot_metric_matches_an_independent_evaluation(finished):
    import sentencepiece as spm

    from jaxlt.data.examples import load_examples
    from jaxlt.model.decoding import greedy_decode
    from jaxlt.train.checkpointing import load_inference_params

    rec = records(finished)["xnli.de-sw.n0.seed0.zero_shot"]
    config, params = load_inference_params(rec["checkpoint"])
    sp = spm.SentencePieceProcessor(model_file=os.path.join(rec["checkpoint"], "spiece.model"))
    examples = load_examples("xnli", "sw", "test", os.path.abspath(TINY_DATA))
    enc = np.zeros((len(examples), SETTINGS.input_length), np.int32)
    for i, ex in enumerate(examples):
        ids = sp.encode(ex["inputs"])[:SETTINGS.input_length - 1] + [1]  # trim, then EOS (seqio)
        enc[i, :len(ids)] = ids
    out = np.asarray(greedy_decode(config, params, enc, max_decode_length=SETTINGS.max_decode_length))
    predictions = []
    for row in out.tolist():
        row = row[:row.index(1)] if 1 in row else row
        predictions.append(sp.decode([t for t in row if t]).strip())
    accuracy = 100.0 * np.mean([p == ex["targets"] for p, ex in zip(predictions, examples)])
    assert rec["metrics"]["accuracy"] == pytest.approx(accuracy)


def test_a_fewshot_cell_rerun_after_restart_reproduces_its_predictions(finished, executor):
    store = ResultsStore(str(finished))
    cell = Cell("xnli", "en", 0, "sw", 8, "sequential", "random")
    before = records(finished)[cell.key]
    os.unlink(store.record_path(cell))
    GridRunner(SPEC, SETTINGS, store, lambda: executor, progress=False).run()
    after = records(finished)[cell.key]
    # the source model now comes from disk (loaded once) instead of memory, and the cell runs
    # first instead of after other cells: same params reset, same data order, same predictions
    assert executor.loads == 1
    assert after["eval_details"]["predictions_sha256"] == before["eval_details"]["predictions_sha256"]
    assert after["metrics"] == before["metrics"]
    assert after["timings"]["compile_seconds"] == 0


def test_fewshot_training_leaves_the_source_model_untouched(finished, executor):
    import jax

    store = ResultsStore(str(finished))
    cell = Cell("xnli", "de", 0, "en", 8, "sequential", "random")
    source = executor.load_source(cell.source_run, store.checkpoint_dir(cell.source_run))
    snapshot = jax.tree.map(np.array, source)
    trained, timings = executor.train_fewshot(cell, source)
    assert timings.steps == SETTINGS.fewshot_steps and timings.compile_seconds == 0
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - b))), trained, snapshot))
    assert max(moved) > 0  # the few-shot run trained
    # the source params (kept in memory for the next cells) survived the donated train steps
    same = jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.array_equal(np.asarray(a), b)), source, snapshot))
    assert all(same)


def test_nested_nshot_prefix_equals_the_seqio_nshot_set(finished, executor):
    """The executor feeds n=4 from its cached n=8 set; seqio's own n=4 set must be that prefix."""
    import seqio

    from jaxlt.data import mixtures

    small = Cell("xnli", "de", 0, "sw", 4, "sequential", "random")
    executor._nshot_arrays(Cell("xnli", "de", 0, "sw", 8, "sequential", "random"))  # cache the n=8 set
    ours = executor._nshot_arrays(small)
    name = mixtures.register_mixture("xnli", "de", "sw", 4, 0, "sequential", "random", data_dir=executor.data_dir,
                                     vocabulary=executor.spm_path)
    ds = seqio.get_mixture_or_task(name).get_dataset(executor.lengths, split="train", shuffle=False,
                                                      num_epochs=1, use_cached=False)
    rows = list(seqio.EncDecFeatureConverter(pack=False)(ds, executor.lengths).as_numpy_iterator())
    assert len(rows) == 4 == len(ours["encoder_input_tokens"])
    for k in ours:
        np.testing.assert_array_equal(ours[k], np.stack([r[k] for r in rows]))


def test_a_joint_cell_trains_source_plus_target_from_the_pretrained_model(executor):
    import jax

    cell = Cell("xnli", "de", 0, "sw", 8, "joint", "random")
    executor.prepare([cell])
    compiled = executor.trainer._step_compiled is not None  # False when this test runs alone
    trained, timings = executor.train_fewshot(cell, None)
    assert timings.steps == SETTINGS.source_steps and (timings.compile_seconds == 0) == compiled
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                                         trained, executor.pretrained))
    assert max(moved) > 0
    metrics, _, details = executor.evaluate(trained, "xnli", "sw")
    assert 0 <= metrics["accuracy"] <= 100 and details["examples"] == 16


def test_a_source_run_at_an_absurd_learning_rate_diverges_and_saves_nothing(executor, tmp_path):
    """The runner's retry path: train_source at another learning rate (its own Trainer) raises
    DivergenceError at step 2 and leaves no checkpoint step behind; the usual Trainer is untouched."""
    from jaxlt.errors import DivergenceError
    from jaxlt.grid.cells import SourceRun

    ckpt = tmp_path / "ckpt"
    with pytest.raises(DivergenceError) as e:
        executor.train_source(SourceRun("xnli", "de", 0), str(ckpt), learning_rate=1e30)
    assert e.value.step == 2 and "not finite" in e.value.reason and e.value.last_good_step is None
    assert not [p for p in ckpt.iterdir() if p.name.isdigit()]
    assert executor.trainer_for("xnli", 1e30) is not executor.trainer
    assert executor.trainer_for("xnli") is executor.trainer is executor.trainer_for("xnli", SETTINGS.learning_rate)


def test_fewshot_replay_batches_hold_source_rows_then_the_nshot_set(executor):
    """`fewshot_replay` 0.5 of a batch of 8: every sequential few-shot batch is 4 rows of the
    source's training set (read here straight from its seqio task) and 4 of the cell's n-shot set;
    the same cell gives the same batches; the paper's protocol (0) is n-shot rows only."""
    import dataclasses

    import seqio

    from jaxlt.data.tasks import register_task
    from jaxlt.grid.executor import TrainerExecutor

    settings = dataclasses.replace(SETTINGS, fewshot_replay=0.5)
    assert settings.replay_rows == 4
    replaying = TrainerExecutor(settings, trainer=executor.trainer)
    cell = Cell("xnli", "de", 0, "sw", 8, "sequential", "random")
    replaying.prepare([cell])
    name = register_task("xnli", "de", data_dir=replaying.data_dir, vocabulary=replaying.spm_path)
    ds = seqio.get_mixture_or_task(name).get_dataset(replaying.lengths, split="train", shuffle=False,
                                                      num_epochs=1, use_cached=False)
    source_rows = {tuple(r["encoder_input_tokens"]) for r in
                   seqio.EncDecFeatureConverter(pack=False)(ds, replaying.lengths).as_numpy_iterator()}
    nshot = {tuple(r) for r in replaying._nshot_arrays(cell)["encoder_input_tokens"]}
    assert not source_rows & nshot
    _, batches, steps = replaying.fewshot_run(cell, None)
    taken = [next(batches) for _ in range(steps)]
    for batch in taken:
        rows = [tuple(r) for r in batch["encoder_input_tokens"]]
        assert len(rows) == 8 and all(r in source_rows for r in rows[:4]) and all(r in nshot for r in rows[4:])
    again = replaying.fewshot_run(cell, None)[1]
    for batch in taken:
        np.testing.assert_array_equal(next(again)["decoder_target_tokens"], batch["decoder_target_tokens"])
    plain = next(executor.fewshot_run(cell, None)[1])
    assert all(tuple(r) in nshot for r in plain["encoder_input_tokens"])


def test_fewshot_replay_is_hashed_and_checked():
    import dataclasses

    from jaxlt.grid.settings import config_hash

    assert "fewshot_replay" not in SETTINGS.hashed_dict()  # the paper's protocol keeps earlier hashes
    replay = dataclasses.replace(SETTINGS, fewshot_replay=0.5)
    assert config_hash(replay, "m") != config_hash(SETTINGS, "m")
    for bad in (1.0, -0.1, 0.01):  # 0.01 of a batch of 8 rounds to no source example
        with pytest.raises(ValueError, match="fewshot_replay"):
            dataclasses.replace(SETTINGS, fewshot_replay=bad)


def test_fewshot_learning_rate_trains_sequential_cells_at_that_rate(finished, executor):
    """`fewshot_learning_rate`: a sequential few-shot cell trains as a Trainer built from scratch
    with that rate does on the same batches (and not as at the optimizer's rate); source runs and
    zero-shot cells keep the optimizer's rate; a per-task dict must cover every task."""
    import dataclasses

    import jax

    from jaxlt.grid.executor import TrainerExecutor
    from jaxlt.train.engine import Trainer

    rate = 4e-3
    settings = dataclasses.replace(SETTINGS, fewshot_learning_rate={"xnli": rate})
    assert settings.hashed_dict()["fewshot_learning_rate"] == {"xnli": rate}
    cell = Cell("xnli", "de", 0, "sw", 8, "sequential", "random")
    assert settings.learning_rate_for(cell) == rate
    assert settings.learning_rate_for(Cell("xnli", "de", 0, "sw", 0, "zero_shot", "")) == SETTINGS.learning_rate
    source = executor.load_source(cell.source_run, ResultsStore(str(finished)).checkpoint_dir(cell.source_run))
    ex = TrainerExecutor(settings, trainer=executor.trainer)
    ex.prepare([cell])
    got, _ = ex.train_fewshot(cell, source)

    optimizer = dataclasses.replace(SETTINGS.optimizer, learning_rate=rate).make()
    reference = Trainer(executor.trainer.config, batch_size=SETTINGS.batch_size,
                        feature_lengths=SETTINGS.lengths_for("xnli"), optimizer=optimizer)
    _, batches, steps = ex.fewshot_run(cell, source)
    state, _ = reference.train(reference.init_state(source), batches, steps, seed=cell.seed)
    gap = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                                           got, state.params)))
    default, _ = executor.train_fewshot(cell, source)
    moved = max(jax.tree.leaves(jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                                             got, default)))
    assert gap < 1e-5 < moved, (gap, moved)
    with pytest.raises(KeyError, match="fewshot_learning_rate has no rate for task 'panx'"):
        settings.check_tasks(["panx"])
    with pytest.raises(ValueError, match="fewshot_learning_rate"):
        dataclasses.replace(SETTINGS, fewshot_learning_rate=-1e-3)


def test_per_task_lengths_train_each_task_at_its_own_shape(tmp_path, finished, executor):
    """`input_length` / `target_length` per task: xnli keeps (64, 8) through the module's Trainer and
    reproduces the module grid's records exactly; panx trains, is evaluated and decodes at (32, 24)
    through a Trainer of its own."""
    import dataclasses

    from jaxlt.grid.executor import TrainerExecutor

    data = dataclasses.replace(SETTINGS.data, input_length={"xnli": 64, "panx": 32},
                               target_length={"xnli": 8, "panx": 24})
    settings = dataclasses.replace(SETTINGS, data=data,
                                   evaluation=dataclasses.replace(SETTINGS.evaluation, max_decode_length=0))
    assert settings.lengths_for("panx") == {"inputs": 32, "targets": 24} and settings.decode_length_for("xnli") == 8
    spec = GridSpec(tasks=["xnli", "panx"], sources={"xnli": ["de"], "panx": ["en"]},
                    targets={"xnli": ["sw"], "panx": ["ar"]}, n_values=[8],
                    seeds=[0], strategy="sequential", model="mt5-tiny")
    ex = TrainerExecutor(settings, trainer=executor.trainer)
    GridRunner(spec, settings, ResultsStore(str(tmp_path)), lambda: ex, progress=False).run()
    got, before = records(tmp_path), records(finished)
    for key in ("xnli.de-sw.n0.seed0.zero_shot", "xnli.de-sw.n8.seed0.sequential-random"):
        assert got[key]["eval_details"]["predictions_sha256"] == before[key]["eval_details"]["predictions_sha256"]
        assert got[key]["metrics"] == before[key]["metrics"]
    panx = ex.trainer_for("panx")
    assert panx is not executor.trainer and panx.lengths == {"inputs": 32, "targets": 24}
    assert panx.compile_seconds is not None  # its own step was compiled and used
    assert ex.eval_set("panx", "ar")[0].shape[1] == 32
    assert {"panx.en-ar.n0.seed0.zero_shot", "panx.en-ar.n8.seed0.sequential-random"} <= set(got)
    with pytest.raises(Exception, match="no length for task 'tydiqa'"):
        settings.check_tasks(["tydiqa"])
