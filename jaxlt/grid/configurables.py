"""Gin entry points of the grid: `grid_spec.*` (what to run) and `grid_settings.*` (how).

`from_gin()` is called once, by `jaxlt grid`: it builds the typed experiment configs from the
gin names that `jaxlt train` and `jaxlt evaluate` read too (`OptimizerConfig.*`, `DataConfig.*`,
`EvalConfig.*`, `jaxlt.train.model_settings.*`, see `jaxlt.experiment`), applies the grid's own
`grid_settings.*` (schedule, and the flat names of earlier versions such as
`grid_settings.learning_rate`), and refuses a setting bound two ways with different values.
Bindings are passed through to the dataclasses, so an unknown name fails naming it.
"""

from __future__ import annotations

import gin

from jaxlt import experiment, experiment_gin, gin_flags
from jaxlt.grid.settings import FLAT_NAMES, GridSettings
from jaxlt.grid.spec import GridSpec


@gin.configurable("grid_spec")
def grid_spec(**kwargs) -> GridSpec:
    return GridSpec(**kwargs)


@gin.configurable("grid_settings")
def grid_settings(**kwargs) -> dict:
    """The `grid_settings.*` bindings, as given (resolved by `from_gin`)."""
    return kwargs


def resolve_settings(flat: dict) -> GridSettings:
    """GridSettings from the typed configs in gin plus `grid_settings` bindings `flat`."""
    sections = {name: experiment_gin.from_gin(name) for name in experiment.SECTIONS}
    conflicts = []
    for name, value in flat.items():
        if name not in FLAT_NAMES:
            continue
        section, field = FLAT_NAMES[name]
        bound, typed_value = gin_flags.experiment_bound(section, field)
        if bound and typed_value != value:
            conflicts.append(f"grid_settings.{name} = {value!r} but {experiment_gin.GIN_NAMES[section]}.{field} = "
                             f"{typed_value!r}")
    if conflicts:
        raise experiment.ConfigError("one setting bound two ways: " + "; ".join(conflicts))
    return GridSettings(**sections, **flat)


def from_gin() -> tuple[GridSpec, GridSettings]:
    try:
        return grid_spec(), resolve_settings(grid_settings())
    except TypeError as e:  # unknown or missing binding
        raise ValueError(f"bad grid gin configuration: {e}") from None
