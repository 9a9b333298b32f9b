"""Batches for training and scoring, through seqio's encoder-decoder feature converter."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
import numpy as np
import seqio


def numpy_iterator(dataset) -> Iterator[dict[str, np.ndarray]]:
    """`dataset.as_numpy_iterator()` with tf.data's autotuning off. Destroying the iterator of an
    endless pipeline that autotuning had been tuning waited ~25 s with no CPU use (TensorFlow 2.21,
    a lab source run of 350 steps; 15 ms without it), once for every source run of a grid; the
    tiny models' training steps were no slower without it."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options).as_numpy_iterator()


def get_dataset(name: str, split: str = "train", *, feature_lengths: Mapping[str, int],
                pack: bool = True, shuffle: bool = True, seed: int | None = 0,
                num_epochs: int | None = None, use_cached: bool = False):
    """The tf.data dataset of a task or mixture, converted for an encoder-decoder model.

    Features (int32): encoder_input_tokens, decoder_input_tokens, decoder_target_tokens,
    decoder_loss_weights, plus *_segment_ids and *_positions when `pack`. `feature_lengths`
    is {"inputs": L_in, "targets": L_out}; longer examples are trimmed (EOS kept).
    """
    return seqio.get_dataset(
        name, task_feature_lengths=dict(feature_lengths), dataset_split=split, shuffle=shuffle,
        num_epochs=num_epochs, feature_converter=seqio.EncDecFeatureConverter(pack=pack),
        seed=seed, use_cached=use_cached)


def get_batches(name: str, split: str = "train", *, batch_size: int,
                feature_lengths: Mapping[str, int], pack: bool = True, shuffle: bool = True,
                seed: int | None = 0, num_epochs: int | None = None,
                drop_remainder: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """Dicts of numpy arrays [batch_size, length] (see `get_dataset`), endless when
    `num_epochs` is None. With `drop_remainder=False` the last batch is padded with all-zero
    rows (zero loss weight) so every batch has the same shape (no recompilation)."""
    dataset = get_dataset(name, split, feature_lengths=feature_lengths, pack=pack,
                          shuffle=shuffle, seed=seed, num_epochs=num_epochs)
    for batch in dataset.batch(batch_size, drop_remainder=drop_remainder).as_numpy_iterator():
        rows = next(iter(batch.values())).shape[0]
        if rows < batch_size:
            batch = {k: np.pad(v, [(0, batch_size - rows)] + [(0, 0)] * (v.ndim - 1))
                     for k, v in batch.items()}
        yield batch
