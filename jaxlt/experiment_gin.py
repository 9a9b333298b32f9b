"""The gin names of the typed experiment configs (`jaxlt.experiment`), and `from_gin`.

Kept apart from `jaxlt.experiment` so the library's config types do not import gin: only the
commands (and `jaxlt.gin_flags`, which imports this module before parsing so that gin files
may bind these names) build configs from gin.
"""

from __future__ import annotations

import gin

from jaxlt.errors import ConfigError
from jaxlt.experiment import DataConfig, EvalConfig, ModelConfig, OptimizerConfig


@gin.configurable("model_settings", module="jaxlt.train")
def model_settings(**kwargs) -> ModelConfig:
    return ModelConfig(**kwargs)


@gin.configurable("OptimizerConfig")
def optimizer_config(**kwargs) -> OptimizerConfig:
    return OptimizerConfig(**kwargs)


@gin.configurable("DataConfig")
def data_config(**kwargs) -> DataConfig:
    return DataConfig(**kwargs)


@gin.configurable("EvalConfig")
def eval_config(**kwargs) -> EvalConfig:
    return EvalConfig(**kwargs)


GIN_NAMES = {"model": "jaxlt.train.model_settings", "optimizer": "OptimizerConfig", "data": "DataConfig",
             "evaluation": "EvalConfig"}
_FACTORIES = {"model": model_settings, "optimizer": optimizer_config, "data": data_config,
              "evaluation": eval_config}


def from_gin(section: str):
    """The typed config of `section` ("model", "optimizer", "data", "evaluation") from gin's bindings
    (called by the commands only)."""
    try:
        return _FACTORIES[section]()
    except TypeError as e:  # an unknown binding
        raise ConfigError(f"bad {GIN_NAMES[section]} gin binding: {e}") from None
