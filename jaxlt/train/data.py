"""Training batches from a seqio Task or Mixture: sharded per host, deterministic, resumable by position."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
import jax
import seqio

from jaxlt.data.batching import numpy_iterator


def train_batches(mixture_or_task_name: str, task_feature_lengths: Mapping[str, int], batch_size: int,
                  *, seed: int, split: str = "train", pack: bool = False,
                  shuffle_buffer_size: int | None = 1000) -> Callable[[int], Iterator[dict]]:
    """Returns `data_position -> iterator of numpy batches` for `Trainer.train`.

    Each host reads its shard (seqio ShardInfo) with the same seed; the stream
    repeats forever and is deterministic, so skipping `data_position` batches
    puts a resumed run exactly where the interrupted one stopped.
    """
    nproc = jax.process_count()
    if batch_size % nproc:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {nproc} processes")
    local_batch = batch_size // nproc
    converter = seqio.EncDecFeatureConverter(pack=pack)

    def make(data_position: int) -> Iterator[dict]:
        ds = _get_dataset(mixture_or_task_name, task_feature_lengths, split, converter, nproc, seed,
                          shuffle_buffer_size)
        ds = ds.batch(local_batch, drop_remainder=True)
        if data_position:
            ds = ds.skip(int(data_position))
        return numpy_iterator(ds)

    return make


def _get_dataset(name, lengths, split, converter, nproc, seed, buffer_size):
    provider = seqio.get_mixture_or_task(name)
    # Mixtures shuffle inside their tasks and take no buffer size.
    kwargs = {} if buffer_size is None or not isinstance(provider, seqio.Task) else {
        "shuffle_buffer_size": buffer_size}
    ds = provider.get_dataset(dict(lengths), split=split, shuffle=True, num_epochs=None, seed=seed,
                              shard_info=seqio.ShardInfo(index=jax.process_index(), num_shards=nproc),
                              use_cached=False, **kwargs)
    return converter(ds, dict(lengths))
