"""The training state: step, parameters, optimizer state (a pytree, so it can be jitted and sharded)."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


class TrainState(flax.struct.PyTreeNode):
    step: jax.Array  # int32 scalar: optimizer updates applied so far
    params: Any
    opt_state: Any
