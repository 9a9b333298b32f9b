"""`jaxlt predict` / `score` / `demo` against transformers + sentencepiece, and the bundled tiny model."""

import json
import os

import numpy as np
import pytest
import sentencepiece as spm
import torch

from jaxlt.commands import demo, predict, score
from jaxlt.commands.demo import TINY_MODEL as TINY
from model_fixtures import SPM_PATH, build_torch_model, make_hf_checkpoint

TEXTS = ["Hello world.", "Der Zug ist pünktlich angekommen und alle steigen aus.", "", "猫はソファで寝ている。",
         "xnli premise: El mercado abre los domingos. hypothesis: Venden fruta allí."]
TARGETS = ["entailment", "neutral", "x", "Ein längeres Ziel mit mehreren Wörtern.", "contradiction"]
EOS = 1


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = build_torch_model("mt5", seed=9)
    with torch.no_grad():  # make EOS likely so some predictions stop early
        model.lm_head.weight[EOS] = 2.5 * model.lm_head.weight[7]
    return model, make_hf_checkpoint(tmp_path_factory.mktemp("ckpt"), "mt5", model=model)


def _write(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _sp_ids(text):
    return spm.SentencePieceProcessor(model_file=SPM_PATH).encode(text) + [EOS]


def test_predict_matches_generate(tmp_path, checkpoint):
    model, ckpt = checkpoint
    _write(tmp_path / "in.jsonl", [{"inputs": t, "id": i} for i, t in enumerate(TEXTS)])
    rc = predict.main(["--checkpoint", ckpt, "--input", str(tmp_path / "in.jsonl"), "--output",
                       str(tmp_path / "out.jsonl"), "--max_decode_length", "10", "--batch_size", "3", "--no_progress"])
    assert rc == 0
    out = _read(tmp_path / "out.jsonl")
    assert [r["id"] for r in out] == list(range(len(TEXTS)))
    sp = spm.SentencePieceProcessor(model_file=SPM_PATH)
    lengths = []
    for text, record in zip(TEXTS, out):
        with torch.no_grad():
            ref = model.generate(input_ids=torch.tensor([_sp_ids(text)]), max_new_tokens=10, do_sample=False,
                                 num_beams=1, decoder_start_token_id=0, eos_token_id=EOS, pad_token_id=0)[0, 1:]
        ref = ref.tolist()
        ref = ref[:ref.index(EOS)] if EOS in ref else ref
        assert record["prediction_ids"] == ref, text
        assert record["prediction"] == sp.decode([i for i in ref if i < sp.get_piece_size()])
        lengths.append(len(ref))
    assert min(lengths) < 10, "fixture should stop some predictions at EOS"


def test_score_matches_transformers(tmp_path, checkpoint):
    model, ckpt = checkpoint
    _write(tmp_path / "in.jsonl", [{"inputs": x, "targets": y} for x, y in zip(TEXTS, TARGETS)])
    assert score.main(["--checkpoint", ckpt, "--input", str(tmp_path / "in.jsonl"), "--output",
                       str(tmp_path / "out.jsonl"), "--batch_size", "5", "--no_progress"]) == 0
    out = _read(tmp_path / "out.jsonl")
    for x, y, record in zip(TEXTS, TARGETS, out):
        labels = torch.tensor([_sp_ids(y)])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([_sp_ids(x)]), labels=labels).logits
        ref = torch.log_softmax(logits, -1).gather(-1, labels[..., None]).sum().item()
        assert record["num_tokens"] == labels.shape[1]
        np.testing.assert_allclose(record["log_likelihood"], ref, rtol=1e-5)


