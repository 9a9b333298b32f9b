"""A small, fast, deterministic numpy executor for testing and benchmarking the runner's bookkeeping.

It really trains (logistic regression by minibatch SGD on synthetic per-language
data whose decision boundary drifts with the language) and really checkpoints,
so zero-shot, sequential and joint cells give different, reproducible scores;
but it involves no JAX, TensorFlow or mT5. Select it with
`grid_settings.executor = "toy"`; `toy_step_seconds` simulates slower steps
(used by the SIGKILL test to widen the window for a kill mid-training).
"""

from __future__ import annotations

import os
import time
import zlib

import numpy as np

from jaxlt import atomic
from jaxlt.errors import DataError, DivergenceError
from jaxlt.grid.cells import Cell, SourceRun
from jaxlt.grid.executor_api import Timings
from jaxlt.grid.settings import GridSettings

TOY_TASKS = {
    "toy_nli": ("ar", "de", "en", "es", "fr", "hi", "ru", "sw", "zh"),
    "toy_ner": ("de", "en", "fi", "ja", "ko", "ru", "ta"),
}
DIM, EVAL_SIZE, POOL_SIZE = 16, 400, 2000
WEIGHTS_FILE = "weights.npy"


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("/".join(map(str, parts)).encode()))


def _language_data(task: str, lang: str, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic examples: the true boundary is the task's direction rotated by a language offset."""
    base = _rng(task, "direction").normal(size=DIM)
    offset = _rng(task, lang, "offset").normal(size=DIM) * 0.8
    w_true = base + offset
    rng = _rng(task, lang, split)
    x = rng.normal(size=(size, DIM)) + _rng(task, lang, "mean").normal(size=DIM) * 0.5
    y = (x @ w_true + rng.normal(size=size) * 0.5 > 0).astype(np.float64)
    return x, y


class ToyExecutor:
    def __init__(self, settings: GridSettings):
        self.settings = settings
        self._eval_cache: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def available_languages(self, task: str):
        if task not in TOY_TASKS:
            raise KeyError(f"no toy task {task!r}; toy tasks: {', '.join(TOY_TASKS)}")
        return TOY_TASKS[task]

    def check(self, cells: list[Cell]) -> None:
        """What the runner checks before claiming the results directory: n-shot pool sizes."""
        too_big = sorted({(c.task, c.target, c.n) for c in cells if c.n > POOL_SIZE})
        if too_big:
            raise DataError(f"n-shot pool too small: {', '.join(f'{t}.{lang} n={n}' for t, lang, n in too_big)} "
                            f"(the toy pools have {POOL_SIZE} examples)", hint="use smaller grid_spec.n_values")

    def prepare(self, cells: list[Cell]) -> None:
        pass

    def _sgd(self, w: np.ndarray, x: np.ndarray, y: np.ndarray, steps: int, seed_parts,
             learning_rate: float | None = None, replay=None) -> tuple[np.ndarray, Timings]:
        """`replay`: (x, y) of source examples, `replay_rows` of them in every batch."""
        t0 = time.perf_counter()
        rng = _rng(*seed_parts)
        w = w.copy()
        bs = self.settings.batch_size
        lr = self.settings.learning_rate if learning_rate is None else learning_rate
        if replay is not None:
            rows = self.settings.replay_rows
            x, y = np.concatenate([x, replay[0]]), np.concatenate([y, replay[1]])
        for step in range(1, steps + 1):
            if replay is None:
                idx = rng.integers(0, len(x), size=bs)
            else:
                idx = np.concatenate([rng.integers(0, len(x) - len(replay[0]), size=bs - rows),
                                      len(x) - len(replay[0]) + rng.integers(0, len(replay[0]), size=rows)])
            with np.errstate(over="ignore", invalid="ignore"):
                z = x[idx] @ w
                p = 1 / (1 + np.exp(-z))
                # The log-loss as a float model computes it: a step far too large overflows it,
                # and the Trainer's checks (loss, gradient, updated parameters) apply.
                loss = float(np.mean(np.log1p(np.exp(np.where(y[idx] > 0.5, -z, z)))))
                grad = x[idx].T @ (p - y[idx]) / bs
                w -= lr * 100 * grad
            bad = [what for what, ok in (("loss", np.isfinite(loss)), ("gradient", np.isfinite(grad).all()),
                                         ("parameters", np.isfinite(w).all())) if not ok]
            if bad:
                reason = " and ".join(bad) + " not finite"
                raise DivergenceError(f"toy training diverged at step {step}: {reason}", step=step, reason=reason)
            if self.settings.toy_step_seconds:
                time.sleep(self.settings.toy_step_seconds)
        dt = time.perf_counter() - t0
        return w, Timings(steps=steps, wall_seconds=dt, train_seconds=dt)

    def train_source(self, run: SourceRun, checkpoint_dir: str, learning_rate: float | None = None):
        x, y = _language_data(run.task, run.source, "train", POOL_SIZE)
        w0 = _rng("init", run.seed).normal(size=DIM) * 0.01
        w, timings = self._sgd(w0, x, y, self.settings.source_steps_for(run.task), (run.key, "source"), learning_rate)
        # A complete checkpoint directory appears under its final name or not at all.
        with atomic.atomic_directory(checkpoint_dir) as tmp:
            np.save(os.path.join(tmp, WEIGHTS_FILE), w)
        return w, timings

    def has_checkpoint(self, checkpoint_dir: str) -> bool:
        return os.path.isfile(os.path.join(checkpoint_dir, WEIGHTS_FILE))

    def load_source(self, run: SourceRun, checkpoint_dir: str):
        path = os.path.join(checkpoint_dir, WEIGHTS_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"source checkpoint for {run.key} not found: {path}")
        return np.load(path)

    def _nshot(self, cell: Cell) -> tuple[np.ndarray, np.ndarray]:
        x, y = _language_data(cell.task, cell.target, "train", POOL_SIZE)
        if cell.sampling == "random":
            order = _rng(cell.task, cell.target, "nshot", cell.seed).permutation(len(x))
        else:  # "length" = norm of the example, a stand-in for sentence length
            order = np.argsort(np.linalg.norm(x, axis=1), kind="stable")
            order = order if cell.sampling == "shortest" else order[::-1]
        idx = order[:cell.n]  # nested: the n=10 set is inside the n=50 set
        return x[idx], y[idx]

    def train_fewshot(self, cell: Cell, source_model):
        xt, yt = self._nshot(cell)
        xs, ys = _language_data(cell.task, cell.source, "train", POOL_SIZE)
        if cell.strategy == "sequential":
            return self._sgd(source_model, xt, yt, self.settings.fewshot_steps_for(cell.task), (cell.key, "fewshot"),
                             self.settings.learning_rate_for(cell), replay=(xs, ys) if self.settings.replay_rows else None)
        w0 = _rng("init", cell.seed).normal(size=DIM) * 0.01
        return self._sgd(w0, np.concatenate([xs, xt]), np.concatenate([ys, yt]), self.settings.source_steps_for(cell.task),
                         (cell.key, "joint"))

    def evaluate(self, model, task: str, target: str):
        t0 = time.perf_counter()
        if (task, target) not in self._eval_cache:
            self._eval_cache[task, target] = _language_data(task, target, "test", EVAL_SIZE)
        x, y = self._eval_cache[task, target]
        accuracy = 100.0 * float(np.mean((x @ model > 0) == (y > 0.5)))
        dt = time.perf_counter() - t0
        return {"accuracy": accuracy}, Timings(wall_seconds=dt, eval_seconds=dt), {"examples": len(y)}
