"""Model-derived language features against the transformers (PyTorch) mT5 as reference."""

import os
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from model_fixtures import build_torch_model, make_hf_checkpoint  # noqa: E402

from jaxlt.grid.model_features import FeatureSettings, exact_match_rate, span_matches  # noqa: E402

TINY_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "jaxlt", "resources", "tiny_data"))
SETTINGS = FeatureSettings(num_sentences=12, batch_size=8, input_length=96, target_length=48, seed=0)
LANGS = ["en", "de", "sw"]


def test_exact_match_rate_hand_worked():
    eos = 1
    targets = np.array([[945, 7, 8, 944, 1, 0], [945, 5, 1, 0, 0, 0], [945, 9, 944, 3, 1, 0]])
    preds = np.array([[945, 7, 8, 944, 1, 0],  # exact
                      [945, 5, 1, 4, 4, 4],  # exact up to EOS; what follows EOS does not count
                      [945, 9, 944, 4, 1, 0]])  # one span token wrong
    assert exact_match_rate(preds, targets, eos) == pytest.approx(2 / 3)
    assert exact_match_rate(preds[:1], targets[1:2], eos) == 0.0


def test_span_matches_hand_worked():
    eos, v = 1, 946
    # chunk [5 6 7 8 9 10 11 12], noise at 7 8 and 11 -> targets: v-1 7 8 v-2 11 v-3 EOS
    targets = np.array([v - 1, 7, 8, v - 2, 11, v - 3, eos, 0])
    noise = np.array([0, 1, 1, 0, 1, 0, 0, 0], bool)
    assert span_matches(np.array([v - 1, 7, 8, v - 2, 11, v - 3, eos, 0]), targets, noise, eos) == (2, 2)
    assert span_matches(np.array([v - 1, 7, 8, v - 2, 12, eos, 0, 0]), targets, noise, eos) == (1, 2)
    assert span_matches(np.array([v - 1, 7, v - 2, 11, eos, 0, 0, 0]), targets, noise, eos) == (1, 2)
    assert span_matches(np.array([v - 2, 11, v - 1, 7, 8, eos, 0, 0]), targets, noise, eos) == (2, 2)  # by sentinel
    assert span_matches(np.array([7, 8, 11, eos, 0, 0, 0, 0]), targets, noise, eos) == (0, 2)  # no sentinels
    assert span_matches(np.array([v - 1, 7, 8, eos, v - 2, 11, 0, 0]), targets, noise, eos) == (1, 2)  # after EOS
    with pytest.raises(ValueError, match="target_length 10 is shorter than the 22 target tokens"):
        FeatureSettings(input_length=96, target_length=10)


@pytest.fixture(scope="module")
def computed(tmp_path_factory):
    from jaxlt.data import sources, tasks
    from jaxlt.grid.model_features import compute

    torch_model = build_torch_model("mt5", seed=3)
    ckpt = make_hf_checkpoint(tmp_path_factory.mktemp("hf") / "mt5", "mt5", model=torch_model)
    out = str(tmp_path_factory.mktemp("features"))
    vocabulary_before = tasks.current_vocabulary_path()
    # the data directory is passed explicitly: no process-wide setting is read or changed
    assert sources.get_data_dir() is None
    table, centroids, _ = compute("tiny-mt5", ckpt, ["xnli"], LANGS, out, SETTINGS, progress=False,
                                  data_dir=TINY_DATA)
    assert tasks.current_vocabulary_path() == vocabulary_before and sources.get_data_dir() is None
    return torch_model, ckpt, out, table, centroids


