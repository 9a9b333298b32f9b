"""Building blocks of the T5 / mT5 encoder-decoder (Flax linen).

Every parameter is created with logical axis names (`nn.with_logical_partitioning`)
and the main activations are constrained with `nn.with_logical_constraint`, so a
single rules table decides how they map onto a device mesh. Parameters are kept
in `config.param_dtype`; matmuls run in `config.dtype`; layer norm statistics and
softmax run in float32.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlt.model.config import T5Config

# A large finite negative (not -inf) so fully masked rows give a uniform softmax, never NaN.
MASK_VALUE = -1e10


def init_stddev(config: T5Config, name: str) -> float:
    """Standard deviation of the normal init of parameter `name` (transformers' T5 init, which
    folds attention's 1/sqrt(d_kv) into the query), or 0.0 for layer-norm scales (ones)."""
    d, h, dk = config.d_model, config.num_heads, config.d_kv
    table = {"query": (d * dk) ** -0.5, "key": d ** -0.5, "value": d ** -0.5, "out": (h * dk) ** -0.5,
             "wi": d ** -0.5, "wi_0": d ** -0.5, "wi_1": d ** -0.5, "wo": config.d_ff ** -0.5,
             "rel_embedding": d ** -0.5, "embedding": 1.0, "kernel": d ** -0.5, "scale": 0.0}
    if name not in table:
        raise KeyError(f"no init rule for parameter {name!r}")
    return table[name]


def _param(module: nn.Module, name: str, shape: tuple[int, ...], axes: tuple[str, ...]):
    init = nn.with_logical_partitioning(nn.initializers.normal(stddev=init_stddev(module.config, name)), axes)
    return module.param(name, init, shape, module.config.parameter_dtype)


def constrain(x, axes):
    return nn.with_logical_constraint(x, axes)


def activation_fn(name: str):
    if name == "gelu_new":  # tanh approximation, as in mT5 / T5.1.1
        return lambda x: jax.nn.gelu(x, approximate=True)
    if name == "gelu":
        return lambda x: jax.nn.gelu(x, approximate=False)
    if name == "relu":
        return jax.nn.relu
    if name == "silu":
        return jax.nn.silu
    raise ValueError(f"unknown activation {name!r}")


class RMSNorm(nn.Module):
    """T5 layer norm: scale only, no bias, no mean subtraction; statistics in float32."""

    config: T5Config

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                           (x.shape[-1],), cfg.parameter_dtype)
        x32 = x.astype(jnp.float32)
        var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
        y = x32 * jax.lax.rsqrt(var + cfg.layer_norm_epsilon)
        return (y * scale.astype(jnp.float32)).astype(cfg.compute_dtype)


