"""Training memory per device, from XLA's own compiled memory analysis, and settings that fit.

`train_step_memory` lowers and compiles the Trainer's train step for a model config, batch,
mesh and rules (nothing runs; no parameters are allocated) and reads
`compiled.memory_analysis()`: arguments (state + batch) + outputs not aliased to donated
arguments + XLA's temporary buffers (activations, gradients, optimizer scratch) = the peak a
device holds for the step. Compiled for the devices present: on a CPU host with fake devices
(XLA_FLAGS=--xla_force_host_platform_device_count=8) it is the CPU backend's buffer assignment for
the same program and mesh, an estimate of a GPU's or TPU's (fusion differs; the state and batch
bytes are exact).

`choose_memory_settings` tries rematerialisation policies and micro-batch counts from the fastest
down and returns the first whose estimate fits a device's memory with headroom, e.g. mT5-base at
batch 128 x 512 on one 80 GB GPU or on 16 GB TPU v5e chips. `format_estimate` is the line that
`jaxlt grid --dry_run` prints.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

GIB = 1024 ** 3
# Memory per device (bytes) by `jax.Device.device_kind` substring, most specific first.
DEVICE_MEMORY = (("H200", 141e9), ("H100", 80e9), ("A100-SXM4-40GB", 40e9), ("A100-PCIE-40GB", 40e9),
                 ("A100", 80e9), ("L40", 48e9), ("L4", 24e9), ("A10", 24e9), ("V100", 32e9),
                 ("TPU v5 lite", 16 * GIB), ("TPU v5e", 16 * GIB), ("TPU v5p", 95 * GIB), ("TPU v5", 95 * GIB),
                 ("TPU v6 lite", 32 * GIB), ("TPU v4", 32 * GIB), ("TPU v3", 16 * GIB))
# From the fastest to the most memory-frugal; accumulation (micro-batches) multiplies the steps.
REMAT_ORDER = ("none", "dots", "full")


def device_memory_bytes(device_kind: str) -> float | None:
    """The memory of one device of this kind (None when unknown, e.g. a CPU)."""
    for key, size in DEVICE_MEMORY:
        if key.lower() in device_kind.lower():
            return float(size)
    return None


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per device for one train step (XLA's memory analysis of the compiled step)."""

    remat: str
    accumulation_steps: int
    argument_bytes: int  # train state + batch, as placed on one device
    output_bytes: int
    alias_bytes: int  # outputs written into donated arguments (the new state)
    temp_bytes: int  # activations, gradients, optimizer temporaries
    state_bytes: int  # parameters + optimizer state on one device (from the shardings; exact)

    @property
    def total_bytes(self) -> int:
        return self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes

    def fits(self, device_bytes: float, headroom: float = 0.9) -> bool:
        return self.total_bytes <= headroom * device_bytes


def _state_bytes_per_device(trainer) -> int:
    import jax

    total = 0
    for leaf in jax.tree.leaves(trainer.abstract_state):
        shard = leaf.sharding.shard_shape(leaf.shape) if leaf.shape else ()
        total += math.prod(shard) * leaf.dtype.itemsize
    return int(total)


def train_step_memory(config, batch_size: int, lengths: Mapping[str, int], *, mesh=None, rules=None,
                      accumulation_steps: int = 1, optimizer=None, packed: bool = False,
                      compiler_options: Mapping | None = None) -> MemoryEstimate:
    """Compiles (does not run) the train step of `config` (with its `remat`) and reads XLA's memory
    analysis for one device."""
    import jax
    import jax.numpy as jnp
    from flax import linen as nn

    from jaxlt import partitioning
    from jaxlt.train.engine import Trainer

    mesh = mesh if mesh is not None else partitioning.create_mesh((-1, 1))
    rules = rules if rules is not None else partitioning.DATA_PARALLEL_RULES
    trainer = Trainer(config, batch_size=batch_size, feature_lengths=lengths, optimizer=optimizer, mesh=mesh,
                      rules=rules, accumulation_steps=accumulation_steps, packed=packed)
    batch_shardings = {k: trainer.batch_sharding for k in trainer.features}
    step = jax.jit(trainer.step_function, in_shardings=(trainer.state_shardings, batch_shardings, trainer.replicated),
                   out_shardings=(trainer.state_shardings, trainer.replicated), donate_argnums=(0,))
    batch = {k: jax.ShapeDtypeStruct(trainer.batch_shapes[k], jnp.float32 if k == "decoder_loss_weights"
                                     else jnp.int32, sharding=trainer.batch_sharding) for k in trainer.features}
    key = jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=trainer.replicated)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        analysis = step.lower(trainer.abstract_state, batch, key).compile(
            compiler_options=dict(compiler_options) if compiler_options else None).memory_analysis()
    if analysis is None:
        raise RuntimeError(f"the {jax.default_backend()} backend gives no memory analysis")
    return MemoryEstimate(remat=config.remat, accumulation_steps=int(accumulation_steps),
                          argument_bytes=int(analysis.argument_size_in_bytes),
                          output_bytes=int(analysis.output_size_in_bytes),
                          alias_bytes=int(analysis.alias_size_in_bytes),
                          temp_bytes=int(analysis.temp_size_in_bytes),
                          state_bytes=_state_bytes_per_device(trainer))


