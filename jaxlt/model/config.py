"""Model configuration: a frozen dataclass with Hugging Face field names.

Field names follow `transformers.T5Config` / `MT5Config` so that a checkpoint's
`config.json` maps onto it one to one; `dtype`, `param_dtype`, `remat`, `scan_unroll` and
`logits_chunk_size` are jaxlt's own (compute precision, per-layer rematerialisation, how
many stacked layers each iteration of the compiled layer loop runs, and the vocabulary
chunking of the training loss).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
FEED_FORWARD_PROJS = ("gated-gelu", "relu", "gated-relu", "gated-silu", "gelu")
REMAT_POLICIES = ("none", "full", "dots", "dots_with_no_batch_dims")
JAXLT_FIELDS = ("dtype", "param_dtype", "remat", "scan_unroll", "logits_chunk_size")  # not in a HF config.json


@dataclasses.dataclass(frozen=True)
class T5Config:
    """Hyper-parameters of a T5 v1.0 / T5.1.1 / mT5 encoder-decoder."""

    vocab_size: int = 250112
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 1024
    num_layers: int = 8
    num_decoder_layers: int | None = None
    num_heads: int = 6
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "gated-gelu"
    tie_word_embeddings: bool = False
    # Multiply the decoder output by d_model**-0.5 before the head (T5 v1.0 / Mesh TensorFlow;
    # transformers 5's name). Independent of tying: transformers 5 ties mT5's head without it.
    # None: the same as tie_word_embeddings (jaxlt configs written before this field existed).
    scale_decoder_outputs: bool | None = None
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0
    # jaxlt fields
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: str = "none"
    # Params stay stacked either way; unrolling (>= num_layers: fully) trades compile
    # time for speed, ~1.1-1.4x per train step on CPU, where loop copies are costly.
    scan_unroll: int = 1
    # Training loss over the vocabulary in chunks of this many columns, never holding the float32
    # [batch, length, vocab] logits (same loss and gradients; the chunk logits are recomputed in
    # the backward pass). None: chunks of 16384 when vocab_size >= 65536 (mT5), else off; 0: off.
    logits_chunk_size: int | None = None

    def __post_init__(self):
        if self.num_decoder_layers is None:
            object.__setattr__(self, "num_decoder_layers", self.num_layers)
        if self.scale_decoder_outputs is None:
            object.__setattr__(self, "scale_decoder_outputs", bool(self.tie_word_embeddings))
        if self.feed_forward_proj not in FEED_FORWARD_PROJS:
            raise ValueError(f"feed_forward_proj={self.feed_forward_proj!r}; known: {', '.join(FEED_FORWARD_PROJS)}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in DTYPES:
                raise ValueError(f"{name}={getattr(self, name)!r}; known: {', '.join(DTYPES)}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat={self.remat!r}; known: {', '.join(REMAT_POLICIES)}")
        if self.logits_chunk_size is not None and int(self.logits_chunk_size) < 0:
            raise ValueError(f"logits_chunk_size must be >= 0 or None, got {self.logits_chunk_size}")
        if int(self.scan_unroll) < 1:
            raise ValueError(f"scan_unroll must be >= 1, got {self.scan_unroll}")
        for name in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads",
                     "relative_attention_num_buckets", "relative_attention_max_distance"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    # -- derived -------------------------------------------------------------
    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj.startswith("gated-")

    @property
    def activation(self) -> str:
        """Name of the feed-forward activation ('gelu_new' is the tanh approximation used by mT5)."""
        act = self.feed_forward_proj.split("-")[-1]
        return "gelu_new" if act == "gelu" else act

    @property
    def loss_chunk(self) -> int:
        """Columns per chunk of the training loss's vocabulary scan; 0: the plain loss."""
        if self.logits_chunk_size is None:
            return 16384 if self.vocab_size >= 65536 else 0
        return int(self.logits_chunk_size)

    @property
    def compute_dtype(self):
        return DTYPES[self.dtype]

    @property
    def parameter_dtype(self):
        return DTYPES[self.param_dtype]

    def replace(self, **overrides) -> "T5Config":
        return dataclasses.replace(self, **overrides)

    # -- Hugging Face config.json ---------------------------------------------
    @classmethod
    def from_hf_dict(cls, d: dict[str, Any], **overrides) -> "T5Config":
        """Builds a config from a Hugging Face `config.json` dict (unknown keys are ignored).

        The decoder-output rescale follows what transformers 5 computes from the same file:
        `MT5ForConditionalGeneration` never rescales; `T5ForConditionalGeneration` rescales when
        `scale_decoder_outputs` is true, or, in files without that key (transformers 4), unless
        `tie_word_embeddings` is false. Whether the head is tied is left to the caller, who knows
        the weights (transformers 5 writes `tie_word_embeddings: true` for every mT5).
        """
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known and k not in ("dtype",)}
        # HF aliases
        for alias, name in (("hidden_size", "d_model"), ("num_attention_heads", "num_heads"),
                            ("num_hidden_layers", "num_layers"), ("head_dim", "d_kv")):
            if alias in d and name not in kwargs:
                kwargs[name] = d[alias]
        for name in ("eos_token_id",):
            if isinstance(kwargs.get(name), list):
                kwargs[name] = kwargs[name][0]
        for name in ("pad_token_id", "eos_token_id", "decoder_start_token_id"):
            if kwargs.get(name) is None:
                kwargs.pop(name, None)
        if "tie_word_embeddings" not in d:
            # transformers' default: T5 v1.0 ties; mT5 / T5.1.1 checkpoints say False explicitly.
            kwargs["tie_word_embeddings"] = d.get("model_type", "t5") == "t5"
        if d.get("model_type", "t5") == "mt5":
            kwargs["scale_decoder_outputs"] = False
        elif d.get("scale_decoder_outputs") is not None:
            kwargs["scale_decoder_outputs"] = bool(d["scale_decoder_outputs"])
        else:
            kwargs["scale_decoder_outputs"] = d.get("tie_word_embeddings") is not False
        kwargs.update(overrides)
        return cls(**kwargs)

    def to_hf_dict(self) -> dict[str, Any]:
        """A `config.json` dict that transformers reads back as this model: T5 (with
        `scale_decoder_outputs`) when the decoder output is rescaled, else mT5 (never rescaled)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in JAXLT_FIELDS}
        d["model_type"] = "t5" if self.scale_decoder_outputs else "mt5"
        d["architectures"] = ["T5ForConditionalGeneration" if self.scale_decoder_outputs
                              else "MT5ForConditionalGeneration"]
        d["is_encoder_decoder"] = True
        d["dense_act_fn"] = self.activation
        d["is_gated_act"] = self.is_gated
        return d


def _mt5(vocab_size=250112, **kw) -> T5Config:
    return T5Config(vocab_size=vocab_size, feed_forward_proj="gated-gelu", tie_word_embeddings=False, **kw)


# Published mT5 sizes (Xue et al. 2021; the google/mt5-* config.json files).
_CONFIGS: dict[str, T5Config] = {
    "mt5_small": _mt5(d_model=512, d_kv=64, d_ff=1024, num_layers=8, num_heads=6),
    "mt5_base": _mt5(d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_heads=12),
    "mt5_large": _mt5(d_model=1024, d_kv=64, d_ff=2816, num_layers=24, num_heads=16),
    "mt5_xl": _mt5(d_model=2048, d_kv=64, d_ff=5120, num_layers=24, num_heads=32),
    "mt5_xxl": _mt5(d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64),
    # Test configs: the bundled 946-piece SentencePiece model, rounded up to 1024.
    "mt5_tiny": _mt5(vocab_size=1024, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4),
    "t5_v1_0_tiny": T5Config(vocab_size=1024, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4,
                             feed_forward_proj="relu", tie_word_embeddings=True),
}


def known_configs() -> list[str]:
    return sorted(_CONFIGS)


def get_config(name: str, **overrides) -> T5Config:
    """A named config (`mt5_small` ... `mt5_xxl`, `mt5_tiny`, `t5_v1_0_tiny`) with field overrides."""
    key = name.replace("-", "_").lower()
    if key not in _CONFIGS:
        raise ValueError(f"unknown model config {name!r}; known: {', '.join(known_configs())}")
    fields = {f.name for f in dataclasses.fields(T5Config)}
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"unknown T5Config field(s) {', '.join(bad)}; fields: {', '.join(sorted(fields))}")
    return _CONFIGS[key].replace(**overrides)
