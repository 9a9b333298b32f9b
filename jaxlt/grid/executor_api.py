"""The narrow interface between the grid runner and whatever trains and evaluates models.

The runner owns the *what* (which cells, in which order, resume, records); an
executor owns the *how*. `jaxlt.grid.executor.TrainerExecutor` is the real one
(Flax mT5 through `jaxlt.train.engine.Trainer`); `jaxlt.grid.toy.ToyExecutor`
is a small numpy stand-in for testing the runner's bookkeeping quickly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Protocol

from jaxlt.grid.cells import Cell, SourceRun


@dataclasses.dataclass
class Timings:
    steps: int = 0
    wall_seconds: float = 0.0  # everything: data, compile, train, evaluate
    compile_seconds: float = 0.0  # time spent compiling (0 once functions are cached)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class CellExecutor(Protocol):
    """Trains and evaluates; holds models in (device) memory between calls."""

    def available_languages(self, task: str) -> Iterable[str]:
        """Languages `task` has data for; KeyError for an unknown task."""

    def prepare(self, cells: list[Cell]) -> None:
        """Called once before any training with the cells this worker will run
        (e.g. check data exists, build compiled functions)."""

    def train_source(self, run: SourceRun, checkpoint_dir: str) -> tuple[Any, Timings]:
        """Fine-tunes the pre-trained model on the source; saves a complete checkpoint
        to `checkpoint_dir` before returning; returns (model handle, timings)."""

    def load_source(self, run: SourceRun, checkpoint_dir: str) -> Any:
        """Loads a source checkpoint written by `train_source` (FileNotFoundError if absent)."""

    def has_checkpoint(self, checkpoint_dir: str) -> bool: ...

    def evaluate(self, model: Any, task: str, target: str) -> tuple[dict[str, float], Timings, dict]:
        """Metrics (0-100) of `model` on the target's evaluation set, timings, and details
        for the record (number of examples, a digest of the predictions)."""

    def train_fewshot(self, cell: Cell, source_model: Any | None) -> tuple[Any, Timings]:
        """Sequential: continues from `source_model`; joint: trains the source + n-target
        mixture from the pre-trained model (source_model is None)."""
