"""Hugging Face checkpoint formats, export back to transformers, and clear errors on bad input."""

import json
import os
import shutil

import jax
import numpy as np
import pytest
import torch

from jaxlt.model import hf_io
from jaxlt.model.hf_io import CheckpointError
from jaxlt.model.loading import load_checkpoint
from model_fixtures import build_torch_model, make_hf_checkpoint

ENC = np.array([[5, 17, 300, 9, 1, 0], [44, 2, 1, 0, 0, 0]])
DEC = np.array([[0, 7, 8, 1000], [0, 3, 0, 0]])


def _torch_logits(model, enc=ENC, dec=DEC):
    with torch.no_grad():
        return model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0),
                     decoder_input_ids=torch.tensor(dec)).logits.numpy()


def _assert_same_params(a, b):
    la, lb = jax.tree_util.tree_leaves_with_path(a), jax.tree_util.tree_leaves_with_path(b)
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope="module")
def mt5_model():
    return build_torch_model("mt5", seed=3)


@pytest.mark.parametrize("fmt", ["sharded", "pytorch", "flax"])
def test_every_weight_format_gives_the_same_params(tmp_path, mt5_model, fmt):
    _, reference = hf_io.load_hf_checkpoint(make_hf_checkpoint(tmp_path / "st", model=mt5_model))
    path = make_hf_checkpoint(tmp_path / fmt, model=mt5_model, weights_format=fmt)
    if fmt == "sharded":
        assert os.path.isfile(os.path.join(path, "model.safetensors.index.json"))
    config, params = hf_io.load_hf_checkpoint(path)
    assert not config.tie_word_embeddings
    _assert_same_params(params, reference)


def test_tied_pytorch_bin_with_duplicate_head(tmp_path):
    """A .bin of a tied T5 stores lm_head.weight == shared.weight: still a tied head (with rescale)."""
    model = build_torch_model("t5_v1_0", seed=4)
    path = make_hf_checkpoint(tmp_path, "t5_v1_0", model=model, weights_format="pytorch")
    config, params = hf_io.load_hf_checkpoint(path)
    assert config.tie_word_embeddings and config.feed_forward_proj == "relu"
    assert "logits_dense" not in params


@pytest.mark.parametrize("kind", ["mt5", "t5_v1_0", "mt5_tied", "t5_tied_unscaled"])
def test_export_loads_in_transformers_with_identical_logits(tmp_path, kind):
    from transformers import AutoModelForSeq2SeqLM

    model = build_torch_model(kind, seed=5)
    config, params = hf_io.load_hf_checkpoint(make_hf_checkpoint(tmp_path / "in", kind, model=model))
    out = tmp_path / "exported"
    hf_io.save_hf_checkpoint(str(out), config, params, spm_path=os.path.join(tmp_path / "in", "spiece.model"))
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "spiece.model"]
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(str(out)).eval()
    # an unscaled T5 is exported as mT5, the same network in transformers 5
    expected = "T5ForConditionalGeneration" if kind == "t5_v1_0" else "MT5ForConditionalGeneration"
    assert type(reloaded).__name__ == expected
    np.testing.assert_array_equal(_torch_logits(reloaded), _torch_logits(model))
    # and back into jaxlt: the same params
    config2, params2 = hf_io.load_hf_checkpoint(str(out))
    assert config2 == config
    _assert_same_params(params2, params)


# -- errors --------------------------------------------------------------------------------
def _listing(path):
    return sorted((p, os.path.getsize(os.path.join(path, p))) for p in os.listdir(path))


@pytest.fixture
def good_dir(tmp_path, mt5_model):
    return make_hf_checkpoint(tmp_path / "ckpt", model=mt5_model)


def test_missing_weights_config_and_tokenizer_are_named(good_dir):
    os.remove(os.path.join(good_dir, "model.safetensors"))
    os.remove(os.path.join(good_dir, "spiece.model"))
    before = _listing(good_dir)
    with pytest.raises(CheckpointError, match=r"missing model weights \(one of model.safetensors.*\); "
                                              r"a SentencePiece tokenizer \(one of spiece.model"):
        load_checkpoint(good_dir)
    with pytest.raises(CheckpointError, match="has no model weights: expected one of model.safetensors"):
        hf_io.load_hf_checkpoint(good_dir)
    os.remove(os.path.join(good_dir, "config.json"))
    with pytest.raises(CheckpointError, match="missing config.json"):
        load_checkpoint(good_dir)
    assert _listing(good_dir) == [p for p in before if p[0] != "config.json"]


def test_shape_mismatch_names_parameter_and_both_shapes(good_dir):
    path = os.path.join(good_dir, "config.json")
    cfg = json.load(open(path))
    cfg["d_ff"] = 48
    json.dump(cfg, open(path, "w"))
    before = _listing(good_dir)
    with pytest.raises(CheckpointError, match=r"parameter encoder\.block\.0\.layer\.1\.DenseReluDense\.wi_0\.weight "
                                              r"has shape \(64, 32\) but the config implies \(48, 32\)"):
        load_checkpoint(good_dir)
    assert _listing(good_dir) == before


