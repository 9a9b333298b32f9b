"""Training engine: optimizer, jitted train step on a device mesh, orbax checkpointing, evaluation.

Submodules are imported on demand (`jaxlt.train.engine`, `.checkpointing`,
`.evaluation`, `.optimizer`) so that `jaxlt.train.checkpointing` stays cheap to import.
"""
