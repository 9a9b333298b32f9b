"""Parity of the Flax model with transformers' PyTorch T5/mT5 on tiny random checkpoints."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxlt.model import decoding, hf_io, losses
from jaxlt.model.network import Transformer
from model_fixtures import build_torch_model, make_hf_checkpoint, padded_batch

# mt5: google/mt5-* (untied); t5_v1_0: tied + rescaled; mt5_tied: a transformers-5 default mT5
# (tied, never rescaled); t5_tied_unscaled: transformers 5 T5Config(tie_word_embeddings=False).
KINDS = ["mt5", "t5_v1_0", "mt5_tied", "t5_tied_unscaled"]
EOS = 1


@functools.partial(jax.jit, static_argnums=0)
def _forward(config, params, enc, dec_in):
    return Transformer(config).apply({"params": params}, enc, dec_in)


def _batch(seed=0, vocab=1024):
    return padded_batch(seed, vocab)


@pytest.fixture(scope="module", params=KINDS)
def pair(request, tmp_path_factory):
    """(kind, torch model, jaxlt config, jaxlt params) loaded from a save_pretrained directory."""
    torch_model = build_torch_model(request.param, seed=1)
    path = make_hf_checkpoint(tmp_path_factory.mktemp(request.param), request.param, model=torch_model)
    config, params = hf_io.load_hf_checkpoint(path)
    assert config.tie_word_embeddings == (request.param != "mt5")
    # what transformers 5 computes from the same config.json
    assert config.scale_decoder_outputs == bool(getattr(torch_model.config, "scale_decoder_outputs", False))
    assert config.scale_decoder_outputs == (request.param == "t5_v1_0")
    params = jax.tree_util.tree_map(jnp.asarray, params)
    return request.param, torch_model, config, params


def _torch_forward(model, enc, tgt):
    dec_in = np.concatenate([np.zeros((tgt.shape[0], 1), np.int64), tgt[:, :-1]], axis=1)
    out = model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0),
                decoder_input_ids=torch.tensor(dec_in),
                labels=torch.tensor(np.where(tgt > 0, tgt, -100)))
    return out, dec_in


def test_logits_match(pair):
    _, torch_model, config, params = pair
    enc, tgt = _batch()
    with torch.no_grad():
        out, dec_in = _torch_forward(torch_model, enc, tgt)
    logits = _forward(config, params, enc, dec_in)
    assert logits.dtype == jnp.float32 and logits.shape == (3, 11, config.vocab_size)
    np.testing.assert_allclose(np.asarray(logits), out.logits.numpy(), atol=1e-4, rtol=0)


def test_loss_and_log_likelihood_match(pair):
    _, torch_model, config, params = pair
    enc, tgt = _batch(seed=3)
    with torch.no_grad():
        out, dec_in = _torch_forward(torch_model, enc, tgt)
        logp = torch.log_softmax(out.logits, -1).gather(-1, torch.tensor(tgt)[..., None])[..., 0]
        ref_ll = (logp * torch.tensor(tgt > 0)).sum(-1).numpy()
    logits = _forward(config, params, enc, dec_in)
    loss, aux = losses.cross_entropy_loss(logits, jnp.asarray(tgt), jnp.asarray(tgt > 0, jnp.float32))
    np.testing.assert_allclose(float(loss), float(out.loss), rtol=1e-5)
    assert float(aux["weight_sum"]) == (tgt > 0).sum()
    ll = decoding.sequence_log_likelihood(config, params, enc, tgt)
    np.testing.assert_allclose(np.asarray(ll), ref_ll, rtol=1e-5)


def test_gradients_match(pair):
    _, torch_model, config, params = pair
    enc, tgt = _batch(seed=5)
    torch_model.zero_grad()
    out, dec_in = _torch_forward(torch_model, enc, tgt)
    out.loss.backward()
    torch_grads = {name: p.grad.numpy().copy() for name, p in torch_model.named_parameters()}
    ref = hf_io.state_dict_to_params(config, torch_grads, source="torch grads")

    def loss_fn(p):
        return losses.cross_entropy_loss(_forward(config, p, enc, dec_in), jnp.asarray(tgt), None)[0]

    grads = jax.jit(jax.grad(loss_fn))(params)
    flat_ref = dict(jax.tree_util.tree_leaves_with_path(ref))
    flat = jax.tree_util.tree_leaves_with_path(grads)
    assert len(flat) == len(flat_ref)
    for path, g in flat:
        r = flat_ref[path]
        scale = np.abs(r).max()
        assert scale > 0, path
        err = np.abs(np.asarray(g) - r).max() / scale
        assert err <= 1e-4, (jax.tree_util.keystr(path), err)


def _uncached_greedy(config, params, enc, length):
    """Reference: recompute the whole decoder for every new token (no cache). The decoder input is
    padded to a fixed length (one compilation); causality makes position i ignore what follows."""
    tokens = np.zeros((enc.shape[0], length), np.int32)
    done = np.zeros(enc.shape[0], bool)
    for i in range(length):
        dec_in = np.concatenate([np.zeros((enc.shape[0], 1), np.int32), tokens[:, :-1]], axis=1)
        logits = _forward(config, params, enc, dec_in)
        nxt = np.asarray(jnp.argmax(logits[:, i], -1))
        nxt = np.where(done, 0, nxt)
        tokens[:, i] = nxt
        done |= nxt == EOS
    return tokens


def test_greedy_decode_matches_generate_and_uncached(pair):
    kind, torch_model, config, params = pair
    enc, _ = _batch(seed=7)
    length = 11  # = the target length of _batch, so the uncached reference reuses _forward's compile
    with torch.no_grad():
        ref = torch_model.generate(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0),
                                   max_new_tokens=length, do_sample=False, num_beams=1,
                                   decoder_start_token_id=0, eos_token_id=EOS, pad_token_id=0).numpy()
    assert (ref[:, 0] == 0).all()
    ref = ref[:, 1:]
    ref = np.pad(ref, ((0, 0), (0, length - ref.shape[1])))
    ours = np.asarray(decoding.greedy_decode(config, params, enc, length))
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(ours, _uncached_greedy(config, params, enc, length))


def test_greedy_decode_stops_at_eos(tmp_path):
    """A model whose head strongly favours EOS at some steps: tokens after EOS must be 0, as in generate."""
    torch_model = build_torch_model("mt5", seed=2)
    with torch.no_grad():  # make EOS likely so rows finish at different steps
        torch_model.lm_head.weight[EOS] = 3.0 * torch_model.lm_head.weight[5]
    path = make_hf_checkpoint(tmp_path, "mt5", model=torch_model)
    config, params = hf_io.load_hf_checkpoint(path)
    enc, _ = _batch(seed=11)
    length = 11
    with torch.no_grad():
        ref = torch_model.generate(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0),
                                   max_new_tokens=length, do_sample=False, num_beams=1,
                                   decoder_start_token_id=0, eos_token_id=EOS, pad_token_id=0).numpy()[:, 1:]
    ref = np.pad(ref, ((0, 0), (0, length - ref.shape[1])))
    ours = np.asarray(decoding.greedy_decode(config, params, enc, length))
    assert (ours == EOS).any(), "fixture should produce EOS"
    np.testing.assert_array_equal(ours, ref)
    for row in ours:
        hits = np.flatnonzero(row == EOS)
        if hits.size:
            assert (row[hits[0] + 1:] == 0).all()


# -- the real mT5 vocabulary and widths, and bf16 compute ------------------------------------
REAL_SIZES = dict(vocab_size=250112, d_model=512, d_kv=64, d_ff=1024, num_layers=1, num_decoder_layers=1,
                  num_heads=6, relative_attention_num_buckets=32, relative_attention_max_distance=128)


@pytest.fixture(scope="module")
def real_width():
    """mT5-small widths and the 250,112-entry vocabulary (one layer per stack keeps it to ~2 GB):
    torch logits and loss for a batch using ids up to the last one, and the jaxlt (config, params).
    The torch model is dropped once its outputs are known. (Greedy decoding is compared with
    `generate` on the tiny models above; the head's argmax is the same code at any vocabulary.)"""
    model = build_torch_model("mt5", seed=6, fast_init=True, **REAL_SIZES)
    enc, tgt = _batch(seed=13, vocab=REAL_SIZES["vocab_size"])
    enc[0, 0] = tgt[1, 0] = REAL_SIZES["vocab_size"] - 1  # the last sentinel id is reachable
    with torch.no_grad():
        out, dec_in = _torch_forward(model, enc, tgt)
        state = {k: v.numpy() for k, v in model.state_dict().items()}
        config = hf_io.T5Config.from_hf_dict(model.config.to_dict(), tie_word_embeddings=False)
        params = hf_io.state_dict_to_params(config, state)
    del model, state
    return dict(enc=enc, tgt=tgt, dec_in=dec_in, logits=out.logits.numpy(), loss=float(out.loss),
                config=config, params=jax.tree_util.tree_map(jnp.asarray, params))


def test_real_vocabulary_and_widths_match_transformers(real_width):
    r = real_width
    config = r["config"]
    assert config.vocab_size == 250112 and not config.scale_decoder_outputs
    logits = np.asarray(_forward(config, r["params"], r["enc"], r["dec_in"]))
    scale = np.abs(r["logits"]).max()
    assert np.abs(logits - r["logits"]).max() <= 1e-5 * scale * 10
    loss, _ = losses.cross_entropy_loss(logits, jnp.asarray(r["tgt"]), None)
    np.testing.assert_allclose(float(loss), r["loss"], rtol=1e-5)


def test_bf16_compute_stays_close_to_float32_transformers(real_width):
    """bf16 matmuls (8-bit mantissa: ~0.4% per rounding) against the float32 reference, at the real
    widths and vocabulary: logits within a few % of their spread, the loss within 1%."""
    r = real_width
    config = r["config"].replace(dtype="bfloat16")
    logits = np.asarray(_forward(config, r["params"], r["enc"], r["dec_in"]))
    assert logits.dtype == np.float32  # the head's output is handed on in float32
    ref = r["logits"]
    err = np.abs(logits - ref)
    spread = ref.std()
    assert err.mean() <= 0.01 * spread and err.max() <= 0.1 * spread, (err.mean() / spread, err.max() / spread)
    loss, _ = losses.cross_entropy_loss(logits, jnp.asarray(r["tgt"]), None)
    np.testing.assert_allclose(float(loss), r["loss"], rtol=1e-2)
    # and it is not float32 in disguise
    assert err.max() > 1e-4 * spread
