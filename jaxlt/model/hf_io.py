"""Hugging Face T5 / mT5 checkpoint directories <-> jaxlt params.

Reads `config.json` plus one of `model.safetensors` (single or sharded with an
index), `flax_model.msgpack` (the transformers 4.x Flax layout) or
`pytorch_model.bin` (single or sharded; read with `torch.load(weights_only=True)`),
and writes `config.json` + `model.safetensors` (+ `spiece.model`) that
`transformers` loads back.

Tied or untied head: transformers 5 always writes `"tie_word_embeddings": true`,
so the weights decide: a checkpoint with an `lm_head.weight` that differs from
`shared.weight` has an untied head (google/mt5-*, T5.1.1); without one the head is the
shared embedding. The `d_model**-0.5` rescale before the head is a separate question,
answered as transformers 5 does (see `T5Config.from_hf_dict`): never for `model_type`
mt5 (so a transformers-5 default mT5, tied, is not rescaled), for t5 when
`scale_decoder_outputs` says so (T5 v1.0).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterator

import numpy as np

from jaxlt import atomic, errors
from jaxlt.model.config import T5Config

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "flax_model.msgpack",
                "pytorch_model.bin", "pytorch_model.bin.index.json")
# Present in some checkpoints but not used by the model (transformers ignores them too).
IGNORED_KEYS = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",
                "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


# A checkpoint directory that cannot be read: names the file/parameter and what is wrong
# (jaxlt.errors.CheckpointError, a ValueError that the CLI reports as one line, exit status 2).
CheckpointError = errors.CheckpointError


# -- reading raw state dicts ---------------------------------------------------------
def find_weight_file(directory: str) -> str:
    for name in WEIGHT_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    present = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    raise CheckpointError(f"{directory} has no model weights: expected one of {', '.join(WEIGHT_FILES)}; "
                          f"found {present or 'nothing'}")


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors import safe_open

    out = {}
    with safe_open(path, framework="np") as f:
        for key in f.keys():
            out[key] = f.get_tensor(key)
    return out


def _read_torch_bin(path: str) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as e:  # torch is only in the test extra
        raise CheckpointError(f"reading {path} needs PyTorch (pip install torch); "
                              "or convert the checkpoint to model.safetensors") from e
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.detach().to(torch.float32).numpy() if v.is_floating_point() else v.numpy()
            for k, v in state.items()}


def _read_flax_msgpack(path: str) -> dict[str, np.ndarray]:
    """transformers 4.x Flax layout: Dense `kernel` is [in, out], Embed `embedding` is [num, features]."""
    from flax import serialization
    from flax.traverse_util import flatten_dict

    with open(path, "rb") as f:
        tree = serialization.msgpack_restore(f.read())
    out = {}
    for keys, value in flatten_dict(tree).items():
        name, leaf = ".".join(keys[:-1]), keys[-1]
        value = np.asarray(value)
        if leaf == "kernel":
            out[f"{name}.weight"] = value.T
        elif leaf in ("embedding", "weight"):
            out[f"{name}.weight"] = value
        else:
            raise CheckpointError(f"{path}: unexpected Flax parameter {'/'.join(keys)}")
    return out


def _read_sharded(index_path: str, reader) -> dict[str, np.ndarray]:
    with open(index_path) as f:
        weight_map = json.load(f)["weight_map"]
    directory = os.path.dirname(index_path)
    root = os.path.realpath(directory)
    out = {}
    for shard in sorted(set(map(str, weight_map.values()))):
        shard_path = os.path.join(directory, shard)
        # A shard name is a file beside the index: "../x", an absolute path or a symlink leading out
        # of the checkpoint directory is refused, never read.
        if os.path.commonpath([root, os.path.realpath(shard_path)]) != root:
            raise CheckpointError(f"{index_path} names shard {shard!r}, which is outside the checkpoint "
                                  f"directory {directory}; refusing to read it")
        if not os.path.isfile(shard_path):
            raise CheckpointError(f"{index_path} names shard {shard}, which is missing")
        out.update(reader(shard_path))
    return out


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """Weights in transformers' PyTorch naming and layout, whatever the file format."""
    name = os.path.basename(path)
    try:
        if name == "model.safetensors.index.json":
            return _read_sharded(path, _read_safetensors)
        if name == "pytorch_model.bin.index.json":
            return _read_sharded(path, _read_torch_bin)
        if name.endswith(".safetensors"):
            return _read_safetensors(path)
        if name.endswith(".msgpack"):
            return _read_flax_msgpack(path)
        if name.endswith(".bin"):
            return _read_torch_bin(path)
    except CheckpointError:
        raise
    except Exception as e:  # corrupt / truncated files
        raise CheckpointError(f"cannot read weights from {path}: {type(e).__name__}: {e}") from e
    raise CheckpointError(f"unknown weight file format: {path}")


