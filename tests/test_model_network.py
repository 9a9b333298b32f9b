"""Network properties that the parity tests do not cover: axis names, vmap, packing, dropout,
remat, bf16, sharded execution, losses and configs."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxlt.model import losses
from jaxlt.model.config import T5Config, get_config, known_configs
from jaxlt.model.network import Transformer, init_params, param_shapes

CFG = get_config("mt5_tiny", d_model=32, d_kv=8, d_ff=64, num_heads=4, vocab_size=256, dropout_rate=0.1)
LOGICAL = {"vocab", "embed", "mlp", "heads", "kv", "joined_kv", "relpos_buckets", "layers"}


@pytest.fixture(scope="module")
def boxed():
    return init_params(CFG, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def params(boxed):
    return nn.meta.unbox(boxed)


@functools.partial(jax.jit, static_argnums=0, static_argnames=("enable_dropout",))
def forward(config, params, enc, dec, enable_dropout=False, rng=None, **kw):
    rngs = {"dropout": rng} if rng is not None else {}
    return Transformer(config).apply({"params": params}, enc, dec, enable_dropout=enable_dropout, rngs=rngs, **kw)


def _tokens(seed, shape, vocab=256):
    return jnp.asarray(np.random.RandomState(seed).randint(2, vocab, shape), jnp.int32)


# One input shape for most tests, so they share compiled functions.
ENC, DEC = (2, 6), (2, 4)


def test_every_param_has_logical_axis_names(boxed):
    leaves = jax.tree_util.tree_leaves_with_path(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert len(leaves) > 20
    for path, leaf in leaves:
        assert isinstance(leaf, nn.Partitioned), jax.tree_util.keystr(path)
        assert len(leaf.names) == leaf.value.ndim and set(leaf.names) <= LOGICAL, (path, leaf.names)
        assert leaf.value.dtype == jnp.float32
        if "layers" in jax.tree_util.keystr(path):
            assert leaf.names[0] == "layers" and leaf.value.shape[0] == CFG.num_layers
    specs = nn.get_partition_spec(boxed)
    assert specs["encoder"]["layers"]["mlp"]["wi_0"] == PartitionSpec("layers", "embed", "mlp")


def test_vmap_over_stacked_params(params):
    other = nn.meta.unbox(init_params(CFG, jax.random.PRNGKey(1)))
    stacked = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), params, other)
    enc, dec = _tokens(0, ENC), _tokens(1, DEC)
    fn = jax.jit(jax.vmap(lambda p: Transformer(CFG).apply({"params": p}, enc, dec)))
    both = fn(stacked)
    np.testing.assert_allclose(both[0], forward(CFG, params, enc, dec), atol=1e-5)
    np.testing.assert_allclose(both[1], forward(CFG, other, enc, dec), atol=1e-5)


def test_packed_rows_equal_separate_examples(params):
    """Two examples packed into one row (segment ids + positions) give the logits of separate rows."""
    a_in, a_tg = _tokens(2, (1, 6)), _tokens(3, (1, 4))
    b_in, b_tg = _tokens(4, (1, 5)), _tokens(5, (1, 3))
    pad_in, pad_tg = 3, 2
    # the separate examples as one right-padded batch of the standard shape
    separate = forward(CFG, params, jnp.concatenate([a_in, jnp.pad(b_in, ((0, 0), (0, 1)))]),
                       jnp.concatenate([a_tg, jnp.pad(b_tg, ((0, 0), (0, 1)))]))
    enc = jnp.concatenate([a_in, b_in, jnp.zeros((1, pad_in), jnp.int32)], 1)
    dec = jnp.concatenate([a_tg, b_tg, jnp.zeros((1, pad_tg), jnp.int32)], 1)
    enc_seg = jnp.asarray([[1] * 6 + [2] * 5 + [0] * pad_in])
    dec_seg = jnp.asarray([[1] * 4 + [2] * 3 + [0] * pad_tg])
    enc_pos = jnp.asarray([list(range(6)) + list(range(5)) + [0] * pad_in])
    dec_pos = jnp.asarray([list(range(4)) + list(range(3)) + [0] * pad_tg])
    packed = forward(CFG, params, enc, dec, encoder_segment_ids=enc_seg, decoder_segment_ids=dec_seg,
                     encoder_positions=enc_pos, decoder_positions=dec_pos)
    np.testing.assert_allclose(packed[0, :4], separate[0], atol=1e-5)
    np.testing.assert_allclose(packed[0, 4:7], separate[1, :3], atol=1e-5)


def test_padding_does_not_change_logits(params):
    enc, dec = _tokens(6, ENC), _tokens(7, DEC)
    padded = forward(CFG, params, jnp.pad(enc, ((0, 0), (0, 5))), jnp.pad(dec, ((0, 0), (0, 3))))
    np.testing.assert_allclose(padded[:, :4], forward(CFG, params, enc, dec), atol=1e-5)


def test_dropout_uses_the_dropout_rng(params):
    enc, dec = _tokens(8, ENC), _tokens(9, DEC)
    base = forward(CFG, params, enc, dec)
    d1 = forward(CFG, params, enc, dec, enable_dropout=True, rng=jax.random.PRNGKey(1))
    d1_again = forward(CFG, params, enc, dec, enable_dropout=True, rng=jax.random.PRNGKey(1))
    d2 = forward(CFG, params, enc, dec, enable_dropout=True, rng=jax.random.PRNGKey(2))
    np.testing.assert_array_equal(d1, d1_again)
    assert np.abs(d1 - base).max() > 1e-3 and np.abs(d1 - d2).max() > 1e-3


def test_remat_keeps_gradients(params):
    enc, dec = _tokens(10, ENC), _tokens(11, DEC)

    @functools.partial(jax.jit, static_argnums=0)
    def grad(config, p):
        def loss(p):
            logits = Transformer(config).apply({"params": p}, enc, dec)
            return losses.cross_entropy_loss(logits, dec, None)[0]
        return jax.grad(loss)(p)

    g_ref = grad(CFG, params)
    g = grad(CFG.replace(remat="full"), params)
    for a, b in zip(jax.tree_util.tree_leaves(g_ref), jax.tree_util.tree_leaves(g)):
        np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


def test_bfloat16_compute_float32_params(params):
    enc, dec = _tokens(12, ENC), _tokens(13, DEC)
    cfg16 = CFG.replace(dtype="bfloat16")
    logits16 = forward(cfg16, params, enc, dec)
    logits32 = forward(CFG, params, enc, dec)
    assert logits16.dtype == jnp.float32
    assert {x.dtype for x in jax.tree_util.tree_leaves(nn.meta.unbox(param_shapes(cfg16)))} == {jnp.dtype("float32")}
    rel = np.abs(logits16 - logits32).max() / np.abs(logits32).max()
    assert 0 < rel < 0.05


def test_sharded_forward_matches_single_device(params, boxed):
    """Params and activations placed by logical-axis rules on a (data=4, model=2) mesh of CPU devices."""
    if jax.device_count() < 8:
        pytest.fail("conftest should give 8 CPU devices (XLA_FLAGS)")
    mesh = Mesh(np.asarray(jax.devices()[:8]).reshape(4, 2), ("data", "model"))
    rules = (("batch", "data"), ("heads", "model"), ("mlp", "model"), ("vocab", "model"), ("embed", None),
             ("kv", None), ("length", None), ("layers", None), ("relpos_buckets", None), ("joined_kv", None))
    shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(boxed), mesh, rules)
    enc, dec = _tokens(14, (4, 6)), _tokens(15, (4, 4))

    def fn(p, e, d):
        with nn.logical_axis_rules(rules):
            return Transformer(CFG).apply({"params": p}, e, d)

    with mesh:
        placed = jax.device_put(params, shardings)
        assert placed["decoder"]["layers"]["mlp"]["wi_0"].sharding.spec == PartitionSpec(None, None, "model")
        out = jax.jit(fn)(placed, enc, dec)
    np.testing.assert_allclose(out, forward(CFG, params, enc, dec), atol=1e-5)


# -- losses ---------------------------------------------------------------------------------
def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_cross_entropy_against_numpy():
    rng = np.random.RandomState(0)
    logits = rng.randn(2, 5, 11).astype(np.float32) * 3
    targets = rng.randint(0, 11, (2, 5))
    weights = rng.rand(2, 5).astype(np.float32)
    lp = _np_log_softmax(logits.astype(np.float64))
    ce = -np.take_along_axis(lp, targets[..., None], -1)[..., 0]
    log_z = np.log(np.exp(logits.astype(np.float64)).sum(-1))
    loss, aux = losses.cross_entropy_loss(logits, targets, weights, z_loss=1e-2)
    np.testing.assert_allclose(float(loss), ((ce + 1e-2 * log_z ** 2) * weights).sum() / weights.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(aux["z_loss"]), (1e-2 * log_z ** 2 * weights).sum(), rtol=1e-5)
    loss, _ = losses.cross_entropy_loss(logits, targets, weights, loss_normalizing_factor=7.0)
    np.testing.assert_allclose(float(loss), (ce * weights).sum() / 7.0, rtol=1e-5)
    # label smoothing: 0.9 on the target, 0.1/10 elsewhere, minus that distribution's entropy
    s, v = 0.1, 11
    soft = np.full((2, 5, v), s / (v - 1))
    np.put_along_axis(soft, targets[..., None], 1 - s, -1)
    entropy = -((1 - s) * np.log(1 - s) + s * np.log(s / (v - 1)))
    ref = (((-(soft * lp).sum(-1)) - entropy) * weights).sum() / weights.sum()
    loss, _ = losses.cross_entropy_loss(logits, targets, weights, label_smoothing=s)
    np.testing.assert_allclose(float(loss), ref, rtol=1e-5)
    # weights=None means non-pad targets
    loss, aux = losses.cross_entropy_loss(logits, targets, None)
    np.testing.assert_allclose(float(aux["weight_sum"]), (targets > 0).sum())


def test_cross_entropy_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"logits shape \(2, 5, 11\).*targets shape \(2, 4\)"):
        losses.cross_entropy_loss(np.zeros((2, 5, 11)), np.zeros((2, 4), int), None)


# -- configs --------------------------------------------------------------------------------
def test_named_configs_have_published_sizes():
    # google/mt5-{small,base,large,xl,xxl} config.json: (d_model, d_ff, layers, heads)
    published = {"mt5_small": (512, 1024, 8, 6), "mt5_base": (768, 2048, 12, 12), "mt5_large": (1024, 2816, 24, 16),
                 "mt5_xl": (2048, 5120, 24, 32), "mt5_xxl": (4096, 10240, 24, 64)}
    for name, (d, f, n, h) in published.items():
        c = get_config(name)
        assert (c.d_model, c.d_ff, c.num_layers, c.num_decoder_layers, c.num_heads) == (d, f, n, n, h)
        assert (c.vocab_size, c.d_kv, c.feed_forward_proj, c.tie_word_embeddings) == (250112, 64, "gated-gelu", False)
    assert get_config("mt5_tiny").vocab_size == 1024
    assert get_config("t5_v1_0_tiny").tie_word_embeddings and get_config("t5_v1_0_tiny").activation == "relu"
    assert get_config("mt5-base", dtype="bfloat16").compute_dtype == jnp.bfloat16


def test_config_errors_name_the_choices():
    with pytest.raises(ValueError, match="unknown model config 'mt5_huge'; known: .*mt5_base.*mt5_xxl"):
        get_config("mt5_huge")
    with pytest.raises(ValueError, match="unknown T5Config field.*d_modle"):
        get_config("mt5_tiny", d_modle=3)
    with pytest.raises(ValueError, match="remat='sometimes'; known: none, full"):
        get_config("mt5_tiny", remat="sometimes")
    assert "mt5_xl" in known_configs()


def test_hf_dict_round_trip_and_transformers_config():
    from transformers import MT5Config

    for name in ("mt5_base", "t5_v1_0_tiny"):
        c = get_config(name)
        assert T5Config.from_hf_dict(c.to_hf_dict()) == c.replace(dtype="float32")
    hf = MT5Config(d_model=768, d_ff=2048, num_layers=12, num_heads=12).to_dict()
    ours = T5Config.from_hf_dict(hf, tie_word_embeddings=False)
    assert ours == get_config("mt5_base")


def test_gin_configurable_get_config():
    import gin

    # Another test in this process may have finalized (locked) gin before the first import.
    with gin.unlock_config():
        import jaxlt.model.gin_configurables  # noqa: F401

    # A private scope, so the bindings cannot leak into other tests' gin configs.
    with gin.unlock_config():
        gin.parse_config(["jaxlt_model_test/jaxlt.model.get_config.name = 'mt5_small'",
                          "jaxlt_model_test/jaxlt.model.get_config.dtype = 'bfloat16'"])
    with gin.config_scope("jaxlt_model_test"):
        c = gin.get_configurable("jaxlt.model.get_config")()
    assert c == get_config("mt5_small", dtype="bfloat16")


def test_scan_unroll_changes_speed_not_results():
    """Unrolling the layer loop keeps the stacked params and the function: same logits and gradients."""
    cfg = CFG.replace(dropout_rate=0.0, num_layers=3, num_decoder_layers=3)
    params = nn.meta.unbox(init_params(cfg, jax.random.key(1)))
    enc, dec = _tokens(0, (2, 7)), _tokens(1, (2, 5))

    def loss(c, p):
        return jnp.sum(Transformer(c).apply({"params": p}, enc, dec) ** 2)

    rolled = jax.value_and_grad(functools.partial(loss, cfg))(params)
    unrolled = jax.value_and_grad(functools.partial(loss, cfg.replace(scan_unroll=3)))(params)
    np.testing.assert_allclose(rolled[0], unrolled[0], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(rolled[1]), jax.tree.leaves(unrolled[1])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert "scan_unroll" not in cfg.replace(scan_unroll=3).to_hf_dict()
    with pytest.raises(ValueError, match="scan_unroll"):
        cfg.replace(scan_unroll=0)
