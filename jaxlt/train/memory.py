"""Training memory per device: XLA's compiled memory analysis, or an instant analytic estimate.

`analytic_train_memory` counts from shapes alone (parameters and optimizer state as the sharding
rules cut them, gradients, per-layer activations under the remat policy for one micro-batch, the
loss's logits): no compilation, any host, e.g. mT5-base on a CPU laptop in about a second. It is
within 0.82-1.23x of XLA's figure on small float32 models (tests/test_memory.py); `step_memory`
picks XLA's on an accelerator and the analytic one on a CPU host (`jaxlt grid --dry_run`).

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


def state_bytes_per_device(trainer) -> int:
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
                          state_bytes=state_bytes_per_device(trainer))


# ---------------------------------------------------------------------------------------------
# Analytic estimate: instant on any host (nothing is compiled), from the shapes and the rules.

ACTIVATION_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclasses.dataclass(frozen=True)
class AnalyticEstimate:
    """Bytes per device for one train step, counted from the model's shapes (`analytic_train_memory`).

    state: parameters + optimizer state, as sharded by the rules (exact); gradients: two
    parameter-sized buffers (the gradient or its running sum over micro-batches, and the optimizer's
    update); activations: what the backward pass keeps for every layer under the
    remat policy, for one micro-batch's share of a device, plus one layer's full set recomputed at a
    time (remat) and the loss's logits; batch: the input arrays."""

    remat: str
    accumulation_steps: int
    param_bytes: int
    optimizer_bytes: int
    gradient_bytes: int
    activation_bytes: int
    batch_bytes: int
    source: str = "analytic"

    @property
    def state_bytes(self) -> int:
        return self.param_bytes + self.optimizer_bytes

    @property
    def temp_bytes(self) -> int:
        return self.gradient_bytes + self.activation_bytes

    @property
    def total_bytes(self) -> int:
        return self.state_bytes + self.temp_bytes + self.batch_bytes

    def fits(self, device_bytes: float, headroom: float = 0.9) -> bool:
        return self.total_bytes <= headroom * device_bytes