def _torch_inputs(ckpt, texts, length):
    import sentencepiece as spm
    import torch

    sp = spm.SentencePieceProcessor(model_file=os.path.join(ckpt, "spiece.model"))
    rows = [sp.encode(t)[:length - 1] + [1] for t in texts]
    ids = torch.zeros((len(rows), length), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    return ids


def test_centroids_and_emb_match_transformers(computed):
    import torch

    from jaxlt.features.model_features import embedding_similarity
    from jaxlt.grid.model_features import sample_texts

    torch_model, ckpt, out, _, centroids = computed
    reference = {}
    for lang in LANGS:
        texts, _ = sample_texts("xnli", lang, SETTINGS.num_sentences, SETTINGS.seed, TINY_DATA)
        ids = _torch_inputs(ckpt, texts, SETTINGS.input_length)
        mask = (ids != 0).float()
        with torch.no_grad():
            hidden = torch_model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        reference[lang] = pooled.mean(0).numpy()
        np.testing.assert_allclose(centroids[f"tiny-mt5/xnli/{lang}"], reference[lang], rtol=2e-4, atol=2e-5)
    # the analysis stage reads the centroids file and derives the same cosines as emb_pairs.csv
    theirs = embedding_similarity(os.path.join(out, "centroids.npz"))
    ours = pd.read_csv(os.path.join(out, "emb_pairs.csv"))
    merged = ours.merge(theirs, on=["model", "task", "source", "target", "feature"])
    assert len(merged) == len(ours) == 6
    np.testing.assert_allclose(merged.value_x, merged.value_y, rtol=1e-6)
    u, v = reference["en"], reference["sw"]
    cos = float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    assert ours.set_index(["source", "target"]).loc[("en", "sw"), "value"] == pytest.approx(cos, rel=1e-4)


def _spans(tokens, sentinels, eos=1):
    """sentinel -> the tokens after it, up to the next sentinel or EOS (independent of jaxlt's parser)."""
    out, current = {}, None
    for t in tokens:
        if t == eos:
            break
        if t in sentinels:
            current = t
            out.setdefault(t, [])
        elif current is not None:
            out[current].append(t)
    return out


def test_lm_features_match_transformers(computed):
    import torch

    from jaxlt.grid.executor import load_model
    from jaxlt.grid.model_features import ModelFeatures

    torch_model, ckpt, out, table, _ = computed
    config, params, spm_path = load_model(ckpt)
    mf = ModelFeatures(config, params, spm_path, SETTINGS, data_dir=TINY_DATA)
    examples, counts = mf.span_examples("xnli", "sw")
    assert 0 < len(examples) <= SETTINGS.num_sentences and counts["chunks"] == len(examples)
    # full chunks of the pre-training length, concatenated across texts
    assert all(ex["chunk_tokens"] == SETTINGS.chunk_tokens for ex in examples) and counts["texts"] > len(examples)
    lls, full_lls, hits, spans = [], [], 0, 0
    for ex in examples:
        inp, tgt, noise = ex["inputs"].tolist(), ex["targets"].tolist(), ex["targets_noise"]
        with torch.no_grad():
            x, y = torch.tensor([inp]), torch.tensor([tgt])
            logits = torch_model(input_ids=x, labels=y).logits
            token_ll = torch.log_softmax(logits, -1)[0, torch.arange(len(tgt)), y[0]].numpy()
            lls.append(float(token_ll[noise].sum()))  # masked tokens only
            full_lls.append(float(token_ll.sum()))
            gen = torch_model.generate(x, max_new_tokens=SETTINGS.target_length, do_sample=False,
                                       num_beams=1)[0, 1:].tolist()  # generate starts with decoder_start (0)
        sentinels = {t for t, m in zip(tgt, noise) if not m} - {1}
        gold = {k: v for k, v in _spans(tgt, sentinels).items() if v}
        pred = _spans(gen, sentinels)
        hits += sum(pred.get(k) == v for k, v in gold.items())
        spans += len(gold)
    got = table.set_index(["language", "feature"])["value"]
    assert got[("sw", "LM_L")] == pytest.approx(np.mean(lls), rel=1e-4)
    assert np.mean(lls) != pytest.approx(np.mean(full_lls), rel=1e-2)  # sentinels and EOS are left out
    assert got[("sw", "LM_EM")] == pytest.approx(hits / spans)
    # the table follows the language-features contract the analysis stage reads
    from jaxlt.features.model_features import read_language_features

    read = read_language_features(os.path.join(out, "language_features.csv"))
    assert set(read.feature) == {"LM_L", "LM_EM"} and set(read.language) == set(LANGS) and len(read) == 6
    assert (read[read.feature == "LM_L"].value < 0).all()


def test_unknown_language_fails_before_loading_the_model(tmp_path):
    from jaxlt.grid.model_features import main

    assert main(["--checkpoint", str(tmp_path / "does-not-exist"), "--tasks", "xnli", "--languages", "en,qq",
                 "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
