"""Data: vocabulary, data sources, seqio task registry, preprocessors, sampling, metrics.

Importing this package imports TensorFlow (through seqio) with accelerators hidden from it.
"""

from jaxlt.data import tf_cpu as _tf_cpu

_tf_cpu.hide_accelerators_from_tensorflow()
