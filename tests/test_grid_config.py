"""The paper's grid preset plans exactly the paper's cells; the resolved configuration decides a
results directory (every result-changing binding changes the hash and is refused there)."""

import itertools
import json

import pytest
from model_fixtures import no_process_data_dir_fixture

from jaxlt.commands import grid as grid_command
from jaxlt.grid.settings import GridSettings, config_hash

# The grid reads the hub unless told otherwise: no data directory left by another test.
no_process_data_dir = pytest.fixture(autouse=True)(no_process_data_dir_fixture)


# The paper's design, written out from its text (section 3, Table 4, footnote 4), not from the preset.
PAPER_N = [10, 30, 50, 100, 250]
PAPER_N_LARGE = PAPER_N + [500, 750, 1000]
SEEDS = [0, 1, 2, 3]


def paper_cells() -> set[tuple]:
    cells = set()

    def add(task, zero_sources, zero_targets, few_sources, few_targets, n_values, split):
        for s, t, seed in itertools.product(zero_sources, zero_targets, SEEDS):
            cells.add((task, s, t, 0, seed, "zero_shot", split))
        for s, t, n, seed in itertools.product(few_sources, few_targets, n_values, SEEDS):
            if s != t:
                cells.add((task, s, t, n, seed, "sequential", split))

    tydiqa = "en ar bn fi id ru sw".split()
    add("tydiqa", tydiqa, tydiqa, tydiqa, tydiqa, PAPER_N, "validation")
    panx = "en ar hi fi id ru es de".split()
    add("panx", panx, panx + ["sw"], panx, panx, PAPER_N_LARGE, "test")
    xnli_few = "en ar hi ru sw es de".split()
    xnli_zero = "en ar bg de el es fr hi ru sw tr ur vi zh".split()
    add("xnli", xnli_zero, xnli_zero, xnli_few, xnli_few, PAPER_N_LARGE, "test")
    return cells


