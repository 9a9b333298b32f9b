"""Data: vocabulary, data sources, seqio task registry, preprocessors, sampling, metrics.

The package itself imports nothing heavy (`jaxlt.data.metrics` stays pure Python);
modules that use seqio import `jaxlt.data.tf_cpu` first, which hides accelerators
from TensorFlow.
"""