def read_hf_config(directory: str) -> dict:
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path):
        raise CheckpointError(f"{directory} has no {CONFIG_FILE} (needed for the model's sizes)")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from e


# -- name and layout mapping -----------------------------------------------------------
# kind -> (HF shape from config, HF array -> jaxlt array, jaxlt array -> HF array)
def _kinds(c: T5Config) -> dict:
    d, h, k, f, v = c.d_model, c.num_heads, c.d_kv, c.d_ff, c.vocab_size
    return {
        "qkv": ((h * k, d), lambda w: w.T.reshape(d, h, k), lambda m: m.reshape(d, h * k).T),
        "out": ((d, h * k), lambda w: w.T.reshape(h, k, d), lambda m: m.reshape(h * k, d).T),
        "wi": ((f, d), lambda w: w.T, lambda m: m.T),
        "wo": ((d, f), lambda w: w.T, lambda m: m.T),
        "norm": ((d,), lambda w: w, lambda m: m),
        "embed": ((v, d), lambda w: w, lambda m: m),
        "head": ((v, d), lambda w: w.T, lambda m: m.T),
        "relpos": ((c.relative_attention_num_buckets, h), lambda w: w.T, lambda m: m.T),
    }


def _entries(c: T5Config) -> Iterator[tuple[str, tuple[str, ...], int | None, str]]:
    """(HF name, jaxlt path, layer index or None, kind) for every parameter."""
    mlp = ("wi_0", "wi_1") if c.is_gated else ("wi",)
    yield "shared.weight", ("token_embedder", "embedding"), None, "embed"
    if not c.tie_word_embeddings:
        yield "lm_head.weight", ("logits_dense", "kernel"), None, "head"
    stacks = (("encoder", c.num_layers, (("SelfAttention", "attention", "pre_attention_layer_norm"),), "encoder_norm"),
              ("decoder", c.num_decoder_layers, (("SelfAttention", "self_attention", "pre_self_attention_layer_norm"),
                                                 ("EncDecAttention", "encoder_decoder_attention",
                                                  "pre_cross_attention_layer_norm")), "decoder_norm"))
    for stack, n, attentions, final_norm in stacks:
        yield (f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
               (stack, "relpos_bias", "rel_embedding"), None, "relpos")
        yield f"{stack}.final_layer_norm.weight", (stack, final_norm, "scale"), None, "norm"
        for i in range(n):
            for j, (hf_attn, attn, norm) in enumerate(attentions):
                base = f"{stack}.block.{i}.layer.{j}"
                for hf_w, w in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "out")):
                    yield (f"{base}.{hf_attn}.{hf_w}.weight", (stack, "layers", attn, w), i,
                           "out" if w == "out" else "qkv")
                yield f"{base}.layer_norm.weight", (stack, "layers", norm, "scale"), i, "norm"
            base = f"{stack}.block.{i}.layer.{len(attentions)}"
            for w in mlp:
                yield f"{base}.DenseReluDense.{w}.weight", (stack, "layers", "mlp", w), i, "wi"
            yield f"{base}.DenseReluDense.wo.weight", (stack, "layers", "mlp", "wo"), i, "wo"
            yield f"{base}.layer_norm.weight", (stack, "layers", "pre_mlp_layer_norm", "scale"), i, "norm"


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree: dict, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def state_dict_to_params(config: T5Config, state: dict[str, np.ndarray], source: str = "checkpoint") -> dict:
    """transformers-named weights -> jaxlt params (nested dict of numpy arrays, layers stacked)."""
    kinds = _kinds(config)
    dtype = np.dtype(config.parameter_dtype)
    expected = list(_entries(config))
    missing = [name for name, *_ in expected if name not in state]
    if missing:
        raise CheckpointError(f"{source} lacks {len(missing)} parameter(s) the config needs, e.g. "
                              f"{', '.join(missing[:5])}")
    used = {name for name, *_ in expected}
    unexpected = sorted(set(state) - used - set(IGNORED_KEYS) - {"lm_head.weight"})
    if unexpected:
        raise CheckpointError(f"{source} has {len(unexpected)} parameter(s) this config does not use "
                              f"(wrong config.json or architecture?), e.g. {', '.join(unexpected[:5])}")
    ignored = sorted(set(state) & (set(IGNORED_KEYS) | ({"lm_head.weight"} if config.tie_word_embeddings else set())))
    if ignored:
        log.info("%s: ignoring %d unused parameter(s): %s", source, len(ignored), ", ".join(ignored))
    layers: dict[tuple[str, ...], list] = {}
    params: dict = {}
    for name, path, layer, kind in expected:
        shape, to_jax, _ = kinds[kind]
        w = np.asarray(state[name])
        if tuple(w.shape) != tuple(shape):
            raise CheckpointError(f"{source}: parameter {name} has shape {tuple(w.shape)} but the config "
                                  f"implies {tuple(shape)}")
        w = to_jax(w.astype(np.float32)).astype(dtype)
        if layer is None:
            _set(params, path, w)
        else:
            layers.setdefault(path, []).append(w)
    for path, ws in layers.items():
        _set(params, path, np.stack(ws))
    return params


