"""The T5.1.1 / mT5 encoder-decoder (Flax linen), layers stacked with `nn.scan`.

Parameters are a plain nested dict (stacked layer weights carry a leading
"layers" axis), so a whole model can be `jax.vmap`-ed over several parameter
sets stacked on a new leading axis.

Masks: token id 0 is padding. The encoder masks padded keys; the decoder is causal;
cross-attention masks padded encoder positions; segment ids (packed examples)
additionally mask attention across segments; positions (packed examples) restart
the relative-position buckets of each segment.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlt.model.config import T5Config
from jaxlt.model.layers import (DecoderLayer, EncoderLayer, RelativePositionBiases, RMSNorm, _param,
                                constrain, init_stddev)

_REMAT_POLICIES = {
    "full": None,  # save nothing: recompute the whole layer in the backward pass
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_with_no_batch_dims": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _stack(layer_cls, config: T5Config, num_layers: int, in_axes, **attrs):
    """Scans `layer_cls` over `num_layers` stacked parameter sets (optionally rematerialised)."""
    if config.remat != "none":
        layer_cls = nn.remat(layer_cls, policy=_REMAT_POLICIES[config.remat], prevent_cse=False)
    scanned = nn.scan(layer_cls, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                      in_axes=in_axes, length=num_layers,
                      unroll=min(int(config.scan_unroll), num_layers), metadata_params={nn.PARTITION_NAME: "layers"})
    return scanned(config, name="layers", **attrs)


def _positions(tokens, positions):
    if positions is not None:
        return positions.astype(jnp.int32)
    return jnp.arange(tokens.shape[1], dtype=jnp.int32)[None, :]


def _segment_mask(q_segments, k_segments):
    return (q_segments[:, None, :, None] == k_segments[:, None, None, :])


class Encoder(nn.Module):
    config: T5Config

    @nn.compact
    def __call__(self, x, tokens, segment_ids=None, positions=None, deterministic=True):
        cfg = self.config
        pos = _positions(tokens, positions)
        bias = RelativePositionBiases(cfg, bidirectional=True, name="relpos_bias")(pos, pos)
        mask = (tokens > 0)[:, None, None, :]
        if segment_ids is not None:
            mask = mask & _segment_mask(segment_ids, segment_ids)
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic).astype(cfg.compute_dtype)
        x = constrain(x, ("batch", "length", "embed"))
        layers = _stack(EncoderLayer, cfg, cfg.num_layers, (nn.broadcast, nn.broadcast),
                        deterministic=deterministic)
        x, _ = layers(x, bias, mask)
        x = RMSNorm(cfg, name="encoder_norm")(x)
        return nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)


class Decoder(nn.Module):
    config: T5Config

    @nn.compact
    def __call__(self, y, encoded, encoder_tokens, *, segment_ids=None, encoder_segment_ids=None,
                 positions=None, deterministic=True, mode="full", cache=None, cache_index=None):
        cfg = self.config
        in_axes = (0, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast, nn.broadcast)
        layers = _stack(DecoderLayer, cfg, cfg.num_decoder_layers, in_axes, deterministic=deterministic, mode=mode)
        relpos = RelativePositionBiases(cfg, bidirectional=False, name="relpos_bias")
        cross_mask = (encoder_tokens > 0)[:, None, None, :]
        if mode == "init_cache":
            _, kv = layers(jnp.zeros((), cfg.compute_dtype), None, None, None, None, encoded, None, None)
            return kv
        if mode == "step":
            length = cache["self_k"].shape[2]
            key_pos = jnp.arange(length, dtype=jnp.int32)[None, :]
            query_pos = jnp.reshape(cache_index, (1, 1)).astype(jnp.int32)
            self_bias = relpos(query_pos, key_pos)
            self_bias_own = relpos(query_pos, query_pos)
            self_mask = (key_pos < cache_index)[:, None, None, :]  # the written part; own key added apart
        else:
            pos = _positions(y, positions)
            self_bias, self_bias_own = relpos(pos, pos), None
            idx = jnp.arange(y.shape[1])
            self_mask = (idx[None, :] <= idx[:, None])[None, None]
            if segment_ids is not None:
                self_mask = self_mask & _segment_mask(segment_ids, segment_ids)
            if segment_ids is not None and encoder_segment_ids is not None:
                cross_mask = cross_mask & _segment_mask(segment_ids, encoder_segment_ids)
        y = nn.Dropout(cfg.dropout_rate)(y, deterministic=deterministic).astype(cfg.compute_dtype)
        y = constrain(y, ("batch", "length", "embed"))
        y, new_kv = layers(y, cache, self_bias, self_mask, cross_mask, encoded, cache_index, self_bias_own)
        y = RMSNorm(cfg, name="decoder_norm")(y)
        y = nn.Dropout(cfg.dropout_rate)(y, deterministic=deterministic)
        if mode == "step":
            # One in-place write of this position for all layers [L, B, 1, H, d_kv] (a while loop
            # carrying the cache updates it without copying), instead of restacking per-layer caches.
            return y, {**cache, **{name: jax.lax.dynamic_update_slice_in_dim(
                cache[name], new_kv[name].astype(cache[name].dtype), cache_index, axis=2)
                for name in ("self_k", "self_v")}}
        return y


class LogitsDense(nn.Module):
    config: T5Config

    def setup(self):
        cfg = self.config
        self.kernel = _param(self, "kernel", (cfg.d_model, cfg.vocab_size), ("embed", "vocab"))

    def __call__(self, x):
        cfg = self.config
        return jnp.einsum("bld,dv->blv", x.astype(cfg.compute_dtype), self.kernel.astype(cfg.compute_dtype))


class Transformer(nn.Module):
    """T5 encoder-decoder. `__call__` returns float32 logits [B, T, vocab]."""

    config: T5Config

    def setup(self):
        cfg = self.config
        self.token_embedder = nn.Embed(
            cfg.vocab_size, cfg.d_model, dtype=cfg.compute_dtype, param_dtype=cfg.parameter_dtype,
            embedding_init=nn.with_logical_partitioning(nn.initializers.normal(stddev=1.0), ("vocab", "embed")))
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        if not cfg.tie_word_embeddings:
            self.logits_dense = LogitsDense(cfg)

    def encode(self, encoder_input_tokens, encoder_segment_ids=None, encoder_positions=None, enable_dropout=False):
        x = self.token_embedder(encoder_input_tokens.astype(jnp.int32))
        return self.encoder(x, encoder_input_tokens, encoder_segment_ids, encoder_positions,
                            deterministic=not enable_dropout)

    def _head_input(self, y):
        cfg = self.config
        if cfg.scale_decoder_outputs:  # T5 v1.0 / mesh-tf; never mT5, tied or not
            y = y * cfg.d_model ** -0.5
        return y.astype(cfg.compute_dtype)

    def head_kernel(self):
        """The output layer's [d_model, vocab] weights (the shared embedding, transposed, when tied)."""
        if self.config.tie_word_embeddings:
            return self.token_embedder.embedding.T
        return self.logits_dense.kernel

    def _logits(self, y):
        y = self._head_input(y)
        if self.config.tie_word_embeddings:
            logits = self.token_embedder.attend(y)
        else:
            logits = self.logits_dense(y)
        return constrain(logits.astype(jnp.float32), ("batch", "length", "vocab"))

    def _decoder_states(self, encoded, encoder_input_tokens, decoder_input_tokens, encoder_segment_ids,
                        decoder_segment_ids, decoder_positions, enable_dropout):
        y = self.token_embedder(decoder_input_tokens.astype(jnp.int32))
        return self.decoder(y, encoded, encoder_input_tokens, segment_ids=decoder_segment_ids,
                            encoder_segment_ids=encoder_segment_ids, positions=decoder_positions,
                            deterministic=not enable_dropout)

    def decode(self, encoded, encoder_input_tokens, decoder_input_tokens, decoder_target_tokens=None,
               encoder_segment_ids=None, decoder_segment_ids=None, decoder_positions=None, enable_dropout=False):
        """Teacher-forced decoder: logits float32 [B, T, vocab]. `decoder_target_tokens` is accepted for
        interface compatibility; causal + segment masks already hide everything a target mask would."""
        del decoder_target_tokens
        return self._logits(self._decoder_states(encoded, encoder_input_tokens, decoder_input_tokens,
                                                 encoder_segment_ids, decoder_segment_ids, decoder_positions,
                                                 enable_dropout))

    def head_inputs(self, encoder_input_tokens, decoder_input_tokens, decoder_target_tokens=None,
                    encoder_segment_ids=None, decoder_segment_ids=None, encoder_positions=None,
                    decoder_positions=None, enable_dropout=False):
        """`__call__` without the output layer: (the output layer's inputs [B, T, d_model] in the compute
        dtype, its [d_model, vocab] kernel), for a loss that never holds all the logits at once."""
        del decoder_target_tokens
        encoded = self.encode(encoder_input_tokens, encoder_segment_ids, encoder_positions, enable_dropout)
        y = self._decoder_states(encoded, encoder_input_tokens, decoder_input_tokens, encoder_segment_ids,
                                 decoder_segment_ids, decoder_positions, enable_dropout)
        return self._head_input(y), self.head_kernel()

    def __call__(self, encoder_input_tokens, decoder_input_tokens, decoder_target_tokens=None,
                 encoder_segment_ids=None, decoder_segment_ids=None, encoder_positions=None,
                 decoder_positions=None, enable_dropout=False):
        encoded = self.encode(encoder_input_tokens, encoder_segment_ids, encoder_positions, enable_dropout)
        return self.decode(encoded, encoder_input_tokens, decoder_input_tokens, decoder_target_tokens,
                           encoder_segment_ids, decoder_segment_ids, decoder_positions, enable_dropout)

    # -- incremental decoding ---------------------------------------------------
    def init_cache(self, encoded, encoder_input_tokens, max_decode_length: int):
        """Key/value cache: self-attention zeros [L, B, T, H, d_kv] and cross-attention keys/values
        [L, B, S, H, d_kv] computed once from the encoder output."""
        cfg = self.config
        kv = self.decoder(None, encoded, encoder_input_tokens, mode="init_cache")
        shape = (cfg.num_decoder_layers, encoded.shape[0], max_decode_length, cfg.num_heads, cfg.d_kv)
        zeros = jnp.zeros(shape, cfg.compute_dtype)
        return {"self_k": zeros, "self_v": zeros, **kv}

    def decode_step(self, cache, encoder_input_tokens, decoder_tokens, cache_index):
        """One decoding step: decoder_tokens [B, 1] at position `cache_index` -> (logits [B, vocab], cache)."""
        y = self.token_embedder(decoder_tokens.astype(jnp.int32))
        y, cache = self.decoder(y, None, encoder_input_tokens, mode="step", cache=cache, cache_index=cache_index)
        return self._logits(y)[:, 0], cache


