"""The shipped lab model's recipe reproduces its first pre-training steps bit for bit on CPU."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from jaxlt.lab import pretrain

SHIPPED = pretrain.SHIPPED_MODEL


def test_shipped_checkpoint_is_complete_and_small():
    names = set(os.listdir(SHIPPED))
    assert {"config.json", "model.safetensors", "spiece.model", pretrain.LOG_FILE, pretrain.RECIPE_FILE} <= names
    size = sum(os.path.getsize(os.path.join(SHIPPED, n)) for n in names)
    assert size <= 20 * 2**20
    recipe = json.load(open(os.path.join(SHIPPED, pretrain.RECIPE_FILE)))
    log = pretrain.read_log(SHIPPED)
    assert [r["step"] for r in log] == list(range(1, recipe["steps_done"] + 1))
    assert recipe["steps_done"] == recipe["config"]["steps"]
    # span corruption was learnt: the loss fell far below its start
    assert log[-1]["loss"] < 0.5 * log[0]["loss"]


@pytest.mark.slow
def test_recipe_reproduces_the_first_steps(tmp_path):
    recipe = json.load(open(os.path.join(SHIPPED, pretrain.RECIPE_FILE)))
    config = pretrain.PretrainConfig(**recipe["config"])
    flags = [f"--{k}={v}" for k, v in dataclasses.asdict(dataclasses.replace(config, steps=2, save_every=2)).items()]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as the recipe
    subprocess.run([sys.executable, "-m", "jaxlt.lab.pretrain", "--out", str(tmp_path), "--no_save", *flags],
                   check=True, env=env, capture_output=True)
    with open(tmp_path / "spiece.model", "rb") as a, open(os.path.join(SHIPPED, "spiece.model"), "rb") as b:
        assert a.read() == b.read()
    got, want = pretrain.read_log(str(tmp_path)), pretrain.read_log(SHIPPED)[:2]
    assert [(r["step"], r["loss"], r["grad_norm"]) for r in got] == \
        [(r["step"], r["loss"], r["grad_norm"]) for r in want]
