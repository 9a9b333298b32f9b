"""A shard index may only name files inside its checkpoint directory (no ../, absolute paths or
symlinks out of it): the weights read are the checkpoint's own."""

import json
import os

import numpy as np
import pytest
from safetensors.numpy import save_file

from jaxlt.errors import CheckpointError
from jaxlt.model import hf_io


def _sharded(directory, shard_names):
    os.makedirs(directory, exist_ok=True)
    index = {"metadata": {}, "weight_map": {f"w{i}": name for i, name in enumerate(shard_names)}}
    path = os.path.join(directory, "model.safetensors.index.json")
    with open(path, "w") as f:
        json.dump(index, f)
    return path


def test_shards_inside_the_directory_are_read(tmp_path):
    ckpt = tmp_path / "ckpt"
    os.makedirs(ckpt / "sub")
    save_file({"w0": np.ones(2, np.float32)}, str(ckpt / "a.safetensors"))
    save_file({"w1": np.zeros(3, np.float32)}, str(ckpt / "sub" / "b.safetensors"))
    state = hf_io.read_state_dict(_sharded(ckpt, ["a.safetensors", "sub/b.safetensors"]))
    assert sorted(state) == ["w0", "w1"]


@pytest.mark.parametrize("name", ["../outside.safetensors", "ABSOLUTE", "link.safetensors"])
def test_shards_outside_the_directory_are_refused(tmp_path, name):
    outside = tmp_path / "outside.safetensors"
    save_file({"w0": np.full(2, 7.0, np.float32)}, str(outside))
    ckpt = tmp_path / "ckpt"
    os.makedirs(ckpt)
    if name == "ABSOLUTE":
        name = str(outside)
    if name == "link.safetensors":
        os.symlink(outside, ckpt / name)
    with pytest.raises(CheckpointError, match="outside the checkpoint directory"):
        hf_io.read_state_dict(_sharded(ckpt, [name]))
