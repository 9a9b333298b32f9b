"""Gin entry points of the grid: `grid_spec.*` (what to run) and `grid_settings.*` (how).

Bindings are passed through to the dataclasses, so an unknown name fails with
the dataclass's own error naming it.
"""

from __future__ import annotations

import gin

from jaxlt.grid.settings import GridSettings
from jaxlt.grid.spec import GridSpec


@gin.configurable("grid_spec")
def grid_spec(**kwargs) -> GridSpec:
    return GridSpec(**kwargs)


@gin.configurable("grid_settings")
def grid_settings(**kwargs) -> GridSettings:
    return GridSettings(**kwargs)


def from_gin() -> tuple[GridSpec, GridSettings]:
    try:
        return grid_spec(), grid_settings()
    except TypeError as e:  # unknown or missing binding
        raise ValueError(f"bad grid gin configuration: {e}") from None
