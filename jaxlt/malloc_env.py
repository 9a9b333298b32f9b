"""glibc malloc settings for CPU runs of many small XLA steps (the lab demo).

XLA frees and reallocates its buffers every step. By default glibc hands that memory back to the
kernel (per-thread arenas are trimmed, large blocks are mmapped and unmapped), and the kernel
zeroes the pages again on the next touch: a third of a lab training step's CPU time was system
time. One arena that keeps what it frees removes it: the lab model's train step on one core went
from 200 to 123 ms, with the same loss to the last digit (benchmarks/README.md). The settings are
read when a process starts, so a command that wants them re-executes itself once (`reexec`).
Setting them at run time with mallopt() did not have the effect.
"""

from __future__ import annotations

import os
import sys

MALLOC_ENV = {"MALLOC_ARENA_MAX": "1", "MALLOC_MMAP_THRESHOLD_": "2000000000",
              "MALLOC_TRIM_THRESHOLD_": "4000000000"}
OPT_OUT = "JAXLT_DEFAULT_MALLOC"  # set to 1 to keep glibc's defaults


def supported() -> bool:
    return sys.platform.startswith("linux") and os.environ.get(OPT_OUT, "") in ("", "0")


def environment(base: dict | None = None) -> dict:
    """`base` (default: this process's environment) with the malloc settings, where supported."""
    env = dict(os.environ if base is None else base)
    if supported():
        env.update(MALLOC_ENV)
    return env


def active() -> bool:
    return all(os.environ.get(k) == v for k, v in MALLOC_ENV.items())


def reexec(argv: list[str]) -> None:
    """Replaces this process by `python -m jaxlt.cli ARGV` with the malloc settings (no-op when they
    are already in effect or not supported); call it before any work starts."""
    if supported() and not active():
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "jaxlt.cli", *argv], environment())
