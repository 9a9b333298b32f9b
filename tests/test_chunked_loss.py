"""The vocabulary-chunked loss equals the plain one (value, aux and gradients) without the full logits."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxlt import partitioning as P
from jaxlt.model import losses
from jaxlt.model.config import get_config
from jaxlt.model.network import Transformer, unboxed_init_params

FAST = {"xla_backend_optimization_level": 0}


def _case(vocab, seed=0, b=3, t=7, d=16):
    rng = np.random.default_rng(seed)
    hidden = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(d, vocab)) * d ** -0.5 * 3, jnp.float32)
    targets = jnp.asarray(rng.integers(1, vocab, size=(b, t)), jnp.int32)
    targets = targets.at[0, -1].set(vocab - 1)  # the last column (in the last, maybe padded, chunk)
    weights = jnp.asarray(rng.random((b, t)) > 0.25, jnp.float32)
    return hidden, kernel, targets, weights


@pytest.mark.parametrize("vocab,chunk", [(1000, 128), (1009, 100), (1024, 1024), (250112, 16384)])
@pytest.mark.parametrize("options", [{}, {"z_loss": 1e-2, "label_smoothing": 0.1},
                                     {"loss_normalizing_factor": 11.0}])
def test_chunked_equals_plain_loss_and_gradients(vocab, chunk, options):
    hidden, kernel, targets, weights = _case(vocab, b=2, t=3) if vocab > 10000 else _case(vocab)

    def plain(h, k):
        return losses.cross_entropy_loss(jnp.einsum("btd,dv->btv", h, k), targets, weights, **options)

    def chunked(h, k):
        return losses.chunked_cross_entropy_loss(h, k, targets, weights, chunk_size=chunk, **options)

    (l0, a0), g0 = jax.value_and_grad(plain, argnums=(0, 1), has_aux=True)(hidden, kernel)
    (l1, a1), g1 = jax.jit(jax.value_and_grad(chunked, argnums=(0, 1), has_aux=True))(hidden, kernel)
    np.testing.assert_allclose(float(l1), float(l0), rtol=1e-5)
    for name in ("cross_entropy", "z_loss", "weight_sum", "accuracy"):
        np.testing.assert_allclose(float(a1[name]), float(a0[name]), rtol=1e-5, atol=1e-7)
    for a, b in zip(g1, g0):
        scale = float(jnp.abs(b).max())
        assert float(jnp.abs(a - b).max()) <= 1e-5 * scale


def test_vocab_chunk_divides_the_vocabulary_when_it_can():
    assert losses.vocab_chunk(250112, 16384) == 15632 and 250112 % 15632 == 0
    assert losses.vocab_chunk(1000, 128) == 125
    assert losses.vocab_chunk(1009, 100) == 100  # a prime: padded last chunk
    assert losses.vocab_chunk(64, 1000) == 64


def test_full_logits_are_never_materialised():
    """XLA's own memory analysis: the chunked loss + gradient needs far less scratch than one
    float32 [B, T, V] logits array; the plain one needs more than that."""
    b, t, d, v = 4, 64, 32, 32768
    hidden, kernel, targets, weights = _case(v, b=b, t=t, d=d)
    logits_bytes = b * t * v * 4

    def temp_bytes(fn):
        grad = jax.jit(jax.grad(lambda h, k: fn(h, k)[0], argnums=(0, 1)))
        return grad.lower(hidden, kernel).compile().memory_analysis().temp_size_in_bytes

    plain = temp_bytes(lambda h, k: losses.cross_entropy_loss(jnp.einsum("btd,dv->btv", h, k), targets, weights))
    chunked = temp_bytes(lambda h, k: losses.chunked_cross_entropy_loss(h, k, targets, weights, chunk_size=2048))
    assert plain >= logits_bytes
    assert chunked < logits_bytes / 4, (chunked, logits_bytes)


@pytest.mark.parametrize("name", ["mt5_tiny", "t5_v1_0_tiny"])
def test_trainer_step_same_with_and_without_chunks(name):
    """One Trainer step through the whole model (untied head; tied head with the T5 rescale)."""
    from jaxlt.train.engine import Trainer

    base = get_config(name, dropout_rate=0.0)
    params = jax.device_get(unboxed_init_params(base, jax.random.key(3)))
    rng = np.random.default_rng(1)
    tgt = rng.integers(2, base.vocab_size, size=(4, 6)).astype(np.int32)
    tgt[1, 3:] = 0
    batch = {"encoder_input_tokens": rng.integers(2, base.vocab_size, size=(4, 10)).astype(np.int32),
             "decoder_input_tokens": np.concatenate([np.zeros((4, 1), np.int32), tgt[:, :-1]], 1),
             "decoder_target_tokens": tgt, "decoder_loss_weights": (tgt > 0).astype(np.float32)}
    out = {}
    for chunk in (0, 200):
        cfg = base.replace(logits_chunk_size=chunk)
        assert cfg.loss_chunk == chunk
        # plain SGD with lr 1: the step is the gradient (Adam would amplify float noise of tiny gradients)
        trainer = Trainer(cfg, batch_size=4, feature_lengths={"inputs": 10, "targets": 6}, optimizer=optax.sgd(1.0),
                          mesh=P.create_mesh((1, 1)), compiler_options=FAST)
        state, metrics = trainer.train_step(trainer.init_state(params), batch)
        out[chunk] = jax.device_get((state.params, metrics))
    (p0, m0), (p1, m1) = out[0], out[200]
    for key in ("loss", "grad_norm", "objective"):
        np.testing.assert_allclose(m1[key], m0[key], rtol=1e-5)
    for a, b, p in zip(jax.tree.leaves(p1), jax.tree.leaves(p0), jax.tree.leaves(params)):
        step1, step0 = np.asarray(a, np.float64) - p, np.asarray(b, np.float64) - p  # minus the gradients
        assert np.abs(step0).max() > 0
        assert np.abs(step1 - step0).max() <= 1e-4 * np.abs(step0).max()


def test_default_chunks_only_large_vocabularies():
    assert get_config("mt5_small").loss_chunk == 16384
    assert get_config("mt5_tiny").loss_chunk == 0
    assert get_config("mt5_small", logits_chunk_size=0).loss_chunk == 0
    with pytest.raises(ValueError, match="logits_chunk_size"):
        get_config("mt5_tiny", logits_chunk_size=-1)
    assert "logits_chunk_size" not in get_config("mt5_small").to_hf_dict()


def test_the_chunk_size_is_a_model_setting():
    """`jaxlt.train.model_settings.logits_chunk_size` reaches the model config the Trainer uses."""
    import pytest

    from jaxlt.experiment import ConfigError, ModelConfig
    from jaxlt.model.config import get_config

    base = get_config("mt5_tiny")
    assert base.replace(**ModelConfig().overrides()).loss_chunk == base.loss_chunk
    assert base.replace(**ModelConfig(logits_chunk_size=4096).overrides()).loss_chunk == 4096
    assert base.replace(**ModelConfig(logits_chunk_size=0).overrides()).loss_chunk == 0
    with pytest.raises(ConfigError, match="logits_chunk_size"):
        ModelConfig(logits_chunk_size=-1)
