"""jaxlt checkpoints: HF -> jaxlt -> orbax -> jaxlt round trip, keep-last/best, inference loading, errors."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from model_fixtures import SPM_PATH, build_torch_model, make_hf_checkpoint

from jaxlt import partitioning as P
from jaxlt.gin_flags import load_hardware_rules
from jaxlt.model.loading import load_checkpoint
from jaxlt.model.network import Transformer
from jaxlt.train import checkpointing as ck
from jaxlt.train.engine import Trainer


def _logits(config, params, enc, dec):
    # One jitted function for both parameter sets, so "identical" means bit-identical inputs give
    # bit-identical outputs (eager op-by-op dispatch may fuse differently for numpy vs device arrays).
    params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
    return np.asarray(_apply(config, params, jnp.asarray(enc), jnp.asarray(dec)))


def _apply(config, params, enc, dec):
    return jax.jit(lambda p, e, d: Transformer(config).apply({"params": p}, e, d))(params, enc, dec)


def test_hf_to_jaxlt_to_orbax_to_jaxlt_gives_identical_logits(tmp_path):
    import torch

    torch_model = build_torch_model("mt5", seed=3)
    hf_dir = make_hf_checkpoint(tmp_path / "hf", kind="mt5", model=torch_model)
    hf = load_checkpoint(hf_dir)
    assert not ck.is_jaxlt_checkpoint(hf_dir)

    # Place on a fully-sharded 4x2 mesh, save with orbax from there ...
    rules = load_hardware_rules("hardware/rules/fsdp.gin").rules()
    trainer = Trainer(hf.config, batch_size=8, feature_lengths={"inputs": 12, "targets": 6},
                      mesh=P.create_mesh((4, 2)), rules=rules)
    state = trainer.init_state(hf.params)
    assert any(not x.sharding.is_fully_replicated for x in jax.tree.leaves(state.params))
    out = tmp_path / "jaxlt"
    with ck.Checkpointer(out, hf.config, SPM_PATH) as checkpointer:
        checkpointer.save(0, state)
    assert ck.is_jaxlt_checkpoint(out)

    # ... and load it back for inference on one device, through the model package's loader.
    back = load_checkpoint(str(out))
    assert back.config == hf.config
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(hf.params)[0], jax.tree.leaves(back.params)):
        assert np.asarray(a).dtype == np.asarray(b).dtype, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))

    rng = np.random.default_rng(0)
    enc = rng.integers(2, 900, size=(2, 12)).astype(np.int32)
    enc[1, 8:] = 0
    dec = np.concatenate([np.zeros((2, 1), np.int32), rng.integers(2, 900, size=(2, 5)).astype(np.int32)], 1)
    before, after = _logits(hf.config, hf.params, enc, dec), _logits(back.config, back.params, enc, dec)
    np.testing.assert_array_equal(after, before)
    # Independent reference: the transformers PyTorch model on the same inputs.
    with torch.no_grad():
        ref = torch_model(input_ids=torch.tensor(enc, dtype=torch.long),
                          attention_mask=torch.tensor(enc != 0, dtype=torch.long),
                          decoder_input_ids=torch.tensor(dec, dtype=torch.long)).logits.numpy()
    np.testing.assert_allclose(after, ref, atol=2e-4, rtol=1e-4)

    # The full TrainState restores onto the mesh's shardings.
    with ck.Checkpointer(out, hf.config, SPM_PATH) as checkpointer:
        restored, meta = checkpointer.restore(abstract_state=trainer.abstract_state)
    assert meta["step"] == 0
    wi = restored.params["encoder"]["layers"]["mlp"]["wi_0"]
    assert wi.sharding == trainer.param_shardings["encoder"]["layers"]["mlp"]["wi_0"]
    np.testing.assert_array_equal(np.asarray(wi), np.asarray(hf.params["encoder"]["layers"]["mlp"]["wi_0"]))


def _toy_state(value: float):
    import optax

    from jaxlt.train.state import TrainState

    params = {"w": jnp.full((4, 2), value), "b": {"c": jnp.arange(3.0) + value}}
    return TrainState(step=jnp.int32(0), params=params, opt_state=optax.adam(1e-3).init(params))


def test_keeps_last_and_best_and_inference_loads_best(tmp_path):
    from jaxlt.model.config import get_config

    config = get_config("mt5_tiny")
    with ck.Checkpointer(tmp_path, config, SPM_PATH, keep_last=1, keep_best=1, best_metric="accuracy") as c:
        for step, acc in [(1, 50.0), (2, 90.0), (3, 10.0), (4, None)]:
            c.save(step, _toy_state(float(step)), {"accuracy": acc} if acc is not None else None)
        c.wait_until_finished()
        assert c.all_steps() == [2, 4]  # best (90 at step 2) and last
        assert c.best_step() == 2 and c.latest_step() == 4
        with pytest.raises(ValueError, match="metric accuracy = nan is not finite"):
            c.save(5, _toy_state(5.0), {"accuracy": float("nan")})
    marker = json.loads((tmp_path / ck.MARKER).read_text())
    assert marker["format"] == ck.FORMAT and marker["config"]["d_model"] == config.d_model
    assert (tmp_path / "spiece.model").read_bytes() == open(SPM_PATH, "rb").read()
    cfg, params = ck.load_inference_params(tmp_path)
    assert cfg == config
    np.testing.assert_array_equal(np.asarray(params["w"]), np.full((4, 2), 2.0))  # the best step
    _, params = ck.load_inference_params(tmp_path, step=4)
    np.testing.assert_array_equal(np.asarray(params["w"]), np.full((4, 2), 4.0))
    with pytest.raises(FileNotFoundError, match=r"no step 3 .*steps: \[2, 4\]"):
        ck.load_inference_params(tmp_path, step=3)


def test_bad_checkpoint_directories_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a jaxlt checkpoint"):
        ck.read_config(tmp_path)
    (tmp_path / ck.MARKER).write_text(json.dumps({"format": ck.FORMAT, "version": 99, "config": {}}))
    with pytest.raises(ValueError, match="unsupported checkpoint format .* version 99"):
        ck.read_config(tmp_path)
    from jaxlt.model.config import get_config

    with pytest.raises(ValueError, match="keep_last must be >= 1"):
        ck.Checkpointer(tmp_path / "x", get_config("mt5_tiny"), None, keep_last=0)
    ck.Checkpointer(tmp_path / "y", get_config("mt5_tiny"), None).close()
    with pytest.raises(ValueError, match=r"different model config \(d_ff: 128 there vs 96 now"):
        ck.Checkpointer(tmp_path / "y", get_config("mt5_tiny", d_ff=96), None)


def test_optimizer_without_state_saves_and_restores(tmp_path):
    """Plain SGD has an empty optimizer state, which orbax cannot save as an item of its own."""
    import optax

    from jaxlt.model.config import get_config
    from jaxlt.train.state import TrainState

    params = {"w": jnp.full((4, 2), 3.0)}
    state = TrainState(step=jnp.int32(7), params=params, opt_state=optax.sgd(0.1).init(params))
    assert not jax.tree.leaves(state.opt_state)
    with ck.Checkpointer(tmp_path, get_config("mt5_tiny"), SPM_PATH, async_save=False) as c:
        c.save(7, state)
        restored, meta = c.restore(abstract_state=state)
        assert meta["step"] == 7 and int(restored.step) == 7
        np.testing.assert_array_equal(np.asarray(restored.params["w"]), np.full((4, 2), 3.0))
        assert jax.tree.structure(restored.opt_state) == jax.tree.structure(state.opt_state)
        plain, _ = c.restore()
        np.testing.assert_array_equal(np.asarray(plain.params["w"]), np.full((4, 2), 3.0))


def test_a_non_finite_checkpoint_is_refused_by_inference_and_predict(tmp_path, monkeypatch, capsys):
    """A NaN checkpoint (as older versions could write) must not decode to empty predictions, exit 0."""
    from flax import linen as nn

    from jaxlt.commands import predict
    from jaxlt.errors import CheckpointError
    from jaxlt.model.config import get_config
    from jaxlt.model.network import init_params
    from jaxlt.train.state import TrainState

    config = get_config("mt5_tiny")
    good = nn.meta.unbox(init_params(config, jax.random.key(0)))
    nan = jax.tree.map(lambda x: x * np.float32("nan"), good)
    with ck.Checkpointer(tmp_path, config, SPM_PATH, keep_last=2, async_save=False) as c:
        c.save(1, TrainState(step=jnp.int32(1), params=good, opt_state=()))
        monkeypatch.setattr(ck, "all_finite", lambda tree: True)  # bypass the save-time guard
        c.save(2, TrainState(step=jnp.int32(2), params=nan, opt_state=()))
        monkeypatch.undo()
    with pytest.raises(CheckpointError, match=r"step 2 has non-finite .*choose another step \(1\)"):
        ck.load_inference_params(tmp_path)
    assert ck.all_finite(ck.load_inference_params(tmp_path, step=1)[1])
    (tmp_path / "in.jsonl").write_text('{"inputs": "hello"}\n')
    out = tmp_path / "out.jsonl"
    rc = predict.main(["--checkpoint", str(tmp_path), "--input", str(tmp_path / "in.jsonl"),
                       "--output", str(out), "--max_decode_length", "4", "--no_progress"])
    assert rc == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite" in err[0], err
