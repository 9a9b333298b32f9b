"""One jaxlt training step equals one transformers (PyTorch) fine-tuning step.

The paper fine-tunes with PyTorch: mean token cross-entropy over the non-padding targets
(`labels=-100` for padding), `torch.nn.utils.clip_grad_norm_(..., 1.0)`, `torch.optim.Adam`
(lr 3e-4, no weight decay). jaxlt's Trainer with its defaults and `make_optimizer()` must give the
same loss, gradient norm and updated parameters on the same tiny untied mT5 and batch.
"""

from __future__ import annotations

import jax
import numpy as np
import torch

from jaxlt import partitioning as P
from jaxlt.model import hf_io
from jaxlt.train.engine import Trainer
from jaxlt.train.optimizer import make_optimizer
from model_fixtures import build_torch_model, make_hf_checkpoint, padded_batch

FAST = {"xla_backend_optimization_level": 0}


def _batch(seed=0, vocab=1024):
    """Rows of different target lengths, so a per-token mean differs from a mean of row means."""
    return padded_batch(seed, vocab, input_lengths=(13, 5, 9, 14), target_lengths=(2, 11, 6, 9))


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def test_one_train_step_equals_transformers_pytorch_step(tmp_path):
    torch.manual_seed(0)
    model = build_torch_model("mt5", seed=4)
    path = make_hf_checkpoint(tmp_path / "mt5", "mt5", model=model)
    config, params = hf_io.load_hf_checkpoint(path)
    assert not config.tie_word_embeddings and config.dropout_rate == 0.0
    enc, tgt = _batch()

    # -- PyTorch: what the paper's fine-tuning does
    model.train()  # dropout_rate is 0: train mode changes nothing but is what fine-tuning runs in
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    opt.zero_grad()
    labels = torch.tensor(np.where(tgt > 0, tgt, -100))
    out = model(input_ids=torch.tensor(enc), attention_mask=torch.tensor(enc > 0), labels=labels)
    out.loss.backward()
    torch_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    opt.step()
    torch_after = {k: v.detach().numpy().copy() for k, v in model.named_parameters()}
    torch_after = hf_io.state_dict_to_params(config, torch_after, source="torch")
    # the clip must be active, or this test would not check it
    assert torch_norm > 1.5, torch_norm

    # -- jaxlt: Trainer defaults (plain mean cross-entropy) and the default optimizer
    trainer = Trainer(config, batch_size=4, feature_lengths={"inputs": 14, "targets": 11},
                      optimizer=make_optimizer(), mesh=P.create_mesh((1, 1)), compiler_options=FAST)
    dec_in = np.concatenate([np.zeros((4, 1), np.int64), tgt[:, :-1]], axis=1)
    batch = {"encoder_input_tokens": enc, "decoder_input_tokens": dec_in, "decoder_target_tokens": tgt,
             "decoder_loss_weights": (tgt > 0).astype(np.float32)}
    state, metrics = trainer.train_step(trainer.init_state(params), batch, seed=0)
    metrics = jax.device_get(metrics)
    after = jax.device_get(state.params)

    ref_loss = float(out.loss.detach())
    assert _rel(metrics["loss"], ref_loss) <= 1e-4
    assert _rel(metrics["objective"], ref_loss) <= 1e-4  # the optimised value is the plain mean
    assert float(metrics["z_loss"]) == 0.0
    assert _rel(metrics["grad_norm"], torch_norm) <= 1e-4
    flat_ref = dict(jax.tree_util.tree_leaves_with_path(torch_after))
    flat_before = dict(jax.tree_util.tree_leaves_with_path(params))
    leaves = jax.tree_util.tree_leaves_with_path(after)
    assert len(leaves) == len(flat_ref)
    for p, value in leaves:
        name = jax.tree_util.keystr(p)
        assert _rel(value, flat_ref[p]) <= 1e-4, name
        # The step itself (new - old) agrees too, on its own scale: Adam moves each weight by about
        # lr, far below 1e-4 of the weights. Entries with gradients near Adam's eps move by
        # lr * g / (|g| + eps), which float rounding of g shifts by up to a few % of lr, so the
        # step is compared in norm (a flipped sign anywhere would move it by 2 lr).
        step_ours = np.asarray(value, np.float64) - flat_before[p]
        step_ref = np.asarray(flat_ref[p], np.float64) - flat_before[p]
        assert np.linalg.norm(step_ref) > 0, name
        assert np.linalg.norm(step_ours - step_ref) <= 1e-3 * np.linalg.norm(step_ref), name
        assert np.abs(step_ours - step_ref).max() <= 0.05 * 3e-4, name


def test_plain_mean_is_the_default_and_t5x_options_stay_explicit():
    """Trainer defaults to no z-loss and a per-token mean; the t5x choices are still accepted."""
    from jaxlt.model.config import get_config
    from jaxlt.train.engine import MT5_LOSS_NORMALIZING_FACTOR

    cfg = get_config("mt5_tiny", dropout_rate=0.0)
    t = Trainer(cfg, batch_size=2, feature_lengths={"inputs": 4, "targets": 4}, mesh=P.create_mesh((1, 1)))
    assert t.z_loss == 0.0 and t.loss_normalizing_factor is None and t.label_smoothing == 0.0
    t2 = Trainer(cfg, batch_size=2, feature_lengths={"inputs": 4, "targets": 4}, mesh=P.create_mesh((1, 1)),
                 z_loss=1e-4, loss_normalizing_factor=MT5_LOSS_NORMALIZING_FACTOR)
    assert t2.z_loss == 1e-4 and t2.loss_normalizing_factor == 1024.0 * 229