def _mesh_sizes(mesh_shape: Sequence[int], axis_names: Sequence[str], num_devices: int) -> dict[str, int]:
    shape = [int(d) for d in mesh_shape]
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        shape = [num_devices // known if d == -1 else d for d in shape]
    return dict(zip(axis_names, shape))


def _divisor(logical: Sequence[str | None], shape: Sequence[int], sizes: Mapping[str, int], rules) -> int:
    """How many pieces the rules cut an array with these logical axes into (a dimension the mesh
    axes do not divide stays whole, as `partitioning.logical_to_shardings` does)."""
    from flax import linen as nn

    divisor = 1
    for dim, axes in enumerate(nn.logical_to_mesh_axes(tuple(logical), rules)):
        if axes is None or dim >= len(shape):
            continue
        n = math.prod(sizes[a] for a in ((axes,) if isinstance(axes, str) else axes))
        if shape[dim] % n == 0:
            divisor *= n
    return divisor


def _state_bytes_analytic(config, optimizer, sizes, rules) -> tuple[int, int]:
    """(parameter bytes, optimizer-state bytes) on one device."""
    import jax
    from flax import linen as nn

    from jaxlt.model.network import init_params

    boxed = jax.eval_shape(lambda key: init_params(config, key), jax.random.key(0))
    specs = nn.get_partition_spec(boxed)
    values = nn.meta.unbox(boxed)
    table = {}
    param_bytes = 0
    flat_values = jax.tree_util.tree_flatten_with_path(values)[0]
    flat_specs = jax.tree_util.tree_leaves(specs, is_leaf=lambda x: x is None or isinstance(x, tuple))
    for (path, leaf), spec in zip(flat_values, flat_specs):
        div = _divisor(tuple(spec), leaf.shape, sizes, rules) if spec is not None else 1
        table[tuple(path)] = (tuple(leaf.shape), div)
        param_bytes += leaf.size * leaf.dtype.itemsize // div
    opt_bytes = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(jax.eval_shape(optimizer.init, values))[0]:
        shape, div = tuple(getattr(leaf, "shape", ())), 1
        for start in range(len(path)):  # Adam's moments mirror the parameters (`partitioning.shardings_like`)
            ref = table.get(tuple(path[start:]))
            if ref is not None and ref[0] == shape:
                div = ref[1]
                break
        opt_bytes += math.prod(shape) * leaf.dtype.itemsize // div
    return int(param_bytes), int(opt_bytes)


def _layer_activations(config, b: int, q: int, kv_len: int | None, policy: str, act: int, decoder: bool,
                       cut) -> int:
    """Bytes one encoder (decoder) layer keeps for the backward pass for `b` examples of `q` query
    positions (decoder: `kv_len` encoder positions), under `policy` ("none", "dots", "full": only
    the layer input). `cut(names, shape)` divides by the sharding of an activation."""
    d, h, k, f = config.d_model, config.num_heads, config.d_kv, config.d_ff
    D = cut(("batch", "length", "embed"), (b, q, d)) * act
    HK = cut(("batch", "length", "heads", "kv"), (b, q, h, k)) * act
    F = cut(("batch", "length", "mlp"), (b, q, f)) * act
    def scores(keys):
        return cut(("batch", "heads", "length", None), (b, h, q, keys))
    gates = 2 if config.is_gated else 1
    drop = config.dropout_rate > 0
    if policy == "full":
        return D
    if policy == "dots":  # the outputs of every matmul
        out = 2 * D + 4 * HK + gates * F + scores(q) * act
        if decoder:
            out += D + 2 * HK + 2 * cut(("batch", "length", "heads", "kv"), (b, kv_len, h, k)) * act + \
                scores(kv_len) * act
        return D + out
    # "none": every residual autodiff keeps: norms' inputs and outputs, q k v and the attention
    # output, the scores and softmax in float32 and its compute-dtype copy, the feed-forward's inner
    # activations with the activation function's intermediate (and dropout masks, one byte each)
    attn = 4 * HK + scores(q) * (8 + act + drop)
    out = 4 * D + attn + (2 * gates + 1) * F + drop * (2 * D // act + F // act)
    if decoder:
        out += 2 * D + 2 * HK + 2 * cut(("batch", "length", "heads", "kv"), (b, kv_len, h, k)) * act + \
            scores(kv_len) * (8 + act + drop) + drop * D // act
    return out


def analytic_train_memory(config, batch_size: int, lengths: Mapping[str, int], *, mesh_shape=(-1, 1),
                          axis_names=("data", "model"), rules=None, num_devices: int | None = None,
                          accumulation_steps: int = 1, optimizer=None) -> AnalyticEstimate:
    """The per-device memory of one train step of `config` (its `remat` and dtypes) at this batch,
    from shapes only (instant; nothing is compiled or allocated). `mesh_shape` / `axis_names` /
    `rules` as a gin/hardware file sets them (`PartitioningConfig`); `num_devices` resolves a -1
    (default: the devices present). Checked against XLA's compiled memory analysis on small models
    (tests/test_memory.py, which states the tolerance)."""
    import jax

    from jaxlt import partitioning
    from jaxlt.train.optimizer import make_optimizer

    rules = partitioning.validate_rules(rules if rules is not None else partitioning.DATA_PARALLEL_RULES)
    sizes = _mesh_sizes(mesh_shape, axis_names, int(num_devices or jax.device_count()))
    optimizer = optimizer if optimizer is not None else make_optimizer()
    param_bytes, opt_bytes = _state_bytes_analytic(config, optimizer, sizes, rules)
    A = int(accumulation_steps)
    b = int(batch_size) // A  # one micro-batch; the rules shard it over the devices
    L, T = int(lengths["inputs"]), int(lengths["targets"])
    act = ACTIVATION_DTYPE_BYTES[config.dtype]

    def cut(names, shape):
        return math.prod(shape) // _divisor(names, shape, sizes, rules)

    enc = [_layer_activations(config, b, L, None, p, act, False, cut) for p in (config.remat, "none", "dots")]
    dec = [_layer_activations(config, b, T, L, p, act, True, cut) for p in (config.remat, "none", "dots")]
    D_enc, D_dec = cut(("batch", "length", "embed"), (b, L, config.d_model)), \
        cut(("batch", "length", "embed"), (b, T, config.d_model))
    saved = config.num_layers * enc[0] + config.num_decoder_layers * dec[0]
    # the encoder output (kept for every decoder layer), embeddings and final norms, float32 residuals
    saved += 4 * (D_enc + D_dec)
    # the backward pass recomputes one layer at a time: all of it ("full"), or what is not a matmul
    recompute = {"none": 0, "full": max(enc[1], dec[1])}.get(config.remat, max(enc[1] - enc[2], dec[1] - dec[2]))
    chunk = config.loss_chunk or config.vocab_size
    # the loss: logits (float32) of one vocabulary chunk, their softmax and gradient
    logits = 3 * 4 * cut(("batch", "length", "vocab"), (b, T, min(chunk, config.vocab_size)))
    bias = 4 * config.num_heads * (L * L + T * T)  # relative position biases, shared by the batch
    activation_bytes = saved + recompute + logits + bias
    # the gradient and the optimizer's update (XLA reuses buffers: with micro-batches the running
    # sum takes the update's place; measured on CPU, ~1.3 parameter sizes either way)
    grad_buffers = 2
    batch_bytes = cut(("batch", "length"), (int(batch_size), L)) * 4 + 3 * cut(("batch", "length"),
                                                                            (int(batch_size), T)) * 4
    return AnalyticEstimate(remat=config.remat, accumulation_steps=A, param_bytes=param_bytes,
                            optimizer_bytes=opt_bytes, gradient_bytes=grad_buffers * param_bytes,
                            activation_bytes=int(activation_bytes), batch_bytes=int(batch_bytes))


def architecture(pretrained: str, model_name: str = ""):
    """The model's T5Config without reading weights (for estimates): "init:NAME", a local Hugging
    Face directory's config.json, else the known config named like `model_name` or the checkpoint's
    base name ("mt5-base", "google/mt5-base" -> mt5_base); None when none of these says."""
    import os

    from jaxlt.model.config import T5Config, get_config, known_configs

    if pretrained.startswith("init:"):
        return get_config(pretrained[len("init:"):])
    config_file = os.path.join(os.path.expanduser(pretrained), "config.json")
    if os.path.isfile(config_file):
        from jaxlt.model.hf_io import read_hf_config

        return T5Config.from_hf_dict(read_hf_config(os.path.dirname(config_file)))
    known = set(known_configs())
    for name in (model_name, os.path.basename(os.path.normpath(pretrained))):
        key = (name or "").replace("-", "_").lower()
        if key in known:
            return get_config(key)
    return None


def step_memory(config, batch_size: int, lengths: Mapping[str, int], hardware=None, *, accumulation_steps: int = 1,
                optimizer=None, compiled: bool | None = None, num_devices: int | None = None):
    """The per-device estimate `--dry_run` prints: XLA's compiled memory analysis on an accelerator
    (or with `compiled=True`; needs the hardware's devices), else the instant analytic one.
    `hardware`: a `jaxlt.partitioning.PartitioningConfig` (None: data-parallel)."""
    import jax

    from jaxlt import partitioning

    if hardware is None:
        mesh_shape, axis_names, rules = (-1, 1), ("data", "model"), partitioning.DATA_PARALLEL_RULES
    else:
        mesh_shape, axis_names, rules = hardware.mesh_shape, hardware.axis_names, hardware.rules()
    if compiled is None:
        compiled = jax.default_backend() != "cpu"
    if compiled:
        estimate = train_step_memory(config, batch_size, lengths, mesh=partitioning.create_mesh(mesh_shape, axis_names),
                                     rules=rules, accumulation_steps=accumulation_steps, optimizer=optimizer)
    else:
        estimate = analytic_train_memory(config, batch_size, lengths, mesh_shape=mesh_shape, axis_names=axis_names,
                                         rules=rules, num_devices=num_devices, accumulation_steps=accumulation_steps,
                                         optimizer=optimizer)
    return estimate


def hardware_device_bytes(hardware=None) -> float | None:
    """The device memory a hardware file declares, else that of the devices present (None: unknown)."""
    import jax

    declared = float(getattr(hardware, "device_memory", 0) or 0)
    return declared or device_memory_bytes(jax.devices()[0].device_kind)


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
    kind = "analytic estimate" if getattr(estimate, "source", "") == "analytic" else "XLA estimate"
    line = (f"memory per device ({kind}): {_size(estimate.total_bytes)} with remat="
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
    p.add_argument("--analytic", action="store_true",
                   help="the instant analytic estimate (no compilation; any host) instead of XLA's")
    p.add_argument("--num_devices", type=int, default=None,
                   help="with --analytic: devices a -1 in the mesh shape stands for (default: those present)")
    args = p.parse_args(argv)

    import jax

    from jaxlt import partitioning
    from jaxlt.model.config import get_config

    config = get_config(args.model, dtype=args.dtype)
    from jaxlt.gin_flags import load_hardware_rules

    hardware = load_hardware_rules(args.hardware) if args.hardware else partitioning.PartitioningConfig()
    device_bytes = (_parse_size(args.device_memory) if args.device_memory
                    else hardware_device_bytes(hardware))
    if not device_bytes:
        raise SystemExit("unknown device memory: pass --device_memory (e.g. 80GB)")
    print(f"{args.model} ({args.dtype}) batch {args.batch} x ({args.inputs} + {args.targets}), mesh "
          f"{hardware.mesh_shape} on {jax.device_count()} x {jax.devices()[0].device_kind}", flush=True)
    if args.analytic:
        lengths = {"inputs": args.inputs, "targets": args.targets}
        chosen = None
        for remat, accumulation in candidate_settings(args.batch, 1, args.max_accumulation, tuple(args.remat.split(","))):
            estimate = analytic_train_memory(config.replace(remat=remat), args.batch, lengths,
                                             mesh_shape=hardware.mesh_shape, axis_names=hardware.axis_names,
                                             rules=hardware.rules(), num_devices=args.num_devices,
                                             accumulation_steps=accumulation)
            print("  " + format_estimate(estimate, device_bytes), flush=True)
            if estimate.fits(device_bytes):
                chosen = estimate
                break
    else:
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
