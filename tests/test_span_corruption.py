"""Span corruption against T5's reference algorithm, mT5's noise statistics, and lossless reassembly.

The reference (`REF_*` below) is a numpy transcription of google-research/text-to-text-transfer-
transformer t5/data/preprocessors.py (random_spans_helper, random_spans_noise_mask,
noise_span_to_unique_sentinel, nonnoise_span_to_unique_sentinel, reduce_concat_tokens,
split_tokens, as composed by span_corruption), written from that code, not from jaxlt's. Its one
random primitive, the seeded shuffle of span boundaries, is seqio's `stateless_shuffle` (what the
reference calls), so both sides draw the same masks for the same seeds.
"""

import numpy as np
import pytest

from jaxlt.data import sources, span_corruption
from jaxlt.data.vocabulary import get_vocabulary

import seqio
import tensorflow as tf

from jaxlt.data import tasks

VOCAB_SIZE = 946  # the tiny spiece.model; <extra_id_0> = 945
EOS = 1
TINY_DATA = tasks.TINY_VOCABULARY.replace("tiny_model/spiece.model", "tiny_data")


# -- the reference, transcribed ---------------------------------------------------------------
def REF_random_spans_helper(inputs_length, noise_density, mean_noise_span_length,
                            extra_tokens_per_span_inputs=1, extra_tokens_per_span_targets=1):
    def _tokens_length_to_inputs_length_targets_length(tokens_length):
        num_noise_tokens = int(round(tokens_length * noise_density))
        num_nonnoise_tokens = tokens_length - num_noise_tokens
        num_noise_spans = int(round(num_noise_tokens / mean_noise_span_length))
        return (num_nonnoise_tokens + num_noise_spans * extra_tokens_per_span_inputs + 1,
                num_noise_tokens + num_noise_spans * extra_tokens_per_span_targets + 1)

    tokens_length = inputs_length - 1
    while _tokens_length_to_inputs_length_targets_length(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    inputs_length, targets_length = _tokens_length_to_inputs_length_targets_length(tokens_length)
    if noise_density == 0.5 and targets_length > inputs_length:
        tokens_length -= 1
        targets_length -= 1
    return tokens_length, targets_length


def _stateless_shuffle(values: np.ndarray, seed) -> np.ndarray:
    return seqio.utils.stateless_shuffle(tf.constant(values), tf.constant(seed)).numpy()


def REF_random_spans_noise_mask(length, noise_density, seeds, mean_noise_span_length=3.0):
    orig_length = length
    length = max(length, 2)
    # the reference rounds in float32 (tf.round, half to even)
    num_noise_tokens = int(np.round(np.float32(length) * np.float32(noise_density)))
    num_noise_tokens = min(max(num_noise_tokens, 1), length - 1)
    num_noise_spans = int(np.round(np.float32(num_noise_tokens) / np.float32(mean_noise_span_length)))
    num_noise_spans = max(num_noise_spans, 1)
    num_nonnoise_tokens = length - num_noise_tokens

    def _random_segmentation(num_items, num_segments, seed):
        first_in_segment = np.pad(
            _stateless_shuffle((np.arange(num_items - 1) < num_segments - 1).astype(np.int32), seed), [[1, 0]])
        segment_id = np.cumsum(first_in_segment)
        return np.bincount(segment_id)  # segment_sum of ones over sorted ids

    noise_span_lengths = _random_segmentation(num_noise_tokens, num_noise_spans, seeds[0])
    nonnoise_span_lengths = _random_segmentation(num_nonnoise_tokens, num_noise_spans, seeds[1])
    interleaved_span_lengths = np.stack([nonnoise_span_lengths, noise_span_lengths], axis=1).reshape(-1)
    span_starts = np.cumsum(interleaved_span_lengths)[:-1]
    span_start_indicator = np.zeros(length, np.int32)
    np.add.at(span_start_indicator, span_starts, 1)
    span_num = np.cumsum(span_start_indicator)
    return (span_num % 2 == 1)[:orig_length]


def REF_noise_span_to_unique_sentinel(tokens, noise_mask, vocab_size):
    prev_token_is_noise = np.pad(noise_mask[:-1], [[1, 0]])
    first_noise_tokens = noise_mask & ~prev_token_is_noise
    subsequent_noise_tokens = noise_mask & prev_token_is_noise
    sentinel = (vocab_size - 1) + 1 - np.cumsum(first_noise_tokens.astype(tokens.dtype))
    tokens = np.where(first_noise_tokens, sentinel, tokens)
    return tokens[~subsequent_noise_tokens]


def REF_nonnoise_span_to_unique_sentinel(tokens, noise_mask, vocab_size):
    return REF_noise_span_to_unique_sentinel(tokens, ~noise_mask, vocab_size)


def REF_reduce_concat_tokens(token_lists, batch_size):
    out = []
    for start in range(0, len(token_lists), batch_size):
        tokens = np.concatenate([np.asarray(t, np.int32) for t in token_lists[start:start + batch_size]])
        out.append(tokens[tokens != 0])  # strip padding
    return out


def REF_split_tokens(streams, max_tokens_per_segment):
    return [s[i:i + max_tokens_per_segment] for s in streams if len(s)
            for i in range(0, len(s), max_tokens_per_segment)]


# -- golden tests --------------------------------------------------------------------------------
@pytest.mark.parametrize("inputs_length", [16, 64, 114, 512, 568, 1024])
def test_random_spans_helper_equals_reference(inputs_length):
    assert span_corruption.random_spans_helper(inputs_length) == REF_random_spans_helper(inputs_length, 0.15, 3.0)
    assert span_corruption.random_spans_helper(1024) == (1137, 229)  # mT5's pre-training lengths
    assert span_corruption.MAX_TOKENS == 1137


def test_sentinels_hand_worked():
    tokens = tf.constant([10, 11, 12, 13, 14, 15, 16, 17])
    mask = tf.constant([False, False, True, True, False, True, False, False])
    v = VOCAB_SIZE
    assert span_corruption.noise_span_to_unique_sentinel(tokens, mask, v).numpy().tolist() == \
        [10, 11, v - 1, 14, v - 2, 16, 17]
    assert span_corruption.nonnoise_span_to_unique_sentinel(tokens, mask, v).numpy().tolist() == \
        [v - 1, 12, 13, v - 2, 15, v - 3]


@pytest.mark.parametrize("length", [1, 2, 5, 13, 70, 229, 1137])
def test_noise_mask_and_sentinels_equal_reference_for_fixed_seeds(length):
    rng = np.random.default_rng(length)
    for trial in range(3):
        seeds = [[trial, 7], [length, trial + 1]]
        tokens = rng.integers(3, VOCAB_SIZE - 100, size=length).astype(np.int32)
        ref_mask = REF_random_spans_noise_mask(length, 0.15, seeds, 3.0)
        ours_mask = span_corruption.random_spans_noise_mask(tf.constant(length), 0.15, tf.constant(seeds), 3.0)
        np.testing.assert_array_equal(ours_mask.numpy(), ref_mask)
        out = span_corruption.corrupt(tf.constant(tokens), tf.constant(seeds), VOCAB_SIZE, with_target_mask=True)
        np.testing.assert_array_equal(out["inputs"].numpy(), REF_noise_span_to_unique_sentinel(tokens, ref_mask, VOCAB_SIZE))
        ref_targets = REF_nonnoise_span_to_unique_sentinel(tokens, ref_mask, VOCAB_SIZE)
        np.testing.assert_array_equal(out["targets"].numpy(), ref_targets)
        # the scored positions: the targets' text tokens (ids below the sentinels)
        np.testing.assert_array_equal(out["targets_noise"].numpy(), ref_targets < VOCAB_SIZE - 100)


@pytest.mark.parametrize("concat_batch", [None, 3])
def test_corrupted_examples_equal_the_reference_pipeline(concat_batch):
    """Texts concatenated, cut into chunks of the pre-training length, each chunk corrupted."""
    vocab = get_vocabulary(tasks.TINY_VOCABULARY)
    sources.set_data_dir(TINY_DATA)
    try:
        texts = [span_corruption.record_text("panx", r) for r in sources.load_records("panx", "hi", "train")]
    finally:
        sources.set_data_dir(None)
    texts = texts * 3 + [""]
    max_tokens = span_corruption.random_spans_helper(64)[0]  # 70 raw tokens per chunk
    got = span_corruption.corrupted_examples(texts, vocab, seed=5, max_tokens=max_tokens, concat_batch=concat_batch)

    token_lists = [vocab.encode(t) for t in texts]
    streams = REF_reduce_concat_tokens(token_lists, concat_batch or len(token_lists))
    chunks = REF_split_tokens(streams, max_tokens)
    assert len(got) == len(chunks) > 3
    assert sum(len(c) == max_tokens for c in chunks) >= len(chunks) - len(streams)  # only stream ends are short
    for i, (ex, chunk) in enumerate(zip(got, chunks)):
        mask = REF_random_spans_noise_mask(len(chunk), 0.15, [[5, 2 * i], [5, 2 * i + 1]], 3.0)
        inputs = np.append(REF_noise_span_to_unique_sentinel(chunk, mask, VOCAB_SIZE), EOS)
        targets = np.append(REF_nonnoise_span_to_unique_sentinel(chunk, mask, VOCAB_SIZE), EOS)
        np.testing.assert_array_equal(ex["inputs"], inputs)
        np.testing.assert_array_equal(ex["targets"], targets)
        np.testing.assert_array_equal(ex["targets_noise"], (targets < VOCAB_SIZE - 100) & (targets != EOS))
        assert ex["targets_noise"].sum() == mask.sum() and ex["chunk_tokens"] == len(chunk)
    if concat_batch is None:  # one stream: every chunk but the last has the full length
        assert [ex["chunk_tokens"] for ex in got[:-1]] == [max_tokens] * (len(got) - 1)
        lengths = span_corruption.output_lengths(max_tokens)
        assert max(len(ex["inputs"]) for ex in got) <= lengths["inputs"] == 64
        assert max(len(ex["targets"]) for ex in got) <= lengths["targets"]
    again = span_corruption.corrupted_examples(texts, vocab, seed=5, max_tokens=max_tokens, concat_batch=concat_batch)
    assert all(np.array_equal(a["inputs"], b["inputs"]) for a, b in zip(got, again))
    other = span_corruption.corrupted_examples(texts, vocab, seed=6, max_tokens=max_tokens, concat_batch=concat_batch)
    assert not all(np.array_equal(a["inputs"], b["inputs"]) for a, b in zip(got, other))


# -- statistics and reassembly -------------------------------------------------------------------
def reassemble(inputs, targets, vocab_size):
    """Original tokens from (inputs, targets), sentinels = ids >= vocab_size - 100."""
    first_sentinel = vocab_size - 100
    spans, current = {}, None
    for t in targets:
        if t >= first_sentinel:
            current = t
            spans[current] = []
        else:
            assert current is not None, "targets must start with a sentinel"
            spans[current].append(t)
    out = []
    for t in inputs:
        out.extend(spans.pop(t) if t >= first_sentinel else [t])
    assert not spans or all(not v for v in spans.values())
    return out


def test_noise_density_span_length_and_reassembly():
    corrupt = tf.function(lambda t, s: span_corruption.corrupt(t, s, VOCAB_SIZE),
                          input_signature=[tf.TensorSpec([None], tf.int32),
                                           tf.TensorSpec([2, 2], tf.int32)])
    rng = np.random.default_rng(0)
    noise_tokens = total_tokens = num_spans = 0
    for i in range(300):
        length = int(rng.integers(20, 400))
        tokens = rng.integers(3, VOCAB_SIZE - 100, size=length).astype(np.int32)
        out = corrupt(tf.constant(tokens), tf.constant([[i, 1], [i, 2]]))
        inputs, targets = out["inputs"].numpy(), out["targets"].numpy()
        sentinels_in = inputs[inputs >= VOCAB_SIZE - 100]
        sentinels_out = targets[targets >= VOCAB_SIZE - 100]
        # Sentinels count down from the end of the vocabulary, same numbering on both sides.
        np.testing.assert_array_equal(sentinels_in, VOCAB_SIZE - 1 - np.arange(len(sentinels_in)))
        np.testing.assert_array_equal(sentinels_out, sentinels_in[: len(sentinels_out)])
        assert reassemble(inputs, targets, VOCAB_SIZE) == tokens.tolist()
        assert inputs[0] < VOCAB_SIZE - 100  # spans start with non-noise
        noise_tokens += len(targets) - len(sentinels_out)
        total_tokens += length
        num_spans += len(sentinels_in)
    assert abs(noise_tokens / total_tokens - 0.15) <= 0.01
    assert abs(noise_tokens / num_spans - 3.0) <= 0.2


@pytest.mark.parametrize("length", [1, 2, 3, 7])
def test_short_sequences(length):
    tokens = np.arange(3, 3 + length, dtype=np.int32)
    out = span_corruption.corrupt(tf.constant(tokens), tf.constant([[0, 1], [0, 2]]), VOCAB_SIZE)
    assert reassemble(out["inputs"].numpy(), out["targets"].numpy(), VOCAB_SIZE) == tokens.tolist()


@pytest.mark.parametrize("dataset,lang", [("panx", "hi"), ("xnli", "ar"), ("tydiqa", "ru")])
def test_span_corruption_task_over_training_text(dataset, lang):
    """The seqio task: texts concatenated 128 at a time (T5's reduce_concat_tokens), cut into
    chunks, corrupted, EOS appended; the chunks reassemble to the concatenated text."""
    vocab = get_vocabulary(tasks.TINY_VOCABULARY)
    assert vocab.vocab_size == VOCAB_SIZE
    sources.set_data_dir(TINY_DATA)
    try:
        name = span_corruption.register_span_corruption_task(dataset, lang)
        task = seqio.get_mixture_or_task(name)
        ds = task.get_dataset({"inputs": 1024, "targets": 1024}, split="train", shuffle=False, seed=3)
        got = list(ds.as_numpy_iterator())
        texts = [span_corruption.record_text(dataset, r)
                 for r in sources.load_records(dataset, lang, "train")]
        again = list(task.get_dataset({"inputs": 1024, "targets": 1024}, split="train",
                                      shuffle=False, seed=3).as_numpy_iterator())
    finally:
        sources.set_data_dir(None)
    chunks = REF_split_tokens(REF_reduce_concat_tokens([vocab.encode(t) for t in texts], 128),
                              span_corruption.MAX_TOKENS)
    assert len(got) == len(chunks) > 0
    for ex, chunk in zip(got, chunks):
        assert ex["inputs"][-1] == EOS and ex["targets"][-1] == EOS
        assert reassemble(ex["inputs"][:-1], ex["targets"][:-1], VOCAB_SIZE) == chunk.tolist()
        assert ex["inputs"].max() == VOCAB_SIZE - 1  # the first sentinel is <extra_id_0>
    assert all(np.array_equal(a["inputs"], b["inputs"]) for a, b in zip(got, again))


def test_chunking_long_text_and_custom_text_source():
    vocab = get_vocabulary(tasks.TINY_VOCABULARY)
    text = " ".join(["Москва दिल्ली القाهرة Helsinki"] * 40)
    name = span_corruption.register_text_span_corruption_task(
        "span_corruption.test_custom", lambda split: [text, ""], max_tokens=64)
    got = list(seqio.get_mixture_or_task(name).get_dataset(
        {"inputs": 128, "targets": 128}, split="train", shuffle=False, seed=0).as_numpy_iterator())
    ids = vocab.encode(text)
    assert len(got) == -(-len(ids) // 64)  # ceil; the empty text adds nothing
    restored = [t for ex in got for t in reassemble(ex["inputs"][:-1], ex["targets"][:-1], VOCAB_SIZE)]
    assert restored == ids


def test_per_text_chunking_when_asked():
    vocab = get_vocabulary(tasks.TINY_VOCABULARY)
    texts = ["Helsinki Москва", "दिल्ली القاهرة Helsinki", "Москва"]
    name = span_corruption.register_text_span_corruption_task(
        "span_corruption.test_per_text", lambda split: texts, max_tokens=64, concat_batch=1)
    got = list(seqio.get_mixture_or_task(name).get_dataset(
        {"inputs": 128, "targets": 128}, split="train", shuffle=False, seed=0).as_numpy_iterator())
    assert [reassemble(ex["inputs"][:-1], ex["targets"][:-1], VOCAB_SIZE) for ex in got] == \
        [vocab.encode(t) for t in texts]


@pytest.mark.parametrize("max_tokens", [20, 64, 512, 1137])
def test_output_lengths_fit_a_full_chunk(max_tokens):
    lengths = span_corruption.output_lengths(max_tokens)
    tokens = tf.range(3, 3 + max_tokens, dtype=tf.int32)
    out = span_corruption.corrupt(tokens, tf.constant([[9, 9], [8, 8]]), VOCAB_SIZE)
    assert int(tf.size(out["inputs"])) + 1 == lengths["inputs"]
    assert int(tf.size(out["targets"])) + 1 == lengths["targets"]
    if max_tokens == 1137:  # mT5's pre-training setting: 1137 raw tokens -> 1024 / 229
        assert lengths == {"inputs": 1024, "targets": 229}
