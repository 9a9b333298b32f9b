"""Evaluation: greedy decoding and scoring vs transformers, rank classification, fixed shapes, outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import build_torch_model, make_hf_checkpoint

from jaxlt import partitioning as P
from jaxlt.model.loading import load_checkpoint
from jaxlt.train.engine import Trainer
from jaxlt.train.evaluation import evaluate_task, load_examples, write_evaluation
from jaxlt.train.fixture_task import CLASSES, register_fixture_task

FAST = {"xla_backend_optimization_level": 0}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch_model = build_torch_model("mt5", seed=5)
    loaded = load_checkpoint(make_hf_checkpoint(tmp_path_factory.mktemp("hf"), kind="mt5", model=torch_model))
    trainer = Trainer(loaded.config, batch_size=8, feature_lengths={"inputs": 32, "targets": 8},
                      mesh=P.create_mesh((4, 1)), compiler_options=FAST)
    return torch_model, loaded, trainer


def _torch_log_likelihood(torch_model, enc, tgt):
    import torch

    with torch.no_grad():
        dec_in = np.concatenate([np.zeros((len(tgt), 1), np.int64), tgt[:, :-1]], axis=1)
        logits = torch_model(input_ids=torch.tensor(enc, dtype=torch.long),
                             attention_mask=torch.tensor(enc != 0, dtype=torch.long),
                             decoder_input_ids=torch.tensor(dec_in, dtype=torch.long)).logits
        logp = torch.log_softmax(logits.double(), -1).numpy()
    ll = np.take_along_axis(logp, tgt[..., None].astype(np.int64), -1)[..., 0]
    return (ll * (tgt != 0)).sum(-1)


def test_score_and_greedy_decode_match_transformers(model):
    import torch

    torch_model, loaded, trainer = model
    rng = np.random.default_rng(1)
    enc = rng.integers(2, 1000, size=(6, 32)).astype(np.int32)  # 6 rows: padded to the mesh internally
    enc[2, 20:] = 0
    tgt = rng.integers(2, 1000, size=(6, 8)).astype(np.int32)
    tgt[:, 5] = 1
    tgt[:, 6:] = 0
    ours = trainer.score(loaded.params, enc, tgt)
    assert ours.shape == (6,)
    np.testing.assert_allclose(ours, _torch_log_likelihood(torch_model, enc, tgt), rtol=1e-4, atol=1e-3)

    tokens = trainer.predict(loaded.params, enc, 8)
    with torch.no_grad():
        ref = torch_model.generate(input_ids=torch.tensor(enc, dtype=torch.long),
                                   attention_mask=torch.tensor(enc != 0, dtype=torch.long),
                                   max_new_tokens=8, do_sample=False, num_beams=1).numpy()[:, 1:]
    ref = np.pad(ref, ((0, 0), (0, 8 - ref.shape[1])))
    for row in range(6):  # transformers pads finished rows with pad (0), as jaxlt does after EOS
        np.testing.assert_array_equal(tokens[row], ref[row])


def test_rank_classification_takes_the_likeliest_label_and_shapes_are_reused(model, tmp_path):
    torch_model, loaded, trainer = model
    task = register_fixture_task()
    other = register_fixture_task("jaxlt_fixture.keyword_class_seed7", seed=7)
    vocab = loaded.vocabulary
    metrics, predictions = evaluate_task(trainer, loaded.params, task, "validation", vocabulary=vocab,
                                         batch_size=8, max_decode_length=8, rank_classification=True)
    labels = sorted(CLASSES)
    # Independent reference: score every label with the PyTorch model and take the argmax.
    examples = load_examples(task, "validation")
    label_ids = [list(vocab.encode(l)) + [1] for l in labels]
    width = max(map(len, label_ids))
    enc = np.zeros((len(examples), 32), np.int64)
    for i, ex in enumerate(examples):
        enc[i, :len(ex["inputs"])] = ex["inputs"]
    scores = []
    for ids in label_ids:
        tgt = np.zeros((len(examples), width), np.int64)
        tgt[:, :len(ids)] = ids
        scores.append(_torch_log_likelihood(torch_model, enc, tgt))
    expected = [labels[j] for j in np.argmax(np.stack(scores, 1), 1)]
    assert [p["prediction"] for p in predictions] == expected
    assert metrics["accuracy"] == pytest.approx(100 * np.mean([e == p["target"] for e, p in zip(expected, predictions)]))
    assert metrics["num_examples"] == 32

    # Decoding a second "language" (other examples, other lengths, same bucket) compiles nothing new.
    evaluate_task(trainer, loaded.params, task, "validation", vocabulary=vocab, batch_size=8, max_decode_length=8)
    compiled = trainer.num_compiled_inference_functions
    m2, p2 = evaluate_task(trainer, loaded.params, other, "validation", vocabulary=vocab, batch_size=8,
                           max_decode_length=8)
    assert trainer.num_compiled_inference_functions == compiled
    assert len(p2) == 32 and m2["num_truncated"] == 0
    lengths = {len(ex["inputs"]) for ex in load_examples(other, "validation")}
    assert len(lengths) > 3  # really different input lengths, padded to one bucket

    metrics_path, predictions_path = write_evaluation(str(tmp_path), task, "validation", metrics, predictions, step=7)
    record = json.loads(open(metrics_path).read())
    assert record["step"] == 7 and record["metrics"] == metrics
    rows = [json.loads(line) for line in open(predictions_path)]
    assert rows == predictions and set(rows[0]) == {"index", "input", "target", "prediction_raw", "prediction"}


def test_long_inputs_are_truncated_and_counted(model):
    _, loaded, trainer = model
    task = register_fixture_task()
    metrics, predictions = evaluate_task(trainer, loaded.params, task, "validation", batch_size=8,
                                         max_decode_length=8, buckets=(16,), max_examples=8)
    n_long = sum(len(ex["inputs"]) > 16 for ex in load_examples(task, "validation", 8))
    assert n_long > 0 and metrics["num_truncated"] == n_long and len(predictions) == 8
