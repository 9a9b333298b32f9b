"""Token cross-entropy: by default the plain mean over real target tokens (as PyTorch /
transformers fine-tuning); z-loss, a constant normaliser and label smoothing (t5x's options)
only when asked for."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def cross_entropy_loss(logits, targets, weights, z_loss: float = 0.0, label_smoothing: float = 0.0,
                       loss_normalizing_factor: float | None = None):
    """Weighted token cross-entropy -> (loss, aux).

    logits [B, T, V] (any float dtype; computed in float32), targets int [B, T], weights [B, T]
    (e.g. `decoder_loss_weights`; None means `targets > 0`).
    loss = sum_t weights * (ce + z_loss * logsumexp^2) / normaliser, where the normaliser is
    `loss_normalizing_factor` if given, else the sum of weights (a per-token mean, as
    `torch.nn.CrossEntropyLoss` with ignored padding). With label smoothing the target
    distribution puts 1 - s on the target and s / (V - 1) elsewhere, and the loss is shifted by
    that distribution's entropy so a perfect prediction scores 0 (as in t5x).
    aux: cross_entropy (sum), z_loss (sum), weight_sum, accuracy (weighted, 0-1).
    """
    logits = jnp.asarray(logits, jnp.float32)
    if logits.ndim != targets.ndim + 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits shape {logits.shape} does not match targets shape {targets.shape}")
    if weights is None:
        weights = (targets > 0).astype(jnp.float32)
    weights = jnp.asarray(weights, jnp.float32)
    if weights.shape != targets.shape:
        raise ValueError(f"weights shape {weights.shape} does not match targets shape {targets.shape}")
    vocab = logits.shape[-1]
    log_z = jax.nn.logsumexp(logits, axis=-1)
    log_probs = logits - log_z[..., None]
    if label_smoothing:
        confidence = 1.0 - label_smoothing
        low = label_smoothing / (vocab - 1)
        soft = low + (confidence - low) * jax.nn.one_hot(targets, vocab, dtype=jnp.float32)
        ce = -jnp.sum(soft * log_probs, axis=-1)
        normalizing_constant = -(confidence * jnp.log(confidence) + (vocab - 1) * low * jnp.log(low + 1e-20))
        ce = ce - normalizing_constant
    else:
        ce = -jnp.take_along_axis(log_probs, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
    z = z_loss * jnp.square(log_z)
    weight_sum = jnp.sum(weights)
    total_ce = jnp.sum(ce * weights)
    total_z = jnp.sum(z * weights)
    normaliser = loss_normalizing_factor if loss_normalizing_factor is not None else jnp.maximum(weight_sum, 1e-8)
    loss = (total_ce + total_z) / normaliser
    accuracy = jnp.sum((jnp.argmax(logits, -1) == targets) * weights) / jnp.maximum(weight_sum, 1e-8)
    return loss, {"cross_entropy": total_ce, "z_loss": total_z, "weight_sum": weight_sum, "accuracy": accuracy}


def token_log_likelihoods(logits, targets):
    """log p(target_t | ...) per position, float32 [B, T]."""
    log_probs = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    return jnp.take_along_axis(log_probs, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]
