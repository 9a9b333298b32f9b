"""mT5's span-corruption objective (Raffel et al. 2020, section 3.1.4; Xue et al. 2021).

As T5's `span_corruption` preprocessor (t5/data/preprocessors.py), which mT5 pre-training
used: tokenize; concatenate the texts (`reduce_concat_tokens`: `concat_batch` texts at a time,
128 in T5; None: all of them) and cut the token stream into chunks of `max_tokens`
(`split_tokens`; only the last chunk of a concatenation is shorter); per chunk pick noise spans
(`random_spans_noise_mask`: `noise_density` 0.15 of the tokens, mean span length 3, spans
interleaved with non-noise, starting with non-noise); replace each noise span in the inputs and
each non-noise span in the targets by one sentinel (`noise_span_to_unique_sentinel`,
`nonnoise_span_to_unique_sentinel`): sentinel i has id `vocab_size - 1 - i`, where vocab_size
is the SentencePiece vocabulary's (mT5's spiece.model ends with its sentinels; seqio
`extra_ids=0`); append EOS. The chunk length is `random_spans_helper(1024)` = 1137 tokens,
which mT5's pre-training input length of 1024 (targets 229) implies.

`register_span_corruption_task(dataset, lang)` registers `span_corruption.{dataset}.{lang}` over
the plain text of that task's records; `register_text_span_corruption_task(name, texts_by_split)`
does so over any text source. `corrupted_examples(texts, vocabulary, seed=...)` gives the
examples directly (numpy, deterministic for the seed), with a mask of the target positions that
hold masked text tokens (not sentinels, not EOS): what the language-model features score
(paper, section 2.2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
import logging

import numpy as np
import seqio
import tensorflow as tf

from jaxlt.data import sources

logger = logging.getLogger(__name__)

NOISE_DENSITY = 0.15
MEAN_NOISE_SPAN_LENGTH = 3.0
MT5_INPUTS_LENGTH = 1024  # mT5 pre-training: inputs 1024, targets 229 tokens
CONCAT_BATCH = 128  # T5's reduce_concat_tokens(batch_size=128)


def random_spans_helper(inputs_length: int, noise_density: float = NOISE_DENSITY,
                        mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> tuple[int, int]:
    """(raw tokens per chunk, targets length with EOS) so that a corrupted chunk's inputs with EOS
    are `inputs_length` long (T5's helper, one sentinel per span on each side)."""
    def lengths(tokens_length):
        num_noise = int(round(tokens_length * noise_density))
        num_spans = int(round(num_noise / mean_noise_span_length))
        return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    return tokens_length, lengths(tokens_length)[1]


MAX_TOKENS = random_spans_helper(MT5_INPUTS_LENGTH)[0]  # 1137


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
        boundaries = tf.cast(tf.range(num_items - 1) < num_segments - 1, tf.int32)
        boundaries = seqio.utils.stateless_shuffle(boundaries, seed)
        first_in_segment = tf.pad(boundaries, [[1, 0]])
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


def _first_and_subsequent(mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    previous = tf.pad(mask[:-1], [[1, 0]])
    return tf.logical_and(mask, tf.logical_not(previous)), tf.logical_and(mask, previous)


def noise_span_to_unique_sentinel(tokens: tf.Tensor, noise_mask: tf.Tensor, vocab_size) -> tf.Tensor:
    """Replaces each run of noise tokens by one sentinel: vocab_size - 1, vocab_size - 2, ..."""
    first, subsequent = _first_and_subsequent(noise_mask)
    sentinel = tf.cast(vocab_size, tokens.dtype) - tf.cumsum(tf.cast(first, tokens.dtype))
    tokens = tf.where(first, sentinel, tokens)
    return tf.boolean_mask(tokens, tf.logical_not(subsequent))


def nonnoise_span_to_unique_sentinel(tokens: tf.Tensor, noise_mask: tf.Tensor, vocab_size) -> tf.Tensor:
    """The targets: each run of non-noise tokens replaced by one sentinel."""
    return noise_span_to_unique_sentinel(tokens, tf.logical_not(noise_mask), vocab_size)


spans_to_sentinels = noise_span_to_unique_sentinel  # the earlier name


def corrupt(tokens: tf.Tensor, seeds, vocab_size: int, noise_density: float = NOISE_DENSITY,
            mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
            with_target_mask: bool = False) -> dict[str, tf.Tensor]:
    """{"inputs", "targets"} for one 1-D token tensor (no EOS); seeds: int [2, 2].

    with_target_mask: also "targets_noise", True where the targets hold a masked text token
    (the positions a span log-likelihood sums over; False at the sentinels)."""
    mask = random_spans_noise_mask(tf.size(tokens), noise_density, seeds, mean_noise_span_length)
    out = {"inputs": noise_span_to_unique_sentinel(tokens, mask, vocab_size),
           "targets": nonnoise_span_to_unique_sentinel(tokens, mask, vocab_size)}
    if with_target_mask:
        _, subsequent_nonnoise = _first_and_subsequent(tf.logical_not(mask))
        out["targets_noise"] = tf.boolean_mask(mask, tf.logical_not(subsequent_nonnoise))
    return out


def split_into_chunks(dataset: tf.data.Dataset, max_tokens: int) -> tf.data.Dataset:
    """One example per chunk of at most `max_tokens` tokens of "targets"; empty texts dropped
    (T5's `split_tokens` without a minimum length)."""
    def chunks(ex):
        tokens = ex["targets"]
        n = tf.size(tokens)
        num_chunks = (n + max_tokens - 1) // max_tokens
        padded = tf.pad(tokens, [[0, num_chunks * max_tokens - n]], constant_values=-1)
        return tf.data.Dataset.from_tensor_slices(tf.reshape(padded, [num_chunks, max_tokens]))

    return dataset.flat_map(chunks).map(
        lambda chunk: {"targets": tf.boolean_mask(chunk, chunk >= 0)},
        num_parallel_calls=tf.data.AUTOTUNE)


def concatenate_texts(dataset: tf.data.Dataset, concat_batch: int | None = CONCAT_BATCH) -> tf.data.Dataset:
    """T5's `reduce_concat_tokens`: the "targets" of `concat_batch` consecutive texts joined into one
    token stream (None: all texts into one)."""
    dataset = dataset.map(lambda ex: {"targets": ex["targets"]})
    if concat_batch is None:
        return _concat_all(dataset)
    batched = dataset.padded_batch(int(concat_batch), padded_shapes={"targets": [-1]})
    return batched.map(lambda x: {"targets": tf.boolean_mask(tf.reshape(x["targets"], [-1]),
                                                              tf.cast(tf.reshape(x["targets"], [-1]), tf.bool))},
                       num_parallel_calls=tf.data.AUTOTUNE)


def _concat_all(dataset: tf.data.Dataset) -> tf.data.Dataset:
    spec = dataset.element_spec["targets"]
    joined = dataset.reduce(tf.zeros([0], spec.dtype), lambda acc, ex: tf.concat([acc, ex["targets"]], 0))
    return tf.data.Dataset.from_tensors({"targets": joined})


def span_corruption_preprocessors(max_tokens: int = MAX_TOKENS,
                                  noise_density: float = NOISE_DENSITY,
                                  mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH,
                                  concat_batch: int | None = CONCAT_BATCH) -> list[Callable]:
    """seqio preprocessors from {"text"} to span-corrupted {"inputs", "targets"} + EOS.

    concat_batch: texts joined before chunking (T5: 128; None: all; 1: each text on its own)."""

    def tokenize_text(dataset, output_features):
        vocabulary = output_features["targets"].vocabulary
        return dataset.map(lambda ex: {"targets": vocabulary.encode_tf(ex["text"])},
                           num_parallel_calls=tf.data.AUTOTUNE)

    def chunk(dataset):
        if concat_batch != 1:
            dataset = concatenate_texts(dataset, concat_batch)
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


def corrupted_examples(texts: Sequence[str], vocabulary, *, seed: int, max_tokens: int = MAX_TOKENS,
                       concat_batch: int | None = None, noise_density: float = NOISE_DENSITY,
                       mean_noise_span_length: float = MEAN_NOISE_SPAN_LENGTH) -> list[dict[str, np.ndarray]]:
    """Span-corrupted chunks of `texts` in order (numpy; the same for the same seed).

    Each example: "inputs" and "targets" int32 with EOS, "targets_noise" bool (True at the target
    positions holding masked text tokens; sentinels and EOS False), and "chunk_tokens", the chunk's
    raw length. Chunk i's noise mask is drawn with seeds [[seed, 2i], [seed, 2i + 1]].
    """
    eos = int(vocabulary.eos_id)
    vocab_size = int(vocabulary.vocab_size)
    ds = tf.data.Dataset.from_tensor_slices({"text": tf.constant(list(texts), tf.string, shape=[len(texts)])})
    ds = ds.map(lambda ex: {"targets": tf.cast(vocabulary.encode_tf(ex["text"]), tf.int32)})
    if concat_batch != 1:
        ds = concatenate_texts(ds, concat_batch)
    ds = split_into_chunks(ds, max_tokens).enumerate()

    def fn(i, ex):
        i = tf.cast(i, tf.int32)
        seeds = tf.stack([tf.stack([tf.constant(seed, tf.int32), 2 * i]),
                          tf.stack([tf.constant(seed, tf.int32), 2 * i + 1])])
        out = corrupt(ex["targets"], seeds, vocab_size, noise_density, mean_noise_span_length,
                      with_target_mask=True)
        out["chunk_tokens"] = tf.size(ex["targets"])
        return out

    examples = []
    for ex in ds.map(fn).as_numpy_iterator():
        examples.append({"inputs": np.append(ex["inputs"], eos).astype(np.int32),
                         "targets": np.append(ex["targets"], eos).astype(np.int32),
                         "targets_noise": np.append(ex["targets_noise"], False),
                         "chunk_tokens": int(ex["chunk_tokens"])})
    return examples


def record_text(dataset: str, record: dict) -> str:
    """The plain text of one raw record (what a language model of that data reads)."""
    return sources.get_spec(dataset).text(record)


def register_text_span_corruption_task(name: str, texts_by_split: Callable[[str], Sequence[str]],
                                       splits: Sequence[str] = ("train",),
                                       max_tokens: int = MAX_TOKENS,
                                       concat_batch: int | None = CONCAT_BATCH,
                                       vocabulary: str | None = None) -> str:
    """Registers (once) a span-corruption task over any text source; returns its name.
    `vocabulary`: a SentencePiece model (None: the configured one, `jaxlt.data.tasks.set_vocabulary`);
    the caller's name should tell vocabularies apart (`jaxlt.data.tasks.vocabulary_suffix`)."""
    if name in seqio.TaskRegistry.names():
        return name
    from jaxlt.data.tasks import output_features
    from jaxlt.data.vocabulary import get_vocabulary

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
        preprocessors=span_corruption_preprocessors(max_tokens, concat_batch=concat_batch),
        output_features=output_features(None if vocabulary is None else get_vocabulary(vocabulary)),
        metric_fns=[])
    return name


def register_span_corruption_task(dataset: str, lang: str, max_tokens: int = MAX_TOKENS,
                                  concat_batch: int | None = CONCAT_BATCH) -> str:
    """`span_corruption.{dataset}.{lang}` over the plain text of the task's records, per split."""
    lang = sources.check_language(dataset, lang)
    name = f"span_corruption.{dataset}.{lang}"

    def texts(split: str) -> list[str]:
        return [record_text(dataset, r) for r in sources.load_records(dataset, lang, split)]

    return register_text_span_corruption_task(name, texts, sources.get_spec(dataset).splits,
                                              max_tokens, concat_batch)
