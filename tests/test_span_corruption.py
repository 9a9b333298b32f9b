"""Span corruption: mT5's noise statistics, sentinel convention, and lossless reassembly."""

import numpy as np
import pytest

from jaxlt.data import sources, span_corruption
from jaxlt.data.vocabulary import get_vocabulary

import seqio
import tensorflow as tf

from jaxlt.data import tasks

VOCAB_SIZE = 946  # the tiny spiece.model; <extra_id_0> = 945
TINY_DATA = tasks.TINY_VOCABULARY.replace("tiny_model/spiece.model", "tiny_data")


@pytest.fixture
def tiny_data_dir():
    sources.set_data_dir(TINY_DATA)
    yield TINY_DATA
    sources.set_data_dir(None)


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


def test_random_and_deterministic_per_seed():
    tokens = tf.range(3, 203, dtype=tf.int32)
    a = span_corruption.corrupt(tokens, tf.constant([[1, 2], [3, 4]]), VOCAB_SIZE)
    b = span_corruption.corrupt(tokens, tf.constant([[1, 2], [3, 4]]), VOCAB_SIZE)
    c = span_corruption.corrupt(tokens, tf.constant([[5, 6], [7, 8]]), VOCAB_SIZE)
    np.testing.assert_array_equal(a["inputs"].numpy(), b["inputs"].numpy())
    assert not np.array_equal(a["inputs"].numpy(), c["inputs"].numpy())


@pytest.mark.parametrize("length", [1, 2, 3, 7])
def test_short_sequences(length):
    tokens = np.arange(3, 3 + length, dtype=np.int32)
    out = span_corruption.corrupt(tf.constant(tokens), tf.constant([[0, 1], [0, 2]]), VOCAB_SIZE)
    assert reassemble(out["inputs"].numpy(), out["targets"].numpy(), VOCAB_SIZE) == tokens.tolist()


@pytest.mark.parametrize("dataset,lang", [("panx", "hi"), ("xnli", "ar"), ("tydiqa", "ru")])
def test_span_corruption_task_over_training_text(tiny_data_dir, dataset, lang):
    vocab = get_vocabulary(tasks.TINY_VOCABULARY)
    assert vocab.vocab_size == VOCAB_SIZE
    name = f"span_corruption.{dataset}.{lang}"
    task = seqio.get_mixture_or_task(name)
    ds = task.get_dataset({"inputs": 1024, "targets": 1024}, split="train", shuffle=False, seed=3)
    got = list(ds.as_numpy_iterator())
    texts = [span_corruption.record_text(dataset, r)
             for r in sources.load_records(dataset, lang, "train")]
    assert len(got) == len(texts) > 0
    for ex, text in zip(got, texts):
        assert ex["inputs"][-1] == 1 and ex["targets"][-1] == 1  # EOS appended
        restored = reassemble(ex["inputs"][:-1], ex["targets"][:-1], VOCAB_SIZE)
        assert restored == vocab.encode(text)
        assert ex["inputs"].max() == VOCAB_SIZE - 1  # the first sentinel is <extra_id_0>
    again = list(task.get_dataset({"inputs": 1024, "targets": 1024}, split="train",
                                  shuffle=False, seed=3).as_numpy_iterator())
    assert all(np.array_equal(a["inputs"], b["inputs"]) for a, b in zip(got, again))


def test_chunking_long_text_and_custom_text_source():
    vocab = get_vocabulary(tasks.TINY_VOCABULARY)
    text = " ".join(["Москва दिल्ली القاهرة Helsinki"] * 40)
    name = span_corruption.register_text_span_corruption_task(
        "span_corruption.test_custom", lambda split: [text, ""], max_tokens=64)
    got = list(seqio.get_mixture_or_task(name).get_dataset(
        {"inputs": 128, "targets": 128}, split="train", shuffle=False, seed=0).as_numpy_iterator())
    ids = vocab.encode(text)
    assert len(got) == -(-len(ids) // 64)  # ceil; the empty text gives no chunk
    restored = [t for ex in got for t in reassemble(ex["inputs"][:-1], ex["targets"][:-1], VOCAB_SIZE)]
    assert restored == ids


@pytest.mark.parametrize("max_tokens", [20, 64, 512, 1137])
def test_output_lengths_fit_a_full_chunk(max_tokens):
    lengths = span_corruption.output_lengths(max_tokens)
    tokens = tf.range(3, 3 + max_tokens, dtype=tf.int32)
    out = span_corruption.corrupt(tokens, tf.constant([[9, 9], [8, 8]]), VOCAB_SIZE)
    assert int(tf.size(out["inputs"])) + 1 == lengths["inputs"]
    assert int(tf.size(out["targets"])) + 1 == lengths["targets"]
    if max_tokens == 1137:  # mT5's pre-training setting: 1137 raw tokens -> 1024 / 229
        assert lengths == {"inputs": 1024, "targets": 229}
