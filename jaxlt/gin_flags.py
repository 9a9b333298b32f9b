"""t5x-style gin flags: --gin_file (repeatable), --gin_search_paths, --gin.NAME=VALUE.

`gin` is imported only when a command actually parses gin, so analysis
commands stay light.
"""

from __future__ import annotations

import argparse
import logging
import os
import tokenize
from collections.abc import Sequence

GIN_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")


def add_gin_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("gin", "t5x-style configuration")
    group.add_argument("--gin_file", action="append", default=[], metavar="FILE",
                       help="gin file to parse (repeatable); relative paths are looked up in --gin_search_paths and jaxlt's gin/")
    group.add_argument("--gin_search_paths", default="", metavar="DIRS",
                       help="comma-separated directories searched for gin files and includes")
    group.add_argument("--gin.NAME=VALUE", dest="_gin_help", action="append", default=[], metavar="",
                       help="a gin binding, e.g. --gin.TRAIN_STEPS=100 or --gin.MODEL_DIR=\"'/tmp/m'\" (repeatable)")


def split_gin_bindings(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separates `--gin.NAME=VALUE` (or `--gin.NAME VALUE`) from the other arguments."""
    bindings, rest = [], []
    it = iter(argv)
    for arg in it:
        if arg.startswith("--gin."):
            body = arg[len("--gin."):]
            if "=" not in body:
                try:
                    body = f"{body}={next(it)}"
                except StopIteration:
                    raise SystemExit(f"gin flag {arg} has no value; write --gin.NAME=VALUE") from None
            bindings.append(body)
        else:
            rest.append(arg)
    return bindings, rest


class _DropGinProbeErrors(logging.Filter):
    """gin logs ERROR 'Path not found' for every search path it merely probes; a real miss still raises."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Path not found: %s" and record.pathname.endswith("resource_reader.py"))


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str], search_paths: str | Sequence[str] = "",
              finalize: bool = True, skip_unknown: bool = False) -> None:
    """Parses gin files then bindings (bindings win), searching user paths then jaxlt's gin/."""
    import gin

    import jaxlt.experiment_gin  # noqa: F401  (declares the typed configs' gin names)

    root = logging.getLogger()
    if not any(isinstance(f, _DropGinProbeErrors) for f in root.filters):
        root.addFilter(_DropGinProbeErrors())
    if isinstance(search_paths, str):
        search_paths = [p for p in search_paths.split(",") if p]
    for path in [*search_paths, GIN_ROOT, os.getcwd()]:
        gin.add_config_file_search_path(path)
    try:
        gin.parse_config_files_and_bindings(list(gin_files), list(bindings), finalize_config=finalize,
                                            skip_unknown=skip_unknown)
    except (ValueError, KeyError, SyntaxError, OSError, tokenize.TokenError) as e:  # a typo, unknown name, no file
        from jaxlt.errors import ConfigError, one_line

        raise ConfigError(f"gin: {one_line(e)}", hint="check the --gin_file and --gin.NAME=VALUE flags") from e


# ---------------------------------------------------------------------------------------------
# Reading gin: only the commands call these (library code gets typed configs passed in).

_MISSING = object()


def query(name: str, default=_MISSING):
    """The value bound to `name` ("%MACRO" or "configurable.param"); `default` when unbound
    (without a default, an unbound name raises ValueError, as gin does)."""
    import gin

    try:
        return gin.query_parameter(name)
    except ValueError:
        if default is _MISSING:
            raise
        return default


def bound(name: str) -> tuple[bool, object]:
    """(whether `name` is bound in gin, its value)."""
    unbound = object()
    value = query(name, unbound)
    return (False, None) if value is unbound else (True, value)


def experiment_bound(section: str, field: str) -> tuple[bool, object]:
    """(whether `field` of the typed config `section` is bound in gin, its value)."""
    from jaxlt.experiment_gin import GIN_NAMES

    return bound(f"{GIN_NAMES[section]}.{field}")


class MissingMacroError(ValueError):
    pass


def check_required_macros(names: Sequence[str], run_file: str) -> None:
    """Raises MissingMacroError naming every required gin macro that has no value."""
    missing = [name for name in names if not bound(f"%{name}")[0]]
    if missing:
        example = " ".join(f"--gin.{m}=..." for m in missing)
        raise MissingMacroError(
            f"required gin macro(s) not set: {', '.join(missing)} (needed by {run_file}); "
            f"bind them in a gin file or on the command line, e.g. {example}")


def load_hardware(gin_file: str):
    """Parses one gin/hardware file in isolation -> (PartitioningConfig, ModelConfig, DataConfig): the
    mesh and rules, and the memory settings it may set (remat, micro-batches) (tests, tools)."""
    import gin

    from jaxlt.experiment_gin import from_gin

    with gin.config_scope(None):
        gin.clear_config()
        parse_gin([gin_file], [], finalize=False)
        out = from_gin("hardware"), from_gin("model"), from_gin("data")
        gin.clear_config()
    return out


