"""Greedy decoding with a key/value cache, and per-example target log-likelihood.

Both are jitted with the config static (a frozen, hashable dataclass) and take
unboxed params, so one compiled function serves every call with the same shapes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxlt.model.config import T5Config
from jaxlt.model.losses import token_log_likelihoods
from jaxlt.model.network import Transformer


def shift_right(targets, start_id: int = 0):
    """Decoder inputs for teacher forcing: start id, then the targets without their last token."""
    start = jnp.full((targets.shape[0], 1), start_id, dtype=targets.dtype)
    return jnp.concatenate([start, targets[:, :-1]], axis=1)


@functools.partial(jax.jit, static_argnames=("config", "max_decode_length"))
def greedy_decode(config: T5Config, params, encoder_input_tokens, max_decode_length: int):
    """Greedy decoding -> int32 [B, max_decode_length]; EOS is kept, every token after it is 0.

    Starts from `decoder_start_token_id`; stops early once every row has produced EOS.
    """
    model = Transformer(config)
    variables = {"params": params}
    enc = jnp.asarray(encoder_input_tokens, jnp.int32)
    batch = enc.shape[0]
    encoded = model.apply(variables, enc, method=Transformer.encode)
    cache = model.apply(variables, encoded, enc, max_decode_length, method=Transformer.init_cache)
    tokens = jnp.zeros((batch, max_decode_length), jnp.int32)
    last = jnp.full((batch,), config.decoder_start_token_id, jnp.int32)
    done = jnp.zeros((batch,), bool)

    def cond(state):
        i, _, _, _, done = state
        return (i < max_decode_length) & ~jnp.all(done)

    def body(state):
        i, tokens, cache, last, done = state
        logits, cache = model.apply(variables, cache, enc, last[:, None], i, method=Transformer.decode_step)
        nxt = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        nxt = jnp.where(done, config.pad_token_id, nxt)
        tokens = jax.lax.dynamic_update_slice_in_dim(tokens, nxt[:, None], i, axis=1)
        return i + 1, tokens, cache, nxt, done | (nxt == config.eos_token_id)

    _, tokens, _, _, _ = jax.lax.while_loop(cond, body, (jnp.int32(0), tokens, cache, last, done))
    return tokens


def target_token_log_likelihoods(config: T5Config, params, encoder_input_tokens, decoder_target_tokens):
    """Teacher-forced log p(target_t | inputs, targets before t) -> float32 [B, T]."""
    targets = jnp.asarray(decoder_target_tokens, jnp.int32)
    logits = Transformer(config).apply({"params": params}, jnp.asarray(encoder_input_tokens, jnp.int32),
                                       shift_right(targets, config.decoder_start_token_id), targets)
    return token_log_likelihoods(logits, targets)


@functools.partial(jax.jit, static_argnames=("config",))
def sequence_log_likelihood(config: T5Config, params, encoder_input_tokens, decoder_target_tokens,
                            weights=None):
    """Natural-log likelihood of each row's targets -> float32 [B]: the sum over non-pad target
    tokens, or over the positions where `weights` [B, T] is nonzero (weighted by it)."""
    targets = jnp.asarray(decoder_target_tokens, jnp.int32)
    token_ll = target_token_log_likelihoods(config, params, encoder_input_tokens, targets)
    if weights is None:
        return jnp.sum(jnp.where(targets != config.pad_token_id, token_ll, 0.0), axis=-1)
    weights = jnp.asarray(weights, jnp.float32)
    return jnp.sum(jnp.where(weights != 0, token_ll * weights, 0.0), axis=-1)
