"""Device meshes and logical-axis sharding.

Sharding is configuration: parameters and activations carry logical axis names
("batch", "embed", "mlp", ...); a rules table maps each name to a mesh axis.
The tables live in `gin/hardware/*.gin` (data-parallel, tensor-parallel and
fully-sharded layouts are only different tables); no code here branches on the
number of devices.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import numpy as np
from flax import linen as nn
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]

# Logical names used by jaxlt.model (parameters and activations).
LOGICAL_AXES = ("batch", "length", "vocab", "embed", "mlp", "heads", "kv", "joined_kv",
                "relpos_buckets", "layers")

# Pure data parallelism: the batch is split over every device of the mesh, parameters replicated.
DATA_PARALLEL_RULES: Rules = (
    ("batch", ("data", "model")),
    ("length", None), ("vocab", None), ("embed", None), ("mlp", None), ("heads", None),
    ("kv", None), ("joined_kv", None), ("relpos_buckets", None), ("layers", None),
)


def create_mesh(mesh_shape: Sequence[int] = (-1, 1), axis_names: Sequence[str] = ("data", "model"),
                devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh of `mesh_shape` over `devices` (default: all devices); one -1 takes the rest.

    Uses the topology-aware layout of `mesh_utils` so that the "model" axis
    stays within fast interconnect on TPU/GPU slices.
    """
    mesh_shape, axis_names = tuple(int(d) for d in mesh_shape), tuple(axis_names)
    if len(mesh_shape) != len(axis_names):
        raise ValueError(f"mesh_shape {mesh_shape} has {len(mesh_shape)} dims but axis_names "
                         f"{axis_names} has {len(axis_names)}")
    devices = list(jax.devices() if devices is None else devices)
    if mesh_shape.count(-1) > 1:
        raise ValueError(f"mesh_shape {mesh_shape}: at most one dimension may be -1")
    if -1 in mesh_shape:
        known = math.prod(d for d in mesh_shape if d != -1)
        if len(devices) % known:
            raise ValueError(f"mesh_shape {mesh_shape}: {len(devices)} devices are not divisible by {known}")
        mesh_shape = tuple(len(devices) // known if d == -1 else d for d in mesh_shape)
    size = math.prod(mesh_shape)
    if size > len(devices):
        raise ValueError(f"mesh_shape {mesh_shape} needs {size} devices but only {len(devices)} "
                         f"are available ({jax.default_backend()})")
    devices = devices[:size]
    try:
        from jax.experimental import mesh_utils

        device_array = mesh_utils.create_device_mesh(mesh_shape, devices=devices)
    except (ValueError, NotImplementedError, AssertionError):  # e.g. a sub-slice of a TPU topology
        device_array = np.asarray(devices, dtype=object).reshape(mesh_shape)
    return Mesh(device_array, axis_names, axis_types=(AxisType.Auto,) * len(axis_names))


def validate_rules(rules: Sequence[Sequence]) -> Rules:
    """Checks a rules table (pairs of logical name -> mesh axis / tuple / None) and returns it as tuples."""
    out = []
    for i, rule in enumerate(rules):
        if len(rule) != 2 or not isinstance(rule[0], str):
            raise ValueError(f"logical axis rule #{i} {rule!r} is not a (logical_name, mesh_axes) pair")
        name, axes = rule
        if isinstance(axes, list):
            axes = tuple(axes)
        if not (axes is None or isinstance(axes, str) or
                (isinstance(axes, tuple) and all(isinstance(a, str) for a in axes))):
            raise ValueError(f"logical axis rule {name!r} -> {axes!r}: mesh axes must be a name, "
                             "a tuple of names, or None")
        out.append((name, axes))
    return tuple(out)


def check_rules_fit_mesh(rules: Rules, mesh: Mesh) -> None:
    for name, axes in rules:
        for axis in (axes,) if isinstance(axes, str) else (axes or ()):
            if axis not in mesh.axis_names:
                raise ValueError(f"logical axis rule {name!r} -> {axes!r} names mesh axis {axis!r}, "
                                 f"but the mesh has axes {mesh.axis_names}")


def logical_to_shardings(boxed_tree, mesh: Mesh, rules: Rules):
    """NamedShardings for a tree of `nn.Partitioned` leaves (or abstract ones from `jax.eval_shape`).

    Leaves without logical names are replicated. A dimension whose mesh axes do
    not divide it is left unsharded (and logged), rather than failing deep in XLA.
    """
    rules = validate_rules(rules)
    check_rules_fit_mesh(rules, mesh)
    specs = nn.get_partition_spec(boxed_tree)
    values = nn.meta.unbox(boxed_tree)

    def to_sharding(logical_spec, value):
        if logical_spec is None:
            return NamedSharding(mesh, PartitionSpec())
        mesh_spec = list(nn.logical_to_mesh_axes(tuple(logical_spec), rules))
        shape = getattr(value, "shape", ())
        for dim, axes in enumerate(mesh_spec):
            if axes is None or dim >= len(shape):
                continue
            n = math.prod(mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes))
            if shape[dim] % n:
                log.warning("dimension %d (%s, size %d) is not divisible by mesh axes %s (size %d): "
                            "left unsharded", dim, logical_spec[dim], shape[dim], axes, n)
                mesh_spec[dim] = None
        return NamedSharding(mesh, PartitionSpec(*mesh_spec))

    return jax.tree.map(to_sharding, specs, values,
                        is_leaf=lambda x: isinstance(x, PartitionSpec) or x is None)


