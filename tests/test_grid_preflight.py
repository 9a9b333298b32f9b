"""Checks before claiming: data files, n-shot pools, the pre-trained checkpoint and the vocabulary are
checked before grid.json is written, and --dry_run runs the same checks (exit 2, one line)."""

import os
import shutil
import subprocess
import sys

import pytest

from jaxlt.errors import CheckpointError, DataError, UserError
from jaxlt.grid.runner import GridRunner
from jaxlt.grid.settings import GridSettings
from jaxlt.grid.spec import GridSpec
from jaxlt.grid.store import ResultsStore
from jaxlt.grid.toy import ToyExecutor

TINY_DATA = os.path.join(os.path.dirname(__file__), "..", "jaxlt", "resources", "tiny_data")
SPEC = GridSpec(tasks=["xnli"], sources=["en"], targets=["en", "de"], n_values=[8], seeds=[0],
                strategy="sequential", model="mt5-tiny")


def _settings(data_dir=os.path.abspath(TINY_DATA), **kw):
    return GridSettings(executor="trainer", pretrained=kw.pop("pretrained", "init:mt5_tiny"), data_dir=data_dir,
                        source_size=-1, source_steps=5, fewshot_steps=2, batch_size=8, input_length=64,
                        target_length=8, **kw)


def _runner(tmp_path, spec=SPEC, settings=None):
    from jaxlt.grid.executor import TrainerCatalog

    settings = settings or _settings()

    def no_executor():
        raise AssertionError("the executor (model loading) must not be built before the checks pass")

    return GridRunner(spec, settings, ResultsStore(str(tmp_path / "results")), no_executor, progress=False,
                      catalog=TrainerCatalog(settings))


def _fails_before_claiming(tmp_path, error, match, **kw):
    runner = _runner(tmp_path, **kw)
    with pytest.raises(error, match=match):
        runner.run()
    assert not (tmp_path / "results" / "grid.json").exists()


def test_good_inputs_pass_the_checks(tmp_path):
    runner = _runner(tmp_path)
    runner.validate(runner.plan())


def test_a_typo_in_pretrained_does_not_claim_the_directory(tmp_path):
    _fails_before_claiming(tmp_path, CheckpointError, "pretrained checkpoint '/no/such/model' does not exist",
                           settings=_settings(pretrained="/no/such/model"))
    # the corrected rerun is not refused: nothing was claimed
    _runner(tmp_path).validate(_runner(tmp_path).plan())
    assert not (tmp_path / "results").exists()


def test_an_unknown_init_config_and_a_bad_vocabulary_are_named(tmp_path):
    _fails_before_claiming(tmp_path, CheckpointError, "init:no_such_config",
                           settings=_settings(pretrained="init:no_such_config"))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"not a sentencepiece model")
    _fails_before_claiming(tmp_path, CheckpointError, f"vocabulary {bad}", settings=_settings(vocabulary=str(bad)))


def test_a_checkpoint_directory_without_weights_is_named(tmp_path):
    ckpt = tmp_path / "hf"
    ckpt.mkdir()
    (ckpt / "config.json").write_text("{}")
    _fails_before_claiming(tmp_path, CheckpointError, "has no model weights",
                           settings=_settings(pretrained=str(ckpt)))


def _copy_data(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(TINY_DATA, data, ignore=shutil.ignore_patterns("*.py"))
    return data


def test_a_malformed_line_is_named_with_its_file_and_line(tmp_path):
    data = _copy_data(tmp_path)
    path = data / "facebook" / "xnli" / "de" / "test.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:-5]  # cut off the end of the third record
    path.write_text("\n".join(lines) + "\n")
    _fails_before_claiming(tmp_path, DataError, f"{path}:3: malformed record", settings=_settings(str(data)))


def test_non_utf8_input_is_named_with_its_file_and_line(tmp_path):
    data = _copy_data(tmp_path)
    path = data / "facebook" / "xnli" / "en" / "train.jsonl"
    raw = path.read_bytes().split(b"\n")
    raw[4] = raw[4].replace(b'"', b'"\xff', 1)
    path.write_bytes(b"\n".join(raw))
    _fails_before_claiming(tmp_path, DataError, f"{path}:5: not UTF-8 text", settings=_settings(str(data)))


def test_n_larger_than_the_pool_is_named(tmp_path):
    big = GridSpec(**{**SPEC.to_dict(), "n_values": [8, 100000]})
    _fails_before_claiming(tmp_path, DataError, r"xnli.de n-shot pool \(n=100000\)", spec=big)


def _grid_cli(args, **kw):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "jaxlt.cli", "grid", *args], capture_output=True, text=True,
                          env=env, timeout=300, **kw)


def test_dry_run_runs_the_same_checks_and_exits_2_with_one_line(tmp_path):
    out = _grid_cli(["--gin_file=runs/grid_toy.gin", f"--results_dir={tmp_path / 'r'}", "--dry_run",
                     "--gin.grid_spec.n_values=[10, 5000]"])
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "n-shot pool too small" in lines[0] and "n=5000" in lines[0], out.stderr
    # a real run stops the same way, before claiming the directory
    out = _grid_cli(["--gin_file=runs/grid_toy.gin", f"--results_dir={tmp_path / 'r'}",
                     "--gin.grid_spec.n_values=[10, 5000]"])
    assert out.returncode == 2 and "n-shot pool too small" in out.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "r" / "grid.json").exists()


def test_dry_run_of_the_tiny_real_grid_with_a_bad_pretrained_path(tmp_path):
    out = _grid_cli(["--gin_file=runs/grid_tiny.gin", "--dry_run",
                     "--gin.jaxlt.train.model_settings.pretrained='/no/such/ckpt'"])
    assert out.returncode == 2, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    # one line: no TensorFlow/CUDA start-up noise ("failed call to cuInit"), no gin probes, no traceback
    assert len(lines) == 1 and "'/no/such/ckpt' does not exist" in lines[0], out.stderr[-3000:]


def test_toy_check_refuses_n_beyond_its_pool():
    from jaxlt.grid.cells import enumerate_cells

    toy = ToyExecutor(GridSettings(executor="toy"))
    spec = GridSpec(tasks=["toy_nli"], sources=["en"], targets=["de"], n_values=[10, 3000], seeds=[0], model="t")
    with pytest.raises(UserError, match="toy_nli.de n=3000"):
        toy.check(enumerate_cells(spec))