def relative_position_bucket(relative_position, bidirectional: bool, num_buckets: int, max_distance: int):
    """Mesh-TensorFlow's bucketing of `memory_position - query_position` (as in transformers' T5)."""
    buckets = jnp.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).astype(relative_position.dtype) * num_buckets
        relative_position = jnp.abs(relative_position)
    else:
        relative_position = -jnp.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    # maximum(., 1) only keeps log() finite where the small branch is selected anyway.
    rp = jnp.maximum(relative_position, 1).astype(jnp.float32)
    large = max_exact + (jnp.log(rp / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).astype(relative_position.dtype)
    large = jnp.minimum(large, num_buckets - 1)
    return buckets + jnp.where(is_small, relative_position, large)


class RelativePositionBiases(nn.Module):
    """Per-head scalar bias for each (query, key) relative-position bucket; shared by all layers."""

    config: T5Config
    bidirectional: bool

    @nn.compact
    def __call__(self, query_positions, key_positions):
        """query_positions [b, Q], key_positions [b, K] (b is 1 or the batch) -> float32 [b, H, Q, K]."""
        cfg = self.config
        table = _param(self, "rel_embedding", (cfg.num_heads, cfg.relative_attention_num_buckets),
                       ("heads", "relpos_buckets"))
        rel = key_positions[:, None, :].astype(jnp.int32) - query_positions[:, :, None].astype(jnp.int32)
        bucket = relative_position_bucket(rel, self.bidirectional, cfg.relative_attention_num_buckets,
                                          cfg.relative_attention_max_distance)
        values = jnp.take(table.astype(jnp.float32).T, bucket, axis=0)  # [b, Q, K, H]
        return jnp.transpose(values, (0, 3, 1, 2))


class MultiHeadAttention(nn.Module):
    """T5 attention: no 1/sqrt(d) scaling (folded into the init), no biases, heads kept as an axis."""

    config: T5Config
    deterministic: bool = True

    @nn.compact
    def __call__(self, inputs_q, inputs_kv, bias=None, mask=None, *, kv=None, cache=None, cache_index=None,
                 only_kv=False, bias_self=None):
        """Returns (output [B, Q, D], (keys, values)).

        kv: precomputed (keys, values) [B, K, H, d_kv] (cached cross-attention).
        cache + cache_index: self-attention cache [B, T, H, d_kv] x2 holding positions < cache_index;
          the query attends to those and to this step's own key/value, which are returned (the caller
          writes them into the cache once for all layers, so no step copies the cache). `bias` and
          `mask` then cover the cache positions; `bias_self` [b, H, 1, 1] is this step's own bias.
        only_kv: project `inputs_kv` to (keys, values) and return (None, (keys, values)).
        """
        cfg = self.config
        dt = cfg.compute_dtype
        h, dk, d = cfg.num_heads, cfg.d_kv, cfg.d_model
        qkv_axes = ("embed", "heads", "kv")
        wq = _param(self, "query", (d, h, dk), qkv_axes)
        wk = _param(self, "key", (d, h, dk), qkv_axes)
        wv = _param(self, "value", (d, h, dk), qkv_axes)
        wo = _param(self, "out", (h, dk, d), ("heads", "kv", "embed"))

        def project_kv(x):
            x = x.astype(dt)
            k = jnp.einsum("bld,dhk->blhk", x, wk.astype(dt))
            v = jnp.einsum("bld,dhk->blhk", x, wv.astype(dt))
            axes = ("batch", "length", "heads", "kv")
            return constrain(k, axes), constrain(v, axes)

        if only_kv:
            return None, project_kv(inputs_kv)
        q = constrain(jnp.einsum("bld,dhk->blhk", inputs_q.astype(dt), wq.astype(dt)),
                      ("batch", "length", "heads", "kv"))
        if kv is not None:
            k, v = kv
        else:
            k, v = project_kv(inputs_kv)
            if cache is not None:
                return self._attend_cache(q, k, v, cache, bias, mask, bias_self, wo)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k.astype(dt)).astype(jnp.float32)
        if bias is not None:
            scores = scores + bias
        if mask is not None:
            scores = jnp.where(mask, scores, MASK_VALUE)
        weights = jax.nn.softmax(scores, axis=-1).astype(dt)
        weights = nn.Dropout(cfg.dropout_rate)(weights, deterministic=self.deterministic)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v.astype(dt))
        out = jnp.einsum("bqhd,hdD->bqD", out, wo.astype(dt))
        return constrain(out, ("batch", "length", "embed")), (k, v)

    def _attend_cache(self, q, k_new, v_new, cache, bias, mask, bias_self, wo):
        """One decoding step: softmax over [cached keys (masked to the written ones), own key]."""
        dt = self.config.compute_dtype
        cached = jnp.einsum("bqhd,bkhd->bhqk", q, cache[0].astype(dt)).astype(jnp.float32)
        own = jnp.einsum("bqhd,bkhd->bhqk", q, k_new.astype(dt)).astype(jnp.float32)
        if bias is not None:
            cached, own = cached + bias, own + bias_self
        if mask is not None:
            cached = jnp.where(mask, cached, MASK_VALUE)
        weights = jax.nn.softmax(jnp.concatenate([cached, own], axis=-1), axis=-1).astype(dt)
        weights = nn.Dropout(self.config.dropout_rate)(weights, deterministic=self.deterministic)
        out = (jnp.einsum("bhqk,bkhd->bqhd", weights[..., :-1], cache[1].astype(dt))
               + jnp.einsum("bhqk,bkhd->bqhd", weights[..., -1:], v_new.astype(dt)))
        out = jnp.einsum("bqhd,hdD->bqD", out, wo.astype(dt))
        return constrain(out, ("batch", "length", "embed")), (k_new, v_new)


