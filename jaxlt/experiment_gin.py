"""The gin names of the typed experiment configs (`jaxlt.experiment`) and of the hardware
(`jaxlt.partitioning.PartitioningConfig`: the mesh and sharding rules a gin/hardware file sets),
and `from_gin`.

Kept apart from the library so its config types do not import gin: only the commands (and
`jaxlt.gin_flags`, which imports this module before parsing so that gin files may bind these
names) build configs from gin.
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


@gin.configurable("PartitioningConfig", module="jaxlt.partitioning")
def partitioning_config(**kwargs):
    from jaxlt.partitioning import PartitioningConfig  # (jax: imported only when a command builds one)

    return PartitioningConfig(**kwargs)


GIN_NAMES = {"model": "jaxlt.train.model_settings", "optimizer": "OptimizerConfig", "data": "DataConfig",
             "evaluation": "EvalConfig", "hardware": "jaxlt.partitioning.PartitioningConfig"}
_FACTORIES = {"model": model_settings, "optimizer": optimizer_config, "data": data_config,
              "evaluation": eval_config, "hardware": partitioning_config}


def from_gin(section: str):
    """The typed config of `section` ("model", "optimizer", "data", "evaluation", "hardware") from
    gin's bindings (called by the commands only)."""
    try:
        return _FACTORIES[section]()
    except TypeError as e:  # an unknown binding
        raise ConfigError(f"bad {GIN_NAMES[section]} gin binding: {e}") from None
