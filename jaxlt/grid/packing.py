"""Packed few-shot cells (`grid_settings.pack_cells`): K cells trained in one compiled step.

The runner still asks for one cell at a time (`train_fewshot`, then `evaluate`). With packing
on, the first request trains that cell together with the next K - 1 pending few-shot cells
with the same step count (`jaxlt.train.packed.PackedTrainer`: stacked parameters and
optimizer states, jax.vmap), evaluates all of them with one vmapped greedy decode per
evaluation batch, and keeps the results; the runner's later requests for those cells are
answered from them. A pack may span source runs (different source models or seeds): each
member starts from its own source model, which the runner hands over
(`use_source_models`, and keeps for that run's own group: each checkpoint is read once). A
pending cell another worker has leased or finished since `prepare` (`--schedule dynamic`)
never joins a pack. Cells with different step counts (sequential vs joint) are never
packed together (grouping); within a pack, members of shorter runs would be masked.

A packed cell's record equals its unpacked record (same data order, dropout seed, metrics,
predictions; parameters within float tolerance): see tests/test_packed*.py.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from jaxlt.grid.cells import Cell, SourceRun
from jaxlt.grid.executor_api import Timings

log = logging.getLogger(__name__)

MAX_DEFAULT_PACK = 64  # a default K above this only adds compile time


def next_pack(cell: Cell, pending: Sequence[Cell], pack_size: int, steps: Callable[[Cell], Hashable],
              can_pack: Callable[[Cell], bool] = lambda c: True) -> list[Cell]:
    """`cell` and the next pending cells (in the runner's order) with its step count (or any key
    `steps` gives, e.g. steps and lengths), up to `pack_size`; `can_pack` says whether a cell's
    start model can be obtained now."""
    pack = [cell]
    for other in pending:
        if len(pack) == pack_size:
            break
        if other != cell and other not in pack and steps(other) == steps(cell) and can_pack(other):
            pack.append(other)
    return pack


def bytes_per_member(trainer) -> int:
    """Device bytes one packed run needs: parameters, gradients and optimizer state (exact, from the
    Trainer's abstract state) plus an activation estimate for one step (no rematerialisation:
    per layer ~12 d_model + 3 d_ff floats per token and the attention maps; the output layer's
    logits, softmax and gradient at the target positions)."""
    import jax

    state = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(trainer.abstract_state))
    params = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(trainer.abstract_state.params))
    c, b = trainer.config, trainer.batch_size
    enc, dec = trainer.lengths["inputs"], trainer.lengths["targets"]
    layers = c.num_layers + (c.num_decoder_layers or c.num_layers)
    per_token = layers * (12 * c.d_model + 3 * c.d_ff)
    attention = c.num_layers * c.num_heads * (enc * enc + dec * dec + dec * enc)
    activations = 4 * b * ((enc + dec) * per_token + attention + 3 * dec * c.vocab_size)
    return int(state + params + activations)


def available_bytes() -> int:
    """Free memory of the first device (accelerators report it); on CPU, free host memory."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return 8 << 30


