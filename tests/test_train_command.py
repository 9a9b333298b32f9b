"""`jaxlt train` / `jaxlt evaluate` as a user runs them: a tiny model learns the fixture task."""

from __future__ import annotations

import json

import gin
import pytest
from model_fixtures import make_hf_checkpoint

from jaxlt import cli, gin_flags
from jaxlt.train.fixture_task import CLASSES, make_examples

FAST = "--gin.jaxlt.train.{}.compiler_options={{'xla_backend_optimization_level': 0}}"


@pytest.fixture(autouse=True)
def fresh_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def test_missing_required_macros_are_named(tmp_path, capsys):
    code = cli.main(["train", "--gin_file", "tasks/fixture.gin", f"--gin.MODEL_DIR='{tmp_path}'",
                     "--gin.BATCH_SIZE=8"])
    assert code == 2
    err = capsys.readouterr().err
    assert "TRAIN_STEPS" in err and "INITIAL_CHECKPOINT_PATH" in err
    assert "MODEL_DIR" not in err.split("not set:")[1].split("(")[0]
    gin.clear_config()
    assert cli.main(["evaluate", "--gin.BATCH_SIZE=8"]) == 2
    assert "CHECKPOINT_PATH, MIXTURE_OR_TASK_NAME, EVAL_OUTPUT_DIR, TASK_FEATURE_LENGTHS" in capsys.readouterr().err


def test_tiny_model_learns_the_fixture_task_through_the_commands(tmp_path, capsys):
    # "Pre-trained" tiny mT5 in the Hugging Face format, with mt5_tiny's architecture.
    init = make_hf_checkpoint(tmp_path / "hf", kind="mt5", seed=0, d_model=64, d_kv=16, d_ff=128, num_heads=4,
                              relative_attention_num_buckets=32, relative_attention_max_distance=128)
    model_dir = tmp_path / "run"
    code = cli.main([
        "train", "--gin_file", "models/mt5_tiny.gin", "--gin_file", "tasks/fixture.gin",
        f"--gin.MODEL_DIR='{model_dir}'", f"--gin.INITIAL_CHECKPOINT_PATH='{init}'",
        "--gin.TRAIN_STEPS=200", "--gin.BATCH_SIZE=8", "--gin.jaxlt.train.train_run.eval_every=100",
        FAST.format("train_run"), "--no_progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["final_step"] == 200
    metrics_rows = [json.loads(line) for line in (model_dir / "train_metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in metrics_rows if "loss" in r]
    assert len(losses) == 200 and losses[-1] < 0.2 * losses[0]
    assert (model_dir / "tensorboard").is_dir()
    assert [r["eval/accuracy"] for r in metrics_rows if "eval/accuracy" in r]  # in-training model selection ran

    gin.clear_config()
    out = tmp_path / "eval"
    code = cli.main([
        "evaluate", "--gin_file", "tasks/fixture.gin", f"--gin.CHECKPOINT_PATH='{model_dir}'",
        f"--gin.EVAL_OUTPUT_DIR='{out}'", "--gin.BATCH_SIZE=8",
        "--gin.jaxlt.train.evaluate_run.split=['train', 'validation']", FAST.format("evaluate_run"),
        "--no_progress"])
    assert code == 0
    print(capsys.readouterr().out)
    for split in ("train", "validation"):
        name = "jaxlt_fixture.keyword_class"
        record = json.loads((out / f"{name}.{split}.metrics.json").read_text())
        predictions = [json.loads(line) for line in (out / f"{name}.{split}.predictions.jsonl").read_text().splitlines()]
        # Audit the number from the predictions file, independently of the metric code.
        examples = make_examples(32, 0 if split == "train" else 1)
        assert [p["input"] for p in predictions] == [e["inputs"] for e in examples]
        assert [p["target"] for p in predictions] == [e["targets"] for e in examples]
        correct = sum(p["prediction"] == e["targets"] for p, e in zip(predictions, examples))
        assert record["metrics"]["accuracy"] == pytest.approx(100.0 * correct / 32)
        assert all(p["prediction"] in CLASSES for p in predictions)
        # Learned: >= 95% on the 32 training examples; well above chance (25%) on 32 held-out ones.
        assert record["metrics"]["accuracy"] >= (95.0 if split == "train" else 75.0), record


def test_train_refuses_a_data_config_it_would_ignore(tmp_path, capsys):
    """jaxlt train reads BATCH_SIZE and TASK_FEATURE_LENGTHS; a DataConfig (grid) binding that
    disagrees is an error before anything runs, not silently ignored."""
    code = cli.main(["train", "--gin_file", "models/mt5_tiny.gin", "--gin_file", "tasks/fixture.gin",
                     f"--gin.MODEL_DIR='{tmp_path / 'run'}'", "--gin.INITIAL_CHECKPOINT_PATH=None",
                     "--gin.TRAIN_STEPS=2", "--gin.BATCH_SIZE=8", "--gin.DataConfig.batch_size=128",
                     "--gin.DataConfig.target_length=8", "--no_progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "DataConfig.batch_size = 128 but jaxlt train uses 8" in err and "target_length" not in err
    assert not (tmp_path / "run").exists()


def test_eval_config_reaches_evaluate_and_clashes_are_refused(tmp_path, capsys):
    from jaxlt.train import run

    gin.clear_config()
    run.import_before_parsing()
    with gin.unlock_config():
        gin.parse_config(["EvalConfig.rank_classification = True", "EvalConfig.max_examples = 5",
                          "EvalConfig.split = 'test'"])
    assert gin_flags.evaluation_kwargs("evaluate_run") == {"rank_classification": True, "max_examples": 5, "split": "test"}
    assert gin_flags.evaluation_kwargs("train_run") == {"rank_classification": True, "eval_split": "test"}
    with gin.unlock_config():
        gin.parse_config("jaxlt.train.evaluate_run.split = 'validation'")
    with pytest.raises(ValueError, match="EvalConfig.split = 'test' but jaxlt.train.evaluate_run.split = 'validation'"):
        gin_flags.evaluation_kwargs("evaluate_run")
