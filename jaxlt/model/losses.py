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


def vocab_chunk(vocab_size: int, requested: int) -> int:
    """The chunk width used for `requested`: the largest divisor of vocab_size not above it when that
    is at least requested / 8 (no padded columns: 250,112 = 16 x 15,632), else `requested`."""
    requested = max(1, min(int(requested), vocab_size))
    best = max(d for d in range(1, requested + 1) if vocab_size % d == 0) if requested < 1 << 20 else requested
    return best if best * 8 >= requested else requested


def chunked_cross_entropy_loss(hidden, kernel, targets, weights, *, chunk_size: int = 16384,
                               z_loss: float = 0.0, label_smoothing: float = 0.0,
                               loss_normalizing_factor: float | None = None):
    """`cross_entropy_loss(hidden @ kernel, ...)` without ever holding the [B, T, vocab] logits.

    hidden [B, T, D] (the output layer's inputs, in the compute dtype), kernel [D, V]. The vocabulary
    is scanned in chunks of `vocab_chunk(V, chunk_size)` columns with an online logsumexp (running
    max and rescaled sum of exponentials), the target logit, the argmax and, for label smoothing,
    the sum of logits; each chunk's logits are float32 (the matmul accumulates in float32) and are
    recomputed in the backward pass (`jax.checkpoint`), so the live logits are [B, T, chunk].
    Same value and gradients as the plain loss (test), same aux.
    """
    hidden = jnp.asarray(hidden)
    vocab = kernel.shape[-1]
    if hidden.shape[:-1] != targets.shape or kernel.shape[0] != hidden.shape[-1]:
        raise ValueError(f"hidden {hidden.shape}, kernel {kernel.shape} and targets {targets.shape} do not fit")
    if weights is None:
        weights = (targets > 0).astype(jnp.float32)
    weights = jnp.asarray(weights, jnp.float32)
    targets = targets.astype(jnp.int32)
    width = vocab_chunk(vocab, chunk_size)
    num_chunks = -(-vocab // width)
    if num_chunks * width != vocab:
        kernel = jnp.pad(kernel, ((0, 0), (0, num_chunks * width - vocab)))
    neg = jnp.float32(-1e30)
    smooth = bool(label_smoothing)

    @jax.checkpoint
    def body(carry, i):
        m, s, target_logit, logit_sum, best, best_id = carry
        offset = i * width
        k = jax.lax.dynamic_slice_in_dim(kernel, offset, width, axis=1).astype(hidden.dtype)
        logits = jnp.einsum("btd,dc->btc", hidden, k, preferred_element_type=jnp.float32)
        columns = offset + jnp.arange(width)
        valid = columns < vocab
        logits = jnp.where(valid, logits, neg)
        chunk_max = jax.lax.stop_gradient(jnp.max(logits, axis=-1))
        m_new = jnp.maximum(m, chunk_max)
        s = s * jnp.exp(m - m_new) + jnp.sum(jnp.exp(logits - m_new[..., None]), axis=-1)
        local = targets - offset
        here = (local >= 0) & (local < width)
        picked = jnp.take_along_axis(logits, jnp.clip(local, 0, width - 1)[..., None], axis=-1)[..., 0]
        target_logit = target_logit + jnp.where(here, picked, 0.0)
        if smooth:
            logit_sum = logit_sum + jnp.sum(jnp.where(valid, logits, 0.0), axis=-1)
        better = chunk_max > best
        best_id = jnp.where(better, offset + jnp.argmax(logits, axis=-1).astype(jnp.int32), best_id)
        return (m_new, s, target_logit, logit_sum, jnp.where(better, chunk_max, best), best_id), None

    zeros = jnp.zeros(targets.shape, jnp.float32)
    init = (jnp.full(targets.shape, neg), zeros, zeros, zeros, jnp.full(targets.shape, neg),
            jnp.zeros(targets.shape, jnp.int32))
    (m, s, target_logit, logit_sum, _, best_id), _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
    log_z = jax.lax.stop_gradient(m) + jnp.log(s)
    if smooth:
        confidence = 1.0 - label_smoothing
        low = label_smoothing / (vocab - 1)
        sum_log_probs = logit_sum - vocab * log_z
        ce = -(low * sum_log_probs + (confidence - low) * (target_logit - log_z))
        ce = ce + (confidence * jnp.log(confidence) + (vocab - 1) * low * jnp.log(low + 1e-20))
    else:
        ce = log_z - target_logit
    weight_sum = jnp.sum(weights)
    total_ce = jnp.sum(ce * weights)
    total_z = jnp.sum(z_loss * jnp.square(log_z) * weights)
    normaliser = loss_normalizing_factor if loss_normalizing_factor is not None else jnp.maximum(weight_sum, 1e-8)
    loss = (total_ce + total_z) / normaliser
    accuracy = jnp.sum((best_id == targets) * weights) / jnp.maximum(weight_sum, 1e-8)
    return loss, {"cross_entropy": total_ce, "z_loss": total_z, "weight_sum": weight_sum, "accuracy": accuracy}


def decoder_loss(model, params, batch, rng=None, *, z_loss: float = 0.0, label_smoothing: float = 0.0,
                 loss_normalizing_factor: float | None = None, enable_dropout: bool = False):
    """The training loss of a `Transformer` on a batch with t5x feature names -> (loss, aux).

    Token cross-entropy weighted by "decoder_loss_weights" (see `cross_entropy_loss`); over the
    vocabulary in chunks (`chunked_cross_entropy_loss`) when `model.config.loss_chunk` is set.
    """
    from jaxlt.model.network import Transformer

    args = (batch["encoder_input_tokens"], batch["decoder_input_tokens"], batch["decoder_target_tokens"])
    kwargs = dict(encoder_segment_ids=batch.get("encoder_segment_ids"),
                  decoder_segment_ids=batch.get("decoder_segment_ids"),
                  encoder_positions=batch.get("encoder_positions"),
                  decoder_positions=batch.get("decoder_positions"),
                  enable_dropout=enable_dropout, rngs={"dropout": rng} if rng is not None else {})
    targets = batch["decoder_target_tokens"]
    weights = batch["decoder_loss_weights"].astype(jnp.float32)
    options = dict(z_loss=z_loss, label_smoothing=label_smoothing, loss_normalizing_factor=loss_normalizing_factor)
    chunk = model.config.loss_chunk
    if chunk:
        hidden, kernel = model.apply({"params": params}, *args, method=Transformer.head_inputs, **kwargs)
        return chunked_cross_entropy_loss(hidden, kernel, targets, weights, chunk_size=chunk, **options)
    logits = model.apply({"params": params}, *args, **kwargs)
    return cross_entropy_loss(logits, targets, weights, **options)