def test_wrong_layer_count_and_bad_json(good_dir):
    path = os.path.join(good_dir, "config.json")
    cfg = json.load(open(path))
    cfg["num_layers"] = 3
    json.dump(cfg, open(path, "w"))
    with pytest.raises(CheckpointError, match=r"lacks \d+ parameter\(s\).*encoder\.block\.2\."):
        hf_io.load_hf_checkpoint(good_dir)
    cfg["num_layers"] = 1
    json.dump(cfg, open(path, "w"))
    with pytest.raises(CheckpointError, match=r"does not use .*encoder\.block\.1\."):
        hf_io.load_hf_checkpoint(good_dir)
    with open(path, "w") as f:
        f.write('{\n  "d_model": 32,\n  oops\n}')
    with pytest.raises(CheckpointError, match=r"config.json: invalid JSON at line 3"):
        hf_io.load_hf_checkpoint(good_dir)


def test_other_bad_inputs(tmp_path, good_dir):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_checkpoint(str(tmp_path / "nope"))
    with pytest.raises(CheckpointError, match="step=3 applies only to jaxlt checkpoints"):
        load_checkpoint(good_dir, step=3)
    with open(os.path.join(good_dir, "model.safetensors"), "wb") as f:
        f.write(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read weights from .*model.safetensors"):
        hf_io.load_hf_checkpoint(good_dir)


def test_vocabulary_larger_than_model_is_an_error(tmp_path):
    path = make_hf_checkpoint(tmp_path, "mt5", vocab_size=512)  # the bundled spm has 946 pieces
    with pytest.raises(CheckpointError, match="SentencePiece model has 946 pieces but the model's vocab_size is 512"):
        load_checkpoint(path)


def test_load_checkpoint_returns_vocabulary(good_dir):
    loaded = load_checkpoint(good_dir)
    assert loaded.vocabulary.vocab_size == 946
    assert loaded.vocabulary.encode("hello")[-1] != 1  # seqio adds EOS in the feature converter, not here
    assert loaded.config.vocab_size == 1024
    shutil.rmtree(good_dir)


def test_hf_to_jaxlt_checkpoint_round_trip(tmp_path, mt5_model):
    """HF -> jaxlt params -> orbax (training engineer's Checkpointer) -> load_checkpoint: same logits."""
    import jax.numpy as jnp

    from jaxlt.model.network import Transformer
    from jaxlt.train.checkpointing import Checkpointer
    from jaxlt.train.state import TrainState

    hf_dir = make_hf_checkpoint(tmp_path / "hf", model=mt5_model)
    config, params = hf_io.load_hf_checkpoint(hf_dir)
    with Checkpointer(str(tmp_path / "jaxlt"), config, os.path.join(hf_dir, "spiece.model"),
                      async_save=False) as ckpt:
        ckpt.save(7, TrainState(step=jnp.int32(7), params=params, opt_state={"count": jnp.int32(7)}))
    loaded = load_checkpoint(str(tmp_path / "jaxlt"))
    assert loaded.config == config and loaded.vocabulary.vocab_size == 946
    _assert_same_params(loaded.params, params)
    logits = Transformer(loaded.config).apply({"params": loaded.params}, ENC, DEC)
    np.testing.assert_allclose(np.asarray(logits), _torch_logits(mt5_model), atol=1e-4)
    with pytest.raises(Exception, match="no step 3"):
        load_checkpoint(str(tmp_path / "jaxlt"), step=3)


@pytest.mark.parametrize("repo_files, expected", [
    (["config.json", "spiece.model", "model.safetensors", "pytorch_model.bin"], "model.safetensors"),
    (["config.json", "spiece.model", "flax_model.msgpack", "pytorch_model.bin", "tf_model.h5"], "flax_model.msgpack"),
    (["config.json", "spiece.model", "pytorch_model.bin"], "pytorch_model.bin"),
])
def test_hub_ids_fetch_one_weight_format(monkeypatch, good_dir, repo_files, expected):
    """A hub id is resolved with snapshot_download (faked here: no network in tests)."""
    import fnmatch

    import huggingface_hub

    from jaxlt.model.loading import resolve_checkpoint_path

    calls = {}

    def fake_snapshot_download(repo_id, allow_patterns):
        calls["repo_id"], calls["patterns"] = repo_id, allow_patterns
        return good_dir

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id: repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    assert resolve_checkpoint_path("google/mt5-small") == good_dir
    fetched = {f for f in repo_files if any(fnmatch.fnmatch(f, p) for p in calls["patterns"])}
    assert calls["repo_id"] == "google/mt5-small"
    assert fetched == {"config.json", "spiece.model", expected}
