"""The Trainer on 8 fake CPU devices: mesh-independent losses, exact resume, NaN handling, accumulation."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from jaxlt import partitioning as P
from jaxlt.gin_flags import load_hardware_rules
from jaxlt.model.config import get_config
from jaxlt.model.network import init_params
from jaxlt.train.checkpointing import Checkpointer
from jaxlt.train.data import train_batches
from jaxlt.train.engine import NonFiniteLossError, Trainer
from jaxlt.train.fixture_task import register_fixture_task

LENGTHS = {"inputs": 32, "targets": 8}
BATCH = 8
# Dropout on: the per-step dropout RNG must not depend on the mesh or on a restart.
CONFIG = get_config("mt5_tiny", dropout_rate=0.1)
# XLA CPU at -O0 compiles ~5x faster; every Trainer compared here uses the same options.
FAST = {"xla_backend_optimization_level": 0}


@functools.lru_cache(maxsize=None)
def trainer(mesh_shape=(1, 1), rules_file=None, accumulation_steps=1) -> Trainer:
    rules = load_hardware_rules(rules_file).rules() if rules_file else P.DATA_PARALLEL_RULES
    return Trainer(CONFIG, batch_size=BATCH, feature_lengths=LENGTHS, mesh=P.create_mesh(mesh_shape),
                   rules=rules, accumulation_steps=accumulation_steps, compiler_options=FAST)


@functools.lru_cache(maxsize=None)
def params():
    from flax import linen as nn

    return jax.device_get(nn.meta.unbox(init_params(CONFIG, jax.random.key(0))))


def batches(n: int, start: int = 0) -> list[dict]:
    make = train_batches(register_fixture_task(), LENGTHS, BATCH, seed=0)
    it = make(start)
    return [next(it) for _ in range(n)]


def host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def test_five_steps_same_losses_on_1_device_and_4x2_mesh():
    data = batches(5)
    t1 = trainer((1, 1))
    t8 = trainer((4, 2), "hardware/rules/fsdp.gin")
    assert t1.mesh.devices.size == 1 and t8.mesh.devices.shape == (4, 2)
    s1, h1 = t1.train(t1.init_state(params()), data, 5, seed=0, progress=False)
    s8, h8 = t8.train(t8.init_state(params()), data, 5, seed=0, progress=False)
    l1, l8 = [h["loss"] for h in h1], [h["loss"] for h in h8]
    assert len(l1) == 5
    np.testing.assert_allclose(l8, l1, rtol=0, atol=1e-5)
    assert l1[-1] < l1[0]  # it is actually training
    # Parameters really are sharded over both mesh axes on the (4, 2) mesh ...
    sharded = [x for x in jax.tree.leaves(s8.params) if len(x.sharding.device_set) == 8
               and x.addressable_shards[0].data.size * 8 == x.size]
    assert sharded, "no parameter is fully split over the 8 devices"
    # ... and end where the single-device run ends (Adam's first steps are ~lr * sign(g), so
    # parameters with near-zero gradients may differ by a fraction of the 3e-4 step).
    for a, b in zip(jax.tree.leaves(host(s1.params)), jax.tree.leaves(host(s8.params))):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


def test_trainer_is_reused_without_recompiling():
    t = trainer((1, 1))
    t.compile()
    compiled = t._step_compiled
    state, _ = t.train(t.init_state(params()), batches(2), 2, seed=1, progress=False)
    state, _ = t.train(t.init_state(params()), batches(2), 2, seed=2, progress=False)
    assert t._step_compiled is compiled
    with pytest.raises(ValueError, match=r"encoder_input_tokens.*\(8, 16\).*\(8, 32\)"):
        bad = dict(batches(1)[0])
        bad["encoder_input_tokens"] = bad["encoder_input_tokens"][:, :16]
        t.train(t.init_state(params()), [bad], 1, seed=0, progress=False)


def test_init_state_copies_params_so_runs_do_not_consume_them():
    t = trainer((1, 1))
    on_device = jax.device_put(params(), t.param_shardings)
    state, _ = t.train(t.init_state(on_device), batches(1), 1, seed=0, progress=False)
    # The first run donated its state; the caller's params are untouched and reusable.
    again = t.init_state(on_device)
    for a, b in zip(jax.tree.leaves(host(again.params)), jax.tree.leaves(params())):
        np.testing.assert_array_equal(a, b)


def test_killed_run_resumes_to_exactly_the_uninterrupted_params(tmp_path):
    t = trainer((1, 1))
    data = train_batches(register_fixture_task(), LENGTHS, BATCH, seed=0)
    reference, _ = t.train(t.init_state(params()), data, 8, seed=3, progress=False)
    reference = host(reference)

    class Killed(Exception):
        pass

    def dies_at_batch_6(position):
        it = data(position)
        for i, batch in enumerate(it, start=position):
            if i == 5:  # the 6th batch: after the checkpoint at step 3, before the one at 6
                raise Killed()
            yield batch

    ckpt = Checkpointer(tmp_path / "run", CONFIG, None, async_save=True)
    with pytest.raises(Killed):
        t.train(t.init_state(params()), dies_at_batch_6, 8, seed=3, checkpointer=ckpt, checkpoint_every=3,
                progress=False)
    ckpt.wait_until_finished()
    assert ckpt.all_steps() == [3]

    # A new process would build a new Checkpointer on the same directory.
    ckpt2 = Checkpointer(tmp_path / "run", CONFIG, None, async_save=True)
    state = t.resume_or_init(params(), ckpt2)
    assert int(state.step) == 3
    resumed, history = t.train(state, data, 8, seed=3, checkpointer=ckpt2, checkpoint_every=3, progress=False)
    assert [h["step"] for h in history] == [4, 5, 6, 7, 8]
    resumed = host(resumed)
    assert int(resumed.step) == int(reference.step) == 8
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(reference.params)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(resumed.opt_state), jax.tree.leaves(reference.opt_state)):
        np.testing.assert_array_equal(a, b)
    ckpt2.close()


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(tmp_path):
    t = trainer((1, 1))
    data = batches(4)
    ckpt = Checkpointer(tmp_path / "run", CONFIG, None)
    good, _ = t.train(t.init_state(params()), data[:2], 2, seed=0, checkpointer=ckpt, progress=False)
    good_params = host(good.params)
    poisoned = good.replace(params=jax.tree.map(lambda x: x * np.float32("nan"), good.params))
    with pytest.raises(NonFiniteLossError, match=r"step 3: loss is nan.*Last good checkpoint: step 2"):
        t.train(poisoned, data[2:], 4, seed=0, checkpointer=ckpt, checkpoint_every=1, progress=False)
    assert ckpt.all_steps() == [2]
    # Metrics are read one step late (the host prepares the next batch meanwhile); a NaN at a step
    # that is not saved is still reported as that step, before the final save.
    poisoned = t.init_state(jax.tree.map(lambda x: x * np.float32("nan"), params()))
    with pytest.raises(NonFiniteLossError, match=r"step 1: loss is nan.*Last good checkpoint: step 2"):
        t.train(poisoned, data[:3], 3, seed=0, checkpointer=ckpt, progress=False)
    assert ckpt.all_steps() == [2]
    restored, meta = ckpt.restore(abstract_state=t.abstract_state)
    assert meta["step"] == 2
    for a, b in zip(jax.tree.leaves(host(restored.params)), jax.tree.leaves(good_params)):
        np.testing.assert_array_equal(a, b)
    ckpt.close()


def test_finite_loss_with_non_finite_update_is_never_checkpointed(tmp_path):
    """The loss is computed before the update: a step whose update overflows has a finite loss but
    non-finite parameters. It must stop the run before its save, and keep_last=1 must not delete
    the last good step in favour of it."""
    import optax

    def overflow():  # gradients times inf: a finite loss, then inf/NaN parameters
        return optax.GradientTransformation(lambda p: optax.EmptyState(),
                                            lambda g, s, p=None: (jax.tree.map(lambda x: x * np.inf, g), s))

    t = trainer((1, 1))
    ckpt = Checkpointer(tmp_path / "run", CONFIG, None, keep_last=1, async_save=False)
    data = batches(3)
    good, _ = t.train(t.init_state(params()), data[:2], 2, seed=0, checkpointer=ckpt, progress=False)
    good_params = host(good.params)
    bad = Trainer(CONFIG, batch_size=BATCH, feature_lengths=LENGTHS, mesh=P.create_mesh((1, 1)),
                  optimizer=overflow(), compiler_options=FAST)
    state = bad.init_state(good_params).replace(step=good.step)
    with pytest.raises(NonFiniteLossError) as e:
        bad.train(state, data[2:], 3, seed=0, checkpointer=ckpt, checkpoint_every=1, progress=False)
    assert e.value.step == 3 and e.value.last_good_step == 2
    assert "parameters are not finite" in e.value.reason and "loss" not in e.value.reason
    assert ckpt.all_steps() == [2]
    restored, _ = ckpt.restore(abstract_state=t.abstract_state)
    for a, b in zip(jax.tree.leaves(host(restored.params)), jax.tree.leaves(good_params)):
        np.testing.assert_array_equal(a, b)
    # The checkpointer refuses a non-finite state by itself too (any caller, not only the Trainer).
    from jaxlt.errors import DivergenceError

    nan_state = good.replace(params=jax.tree.map(lambda x: x * np.float32("nan"), good.params), step=3)
    with pytest.raises(DivergenceError, match="refusing to save step 3"):
        ckpt.save(3, nan_state)
    assert ckpt.all_steps() == [2]
    ckpt.close()


def test_gradient_accumulation_matches_the_full_batch_update():
    """Two micro-batches of 4 give the full batch-8 update (dropout off: masks differ by design)."""
    cfg = CONFIG.replace(dropout_rate=0.0)
    full = Trainer(cfg, batch_size=BATCH, feature_lengths=LENGTHS, mesh=P.create_mesh((1, 1)),
                   compiler_options=FAST)
    accum = Trainer(cfg, batch_size=BATCH, feature_lengths=LENGTHS, mesh=P.create_mesh((2, 1)),
                    accumulation_steps=2, compiler_options=FAST)
    data = batches(2)
    s_full, h_full = full.train(full.init_state(params()), data, 2, seed=0, progress=False)
    s_acc, h_acc = accum.train(accum.init_state(params()), data, 2, seed=0, progress=False)
    np.testing.assert_allclose([h["loss"] for h in h_acc], [h["loss"] for h in h_full], atol=1e-5)
    for a, b in zip(jax.tree.leaves(host(s_acc.params)), jax.tree.leaves(host(s_full.params))):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_bad_configuration_errors_name_the_problem():
    with pytest.raises(ValueError, match="not divisible by accumulation_steps 3"):
        Trainer(CONFIG, batch_size=8, feature_lengths=LENGTHS, accumulation_steps=3)
    with pytest.raises(ValueError, match="not divisible by the 8 batch shards"):
        Trainer(CONFIG, batch_size=4, feature_lengths=LENGTHS, mesh=P.create_mesh((8, 1)))
    with pytest.raises(ValueError, match="feature_lengths must give"):
        Trainer(CONFIG, batch_size=8, feature_lengths={"inputs": 8})
    t = trainer((1, 1))
    wrong = get_config("mt5_tiny", d_ff=96)
    from jaxlt.model.network import unboxed_init_params

    with pytest.raises(ValueError, match=r"shape .* expects"):
        t.init_state(unboxed_init_params(wrong, jax.random.key(0)))


def test_bf16_compute_with_fp32_params_on_packed_batches():
    import jax.numpy as jnp

    from jaxlt.model.losses import cross_entropy_loss
    from jaxlt.model.network import Transformer

    lengths = {"inputs": 64, "targets": 16}
    cfg = CONFIG.replace(dtype="bfloat16", dropout_rate=0.0)
    t = Trainer(cfg, batch_size=4, feature_lengths=lengths, packed=True, mesh=P.create_mesh((2, 1)),
                compiler_options=FAST)
    data = train_batches(register_fixture_task(), lengths, 4, seed=0, pack=True)(0)
    batch = next(data)
    assert (batch["encoder_segment_ids"].max(axis=1) >= 2).any()  # really packed
    state, history = t.train(t.init_state(params()), [batch] + [next(data) for _ in range(2)], 3, seed=0,
                             progress=False)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.opt_state) if hasattr(x, "dtype")
               and x.ndim > 0)
    # The bf16 step's loss is close to an fp32 forward pass of the same packed batch.
    fp32 = Transformer(CONFIG.replace(dropout_rate=0.0))
    logits = jax.jit(lambda p, b: fp32.apply(
        {"params": p}, b["encoder_input_tokens"], b["decoder_input_tokens"], b["decoder_target_tokens"],
        encoder_segment_ids=b["encoder_segment_ids"], decoder_segment_ids=b["decoder_segment_ids"],
        encoder_positions=b["encoder_positions"], decoder_positions=b["decoder_positions"]))(params(), batch)
    reference, _ = cross_entropy_loss(logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"])
    assert abs(history[0]["loss"] - float(reference)) < 0.05, (history[0]["loss"], float(reference))
    assert np.isfinite([h["loss"] for h in history]).all()


def test_a_run_started_past_the_warmup_equals_a_constant_rate_run():
    """`init_state(params, schedule_step=W)` on a warmup-W schedule trains exactly like a constant
    schedule at the peak rate (fresh Adam both times), through the warmup Trainer's own compiled step."""
    from jaxlt.train.optimizer import make_optimizer

    data = batches(3)
    warm = Trainer(CONFIG, batch_size=BATCH, feature_lengths=LENGTHS, mesh=P.create_mesh((1, 1)),
                   optimizer=make_optimizer(learning_rate=1e-3, warmup_steps=50), compiler_options=FAST)
    flat = warm.with_optimizer(make_optimizer(learning_rate=1e-3))
    skipped, _ = warm.train(warm.init_state(params(), schedule_step=50), data, 3, seed=0, progress=False)
    constant, _ = flat.train(flat.init_state(params()), data, 3, seed=0, progress=False)
    warmed, _ = warm.train(warm.init_state(params()), data, 3, seed=0, progress=False)
    for a, b in zip(jax.tree.leaves(host(skipped.params)), jax.tree.leaves(host(constant.params))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # the warmup run moved far less (rates 0, 2e-5, 4e-5 vs 1e-3)
    moved = lambda s: max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(host(s.params)),
                                                                       jax.tree.leaves(params())))
    assert moved(warmed) < 0.1 * moved(skipped)
    assert int(skipped.step) == 3
