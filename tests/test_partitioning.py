"""Meshes and logical-axis rules: the gin/hardware files place parameters as their layout promises."""

from __future__ import annotations

import glob
import os

import jax
import numpy as np
import pytest
from flax import linen as nn
from jax.sharding import PartitionSpec

from jaxlt import partitioning as P
from jaxlt.gin_flags import load_hardware_rules
from jaxlt.gin_flags import GIN_ROOT
from jaxlt.model.config import get_config
from jaxlt.model.network import init_params

CONFIG = get_config("mt5_tiny")  # d_model 64, d_ff 128, 4 heads of 16, vocab 1024, 2 layers


def _placed(rules_file: str, mesh_shape):
    cfg = load_hardware_rules(rules_file)
    mesh = P.create_mesh(mesh_shape)
    boxed = init_params(CONFIG, jax.random.key(0))
    shardings = P.logical_to_shardings(boxed, mesh, cfg.rules())
    return jax.device_put(nn.meta.unbox(boxed), shardings), mesh


def _shard_shape(x):
    shapes = {tuple(s.data.shape) for s in x.addressable_shards}
    assert len(shapes) == 1, shapes
    return shapes.pop()


def test_fsdp_rules_shard_every_matrix_over_data_and_model():
    params, mesh = _placed("hardware/rules/fsdp.gin", (4, 2))
    enc = params["encoder"]["layers"]
    # [layers, embed, mlp]: embed over data (4), mlp over model (2)
    assert enc["mlp"]["wi_0"].sharding.spec == PartitionSpec(None, "data", "model")
    assert _shard_shape(enc["mlp"]["wi_0"]) == (2, 64 // 4, 128 // 2)
    assert _shard_shape(enc["mlp"]["wo"]) == (2, 128 // 2, 64 // 4)
    # [layers, embed, heads, kv]: heads over model, kv replicated
    assert _shard_shape(enc["attention"]["query"]) == (2, 16, 2, 16)
    # [vocab, embed] and [embed, vocab]
    assert _shard_shape(params["token_embedder"]["embedding"]) == (1024 // 2, 64 // 4)
    assert _shard_shape(params["logits_dense"]["kernel"]) == (64 // 4, 1024 // 2)
    # Each device holds 1/8 of every matrix: no device has a full copy.
    for leaf in (enc["mlp"]["wi_0"], params["token_embedder"]["embedding"]):
        assert sum(s.data.size for s in leaf.addressable_shards) == leaf.size
        np.testing.assert_array_equal(np.asarray(leaf), np.asarray(jax.device_get(leaf)))
    # Layer norms [layers, embed] are split over data too (fully sharded), biases [heads, buckets] over model.
    assert _shard_shape(enc["pre_mlp_layer_norm"]["scale"]) == (2, 16)
    assert _shard_shape(params["encoder"]["relpos_bias"]["rel_embedding"]) == (2, 32)


def test_pure_fsdp_on_8_devices_and_optimizer_state_follows_params():
    from jaxlt.train.engine import Trainer

    cfg = load_hardware_rules("hardware/gpu_8_fsdp.gin")
    assert tuple(cfg.mesh_shape) == (8, 1)
    trainer = Trainer(CONFIG, batch_size=8, feature_lengths={"inputs": 8, "targets": 8}, mesh=cfg.make_mesh(),
                      rules=cfg.rules())
    wi = trainer.param_shardings["encoder"]["layers"]["mlp"]["wi_0"]
    assert wi.spec == PartitionSpec(None, "data", "model")
    assert wi.shard_shape((2, 64, 128)) == (2, 8, 128)
    # Adam's moments take their parameter's sharding; the step count is replicated.
    adam = trainer.state_shardings.opt_state[1][0]
    assert adam.mu["encoder"]["layers"]["mlp"]["wi_0"] == wi
    assert adam.nu["logits_dense"]["kernel"] == trainer.param_shardings["logits_dense"]["kernel"]
    assert adam.count.spec == PartitionSpec()


def test_data_and_tensor_parallel_rules():
    params, _ = _placed("hardware/rules/data_parallel.gin", (4, 2))
    for leaf in jax.tree.leaves(params):
        assert leaf.sharding.is_fully_replicated
    params, _ = _placed("hardware/rules/tensor_parallel.gin", (4, 2))
    wi = params["encoder"]["layers"]["mlp"]["wi_0"]
    assert wi.sharding.spec == PartitionSpec(None, None, "model")
    assert _shard_shape(wi) == (2, 64, 64)
    # Activations [batch, length, embed] keep embed whole under FSDP: batch claims 'data' first.
    fsdp = load_hardware_rules("hardware/rules/fsdp.gin").rules()
    assert nn.logical_to_mesh_axes(("batch", "length", "embed"), fsdp) == PartitionSpec("data", None, None)


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(GIN_ROOT, "hardware", "*.gin"))),
                         ids=os.path.basename)
def test_every_hardware_file_parses_to_a_valid_layout(path):
    cfg = load_hardware_rules(os.path.relpath(path, GIN_ROOT))
    names = {name for name, _ in cfg.rules()}
    assert set(P.LOGICAL_AXES) <= names, set(P.LOGICAL_AXES) - names
    assert len(cfg.mesh_shape) == 2
    mesh = P.create_mesh((4, 2))
    P.check_rules_fit_mesh(cfg.rules(), mesh)


def test_mesh_errors_and_inference():
    assert P.create_mesh((-1, 2)).devices.shape == (4, 2)
    assert P.create_mesh((1, 1)).devices.size == 1
    with pytest.raises(ValueError, match=r"needs 16 devices but only 8"):
        P.create_mesh((8, 2))
    with pytest.raises(ValueError, match="not divisible by 3"):
        P.create_mesh((-1, 3))
    with pytest.raises(ValueError, match="has 2 dims but axis_names"):
        P.create_mesh((2, 2), ("data",))
    with pytest.raises(ValueError, match=r"names mesh axis 'tensor'.*\('data', 'model'\)"):
        P.check_rules_fit_mesh(P.validate_rules([("mlp", "tensor")]), P.create_mesh((8, 1)))
    with pytest.raises(ValueError, match="not a \\(logical_name, mesh_axes\\) pair"):
        P.validate_rules([("mlp",)])


def test_indivisible_dimension_is_left_unsharded(caplog):
    mesh = P.create_mesh((1, 8))
    boxed = jax.eval_shape(lambda: init_params(CONFIG, jax.random.key(0)))
    shardings = P.logical_to_shardings(boxed, mesh, (("heads", "model"), ("mlp", "model")))
    # 4 heads cannot be split 8 ways: replicated, with a warning; d_ff 128 can.
    assert shardings["encoder"]["layers"]["attention"]["query"].spec == PartitionSpec(None, None, None, None)
    assert shardings["encoder"]["layers"]["mlp"]["wi_0"].spec == PartitionSpec(None, None, "model")
    assert "not divisible" in caplog.text