def dry_run_json(capsys, *args) -> list[dict]:
    assert grid_command.main(["--dry_run", "--json", "--no_progress", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_grid_paper_plans_the_papers_cells_and_no_others(capsys):
    lines = dry_run_json(capsys, "--gin_file", "runs/grid_paper.gin")
    *cells, last = lines
    got = [(c["task"], c["source"], c["target"], c["n"], c["seed"], c["strategy"], c["eval_split"]) for c in cells]
    assert len(got) == len(set(got))
    expected = paper_cells()
    assert set(got) - expected == set() and expected - set(got) == set()
    assert len(expected) == 5244
    # the last object: the config hash and the whole resolved configuration (the paper's recipe)
    config = last["config"]
    assert last["config_hash"] == config_hash(GridSettings(**{
        k: v for k, v in config.items() if "." not in k}, **sections_from(config)), "mt5-base",
        ["tydiqa", "panx", "xnli"])
    # the hash covers the split each dataset is scored on, not the setting ("" = the dataset's own)
    assert config["evaluation.split"] == ""
    assert last["hashed"]["evaluation.split"] == {"panx": "test", "tydiqa": "validation", "xnli": "test"}
    assert config["optimizer.name"] == "adam" and config["optimizer.learning_rate"] == 3e-4
    assert config["optimizer.clip_norm"] == 1.0 and config["optimizer.z_loss"] == 0.0
    assert config["optimizer.loss_normalizing_factor"] is None and config["optimizer.label_smoothing"] == 0.0
    assert config["data.batch_size"] == 128 and config["data.input_length"] == 512
    assert config["data.source_size"] == 0  # the dataset table's 100k / 10k / 2.2k


def sections_from(config: dict) -> dict:
    from jaxlt import experiment

    out = {}
    for section, cls in experiment.SECTIONS.items():
        out[section] = cls(**{k.split(".", 1)[1]: v for k, v in config.items() if k.startswith(section + ".")})
    return out


TOY = ["--gin_file", "runs/grid_toy.gin"]


@pytest.mark.parametrize("binding,key,ours", [
    ("grid_settings.learning_rate=0.01", "optimizer.learning_rate", 0.01),
    ("OptimizerConfig.learning_rate=0.01", "optimizer.learning_rate", 0.01),
    ("DataConfig.source_size=500", "data.source_size", 500),
    ("grid_settings.source_size=500", "data.source_size", 500),
    ("EvalConfig.split='validation'", "evaluation.split", {"toy_nli": "validation"}),
    ("grid_settings.eval_split='validation'", "evaluation.split", {"toy_nli": "validation"}),
    ("OptimizerConfig.z_loss=0.0001", "optimizer.z_loss", 0.0001),
    ("DataConfig.input_length={'toy_nli': 32}", "data.input_length", {"toy_nli": 32}),
    ("jaxlt.train.model_settings.dropout_rate=0.2", "model.dropout_rate", 0.2),
])
def test_a_result_changing_binding_changes_the_hash_and_is_refused(tmp_path, capsys, binding, key, ours):
    results = str(tmp_path / "r")
    base = dry_run_json(capsys, *TOY)[-1]
    changed = dry_run_json(capsys, *TOY, f"--gin.{binding}")[-1]
    assert changed["config_hash"] != base["config_hash"]
    assert changed["hashed"][key] == ours != base["hashed"][key]
    assert grid_command.main([*TOY, "--results_dir", results, "--no_progress"]) == 0
    capsys.readouterr()
    with open(f"{results}/grid.json") as f:
        manifest = json.load(f)
    assert manifest["settings"][key] == base["hashed"][key] and manifest["config_hash"] == base["config_hash"]
    records_before = sorted((tmp_path / "r" / "records").rglob("*.json"))
    # the rerun is refused before any work, in one line naming the key and both values
    assert grid_command.main([*TOY, "--results_dir", results, "--no_progress", f"--gin.{binding}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{key}: {base['hashed'][key]!r} there, {ours!r} here" in err
    assert sorted((tmp_path / "r" / "records").rglob("*.json")) == records_before
    # the dry run refuses it too
    assert grid_command.main([*TOY, "--results_dir", results, "--dry_run", f"--gin.{binding}"]) == 2


@pytest.mark.parametrize("binding", ["EvalConfig.batch_size=3", "grid_settings.pack_cells=4",
                                     "grid_settings.toy_step_seconds=0.001",
                                     "jaxlt.train.model_settings.remat='full'", "DataConfig.accumulation_steps=2",
                                     "jaxlt.train.model_settings.logits_chunk_size=4096"])
def test_speed_and_memory_settings_keep_the_hash(capsys, binding):
    assert dry_run_json(capsys, *TOY)[-1]["config_hash"] == \
        dry_run_json(capsys, *TOY, f"--gin.{binding}")[-1]["config_hash"]


def test_one_setting_bound_two_ways_by_two_files_is_refused(tmp_path, capsys):
    (tmp_path / "a.gin").write_text("grid_settings.learning_rate = 0.01\n")
    (tmp_path / "b.gin").write_text("OptimizerConfig.learning_rate = 0.02\n")
    code = grid_command.main([*TOY, "--dry_run", "--gin_file", str(tmp_path / "a.gin"),
                              "--gin_file", str(tmp_path / "b.gin")])
    assert code == 2
    assert "grid_settings.learning_rate = 0.01 but OptimizerConfig.learning_rate = 0.02" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["grid_settings.learning_rate", "OptimizerConfig.learning_rate"])
def test_the_command_line_wins_over_a_file(tmp_path, capsys, flag):
    """t5x: later bindings win. A file binds the typed name (or the flat one); the command line rebinds
    the setting under either name, and the resolved configuration and hash follow it."""
    (tmp_path / "flat.gin").write_text("grid_settings.learning_rate = 0.01\n")
    (tmp_path / "typed.gin").write_text("OptimizerConfig.learning_rate = 0.01\n")
    base = dry_run_json(capsys, *TOY, "--gin.OptimizerConfig.learning_rate=3.0")[-1]
    for file in ("flat.gin", "typed.gin"):
        got = dry_run_json(capsys, *TOY, "--gin_file", str(tmp_path / file), f"--gin.{flag}=3.0")[-1]
        assert got["config"]["optimizer.learning_rate"] == 3.0
        assert got["config_hash"] == base["config_hash"]
    # two command-line bindings: the later one wins (both names follow it)
    got = dry_run_json(capsys, *TOY, "--gin.grid_settings.learning_rate=0.5", "--gin.OptimizerConfig.learning_rate=7.0")
    assert got[-1]["config"]["optimizer.learning_rate"] == 7.0


def test_command_line_overrides_grid_tiny_learning_rate(capsys):
    """gin/runs/grid_tiny.gin binds OptimizerConfig.learning_rate; a flat command-line flag overrides it."""
    tiny = ["--gin_file", "runs/grid_tiny.gin"]
    base = dry_run_json(capsys, *tiny)[-1]
    got = dry_run_json(capsys, *tiny, "--gin.grid_settings.learning_rate=1e30")[-1]
    assert base["config"]["optimizer.learning_rate"] == 1e-3 and got["config"]["optimizer.learning_rate"] == 1e30
    assert got["config_hash"] != base["config_hash"]
    # grid_tiny binds EvalConfig.split = "test", which is XNLI's declared split: the resolved split,
    # and so the hash, is the same with the setting left to the dataset table
    same = dry_run_json(capsys, *tiny, "--gin.EvalConfig.split=''")[-1]
    assert same["config"]["evaluation.split"] == "" and base["config"]["evaluation.split"] == "test"
    assert same["hashed"]["evaluation.split"] == base["hashed"]["evaluation.split"] == {"xnli": "test"}
    assert same["config_hash"] == base["config_hash"]


def test_per_task_steps_must_cover_every_task(capsys):
    code = grid_command.main([*TOY, "--dry_run", "--gin.grid_settings.source_steps={'other': 3}"])
    assert code == 2
    assert "source_steps has no steps for task 'toy_nli'" in capsys.readouterr().err


def test_per_task_lengths_must_cover_every_task(capsys):
    code = grid_command.main([*TOY, "--dry_run", "--gin.DataConfig.target_length={'other': 3}"])
    assert code == 2
    assert "target_length has no length for task 'toy_nli'" in capsys.readouterr().err


@pytest.mark.parametrize("binding, key, value", [("grid_settings.fewshot_replay=0.5", "fewshot_replay", 0.5),
                                                 ("grid_settings.fewshot_warmup=False", "fewshot_warmup", False),
                                                 ("grid_settings.fewshot_learning_rate=3e-4", "fewshot_learning_rate",
                                                  3e-4)])
def test_fewshot_protocol_settings_are_hashed_only_when_set(capsys, binding, key, value):
    base = dry_run_json(capsys, *TOY)[-1]
    changed = dry_run_json(capsys, *TOY, f"--gin.{binding}")[-1]
    assert key not in base["hashed"] and changed["hashed"][key] == value
    assert changed["config_hash"] != base["config_hash"]


def test_empty_evaluation_data_fails_before_any_training(tmp_path, capsys):
    """An empty evaluation split is an error before training, never a score of 0."""
    import shutil

    from jaxlt.commands.tasks import TINY_DATA

    data = tmp_path / "data"
    shutil.copytree(TINY_DATA, data)
    (data / "facebook" / "xnli" / "sw" / "test.jsonl").write_text("")
    results = tmp_path / "r"
    code = grid_command.main(["--gin_file", "runs/grid_tiny.gin", "--results_dir", str(results), "--no_progress",
                              f"--gin.DataConfig.data_dir='{data}'"])
    assert code == 2
    assert "xnli.sw test: no records" in capsys.readouterr().err
    assert not (results / "records").exists() and not (results / "checkpoints").exists()


def test_tasks_command_refuses_a_missing_data_dir(tmp_path, capsys):
    from jaxlt.commands import tasks as tasks_command

    assert tasks_command.main(["--data_dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_dry_run_prints_the_memory_estimate_per_device(capsys):
    """The paper grid on one 80 GB GPU: the analytic estimate (instant on a CPU host) under the
    hardware file's remat and micro-batches, and whether it fits the file's declared memory."""
    from jaxlt.model.config import get_config
    from jaxlt.train import memory

    args = ["--gin_file", "runs/grid_paper.gin", "--gin_file", "hardware/gpu_1.gin"]
    assert grid_command.main(["--dry_run", "--no_progress", *args]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("memory per device")]
    assert len(line) == 1 and "analytic estimate" in line[0] and "remat='dots', accumulation_steps=2" in line[0]
    assert "fits 75 GiB" in line[0]
    last = dry_run_json(capsys, *args)[-1]
    config = last["config"]
    expected = memory.analytic_train_memory(
        get_config("mt5_base", dtype=config["model.dtype"], param_dtype=config["model.param_dtype"], remat="dots"),
        config["data.batch_size"], {"inputs": config["data.input_length"], "targets": config["data.target_length"]},
        mesh_shape=(1, 1), accumulation_steps=2)
    assert last["memory_per_device_bytes"] == expected.total_bytes


@pytest.mark.slow  # compiles the tiny model's train step at full optimisation (~1 min on 2 busy cores)
def test_dry_run_compiled_memory_is_xlas_analysis(capsys):
    """--compiled_memory: XLA's compiled memory analysis of the grid's train step (what an accelerator
    host prints by default), here on the CPU for the tiny grid."""
    assert grid_command.main(["--dry_run", "--no_progress", "--gin_file", "runs/grid_tiny.gin",
                              "--compiled_memory"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("memory per device")]
    assert len(line) == 1 and "(XLA estimate)" in line[0] and "remat='none', accumulation_steps=1" in line[0]
