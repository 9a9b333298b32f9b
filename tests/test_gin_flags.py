import pytest

from jaxlt.gin_flags import split_gin_bindings


def test_split_gin_bindings_both_spellings():
    bindings, rest = split_gin_bindings(
        ["--gin_file=a.gin", "--gin.TRAIN_STEPS=10", "--gin.MODEL_DIR", "'/tmp/x'", "--batch_size", "4"])
    assert bindings == ["TRAIN_STEPS=10", "MODEL_DIR='/tmp/x'"]
    assert rest == ["--gin_file=a.gin", "--batch_size", "4"]


def test_gin_flag_without_value_is_an_error():
    with pytest.raises(SystemExit, match="no value"):
        split_gin_bindings(["--gin.TRAIN_STEPS"])


def test_expand_aliases_rebinds_every_name_of_a_setting_in_order():
    from jaxlt.gin_flags import expand_aliases

    groups = [("grid_settings.learning_rate", "OptimizerConfig.learning_rate"),
              ("EvalConfig.split", "jaxlt.train.evaluate_run.split")]
    got = expand_aliases(["grid_settings.learning_rate=1e30", "OptimizerConfig.learning_rate = 2",
                          "evaluate_run.split='test'", "scope/EvalConfig.split='x'", "TRAIN_STEPS=3"], groups)
    assert got == ["grid_settings.learning_rate=1e30", "OptimizerConfig.learning_rate = 1e30",
                   "OptimizerConfig.learning_rate = 2", "grid_settings.learning_rate = 2",
                   "evaluate_run.split='test'", "EvalConfig.split = 'test'",
                   "scope/EvalConfig.split='x'", "TRAIN_STEPS=3"]


def test_command_line_eval_setting_wins_over_a_run_file(tmp_path):
    """A file binds evaluate_run.split; `--gin.EvalConfig.split` on the command line overrides it
    (both names), while the same two bindings in two files are refused."""
    import gin

    from jaxlt import gin_flags
    from jaxlt.errors import ConfigError

    (tmp_path / "run.gin").write_text("jaxlt.train.evaluate_run.split = 'validation'\n")
    (tmp_path / "eval.gin").write_text("EvalConfig.split = 'test'\n")
    try:
        with gin.unlock_config():  # another test may have finalized gin before these modules were imported
            from jaxlt.commands import run_config  # registers the gin names of the run functions
            from jaxlt.train import run

            assert "evaluate_run" in run_config.RUN_FUNCTIONS
            run.import_before_parsing()
            gin.clear_config()
            gin_flags.parse_gin([str(tmp_path / "run.gin")], gin_flags.expand_aliases(
                ["EvalConfig.split='test'"], gin_flags.eval_alias_groups("evaluate_run")), finalize=False)
            assert gin_flags.evaluation_kwargs("evaluate_run") == {"split": "test"}
            gin.clear_config()
            gin_flags.parse_gin([str(tmp_path / "run.gin"), str(tmp_path / "eval.gin")], [], finalize=False)
            with pytest.raises(ConfigError, match="EvalConfig.split = 'test' but jaxlt.train.evaluate_run.split"):
                gin_flags.evaluation_kwargs("evaluate_run")
    finally:
        with gin.unlock_config():
            gin.clear_config()


def test_only_the_gin_layer_imports_gin():
    """Library code takes typed configs; gin is read by the commands and the gin layer only
    (gin_flags, experiment_gin, grid/configurables, model/gin_configurables)."""
    import ast
    import pathlib

    import jaxlt

    root = pathlib.Path(jaxlt.__file__).parent
    gin_layer = {"gin_flags.py", "experiment_gin.py", "grid/configurables.py", "model/gin_configurables.py"}
    importers = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "gin" or n.startswith("gin.") for n in names):
                importers.add(path.relative_to(root).as_posix())
    assert importers, "the scan found no gin import at all"
    assert {p for p in importers if not p.startswith("commands/")} == gin_layer