def logical_sharding(logical_names: Sequence[str | None], mesh: Mesh, rules: Rules) -> NamedSharding:
    """The NamedSharding of one array with the given logical dimension names."""
    return NamedSharding(mesh, nn.logical_to_mesh_axes(tuple(logical_names), validate_rules(rules)))


def shardings_like(tree, reference_paths: dict, mesh: Mesh):
    """Shardings for a tree (e.g. optimizer state) whose leaves mirror parameters.

    A leaf takes the sharding of the parameter whose tree path is a suffix of the
    leaf's path and which has the same shape (Adam's moments, accumulated
    gradients); anything else (step counts, Adafactor's factored moments) is
    replicated. `reference_paths` maps parameter key-path tuples to (shape, sharding).
    """
    replicated = NamedSharding(mesh, PartitionSpec())

    def pick(path, leaf):
        shape = tuple(getattr(leaf, "shape", ()))
        for start in range(len(path)):
            ref = reference_paths.get(tuple(path[start:]))
            if ref is not None and ref[0] == shape:
                return ref[1]
        return replicated

    return jax.tree_util.tree_map_with_path(pick, tree)


def path_table(params, shardings) -> dict:
    """{key-path tuple: (shape, sharding)} for a parameter tree and its shardings."""
    flat_params = jax.tree_util.tree_flatten_with_path(params)[0]
    flat_shardings = jax.tree_util.tree_leaves(shardings, is_leaf=lambda x: isinstance(x, NamedSharding))
    if len(flat_params) != len(flat_shardings):
        raise ValueError(f"{len(flat_params)} parameters but {len(flat_shardings)} shardings")
    return {tuple(path): (tuple(leaf.shape), s) for (path, leaf), s in zip(flat_params, flat_shardings)}


@dataclass(frozen=True)
class PartitioningConfig:
    """What a gin/hardware file sets: the mesh and the logical-axis rules.

    `mesh_shape` is over ("data", "model"); -1 means "all remaining devices". Built from gin by
    the commands (gin name `jaxlt.partitioning.PartitioningConfig`, `jaxlt.experiment_gin`;
    `jaxlt.gin_flags.load_hardware_rules` parses one file in isolation) and passed down.
    """

    mesh_shape: tuple[int, ...] = (-1, 1)
    axis_names: tuple[str, ...] = ("data", "model")
    logical_axis_rules: Rules = DATA_PARALLEL_RULES
    # Memory of one device in bytes (what `--dry_run` compares its estimate with); 0: from the
    # device kind when known (`jaxlt.train.memory.DEVICE_MEMORY`).
    device_memory: float = 0.0

    def make_mesh(self, devices: Sequence[jax.Device] | None = None) -> Mesh:
        return create_mesh(self.mesh_shape, self.axis_names, devices)

    def rules(self) -> Rules:
        return validate_rules(self.logical_axis_rules)