def candidate_settings(batch_size: int, data_shards: int = 1, max_accumulation: int = 64,
                       remat_order: Sequence[str] = REMAT_ORDER) -> list[tuple[str, int]]:
    """(remat, accumulation_steps) pairs, fastest first: for each micro-batch count (1, 2, 4, ...),
    each remat policy; a micro-batch must still split evenly over the data shards."""
    out = []
    a = 1
    while a <= max_accumulation:
        if batch_size % a == 0 and (batch_size // a) % data_shards == 0:
            out += [(r, a) for r in remat_order]
        a *= 2
    return out


def choose_memory_settings(config, batch_size: int, lengths: Mapping[str, int], device_bytes: float, *,
                           mesh=None, rules=None, optimizer=None, headroom: float = 0.9,
                           remat_order: Sequence[str] = REMAT_ORDER, max_accumulation: int = 64, log=None,
                           compiler_options: Mapping | None = None
                           ) -> tuple[MemoryEstimate | None, list[MemoryEstimate]]:
    """The fastest (remat, accumulation_steps) whose estimate fits `headroom` x `device_bytes`, and every
    estimate tried (None first when nothing fits)."""
    from jaxlt import partitioning

    mesh = mesh if mesh is not None else partitioning.create_mesh((-1, 1))
    rules = rules if rules is not None else partitioning.DATA_PARALLEL_RULES
    shards = _data_shards(mesh, rules)
    tried = []
    for remat, accumulation in candidate_settings(batch_size, shards, max_accumulation, remat_order):
        estimate = train_step_memory(config.replace(remat=remat), batch_size, lengths, mesh=mesh, rules=rules,
                                     accumulation_steps=accumulation, optimizer=optimizer,
                                     compiler_options=compiler_options)
        tried.append(estimate)
        if log is not None:
            log(format_estimate(estimate, device_bytes))
        if estimate.fits(device_bytes, headroom):
            return estimate, tried
    return None, tried


def _data_shards(mesh, rules) -> int:
    from jaxlt import partitioning

    sharding = partitioning.logical_sharding(("batch", "length"), mesh, rules)
    axes = sharding.spec[0] if len(sharding.spec) else None
    if axes is None:
        return 1
    return math.prod(mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes))


def _size(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2 ** 20:.1f} MiB"


def format_estimate(estimate: MemoryEstimate, device_bytes: float | None = None) -> str:
    """One line: per-device total and its parts, and whether it fits `device_bytes`."""
    line = (f"memory per device (XLA estimate): {_size(estimate.total_bytes)} with remat="
            f"{estimate.remat!r}, accumulation_steps={estimate.accumulation_steps} (state "
            f"{_size(estimate.state_bytes)}, temporaries {_size(estimate.temp_bytes)})")
    if device_bytes:
        verdict = "fits" if estimate.fits(device_bytes) else "does NOT fit"
        line += f"; {verdict} {device_bytes / GIB:.0f} GiB at 90%"
    return line


def _parse_size(text: str) -> float:
    text = text.strip()
    for suffix, scale in (("GiB", GIB), ("GB", 1e9), ("MiB", 2 ** 20)):
        if text.endswith(suffix):
            return float(text[:-len(suffix)]) * scale
    return float(text)


def main(argv=None) -> int:
    """`python -m jaxlt.train.memory --model mt5_base --batch 128 --inputs 512 --targets 128
    --hardware hardware/tpu_v5e_8.gin --device_memory 16GiB`: XLA's estimate per device for each
    setting tried, fastest first, and the first that fits (run it on the machine itself for its
    backend's figure; on a CPU host, with fake devices, it is the CPU backend's estimate)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m jaxlt.train.memory", description=main.__doc__.split("\n")[0])
    p.add_argument("--model", default="mt5_base")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--inputs", type=int, default=512)
    p.add_argument("--targets", type=int, default=128)
    p.add_argument("--hardware", default=None, help="a gin/hardware file (default: all devices data-parallel)")
    p.add_argument("--device_memory", default=None, help="e.g. 80GB, 16GiB (default: from the device kind)")
    p.add_argument("--remat", default=",".join(REMAT_ORDER), help="policies to try, fastest first")
    p.add_argument("--max_accumulation", type=int, default=16)
    args = p.parse_args(argv)

    import jax

    from jaxlt import partitioning
    from jaxlt.model.config import get_config

    config = get_config(args.model, dtype=args.dtype)
    from jaxlt.gin_flags import load_hardware_rules

    hardware = load_hardware_rules(args.hardware) if args.hardware else partitioning.PartitioningConfig()
    device_bytes = (_parse_size(args.device_memory) if args.device_memory
                    else device_memory_bytes(jax.devices()[0].device_kind))
    if not device_bytes:
        raise SystemExit("unknown device memory: pass --device_memory (e.g. 80GB)")
    print(f"{args.model} ({args.dtype}) batch {args.batch} x ({args.inputs} + {args.targets}), mesh "
          f"{hardware.mesh_shape} on {jax.device_count()} x {jax.devices()[0].device_kind}", flush=True)
    chosen, _ = choose_memory_settings(config, args.batch, {"inputs": args.inputs, "targets": args.targets},
                                       device_bytes, mesh=hardware.make_mesh(), rules=hardware.rules(),
                                       remat_order=tuple(args.remat.split(",")),
                                       max_accumulation=args.max_accumulation,
                                       log=lambda line: print("  " + line, flush=True))
    print(f"use: model_settings.remat = {chosen.remat!r}, DataConfig.accumulation_steps = "
          f"{chosen.accumulation_steps}" if chosen else "nothing tried fits")
    return 0 if chosen else 1


if __name__ == "__main__":
    raise SystemExit(main())
