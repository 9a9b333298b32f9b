"""The one place `jaxlt train` and `jaxlt evaluate` read gin: typed configs built once, passed down.

Registers the gin names of the run functions (`jaxlt.train.train_run`, `.evaluate_run`,
`.setup_jax`: gin checks bound parameter names against their signatures) without making the
library functions read gin: their bindings are resolved here into plain keyword arguments.
Parses the run file and the user's files and bindings (a command-line binding of either name
of an aliased setting rebinds both, so the command line wins, `jaxlt.gin_flags.expand_aliases`),
checks the run file's required macros, imports the task modules (before gin is finalized:
they may declare configurables), then builds the model, optimizer, data and hardware configs,
sets the process's data directory and task vocabulary (seqio tasks are looked up by name),
and resolves the evaluation keyword arguments.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import gin

from jaxlt.experiment import DataConfig, ModelConfig, OptimizerConfig
from jaxlt.partitioning import PartitioningConfig
from jaxlt.train import run as run_module

RUN_FUNCTIONS = {name: gin.external_configurable(getattr(run_module, name), name=name, module="jaxlt.train")
                 for name in ("train_run", "evaluate_run", "setup_jax")}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: ModelConfig
    optimizer: OptimizerConfig
    data: DataConfig
    hardware: PartitioningConfig
    arguments: dict  # the other keyword arguments of train_run / evaluate_run, resolved from gin


def configure(run: str, run_file: str, macros: Sequence[str], checkpoint_macro: str, gin_files: Sequence[str],
              bindings: Sequence[str], search_paths: str = "") -> RunConfig:
    """`run` is "train_run" or "evaluate_run". Raises a ValueError (ConfigError, MissingMacroError)
    naming the problem before any work."""
    from jaxlt import experiment_gin, gin_flags

    run_module.import_before_parsing()
    bindings = gin_flags.expand_aliases(bindings, gin_flags.eval_alias_groups(run))
    # Not finalized yet: gin's own check would report only the first missing macro.
    gin_flags.parse_gin([run_file, *gin_files], bindings, search_paths, finalize=False)
    gin_flags.check_required_macros(macros, run_file)
    run_module.import_task_modules(gin_flags.query(f"jaxlt.train.{run}.task_modules",
                                                   run_module.DEFAULT_TASK_MODULES))
    gin.finalize()
    run_module.setup_jax(**bound_arguments("setup_jax"))
    model, data = experiment_gin.from_gin("model"), experiment_gin.from_gin("data")
    extra = {}
    if run == "train_run":
        # micro-batches: train_run's own binding, else DataConfig's (a gin/hardware file sets it)
        accumulation = gin_flags.query("jaxlt.train.train_run.accumulation_steps", data.accumulation_steps)
        gin_flags.check_data_config_agrees(data, gin_flags.query("%BATCH_SIZE"),
                                           gin_flags.query("%TASK_FEATURE_LENGTHS"), accumulation)
        extra["accumulation_steps"] = int(accumulation)
    # The tasks tokenise with the checkpoint's SentencePiece model unless the model config names one.
    configure_process(data.data_dir,
                      model.vocabulary or run_module.checkpoint_vocabulary(gin_flags.query(f"%{checkpoint_macro}")))
    return RunConfig(model=model, optimizer=experiment_gin.from_gin("optimizer"), data=data,
                     hardware=experiment_gin.from_gin("hardware"),
                     arguments={**bound_arguments(run), **gin_flags.evaluation_kwargs(run), **extra})


def bound_arguments(name: str) -> dict:
    """The gin bindings of run function `name`, macros resolved: its keyword arguments."""
    return gin.get_bindings(RUN_FUNCTIONS[name], resolve_references=True)


def configure_process(data_dir: str = "", vocabulary: str | None = None) -> None:
    """The process-wide data directory and task vocabulary, set once here (the seqio tasks that
    `train_run` / `evaluate_run` look up by name read them; the grid and the model features pass
    both explicitly instead)."""
    from jaxlt.data import sources, tasks
    from jaxlt.data.vocabulary import find_sentencepiece_model

    if data_dir:
        sources.set_data_dir(sources.resolve_data_dir(data_dir))
    if vocabulary:
        tasks.set_vocabulary(find_sentencepiece_model(vocabulary))