def param_shapes(config: T5Config) -> dict:
    """Boxed (nn.Partitioned) jax.ShapeDtypeStruct tree of the params, without computing anything."""
    tokens = jax.ShapeDtypeStruct((1, 1), jnp.int32)
    return jax.eval_shape(Transformer(config).init, {"params": jax.random.PRNGKey(0)}, tokens, tokens)["params"]


def _is_box(x) -> bool:
    return isinstance(x, nn.meta.AxisMetadata)


@functools.partial(jax.jit, static_argnums=0)
def _init_values(config: T5Config, rng):
    # One normal draw for the whole model, sliced per parameter: XLA compiles one RNG instead of
    # one per parameter (about 0.3 s of CPU compile time each). Same distributions as
    # `Transformer.init` (see layers.init_stddev).
    leaves = jax.tree_util.tree_leaves_with_path(nn.meta.unbox(param_shapes(config)))
    total = sum(math.prod(leaf.shape) for _, leaf in leaves)
    flat = jax.random.normal(rng, (total,), jnp.float32)
    values, offset = [], 0
    for path, leaf in leaves:
        size = math.prod(leaf.shape)
        std = init_stddev(config, path[-1].key)
        value = flat[offset:offset + size].reshape(leaf.shape) * std if std else jnp.ones(leaf.shape)
        values.append(value.astype(leaf.dtype))
        offset += size
    return values


def init_params(config: T5Config, rng) -> dict:
    """Randomly initialised params with nn.Partitioned leaves (logical axis names attached)."""
    shapes = param_shapes(config)
    boxes, treedef = jax.tree_util.tree_flatten(shapes, is_leaf=_is_box)
    values = _init_values(config, rng)
    return jax.tree_util.tree_unflatten(treedef, [b.replace_boxed(v) for b, v in zip(boxes, values)])


def unboxed_init_params(config: T5Config, rng) -> dict:
    """`init_params` with the axis-name boxes removed (plain arrays)."""
    return nn.meta.unbox(init_params(config, rng))