def load_hardware_rules(gin_file: str):
    """Parses one gin/hardware file in isolation and returns its PartitioningConfig (tests, tools)."""
    return load_hardware(gin_file)[0]


# ---------------------------------------------------------------------------------------------
# Aliases: one setting with two gin names (`grid_settings.learning_rate` and
# `OptimizerConfig.learning_rate`; `EvalConfig.split` and `jaxlt.train.evaluate_run.split`).
# A command-line binding of either name rebinds both, so the command line wins over the files
# (t5x: later bindings win); two files binding the two names differently are still refused.


def _same_name(a: str, b: str) -> bool:
    """Gin names match when one is the other with fewer leading module components."""
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def expand_aliases(bindings: Sequence[str], groups: Sequence[Sequence[str]]) -> list[str]:
    """`bindings` with, right after each binding of a name in a group of aliases, the same value
    bound to the group's other names (scoped bindings `scope/name` are left alone)."""
    out = []
    for binding in bindings:
        out.append(binding)
        name, sep, value = binding.partition("=")
        name = name.strip()
        if not sep or "/" in name:
            continue
        for group in groups:
            if any(_same_name(name, alias) for alias in group):
                out += [f"{alias} = {value.strip()}" for alias in group if not _same_name(name, alias)]
                break
    return out


def grid_alias_groups() -> list[tuple[str, str]]:
    """`grid_settings.<flat name>` and the typed config field it stands for."""
    from jaxlt.experiment_gin import GIN_NAMES
    from jaxlt.grid.settings import FLAT_NAMES

    return [(f"grid_settings.{flat}", f"{GIN_NAMES[section]}.{field}") for flat, (section, field) in FLAT_NAMES.items()]


# EvalConfig field (what jaxlt grid reads) -> its parameter in train_run / evaluate_run (None: not used there)
EVAL_PARAMETERS = {"split": ("eval_split", "split"), "batch_size": ("eval_batch_size", None),
                   "max_examples": (None, "max_examples"), "max_decode_length": ("max_decode_length", "max_decode_length"),
                   "rank_classification": ("rank_classification", "rank_classification")}


def eval_alias_groups(run: str) -> list[tuple[str, str]]:
    """`EvalConfig.<field>` and the `jaxlt.train.<run>.<parameter>` it stands for."""
    column = 0 if run == "train_run" else 1
    return [(f"EvalConfig.{field}", f"jaxlt.train.{run}.{params[column]}")
            for field, params in EVAL_PARAMETERS.items() if params[column] is not None]


def evaluation_kwargs(run: str) -> dict:
    """`train_run` / `evaluate_run` keyword arguments from the EvalConfig bindings in gin, so one
    `EvalConfig.rank_classification = True` evaluates the same way in train, evaluate and grid.
    A setting bound both as EvalConfig and as the run's own parameter, differently (by two files:
    the command line rebinds both, `expand_aliases`), is refused."""
    from jaxlt.errors import ConfigError

    column = 0 if run == "train_run" else 1
    out, clashes = {}, []
    for field, params in EVAL_PARAMETERS.items():
        param = params[column]
        is_bound, value = experiment_bound("evaluation", field)
        if param is None or not is_bound or value in ("", 0) and field != "rank_classification":
            continue  # "" / 0: the run's own default
        theirs = query(f"jaxlt.train.{run}.{param}", value)
        if theirs != value:
            clashes.append(f"EvalConfig.{field} = {value!r} but jaxlt.train.{run}.{param} = {theirs!r}")
        out[param] = value
    if clashes:
        raise ConfigError("one setting bound two ways: " + "; ".join(clashes))
    return out


def check_data_config_agrees(data, batch_size: int, task_feature_lengths: dict, accumulation_steps: int) -> None:
    """`jaxlt train` takes its batch and lengths from BATCH_SIZE and TASK_FEATURE_LENGTHS: a
    DataConfig binding (what `jaxlt grid` reads) that says otherwise is refused, not ignored."""
    from jaxlt.errors import ConfigError

    theirs = {"batch_size": int(batch_size), "accumulation_steps": int(accumulation_steps),
              "input_length": int(task_feature_lengths.get("inputs", 0)),
              "target_length": int(task_feature_lengths.get("targets", 0))}
    clashes = []
    for field, value in theirs.items():
        is_bound, ours = experiment_bound("data", field)
        if is_bound and ours != value:
            clashes.append(f"DataConfig.{field} = {ours!r} but jaxlt train uses {value!r}")
    if clashes:
        raise ConfigError("; ".join(clashes) + " (jaxlt train reads BATCH_SIZE, TASK_FEATURE_LENGTHS and "
                          "train_run.accumulation_steps)")
