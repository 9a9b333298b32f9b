"""jaxlt: cross-lingual transfer studies for multilingual text-to-text models.

Importing the package is cheap and pulls neither JAX nor TensorFlow: the
analysis stage (``jaxlt.features``, ``jaxlt.stats``, ``jaxlt.report``) runs on a
plain CPU install, the accelerator stage (``jaxlt.model``, ``jaxlt.data``,
``jaxlt.train``, ``jaxlt.grid``) needs the ``train`` extra.
"""

__version__ = "0.1.0"