def params_to_state_dict(config: T5Config, params) -> dict[str, np.ndarray]:
    """jaxlt params (boxed or not) -> transformers-named float32 weights."""
    import flax.linen as nn

    params = nn.meta.unbox(params)
    kinds = _kinds(config)
    state = {}
    for name, path, layer, kind in _entries(config):
        try:
            value = _get(params, path)
        except KeyError:
            raise CheckpointError(f"params lack {'/'.join(path)} (needed for {name})") from None
        value = np.asarray(value, dtype=np.float32)
        if layer is not None:
            value = value[layer]
        w = np.ascontiguousarray(kinds[kind][2](value))
        if tuple(w.shape) != tuple(kinds[kind][0]):
            raise CheckpointError(f"param {'/'.join(path)} gives {name} shape {w.shape}; "
                                  f"config implies {kinds[kind][0]}")
        state[name] = w
    return state


# -- public API --------------------------------------------------------------------------
def _is_untied(state: dict[str, np.ndarray]) -> bool:
    head = state.get("lm_head.weight")
    if head is None:
        return False
    shared = state.get("shared.weight")
    return shared is None or head.shape != shared.shape or not np.array_equal(head, shared)


def load_hf_checkpoint(directory: str, **config_overrides) -> tuple[T5Config, dict]:
    """Reads a Hugging Face T5/mT5 directory -> (T5Config, params as a nested dict of numpy arrays)."""
    if not os.path.isdir(directory):
        raise CheckpointError(f"no such checkpoint directory: {directory}")
    hf_config = read_hf_config(directory)
    weight_file = find_weight_file(directory)
    state = read_state_dict(weight_file)
    overrides = {"tie_word_embeddings": not _is_untied(state), **config_overrides}
    try:
        config = T5Config.from_hf_dict(hf_config, **overrides)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{os.path.join(directory, CONFIG_FILE)}: {e}") from e
    return config, state_dict_to_params(config, state, source=weight_file)


def save_hf_checkpoint(directory: str, config: T5Config, params, spm_path: str | None = None) -> None:
    """Writes config.json + model.safetensors (+ spiece.model) that transformers can load."""
    from safetensors.numpy import save

    state = params_to_state_dict(config, params)
    os.makedirs(directory, exist_ok=True)
    hf = config.to_hf_dict()  # with model_type / scale_decoder_outputs as transformers 5 reads them
    atomic.write_bytes(os.path.join(directory, "model.safetensors"), save(state, metadata={"format": "pt"}))
    atomic.write_text(os.path.join(directory, CONFIG_FILE), json.dumps(hf, indent=2) + "\n")
    if spm_path is not None:
        atomic.write_with(os.path.join(directory, "spiece.model"), lambda tmp: shutil.copyfile(spm_path, tmp))
