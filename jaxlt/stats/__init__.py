"""Statistics of the analysis stage (CPU only: no JAX, TensorFlow or torch)."""
