"""Flax T5 / mT5: config, network, losses, decoding, Hugging Face checkpoint I/O.

    from jaxlt.model import get_config, load_checkpoint
"""

from jaxlt.model.config import T5Config, get_config, known_configs


def load_checkpoint(directory, step=None):
    """See `jaxlt.model.loading.load_checkpoint` (imported lazily: it pulls in seqio/TensorFlow)."""
    from jaxlt.model.loading import load_checkpoint as _load

    return _load(directory, step)


__all__ = ["T5Config", "get_config", "known_configs", "load_checkpoint"]
