"""Keep TensorFlow (imported by seqio) off GPUs and TPUs so JAX owns the accelerators.

Importing this module does it: `import jaxlt.data.tf_cpu` before seqio, and before
JAX allocates device memory.
"""

from __future__ import annotations

import os

_done = False


def hide_accelerators_from_tensorflow() -> None:
    global _done
    if _done:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from jaxlt.console import native_stderr_silenced

    # TensorFlow's C++ start-up lines (CUDA probing, "failed call to cuInit" on a CPU machine)
    # ignore the log level: silenced unless --verbose.
    with native_stderr_silenced():
        import tensorflow as tf

        for kind in ("GPU", "TPU"):
            try:
                tf.config.set_visible_devices([], kind)
            except (RuntimeError, ValueError):  # no such device type, or TF already initialised
                pass
    _done = True


hide_accelerators_from_tensorflow()