def test_bad_input_is_reported_and_writes_nothing(tmp_path, checkpoint, capsys):
    _, ckpt = checkpoint
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"inputs": "ok"}\n{"inputs": "broken"\n')
    out = tmp_path / "out.jsonl"
    assert predict.main(["--checkpoint", ckpt, "--input", str(bad), "--output", str(out)]) == 2
    assert f"{bad}:2: invalid JSON" in capsys.readouterr().err
    bad.write_text('{"inputs": "ok", "targets": "a"}\n{"inputs": "no target"}\n')
    assert score.main(["--checkpoint", ckpt, "--input", str(bad), "--output", str(out)]) == 2
    assert f"{bad}:2: missing field 'targets'" in capsys.readouterr().err
    assert predict.main(["--checkpoint", str(tmp_path / "none"), "--input", str(bad), "--output", str(out)]) == 2
    assert "no such checkpoint directory" in capsys.readouterr().err
    assert not out.exists()


def test_bundled_tiny_model_is_reproducible_and_loads_in_transformers(tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    from jaxlt.resources.tiny_model import build_model  # noqa: E402

    bundled = os.path.dirname(build_model.__file__)
    build_model.build(str(tmp_path))
    for name in ("config.json", "model.safetensors"):
        with open(os.path.join(bundled, name), "rb") as a, open(tmp_path / name, "rb") as b:
            assert a.read() == b.read(), f"bundled {name} differs from a fresh build"
    model = AutoModelForSeq2SeqLM.from_pretrained(bundled).eval()
    assert type(model).__name__ == "MT5ForConditionalGeneration"
    assert model.config.vocab_size == 1024 and model.config.vocab_size % 128 == 0


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert demo.main(["--quick", "--workdir", str(tmp_path), "--max_decode_length", "6"]) == 0
    predictions, scores = _read(tmp_path / "predictions.jsonl"), _read(tmp_path / "scores.jsonl")
    assert len(predictions) == len(scores) == len(demo.EXAMPLES)
    assert all(len(p["prediction_ids"]) <= 6 for p in predictions)
    assert all(s["log_likelihood"] < 0 and s["num_tokens"] >= 2 for s in scores)
    assert "predict:" in capsys.readouterr().out


def test_tokenize_truncates_keeping_eos_and_logs_the_count(caplog):
    from jaxlt.data.vocabulary import get_vocabulary
    from jaxlt.model.inference import tokenize
    from jaxlt.train.batched import _groups, bucket_length, truncate

    vocab = get_vocabulary(SPM_PATH)
    long_text = " ".join(["Der Zug ist pünktlich angekommen"] * 5)
    with caplog.at_level("WARNING"):
        ids = tokenize(vocab, ["Hello world.", long_text], EOS, max_length=9)
    assert ids[0] == _sp_ids("Hello world.")  # 8 pieces + EOS: fits exactly
    assert ids[1] == _sp_ids(long_text)[:8] + [EOS]
    assert "1 of 2 inputs truncated to 9 tokens" in caplog.text
    # the shared batching path: power-of-two buckets, fixed batch size, input order kept per bucket
    assert [bucket_length(n, None) for n in (1, 8, 9, 33)] == [8, 8, 16, 64]
    assert [bucket_length(n, (16, 32)) for n in (1, 16, 17, 99)] == [16, 16, 32, 32]
    assert list(_groups([2, 3, 10, 4], None, 2)) == [(8, [0, 1]), (8, [3]), (16, [2])]
    assert truncate([5, 6, 7, 1], 3) == [5, 6, 1]


def test_predict_and_score_take_gin_model_overrides(tmp_path):
    """t5x-style gin flags reach the model config (run in a subprocess: gin state is global)."""
    import subprocess
    import sys

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"inputs": "xnli premise: a hypothesis: b", "targets": "neutral"}) + "\n")
    code = (
        "import sys, jaxlt.data\n"
        "from jaxlt.commands import predict, score\n"
        "from jaxlt.commands._inference_gin import apply_gin\n"
        "from jaxlt.model.loading import load_checkpoint\n"
        f"m = apply_gin(load_checkpoint({TINY!r}), [], [\"jaxlt.train.model_settings.dtype='bfloat16'\"])\n"
        "assert m.config.dtype == 'bfloat16', m.config.dtype\n"
        "import gin; gin.clear_config()\n"
        f"assert predict.main(['--checkpoint', {TINY!r}, '--input', {str(inp)!r}, '--output', {str(tmp_path / 'p.jsonl')!r},"
        " '--max_decode_length', '4', '--no_progress', '--gin.jaxlt.train.model_settings.dtype', \"'bfloat16'\"]) == 0\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "p.jsonl").read_text())["prediction_ids"] is not None
    bad = subprocess.run([sys.executable, "-m", "jaxlt.cli", "score", "--checkpoint", TINY, "--input", str(inp),
                          "--output", str(tmp_path / "s.jsonl"), "--gin.no_such_configurable.x=1"],
                         capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "no_such_configurable" in bad.stderr
    assert not (tmp_path / "s.jsonl").exists()
