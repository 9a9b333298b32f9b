"""Optimizers: the paper's recipe (Adam 3e-4, global-norm clipping 1.0) and T5's Adafactor.

Gradient accumulation is not an optimizer wrapper here: the train step scans
over micro-batches and applies the optimizer once (see `jaxlt.train.engine`),
which keeps one compiled step and exactly the large-batch update.
"""

from __future__ import annotations

import optax

OPTIMIZERS = ("adam", "adamw", "adafactor", "sgd")


def make_optimizer(name: str = "adam", learning_rate: float = 3e-4, clip_norm: float | None = 1.0,
                   warmup_steps: int = 0, decay_steps: int | None = None, weight_decay: float = 0.0,
                   b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """Paper defaults (Appendix A.4): Adam, learning rate 3e-4, gradient clipping 1.0, constant schedule.

    Configured from gin through `OptimizerConfig` (jaxlt.experiment), which calls this with every
    argument explicit.

    `name="adafactor"` gives T5's Adafactor (factored second moments, update
    clipping 1.0, parameter-scale relative steps; use learning_rate=1e-3 as in
    T5 fine-tuning). Optional linear warmup and linear decay to 0 at `decay_steps`.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
    if learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
    schedule = learning_rate_schedule(learning_rate, warmup_steps, decay_steps)
    if name == "adam":
        tx = optax.adam(schedule, b1=b1, b2=b2, eps=eps)
    elif name == "adamw":
        tx = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    elif name == "sgd":
        tx = optax.sgd(schedule)
    else:
        tx = optax.adafactor(schedule, clipping_threshold=1.0, multiply_by_parameter_scale=True,
                             decay_rate=0.8)
    if clip_norm is not None:
        tx = optax.chain(optax.clip_by_global_norm(clip_norm), tx)
    return tx


def learning_rate_schedule(learning_rate: float, warmup_steps: int = 0,
                           decay_steps: int | None = None) -> optax.Schedule:
    parts, boundaries = [], []
    if warmup_steps:
        parts.append(optax.linear_schedule(0.0, learning_rate, warmup_steps))
        boundaries.append(warmup_steps)
    if decay_steps:
        if decay_steps <= warmup_steps:
            raise ValueError(f"decay_steps ({decay_steps}) must exceed warmup_steps ({warmup_steps})")
        parts.append(optax.linear_schedule(learning_rate, 0.0, decay_steps - warmup_steps))
    else:
        parts.append(optax.constant_schedule(learning_rate))
    return parts[0] if len(parts) == 1 else optax.join_schedules(parts, boundaries)


def start_schedule_at(opt_state, step: int):
    """`opt_state` (fresh) with its learning-rate schedule's step counters moved to `step`; the
    rest (Adam's moments and its bias-correction count) stays fresh. A run restarted this way
    begins at the rate the schedule reaches at `step`, e.g. past the warmup at the peak rate,
    through the same compiled train step (only counter values change, not the state's structure)."""
    if not step:
        return opt_state
    import jax

    def move(node):
        if isinstance(node, optax.ScaleByScheduleState):
            return node._replace(count=node.count + step)  # elementwise: keeps the count's sharding
        return node

    return jax.tree.map(move, opt_state, is_leaf=lambda node: isinstance(node, optax.ScaleByScheduleState))
