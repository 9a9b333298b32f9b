"""seqio tasks, mixtures, batching and the `jaxlt tasks` command, on the bundled tiny fixtures."""

import json
import os

import numpy as np
import pytest

from jaxlt.data import examples, mixtures, sources, tasks
from jaxlt.data.batching import get_batches
from jaxlt.data.vocabulary import get_vocabulary

import seqio

TINY_DATA = tasks.TINY_VOCABULARY.replace(os.path.join("tiny_model", "spiece.model"), "tiny_data")
LENGTHS = {"inputs": 128, "targets": 64}


@pytest.fixture(autouse=True)
def tiny_data_dir():
    sources.set_data_dir(TINY_DATA)
    yield TINY_DATA
    sources.set_data_dir(None)


def count_lines(*parts):
    with open(os.path.join(TINY_DATA, *parts), encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def test_every_task_of_the_study_is_registered():
    names = set(seqio.TaskRegistry.names())
    expected = {
        "xnli": "ar bg de el en es fr hi ru sw th tr ur vi zh",
        "panx": "en ar hi fi id ru es de sw bn el bg fr tr ur vi zh ja ko th",
        "tydiqa": "ar bn en fi id ko ru sw te",
        "pawsx": "de en es fr ja ko zh",
        "xquad": "ar de el en es hi ru th tr vi zh",
    }
    for dataset, langs in expected.items():
        for lang in langs.split():
            assert f"{dataset}.{lang}" in names
            assert f"span_corruption.{dataset}.{lang}" in names
    assert len(tasks.registered_tasks("xnli")) == 15
    assert len(tasks.registered_tasks("tydiqa")) == 9
    assert seqio.get_mixture_or_task("tydiqa.ko").splits == ("train", "validation")
    assert seqio.get_mixture_or_task("xquad.en").splits == ("validation",)


@pytest.mark.parametrize("name,split", [("xnli.ar", "test"), ("panx.hi", "validation"),
                                        ("tydiqa.ru", "train"), ("pawsx.de", "train"),
                                        ("xquad.en", "validation"), ("panx.bn", "train")])
def test_task_tokens_match_the_vocabulary(name, split):
    dataset, lang = name.split(".")
    vocab = get_vocabulary(tasks.TINY_VOCABULARY)
    got = list(seqio.get_mixture_or_task(name).get_dataset(
        {"inputs": 4096, "targets": 4096}, split=split, shuffle=False).as_numpy_iterator())
    want = examples.load_examples(dataset, lang, split)
    assert len(got) == len(want) > 0
    for ex, ref in zip(got, want):
        # Round trip rather than id equality: TF's SentencePiece op and the Python library break
        # ties between equal-score segmentations differently ("1999" -> 1|99|9 vs 1|9|99).
        assert ex["inputs"][-1] == 1 and ex["targets"][-1] == 1
        assert vocab.decode(ex["inputs"][:-1].tolist()) == ref["inputs"]
        assert vocab.decode(ex["targets"][:-1].tolist()) == ref["targets"]
        assert ex["inputs_pretokenized"].decode() == ref["inputs"]


def _evaluate(name, split, predict):
    evaluator = seqio.Evaluator(name, seqio.EncDecFeatureConverter(pack=False), eval_split=split,
                                sequence_length={"inputs": 512, "targets": 128})
    metrics, _ = evaluator.evaluate(compute_metrics=True, predict_fn=predict)
    return metrics.result()[name]


def test_seqio_evaluation_wiring_uses_the_study_metrics():
    vocab = get_vocabulary(tasks.TINY_VOCABULARY)

    def gold(ds):
        return [(int(i), ex["decoder_target_tokens"]) for i, ex in ds.as_numpy_iterator()]

    assert _evaluate("xquad.ru", "validation", gold) == {"exact_match": 100.0, "f1": 100.0}
    assert _evaluate("panx.ar", "test", gold) == pytest.approx(
        {"f1": 100.0, "precision": 100.0, "recall": 100.0})

    entailment = vocab.encode("entailment") + [1]
    gold_labels = [json.loads(line)["label"] for line in
                   open(os.path.join(TINY_DATA, "facebook/xnli/sw/validation.jsonl"))]
    result = _evaluate("xnli.sw", "validation",
                       lambda ds: [(int(i), entailment) for i, _ in ds.as_numpy_iterator()])
    # label 0 is 'entailment' in the hub's ClassLabel
    assert result == pytest.approx({"accuracy": 100 * gold_labels.count(0) / len(gold_labels)})


def test_qa_postprocess_keeps_every_reference():
    postprocess = seqio.get_mixture_or_task("tydiqa.en").postprocess_fn
    example = {"answers": np.array([b"1985", b"in 1985"], dtype=object)}
    assert postprocess(b"x", example=example, is_target=True) == ["1985", "in 1985"]
    assert postprocess(b" 1985 ", example=example, is_target=False) == "1985"


def test_mixtures_for_the_grid():
    zero = mixtures.register_mixture("xnli", "en", "hi", 0, seed=2, strategy="zero_shot",
                                     source_size=40)
    assert zero == "xnli.en.source40.seed2.zero_shot"
    joint = mixtures.register_mixture("xnli", "en", "hi", 10, seed=2, strategy="joint",
                                      source_size=40)
    mixture = seqio.get_mixture_or_task(joint)
    assert [t.name for t in mixture.tasks] == ["xnli.en.source40.seed2", "xnli.hi.10shot.random.seed2"]
    assert [mixture.get_rate(t) for t in mixture.tasks] == [40.0, 10.0]
    half = seqio.get_mixture_or_task(mixtures.register_mixture(
        "xnli", "en", "hi", 10, seed=2, strategy="joint", source_size=40, target_rate=0.5))
    assert [half.get_rate(t) for t in half.tasks] == [0.5, 0.5]

    from jaxlt.data import sampling

    target = seqio.get_mixture_or_task("xnli.hi.10shot.random.seed2")
    got = [ex["inputs_pretokenized"].decode() for ex in target.get_dataset(
        LENGTHS, split="train", shuffle=False).as_numpy_iterator()]
    assert got == [ex["inputs"] for ex in sampling.nshot_examples("xnli", "hi", 10, 2)]

    phases = mixtures.training_phases("tydiqa", "sw", "fi", 30, seed=0, strategy="sequential",
                                      sampling="longest", source_size=50)
    assert phases == ["tydiqa.sw.source50.seed0.zero_shot",
                      "tydiqa.fi.30shot.longest.seed0.sequential"]

    bounded = mixtures.register_mixture("panx", "en", "id", 5, seed=0, strategy="sequential",
                                        sampling="shortest", min_length=20, max_length=60)
    assert bounded == "panx.id.5shot.shortest.seed0.len20_60.sequential"
    got = [ex["inputs_pretokenized"].decode() for ex in seqio.get_mixture_or_task(
           "panx.id.5shot.shortest.seed0.len20_60")
           .get_dataset(LENGTHS, split="train", shuffle=False).as_numpy_iterator()]
    assert len(got) == 5 and all(20 <= len(text) <= 60 for text in got)

    with pytest.raises(ValueError, match="zero_shot uses no target examples"):
        mixtures.register_mixture("xnli", "en", "hi", 10, strategy="zero_shot")
    with pytest.raises(ValueError, match="needs n > 0"):
        mixtures.register_mixture("xnli", "en", "hi", 0, strategy="joint")
    with pytest.raises(ValueError, match="choose from zero_shot, sequential, joint"):
        mixtures.register_mixture("xnli", "en", "hi", 10, strategy="mixed")
    with pytest.raises(KeyError, match="supported: ar, bn, en, fi, id, ko, ru, sw, te"):
        mixtures.register_mixture("tydiqa", "de", "en", 0)


def test_batches_through_the_feature_converter():
    joint = mixtures.register_mixture("xnli", "en", "ar", 20, seed=0, strategy="joint",
                                      source_size=50, target_rate=0.5)
    lengths = {"inputs": 512, "targets": 32}  # tiny-vocab XNLI inputs are ~80 tokens
    batch = next(get_batches(joint, batch_size=4, feature_lengths=lengths, pack=True, seed=0))
    assert set(batch) == {"encoder_input_tokens", "decoder_input_tokens", "decoder_target_tokens",
                          "decoder_loss_weights", "encoder_segment_ids", "decoder_segment_ids",
                          "encoder_positions", "decoder_positions"}
    assert all(v.shape == (4, lengths["inputs"] if k.startswith("encoder") else lengths["targets"])
               for k, v in batch.items())
    assert batch["encoder_segment_ids"].max() > 1  # several examples packed per row
    # decoder inputs are the targets shifted right within each segment
    assert (batch["decoder_input_tokens"][:, 0] == 0).all()

    unpacked = list(get_batches("xquad.hi", "validation", batch_size=5, feature_lengths=LENGTHS,
                                pack=False, shuffle=False, num_epochs=1, drop_remainder=False))
    assert [b["encoder_input_tokens"].shape for b in unpacked] == [(5, 128)] * 4  # 16 -> 4 batches
    assert (unpacked[-1]["decoder_loss_weights"][1:] == 0).all()  # padded rows carry no weight
    assert (unpacked[-1]["decoder_loss_weights"][0] > 0).any()


def test_configured_vocabulary(tmp_path, monkeypatch):
    assert tasks.current_vocabulary_path() == tasks.TINY_VOCABULARY
    assert tasks.VOCABULARY.vocab_size == 946 and tasks.VOCABULARY.eos_id == 1
    os.symlink(tasks.TINY_VOCABULARY, tmp_path / "spiece.model")
    monkeypatch.setenv("JAXLT_VOCABULARY", str(tmp_path))
    assert tasks.current_vocabulary_path() == str(tmp_path)
    tasks.set_vocabulary(tasks.TINY_VOCABULARY)
    try:
        assert tasks.current_vocabulary_path() == tasks.TINY_VOCABULARY
    finally:
        tasks.set_vocabulary(None)
    assert tasks.VOCABULARY.encode("Москва") == get_vocabulary(tasks.TINY_VOCABULARY).encode("Москва")


def test_tasks_command_reports_split_sizes(capsys):
    from jaxlt.commands import tasks as tasks_command

    assert tasks_command.main(["--tiny", "--json"]) == 0
    rows = {r["task"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert rows["xnli.hi"]["splits"] == {
        split: count_lines("facebook/xnli/hi", f"{split}.jsonl")
        for split in ("train", "validation", "test")}
    tydiqa_train = [json.loads(line)["id"] for line in
                    open(os.path.join(TINY_DATA, "google-research-datasets/tydiqa/secondary_task/train.jsonl"))]
    assert rows["tydiqa.bn"]["splits"]["train"] == sum(i.startswith("bengali-") for i in tydiqa_train)
    assert "tydiqa.te" not in rows  # no Telugu in the fixtures
    assert tasks_command.main(["--tiny", "--dataset", "xquad"]) == 0
    out = capsys.readouterr().out
    assert "xquad.ar     validation=16" in out


def test_training_shuffle_is_full_and_seeded():
    task = seqio.get_mixture_or_task("xnli.ru")

    def order(shuffle, seed):
        ds = task.get_dataset(LENGTHS, split="train", shuffle=shuffle, seed=seed, num_epochs=1)
        return [ex["inputs_pretokenized"].decode() for ex in ds.as_numpy_iterator()]

    plain = order(False, None)
    assert plain == [ex["inputs"] for ex in examples.load_examples("xnli", "ru", "train")]
    shuffled = order(True, 1)
    assert shuffled == order(True, 1) != order(True, 2)
    assert sorted(shuffled) == sorted(plain) and shuffled != plain


def test_tasks_command_hub_info(monkeypatch, capsys):
    import datasets
    from types import SimpleNamespace

    from jaxlt.commands import tasks as tasks_command

    sources.set_data_dir(None)
    monkeypatch.delenv("JAXLT_DATA_DIR", raising=False)
    seen = []

    def builder(hub_id, config):
        seen.append((hub_id, config))
        if config == "ja":
            raise ConnectionError("offline")
        return SimpleNamespace(info=SimpleNamespace(splits={
            "train": SimpleNamespace(num_examples=49401),
            "validation": SimpleNamespace(num_examples=2000)}))

    monkeypatch.setattr(datasets, "load_dataset_builder", builder)
    assert tasks_command.main(["--dataset", "pawsx", "--hub_info", "--json"]) == 0
    captured = capsys.readouterr()
    rows = {r["task"]: r["splits"] for r in map(json.loads, captured.out.splitlines())}
    assert rows["pawsx.en"] == {"train": 49401, "validation": 2000, "test": None}
    assert rows["pawsx.ja"] == {"train": None, "validation": None, "test": None}
    assert "no dataset info for google-research-datasets/paws-x ja" in captured.err
    assert ("google-research-datasets/paws-x", "fr") in seen


def test_numpy_iterator_yields_what_as_numpy_iterator_yields():
    """The executor's endless pipelines go through `numpy_iterator` (tf.data autotuning off, which
    made dropping them wait ~25 s): same elements, same order, for a seeded shuffle."""
    import tensorflow as tf

    from jaxlt.data.batching import numpy_iterator

    def make():  # a fresh pipeline each time (a seeded shuffle reshuffles on a second pass)
        ds = tf.data.Dataset.range(50).map(lambda x: {"x": x * 2}, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.shuffle(16, seed=3).batch(4).prefetch(tf.data.AUTOTUNE)

    ours, plain = list(numpy_iterator(make())), list(make().as_numpy_iterator())
    assert len(ours) == len(plain) == 13
    for a, b in zip(ours, plain):
        np.testing.assert_array_equal(a["x"], b["x"])