class MlpBlock(nn.Module):
    """Feed-forward: gated (wi_0, wi_1 -> wo) for T5.1.1/mT5, plain (wi -> wo) for T5 v1.0."""

    config: T5Config
    deterministic: bool = True

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        dt = cfg.compute_dtype
        act = activation_fn(cfg.activation)
        x = x.astype(dt)
        names = ("wi_0", "wi_1") if cfg.is_gated else ("wi",)
        hs = [jnp.einsum("bld,df->blf", x,
                         _param(self, n, (cfg.d_model, cfg.d_ff), ("embed", "mlp")).astype(dt))
              for n in names]
        h = act(hs[0]) * hs[1] if cfg.is_gated else act(hs[0])
        h = constrain(h, ("batch", "length", "mlp"))
        h = nn.Dropout(cfg.dropout_rate)(h, deterministic=self.deterministic)
        wo = _param(self, "wo", (cfg.d_ff, cfg.d_model), ("mlp", "embed"))
        return constrain(jnp.einsum("blf,fd->bld", h, wo.astype(dt)), ("batch", "length", "embed"))


class EncoderLayer(nn.Module):
    config: T5Config
    deterministic: bool = True

    @nn.compact
    def __call__(self, x, bias, mask):
        cfg = self.config
        drop = nn.Dropout(cfg.dropout_rate)
        h = RMSNorm(cfg, name="pre_attention_layer_norm")(x)
        h, _ = MultiHeadAttention(cfg, self.deterministic, name="attention")(h, h, bias, mask)
        x = x + drop(h, deterministic=self.deterministic)
        h = RMSNorm(cfg, name="pre_mlp_layer_norm")(x)
        h = MlpBlock(cfg, self.deterministic, name="mlp")(h)
        x = x + drop(h, deterministic=self.deterministic)
        return constrain(x, ("batch", "length", "embed")), None


class DecoderLayer(nn.Module):
    """Decoder block. `mode`: "full" (teacher forcing), "init_cache" (cross-attention keys/values
    only), or "step" (one token against the per-layer cache)."""

    config: T5Config
    deterministic: bool = True
    mode: str = "full"

    @nn.compact
    def __call__(self, x, layer_cache, self_bias, self_mask, cross_mask, encoded, cache_index, self_bias_own=None):
        cfg = self.config
        drop = nn.Dropout(cfg.dropout_rate)
        self_attn = MultiHeadAttention(cfg, self.deterministic, name="self_attention")
        cross_attn = MultiHeadAttention(cfg, self.deterministic, name="encoder_decoder_attention")
        if self.mode == "init_cache":
            _, (ck, cv) = cross_attn(None, encoded, only_kv=True)
            return x, {"cross_k": ck, "cross_v": cv}
        step = self.mode == "step"
        h = RMSNorm(cfg, name="pre_self_attention_layer_norm")(x)
        h, (sk, sv) = self_attn(h, h, self_bias, self_mask,
                                cache=(layer_cache["self_k"], layer_cache["self_v"]) if step else None,
                                cache_index=cache_index, bias_self=self_bias_own)
        x = x + drop(h, deterministic=self.deterministic)
        h = RMSNorm(cfg, name="pre_cross_attention_layer_norm")(x)
        h, _ = cross_attn(h, encoded, None, cross_mask,
                          kv=(layer_cache["cross_k"], layer_cache["cross_v"]) if step else None)
        x = x + drop(h, deterministic=self.deterministic)
        h = RMSNorm(cfg, name="pre_mlp_layer_norm")(x)
        h = MlpBlock(cfg, self.deterministic, name="mlp")(h)
        x = x + drop(h, deterministic=self.deterministic)
        x = constrain(x, ("batch", "length", "embed"))
        if step:  # this position's keys/values only: the caller writes them into the cache
            return x, {"self_k": sk, "self_v": sv}
        return x, None
