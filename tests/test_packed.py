"""Packed training (jaxlt.train.packed): K runs in one vmapped step end exactly where K separate
Trainer runs end, with different start parameters, data, seeds (dropout on) and step counts."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest

from jaxlt import partitioning as P
from jaxlt.model.config import get_config
from jaxlt.model.network import init_params
from jaxlt.train.engine import Trainer
from jaxlt.train.packed import PackedTrainer

CONFIG = get_config("mt5_tiny", dropout_rate=0.1)  # dropout on: each run must keep its own stream
LENGTHS = {"inputs": 16, "targets": 8}
BATCH = 4
FAST = {"xla_backend_optimization_level": 0}


@functools.lru_cache(maxsize=None)
def trainer() -> Trainer:
    return Trainer(CONFIG, batch_size=BATCH, feature_lengths=LENGTHS, mesh=P.create_mesh((2, 1)),
                   compiler_options=FAST)


@functools.lru_cache(maxsize=None)
def params(seed: int):
    from flax import linen as nn

    return jax.device_get(nn.meta.unbox(init_params(CONFIG, jax.random.key(seed))))


def examples(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    enc = rng.integers(2, CONFIG.vocab_size, (n, LENGTHS["inputs"]))
    enc[:, rng.integers(4, LENGTHS["inputs"])] = 1  # EOS, then padding
    enc = np.where(np.cumsum(enc == 1, axis=1) - (enc == 1) > 0, 0, enc)
    dec = rng.integers(2, CONFIG.vocab_size, (n, LENGTHS["targets"]))
    dec[:, -3:] = 0
    dec[:, -4] = 1
    inp = np.concatenate([np.zeros((n, 1), dec.dtype), dec[:, :-1]], axis=1)
    return {"encoder_input_tokens": enc.astype(np.int32), "decoder_input_tokens": inp.astype(np.int32),
            "decoder_target_tokens": dec.astype(np.int32), "decoder_loss_weights": (dec > 0).astype(np.float32)}


def batches(data: dict[str, np.ndarray], seed: int):
    """Endless shuffled batches of one run's n examples (as the grid executor feeds few-shot sets)."""
    rng = np.random.default_rng(seed)
    n = len(data["encoder_input_tokens"])
    while True:
        idx = rng.choice(n, BATCH, replace=n < BATCH)
        yield {k: v[idx] for k, v in data.items()}


# Three runs from different start parameters, with different data sizes, seeds and step counts,
# in a pack of 4 (one slot empty).
RUNS = [dict(init=0, n=3, seed=0, steps=3), dict(init=1, n=10, seed=7, steps=5), dict(init=2, n=6, seed=3, steps=4)]


@pytest.fixture(scope="module", params=["vmap", "loop"])
def packed_result(request):
    """vmap: the accelerator path; loop (lax.map): the CPU default. Both must equal single runs."""
    packer = PackedTrainer(trainer(), 4, batching=request.param)
    state = packer.init_state([params(r["init"]) for r in RUNS])
    data = [batches(examples(r["n"], 100 + i), r["seed"]) for i, r in enumerate(RUNS)]
    state, histories, errors = packer.train(state, data, [r["steps"] for r in RUNS], [r["seed"] for r in RUNS])
    assert errors == [None] * len(RUNS)
    return packer, state, histories


@pytest.mark.parametrize("i", range(len(RUNS)))
def test_a_packed_run_equals_its_unpacked_run(packed_result, i):
    packer, state, histories = packed_result
    r = RUNS[i]
    t = trainer()
    alone, history = t.train(t.init_state(params(r["init"])), batches(examples(r["n"], 100 + i), r["seed"]),
                             r["steps"], seed=r["seed"], progress=False)
    assert int(state.step[i]) == r["steps"]  # masked: a shorter run stopped at its own step count
    assert [h["step"] for h in histories[i]] == list(range(1, r["steps"] + 1))
    np.testing.assert_allclose([h["loss"] for h in histories[i]], [h["loss"] for h in history], rtol=1e-5)
    np.testing.assert_allclose([h["grad_norm"] for h in histories[i]], [h["grad_norm"] for h in history], rtol=1e-4)
    ours = jax.device_get(packer.member_params(state, i))
    theirs = jax.device_get(alone.params)
    start = params(r["init"])
    # Float tolerance on what training changed: vmap batches the matmuls, so sums round differently,
    # and Adam divides by sqrt(v), which magnifies that rounding for near-zero gradients (a few
    # elements in 10^4 differ by ~1e-5 after a few steps); the update as a whole agrees to 1e-3.
    def relative_error(a, b, s):
        assert np.linalg.norm(b - s) > 0  # this leaf trained: two trained models are compared
        return float(np.linalg.norm(a - b) / np.linalg.norm(b - s))

    errors = jax.tree.leaves(jax.tree.map(relative_error, ours, theirs, start))
    assert max(errors) < 1e-3
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-4), ours, theirs)


def test_an_empty_slot_is_never_updated(packed_result):
    packer, state, _ = packed_result
    assert int(state.step[3]) == 0
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), jax.device_get(packer.member_params(state, 3)),
                        params(RUNS[0]["init"]))
    assert all(jax.tree.leaves(same))


def test_packed_greedy_decoding_equals_one_model_at_a_time(packed_result):
    packer, state, _ = packed_result
    enc = np.stack([examples(6, 200 + i)["encoder_input_tokens"] for i in range(4)])
    out = packer.predict(state.params, enc, max_decode_length=8)
    assert out.shape == (4, 6, 8)
    for i in range(4):
        np.testing.assert_array_equal(out[i], trainer().predict(packer.member_params(state, i), enc[i], 8))


def test_a_diverging_member_stops_alone(packed_result):
    packer, _, histories = packed_result
    broken = jax.tree.map(lambda x: np.full_like(x, np.nan), params(1))
    state = packer.init_state([params(0), broken])
    state, got, errors = packer.train(state, [batches(examples(3, 100), 0), batches(examples(3, 101), 1)],
                                      [3, 3], [0, 1])
    assert errors[0] is None and got[0] == histories[0]  # the healthy member is unaffected
    assert errors[1].step == 1 and "loss is nan" in errors[1].reason and got[1] == []
    assert int(state.step[1]) <= 2  # frozen once its divergence was read (metrics are read one step late)
