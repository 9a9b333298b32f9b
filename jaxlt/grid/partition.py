"""Deterministic partitioning of grid work across workers (SLURM array tasks, TPU hosts, GPUs).

No scheduler and no coordination: every worker enumerates the same sorted work
list and keeps its own share, so two workers never run the same unit and no
unit is left out.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

from jaxlt.errors import WorkerError

T = TypeVar("T")


def worker_from_env(worker_index: int | None = None, num_workers: int | None = None,
                    environ: dict | None = None) -> tuple[int, int]:
    """Explicit values win; otherwise SLURM array variables; otherwise (0, 1)."""
    env = os.environ if environ is None else environ
    if num_workers is None:
        num_workers = int(env["SLURM_ARRAY_TASK_COUNT"]) if "SLURM_ARRAY_TASK_COUNT" in env else 1
    if worker_index is None:
        if "SLURM_ARRAY_TASK_ID" in env:
            # Arrays may start at any id (--array=1-8): index relative to the smallest.
            worker_index = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
        else:
            worker_index = 0
    if num_workers < 1 or not 0 <= worker_index < num_workers:
        raise WorkerError(f"worker index {worker_index} is not in [0, {num_workers})",
                          hint="give 0 <= --worker_index < --num_workers (or check SLURM_ARRAY_TASK_ID, "
                               "SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT)")
    return worker_index, num_workers


def round_robin(units: Sequence[T], worker_index: int, num_workers: int) -> list[T]:
    """Units i with i % num_workers == worker_index (balanced for whole source-run groups)."""
    return [u for i, u in enumerate(sorted(units)) if i % num_workers == worker_index]


def contiguous(units: Sequence[T], worker_index: int, num_workers: int) -> list[T]:
    """A contiguous block of the sorted units (neighbours share a source checkpoint, so each
    worker loads few checkpoints); block sizes differ by at most one."""
    units = sorted(units)
    q, r = divmod(len(units), num_workers)
    start = worker_index * q + min(worker_index, r)
    return units[start:start + q + (1 if worker_index < r else 0)]
