"""Tiny random transformers (PyTorch) T5/mT5 checkpoints written to tmp dirs, for parity tests.

Other test modules import this:

    from model_fixtures import make_hf_checkpoint, build_torch_model, TINY_SIZES
    path = make_hf_checkpoint(tmp_path / "mt5", kind="mt5", weights_format="safetensors")

kind "mt5": `MT5ForConditionalGeneration`, gated-GELU, untied head (like google/mt5-*).
kind "t5_v1_0": `T5ForConditionalGeneration`, ReLU, tied head with the d_model**-0.5 rescale.
kind "mt5_tied": a transformers-5 default `MT5ForConditionalGeneration`: tied head, never rescaled.
kind "t5_tied_unscaled": `T5Config(tie_word_embeddings=False)` in transformers 5: the head is still
  tied at construction, but `scale_decoder_outputs` is False (no rescale).
Layer-norm weights are randomised too, so a parity test cannot pass by accident on ones.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

SPM_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "jaxlt", "resources", "tiny_model", "spiece.model")

# Small enough to be fast on 2 CPU cores; buckets/max distance small so short sequences
# reach the logarithmic buckets.
TINY_SIZES = dict(vocab_size=1024, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                  relative_attention_num_buckets=16, relative_attention_max_distance=24)


def padded_batch(seed: int = 0, vocab: int = 1024, input_lengths=(13, 5, 9), target_lengths=(7, 3, 11),
                 input_width: int = 14, target_width: int = 11):
    """Random inputs and targets of the given lengths, each ending in EOS (1), right-padded with 0."""
    rng = np.random.RandomState(seed)
    enc = np.zeros((len(input_lengths), input_width), np.int64)
    tgt = np.zeros((len(target_lengths), target_width), np.int64)
    for i, (n, m) in enumerate(zip(input_lengths, target_lengths)):
        enc[i, :n - 1] = rng.randint(3, vocab, n - 1)
        enc[i, n - 1] = 1
        tgt[i, :m - 1] = rng.randint(3, vocab, m - 1)
        tgt[i, m - 1] = 1
    return enc, tgt


def build_torch_model(kind: str = "mt5", seed: int = 0, fast_init: bool = False, **sizes):
    """A random transformers model in eval mode (dropout off).

    fast_init: skip transformers' initialisation (~17 s for a 250,112-entry vocabulary on 2 cores)
    and draw the weights from the same normal distributions in one pass each."""
    import contextlib

    import torch
    from transformers import MT5Config, MT5ForConditionalGeneration, T5Config, T5ForConditionalGeneration
    from transformers.initialization import no_init_weights

    sizes = {**TINY_SIZES, **sizes}
    torch.manual_seed(seed)
    with no_init_weights() if fast_init else contextlib.nullcontext():
        model = _construct(kind, sizes, MT5Config, MT5ForConditionalGeneration, T5Config, T5ForConditionalGeneration)
    if kind != "mt5" and not fast_init:  # transformers 5 ties the head at construction
        assert model.lm_head.weight is model.shared.weight
    # no_init_weights also skips tying the encoder/decoder input embeddings to `shared`
    model.encoder.embed_tokens.weight = model.decoder.embed_tokens.weight = model.shared.weight
    if kind != "mt5":
        model.lm_head.weight = model.shared.weight
    with torch.no_grad():
        if fast_init:
            d, dk = sizes["d_model"], sizes["d_kv"]
            for name, p in model.named_parameters():
                std = {"shared.weight": 1.0}.get(name, (d * dk) ** -0.5 if name.endswith(".q.weight") else
                                                 d ** -0.5 if "relative_attention_bias" in name else
                                                 p.shape[-1] ** -0.5)  # as transformers' T5 init
                p.copy_(torch.randn_like(p) * std)
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
    return model.eval()


def _construct(kind, sizes, MT5Config, MT5ForConditionalGeneration, T5Config, T5ForConditionalGeneration):
    import torch

    if kind == "mt5":
        config = MT5Config(feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                           decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **sizes)
        model = MT5ForConditionalGeneration(config)
        # transformers 5 ties mT5's head at construction; real mT5 checkpoints are untied.
        model.lm_head.weight = torch.nn.Parameter(torch.randn(sizes["vocab_size"], sizes["d_model"])
                                                  * sizes["d_model"] ** -0.5)
    elif kind == "mt5_tied":
        config = MT5Config(feed_forward_proj="gated-gelu", dropout_rate=0.0, decoder_start_token_id=0,
                           pad_token_id=0, eos_token_id=1, **sizes)
        model = MT5ForConditionalGeneration(config)
    elif kind in ("t5_v1_0", "t5_tied_unscaled"):
        config = T5Config(feed_forward_proj="relu", tie_word_embeddings=kind == "t5_v1_0", dropout_rate=0.0,
                          decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **sizes)
        model = T5ForConditionalGeneration(config)
        assert config.scale_decoder_outputs == (kind == "t5_v1_0")
    else:
        raise ValueError(f"unknown kind {kind!r}; known: mt5, mt5_tied, t5_v1_0, t5_tied_unscaled")
    return model


def _flax_layout(state: dict[str, np.ndarray]) -> dict:
    """transformers 4.x Flax naming: Linear weight -> kernel [in, out], Embedding weight -> embedding."""
    tree: dict = {}
    for name, w in state.items():
        *path, _ = name.split(".")
        leaf_name = path[-1]
        if leaf_name in ("shared", "relative_attention_bias"):
            leaf, value = "embedding", w
        elif "layer_norm" in leaf_name:
            leaf, value = "weight", w
        else:
            leaf, value = "kernel", w.T
        node = tree
        for key in path:
            node = node.setdefault(key, {})
        node[leaf] = np.ascontiguousarray(value)
    return tree


def make_hf_checkpoint(directory, kind: str = "mt5", *, seed: int = 0, weights_format: str = "safetensors",
                       spm: bool = True, model=None, **sizes) -> str:
    """Writes a tiny random checkpoint directory; returns its path.

    weights_format: "safetensors" (save_pretrained), "sharded" (save_pretrained with small shards),
    "pytorch" (pytorch_model.bin via torch.save), "flax" (flax_model.msgpack, transformers 4.x layout).
    """
    import torch

    directory = str(directory)
    model = model if model is not None else build_torch_model(kind, seed, **sizes)
    if weights_format in ("safetensors", "sharded"):
        kwargs = {"max_shard_size": "60KB"} if weights_format == "sharded" else {}
        model.save_pretrained(directory, **kwargs)
    elif weights_format in ("pytorch", "flax"):
        model.config.save_pretrained(directory)
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if weights_format == "pytorch":
            torch.save(state, os.path.join(directory, "pytorch_model.bin"))
        else:
            from flax import serialization

            arrays = {k: v.numpy() for k, v in state.items()
                      if k not in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")}
            if kind != "mt5":
                arrays.pop("lm_head.weight", None)
            with open(os.path.join(directory, "flax_model.msgpack"), "wb") as f:
                f.write(serialization.msgpack_serialize(_flax_layout(arrays)))
    else:
        raise ValueError(f"unknown weights_format {weights_format!r}")
    if spm:
        shutil.copyfile(SPM_PATH, os.path.join(directory, "spiece.model"))
    return directory


def read_config_json(directory) -> dict:
    with open(os.path.join(str(directory), "config.json")) as f:
        return json.load(f)


def torch_state_numpy(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def no_process_data_dir_fixture():
    """An autouse fixture for modules that read data: no data directory left by another test or the
    environment (JAXLT_DATA_DIR), before and after each test. Use as
    `no_process_data_dir = pytest.fixture(autouse=True)(no_process_data_dir_fixture)`."""
    import pytest

    from jaxlt.data import sources

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
        sources.set_data_dir(None)
        yield
        sources.set_data_dir(None)
