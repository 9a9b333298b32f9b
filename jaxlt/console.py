"""What a jaxlt command prints: quiet start-up, log-friendly progress, one-line summaries.

`quiet_environment` runs in `jaxlt.cli` before TensorFlow, JAX or absl are imported
(their start-up messages are decided by environment variables read at import time).
`Progress` is a tqdm bar on a terminal and, in a log file, one plain line every
`every_cells` cells or `every_s` seconds, whichever comes first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings

log = logging.getLogger("jaxlt")

# Read at import time by TensorFlow / XLA / absl: must be set before those imports.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow C++: errors too ("failed call to cuInit" on CPU machines)
    "TF_ENABLE_ONEDNN_OPTS": "0",  # the oneDNN start-up notice
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "2",
    "ABSL_MIN_LOG_LEVEL": "2",
    "TPU_STDERR_LOG_LEVEL": "3",
    "TPU_MIN_LOG_LEVEL": "3",
}
NOISY_LOGGERS = ("absl", "jax._src.xla_bridge", "jax._src.distributed", "orbax", "tensorflow", "gin",
                 "seqio", "etils", "h5py", "matplotlib", "urllib3", "filelock", "fsspec", "datasets",
                 "transformers", "huggingface_hub")


def quiet_environment(verbose: bool) -> None:
    """Silences TensorFlow, CUDA, TPU, absl, JAX-platform and gin start-up noise unless `verbose`.
    Values the user set explicitly are kept."""
    if verbose:
        os.environ["JAXLT_VERBOSE"] = "1"
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    warnings.filterwarnings("ignore", message=r".*(An NVIDIA GPU may be present|TPU|cuInit|CUDA).*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


@contextlib.contextmanager
def native_stderr_silenced():
    """Sends file descriptor 2 to /dev/null for the duration (unless JAXLT_VERBOSE is set): C++
    start-up messages (TensorFlow's "Could not find cuda drivers", absl's InitializeLog warning)
    bypass Python's logging and ignore TF_CPP_MIN_LOG_LEVEL. Python exceptions still propagate."""
    if os.environ.get("JAXLT_VERBOSE", "") not in ("", "0"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def configure_logging(verbose: bool) -> None:
    """jaxlt's own INFO lines (timestamped); third-party loggers at ERROR unless `verbose`."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                               "%Y-%m-%d %H:%M:%S"))
        root.addHandler(handler)
    # jaxlt's own loggers at INFO; everything else (gin logs every file probe at INFO on the root
    # logger) only from WARNING, and the known noisy libraries only from ERROR, unless verbose.
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    logging.getLogger("jaxlt").setLevel(logging.INFO)
    level = logging.INFO if verbose else logging.ERROR
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(level)
    if not verbose:
        try:  # absl's own verbosity (orbax logs every save through it)
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
            absl_logging.set_stderrthreshold("error")
        except ImportError:
            pass


def is_terminal(stream=None) -> bool:
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """Counts finished units; a bar on a terminal, else a log line every N units or S seconds."""

    def __init__(self, total: int, desc: str, *, enabled: bool = True, every_cells: int = 10,
                 every_s: float = 60.0, stream=None, terminal: bool | None = None, unit: str = "cells"):
        self.total, self.desc, self.enabled, self.unit = total, desc, enabled, unit
        self.every_cells, self.every_s = max(1, every_cells), every_s
        self.stream = stream if stream is not None else sys.stderr
        self.count, self.t0 = 0, time.time()
        self._last_count, self._last_t = 0, self.t0
        self._bar = None
        if enabled and (is_terminal(self.stream) if terminal is None else terminal):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1, note: str = "") -> None:
        self.count += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            if note:
                self._bar.set_postfix_str(note)
            return
        now = time.time()
        if self.count - self._last_count >= self.every_cells or now - self._last_t >= self.every_s \
                or self.count == self.total:
            self._last_count, self._last_t = self.count, now
            elapsed = now - self.t0
            rate = self.count / elapsed if elapsed > 0 else 0.0
            left = f", about {(self.total - self.count) / rate / 60:.1f} min left" if rate and self.count < self.total \
                else ""
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {self.desc}: {self.count}/{self.total} {self.unit} "
                  f"({elapsed / 60:.1f} min{left})" + (f" last {note}" if note else ""), file=self.stream,
                  flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def track(self, iterable):
        """Yield from ``iterable``, counting one unit per item; close at the end."""
        try:
            for item in iterable:
                yield item
                self.update()
        finally:
            self.close()


def format_seconds(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")
