"""mT5's span-corruption objective (Raffel et al. 2020, section 3.1.4; Xue et al. 2021) as seqio tasks.

Per text: tokenize, cut into chunks of at most `max_tokens` tokens, pick noise spans
(`noise_density` 0.15 of the tokens, mean span length 3, spans interleaved with non-noise,
starting with non-noise), replace each noise span in the inputs by one sentinel and each
non-noise span in the targets by one sentinel. Sentinel i has id `vocab_size - 1 - i` (mT5's
spiece.model ends with its sentinels; seqio `extra_ids=0`).

`register_span_corruption_task(dataset, lang)` registers `span_corruption.{dataset}.{lang}` over
the plain text of that task's records (by default its training split);
`register_text_span_corruption_task(name, texts_by_split)` does so over any text source.
Used for the language-model features (paper, section 2.2). Unlike mT5 pre-training, texts are
not concatenated across documents before chunking: each example stays within one text, so a
per-language loss measures that language's text only. `output_lengths(max_tokens)` gives the
feature lengths that hold a full chunk without truncation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
import logging

import seqio
import tensorflow as tf

from jaxlt.data import sources

logger = logging.getLogger(__name__)

NOISE_DENSITY = 0.15
MEAN_NOISE_SPAN_LENGTH = 3.0
MAX_TOKENS = 512


def random_spans_noise_mask(length, noise_density: float, seeds, mean_noise_span_length: float
                            ) -> tf.Tensor:
    """Boolean [length] mask of noise tokens: round(length * density) of them (at least 1, at most
    length - 1), in round(num_noise / mean_span) spans; spans and gaps have random lengths."""
    orig_length = length
    length = tf.maximum(length, 2)
    num_noise_tokens = tf.cast(tf.round(tf.cast(length, tf.float32) * noise_density), tf.int32)
    num_noise_tokens = tf.clip_by_value(num_noise_tokens, 1, length - 1)
    num_noise_spans = tf.cast(
        tf.round(tf.cast(num_noise_tokens, tf.float32) / mean_noise_span_length), tf.int32)
    num_noise_spans = tf.maximum(num_noise_spans, 1)
    num_nonnoise_tokens = length - num_noise_tokens

    def random_segmentation(num_items, num_segments, seed):
        # Random composition of num_items into num_segments positive parts.
        boundaries = tf.range(num_items - 1) < num_segments - 1
        boundaries = seqio.utils.stateless_shuffle(boundaries, seed)
        first_in_segment = tf.pad(tf.cast(boundaries, tf.int32), [[1, 0]])
        segment_id = tf.cumsum(first_in_segment)
        return tf.math.segment_sum(tf.ones_like(segment_id), segment_id)

    noise_lengths = random_segmentation(num_noise_tokens, num_noise_spans, seeds[0])
    nonnoise_lengths = random_segmentation(num_nonnoise_tokens, num_noise_spans, seeds[1])
    interleaved = tf.reshape(tf.stack([nonnoise_lengths, noise_lengths], axis=1),
                             [num_noise_spans * 2])
    span_starts = tf.cumsum(interleaved)[:-1]
    span_start_indicator = tf.math.unsorted_segment_sum(tf.ones_like(span_starts), span_starts,
                                                        length)
    span_num = tf.cumsum(span_start_indicator)
    return tf.equal(span_num % 2, 1)[:orig_length]


def output_lengths(max_tokens: int = MAX_TOKENS, noise_density: float = NOISE_DENSITY,
                   mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> dict[str, int]:
    """{"inputs", "targets"} lengths (with EOS) of a corrupted chunk of `max_tokens` tokens."""
    length = max(max_tokens, 2)
    num_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    num_spans = max(int(round(num_noise / mean_noise_span_length)), 1)
    return {"inputs": max_tokens - num_noise + num_spans + 1, "targets": num_noise + num_spans + 1}


def spans_to_sentinels(tokens: tf.Tensor, mask: tf.Tensor, vocab_size) -> tf.Tensor:
    """Replaces each run of masked tokens by one sentinel: vocab_size - 1, vocab_size - 2, ..."""
    previous = tf.pad(mask[:-1], [[1, 0]])
    first = tf.logical_and(mask, tf.logical_not(previous))
    subsequent = tf.logical_and(mask, previous)
    sentinel = tf.cast(vocab_size, tokens.dtype) - tf.cumsum(tf.cast(first, tokens.dtype))
    tokens = tf.where(first, sentinel, tokens)
    return tf.boolean_mask(tokens, tf.logical_not(subsequent))


def corrupt(tokens: tf.Tensor, seeds, vocab_size: int, noise_density: float = NOISE_DENSITY,
            mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> dict[str, tf.Tensor]:
    """{"inputs", "targets"} for one 1-D token tensor (no EOS); seeds: int32 [2, 2]."""
    mask = random_spans_noise_mask(tf.size(tokens), noise_density, seeds, mean_noise_span_length)
    return {"inputs": spans_to_sentinels(tokens, mask, vocab_size),
            "targets": spans_to_sentinels(tokens, tf.logical_not(mask), vocab_size)}


def split_into_chunks(dataset: tf.data.Dataset, max_tokens: int) -> tf.data.Dataset:
    """One example per chunk of at most `max_tokens` tokens of "targets"; empty texts dropped."""
    def chunks(ex):
        tokens = ex["targets"]
        n = tf.size(tokens)
        num_chunks = (n + max_tokens - 1) // max_tokens
        padded = tf.pad(tokens, [[0, num_chunks * max_tokens - n]], constant_values=-1)
        return tf.data.Dataset.from_tensor_slices(tf.reshape(padded, [num_chunks, max_tokens]))

    return dataset.flat_map(chunks).map(
        lambda chunk: {"targets": tf.boolean_mask(chunk, chunk >= 0)},
        num_parallel_calls=tf.data.AUTOTUNE)


def span_corruption_preprocessors(max_tokens: int = MAX_TOKENS,
                                  noise_density: float = NOISE_DENSITY,
                                  mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH
                                  ) -> list[Callable]:
    """seqio preprocessors from {"text"} to span-corrupted {"inputs", "targets"} + EOS."""

    def tokenize_text(dataset, output_features):
        vocabulary = output_features["targets"].vocabulary
        return dataset.map(lambda ex: {"targets": vocabulary.encode_tf(ex["text"])},
                           num_parallel_calls=tf.data.AUTOTUNE)

    def chunk(dataset):
        return split_into_chunks(dataset, max_tokens)

    def span_corrupt(dataset, output_features):
        vocab_size = output_features["targets"].vocabulary.vocab_size

        @seqio.map_over_dataset(num_seeds=2)
        def fn(ex, seeds):
            return corrupt(ex["targets"], seeds, vocab_size, noise_density,
                           mean_noise_span_length)

        return fn(dataset)

    return [tokenize_text, chunk, span_corrupt, seqio.CacheDatasetPlaceholder(),
            seqio.preprocessors.append_eos_after_trim]


def record_text(dataset: str, record: dict) -> str:
    """The plain text of one raw record (what a language model of that data reads)."""
    return sources.get_spec(dataset).text(record)


def register_text_span_corruption_task(name: str, texts_by_split: Callable[[str], Sequence[str]],
                                       splits: Sequence[str] = ("train",),
                                       max_tokens: int = MAX_TOKENS) -> str:
    """Registers (once) a span-corruption task over any text source; returns its name."""
    if name in seqio.TaskRegistry.names():
        return name
    from jaxlt.data.tasks import output_features

    def dataset_fn(split: str, shuffle_files: bool = False, seed: int | None = None):
        del shuffle_files, seed
        texts = list(texts_by_split(split))
        empty = sum(not t.strip() for t in texts)
        if empty:
            logger.warning("%s %s: %d of %d texts are empty and give no example", name, split,
                           empty, len(texts))
        return tf.data.Dataset.from_tensor_slices(
            {"text": tf.constant(texts, tf.string, shape=[len(texts)])})

    seqio.TaskRegistry.add(
        name, source=seqio.FunctionDataSource(dataset_fn, splits=list(splits)),
        preprocessors=span_corruption_preprocessors(max_tokens),
        output_features=output_features(), metric_fns=[])
    return name


def register_span_corruption_task(dataset: str, lang: str, max_tokens: int = MAX_TOKENS) -> str:
    """`span_corruption.{dataset}.{lang}` over the plain text of the task's records, per split."""
    lang = sources.check_language(dataset, lang)
    name = f"span_corruption.{dataset}.{lang}"

    def texts(split: str) -> list[str]:
        return [record_text(dataset, r) for r in sources.load_records(dataset, lang, split)]

    return register_text_span_corruption_task(name, texts, sources.get_spec(dataset).splits,
                                              max_tokens)