def default_pack_size(trainer, num_cells: int) -> int:
    """`pack_cells = 0`: as many runs as fit in half of the free device memory (the rest is
    headroom for the compiler's temporaries and the source models), at most MAX_DEFAULT_PACK and
    at most the number of few-shot cells to run."""
    fit = int(0.5 * available_bytes() // max(bytes_per_member(trainer), 1))
    return max(1, min(fit, MAX_DEFAULT_PACK, max(num_cells, 1)))


@dataclasses.dataclass
class PackedModel:
    """A trained member of a pack: the handle `train_fewshot` returns. Its evaluation on its own
    target was done with the pack; `params` slices the member out of the stacked parameters."""

    cell: Cell
    pack: Any  # the _Pack it belongs to
    index: int

    @property
    def params(self):
        return self.pack.trainer.member_params(self.pack.params, self.index)


@dataclasses.dataclass
class _Pack:
    trainer: Any  # PackedTrainer
    params: Any  # stacked trained parameters
    evaluations: dict  # Cell -> (scores, Timings, details)


class FewshotPacker:
    """Trains and evaluates few-shot cells K at a time for a `TrainerExecutor` (see the module docstring)."""

    def __init__(self, executor, pack_size: int):
        self.executor, self.settings = executor, executor.settings
        self.requested = int(pack_size)  # 0: from device memory, in prepare()
        self.pack_size: int | None = self.requested or None
        self._packed_trainers: dict = {}  # one per Trainer (per-task lengths)
        self._pending: list[Cell] = []
        self._done: dict[Cell, tuple[PackedModel, Timings]] = {}
        self._source_models: Callable[[SourceRun], Any] | None = None
        self._available: Callable[[Cell], bool] | None = None
        self.batching = "auto"  # PackedTrainer's: vmap on accelerators, a loop on CPU

    def use_source_models(self, provider: Callable[[SourceRun], Any],
                          available: Callable[[Cell], bool] | None = None) -> None:
        """`provider(run)` -> that source run's model; lets a pack span source runs. `available(cell)`:
        whether a pending cell may join a pack now (with `--schedule dynamic`, another worker may
        have leased or finished it since `prepare`; packing it would train it twice)."""
        self._source_models = provider
        self._available = available

    def prepare(self, cells: list[Cell]) -> None:
        self._pending = [c for c in cells if not c.zero_shot]
        if self.pack_size is None:
            self.pack_size = default_pack_size(self.executor.trainer, len(self._pending))
            log.info("pack_cells = %d (from %.1f GiB free device memory)", self.pack_size, available_bytes() / 2**30)

    def packed_trainer_for(self, task: str, learning_rate: float | None = None):
        """The PackedTrainer over the executor's Trainer for `task` (its lengths) at `learning_rate`."""
        return self._packed(self.executor.trainer_for(task, learning_rate))

    @property
    def packed_trainer(self):
        """The PackedTrainer over the executor's default Trainer."""
        return self._packed(self.executor.trainer)

    def _packed(self, trainer):
        from jaxlt.train.packed import PackedTrainer

        if id(trainer) not in self._packed_trainers:
            self._packed_trainers[id(trainer)] = PackedTrainer(trainer, self.pack_size or 1, self.batching)
        return self._packed_trainers[id(trainer)]

    @staticmethod
    def handles(model) -> bool:
        return isinstance(model, PackedModel)

    def train_fewshot(self, cell: Cell, source_model):
        if cell not in self._done:
            self._run_pack(cell, source_model)
        result = self._done.pop(cell)
        if isinstance(result, Exception):  # this member diverged (the others of its pack did not)
            raise result
        return result

    def evaluate(self, model: PackedModel, task: str, target: str):
        evaluations = model.pack.evaluations
        if (task, target) == (model.cell.task, model.cell.target) and model.cell in evaluations:
            return evaluations.pop(model.cell)
        return self.executor.evaluate(model.params, task, target)

    # ---- one pack
    def _start(self, cell: Cell, models: dict):
        """The cell's start parameters; None when its source model is not to be had now."""
        if cell.strategy != "sequential":
            return self.executor.pretrained
        if cell.source_run not in models:  # another source run's model, asked for once per pack
            models[cell.source_run] = (self._source_models(cell.source_run)
                                       if self._source_models is not None else None)
        return models[cell.source_run]

    def _run_pack(self, cell: Cell, source_model) -> None:
        ex = self.executor
        t0 = time.perf_counter()
        steps = self.settings.cell_steps
        models = {cell.source_run: source_model}
        available = self._available or (lambda c: True)
        # a pack shares one compiled step and one init: equal step counts, lengths, learning rate
        # and schedule start
        shape = lambda c: (steps(c), tuple(self.settings.lengths_for(c.task).values()),  # noqa: E731
                           self.settings.learning_rate_for(c), self.settings.schedule_start(c))
        cells = next_pack(cell, self._pending, self.pack_size or 1, shape,
                          lambda c: available(c) and self._start(c, models) is not None)
        self._pending = [c for c in self._pending if c not in cells]
        trainer = self.packed_trainer_for(cell.task, self.settings.learning_rate_for(cell))
        compile_s = 0.0 if trainer.compile_seconds is not None else trainer.compile()
        t_data = time.perf_counter()
        starts, batches = [], []
        for c in cells:
            start, member_batches, _ = ex.fewshot_run(c, self._start(c, models))
            starts.append(start)
            batches.append(member_batches)  # global batches: PackedTrainer feeds each process its rows
        t1 = time.perf_counter()  # train_seconds from here, as for one cell (Trainer.init_state + train)
        state = trainer.init_state(starts, self.settings.schedule_start(cell))
        del starts, models
        state, _, errors = trainer.train(state, batches, [steps(c) for c in cells], [c.seed for c in cells])
        train_s = time.perf_counter() - t1
        pack = _Pack(trainer, state.params, {})
        del state  # the optimizer states go; the trained parameters stay until every member is taken
        evals = self._evaluate_pack(pack, cells, errors)
        wall = time.perf_counter() - t0
        n = len(cells)
        log.info("packed %d few-shot cells: train %.1fs, evaluate %.1fs", n, train_s, wall - train_s - compile_s)
        for i, c in enumerate(cells):
            if errors[i] is not None:
                self._done[c] = errors[i]
                continue
            scores, eval_t, details = evals[i]
            pack.evaluations[c] = (scores, eval_t, {**details, "packed_cells": n})
            # Each member is charged an equal share of the pack's time; compiling, once, to the first.
            timings = Timings(steps=steps(c), wall_seconds=(t1 - t_data + train_s) / n + (compile_s if i == 0 else 0.0),
                              compile_seconds=compile_s if i == 0 else 0.0, train_seconds=train_s / n)
            self._done[c] = (PackedModel(c, pack, i), timings)

    def _evaluate_pack(self, pack: _Pack, cells: list[Cell], errors: list):
        """Greedy decoding of every member on its own evaluation set: one vmapped call per batch,
        or (`batching="loop"`, CPU) one member after another through the Trainer's own decode."""
        ex, bs = self.executor, self.settings.eval_batch_size
        if pack.trainer.batching == "loop":
            return [None if errors[i] is not None else
                    ex.evaluate(pack.trainer.member_params(pack.params, i), c.task, c.target)
                    for i, c in enumerate(cells)]
        k = pack.trainer.pack_size
        t0 = time.perf_counter()
        sets = [ex.eval_set(c.task, c.target) for c in cells]
        batches = max(len(array) for array, _, _ in sets) // bs
        tokens: list[list[np.ndarray]] = [[] for _ in cells]
        compile_s = 0.0
        for b in range(batches):
            enc = np.zeros((k, bs, self.settings.lengths_for(cells[0].task)["inputs"]), np.int32)
            for i, (array, _, _) in enumerate(sets):
                if len(array) > b * bs:
                    enc[i] = array[b * bs:(b + 1) * bs]
            first = not pack.trainer.num_compiled_decoders
            t1 = time.perf_counter()
            out = pack.trainer.predict(pack.params, enc, self.settings.decode_length_for(cells[0].task))
            if first:
                compile_s = time.perf_counter() - t1
            for i, (array, _, _) in enumerate(sets):
                if len(array) > b * bs:
                    tokens[i].append(out[i])
        results = []
        eval_s = time.perf_counter() - t0
        for i, c in enumerate(cells):
            if errors[i] is not None:  # diverged: its record says so, with no metrics
                results.append(None)
                continue
            scores, details = ex.score_predictions(c.task, c.target, np.concatenate(tokens[i]))
            results.append((scores, Timings(wall_seconds=eval_s / len(cells), eval_seconds=eval_s / len(cells),
                                            compile_seconds=compile_s if i == 0 else 0.0), details))
        return results
