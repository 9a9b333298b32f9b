"""The task x source x target x n x seed grid: spec, cells, runner, results store, model features.

Importing this package imports neither JAX nor TensorFlow; the Trainer-based
executor (`jaxlt.grid.executor`) and the model features do, lazily.
"""
