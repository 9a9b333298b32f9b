"""Accelerator report: what jaxlt does on the device it finds, in one run (a few minutes).

For mT5-base (bf16 compute, float32 parameters, Adam, the paper's plain cross-entropy), on all
local devices data-parallel:
  * training tokens/s and MFU at batch 128 x (512 inputs + 128 targets) and at the XNLI shape
    (128 x (128 + 8)); MFU = model FLOPs per step (counted analytically, output layer included:
    benchmarks/bench_train.py `model_flops`) / step time / (devices x peak bf16 FLOP/s of the
    device kind); rematerialisation and micro-batching chosen from XLA's memory analysis
    (jaxlt.train.memory) so the step fits the device;
  * peak device memory (the device's own counter where it has one, else XLA's estimate);
  * greedy decoding throughput (batch 128, 128 input tokens, 32 new tokens, KV cache);
  * packed few-shot cells per hour (jaxlt.train.packed, K cells per step): a cell is the paper
    grid's few-shot stage at the XNLI shape (100 steps at batch 128, then greedy evaluation of
    XNLI's 5,010 test examples); extrapolated from the measured packed step and decode times
    (data loading and compilation excluded).

    python benchmarks/accelerator.py            # the device found, mT5-base
    python benchmarks/accelerator.py --tiny     # tiny model and shapes (runs on CPU, in the tests)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import model_flops, random_batch  # noqa: E402  (same FLOP count and batches as bench_train)

# Dense bf16 peak FLOP/s per device, by `device_kind` substring (most specific first).
PEAK_BF16 = (("H200", 989e12), ("H100 PCIe", 756e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12),
             ("L4", 121e12), ("A10", 125e12), ("TPU v5 lite", 197e12), ("TPU v5e", 197e12), ("TPU v5p", 459e12),
             ("TPU v5", 459e12), ("TPU v6 lite", 918e12), ("TPU v4", 275e12), ("TPU v3", 123e12))
CELL_STEPS, CELL_EVAL_EXAMPLES, EVAL_BATCH = 100, 5010, 256


def peak_flops(device_kind: str) -> float | None:
    for key, value in PEAK_BF16:
        if key.lower() in device_kind.lower():
            return value
    return None


def _peak_memory(device) -> int | None:
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def settings_that_fit(config, batch, lengths, mesh, device_bytes, compiler_options, say):
    """(config with remat, accumulation steps, estimate) from jaxlt.train.memory; as given on a CPU."""
    from jaxlt.train import memory

    if device_bytes is None:
        est = memory.train_step_memory(config, batch, lengths, mesh=mesh, compiler_options=compiler_options)
        return config, 1, est
    chosen, tried = memory.choose_memory_settings(config, batch, lengths, device_bytes, mesh=mesh,
                                                  compiler_options=compiler_options)
    if chosen is None:
        say(f"  nothing tried fits {device_bytes / memory.GIB:.0f} GiB; using the smallest estimate")
        chosen = min(tried, key=lambda e: e.total_bytes)
    return config.replace(remat=chosen.remat), chosen.accumulation_steps, chosen


def train_throughput(config, batch, lin, lout, steps, mesh, device_bytes, peak, compiler_options, say) -> dict:
    import jax

    from jaxlt.model.network import init_params
    from jaxlt.train import memory
    from jaxlt.train.engine import Trainer
    from jaxlt.train.optimizer import make_optimizer

    lengths = {"inputs": lin, "targets": lout}
    config, accumulation, est = settings_that_fit(config, batch, lengths, mesh, device_bytes, compiler_options, say)
    say(f"  {memory.format_estimate(est, device_bytes)}")
    trainer = Trainer(config, batch_size=batch, feature_lengths=lengths, optimizer=make_optimizer(), mesh=mesh,
                      accumulation_steps=accumulation, compiler_options=compiler_options)
    state = trainer.init_state(init_params(config, jax.random.key(0)))
    compile_s = trainer.compile()
    data = [random_batch(np.random.default_rng(i), batch, lin, lout, config.vocab_size) for i in range(2)]
    state, metrics = trainer.train_step(state, data[0])  # warm-up
    jax.block_until_ready(metrics["loss"])
    t0 = time.perf_counter()
    for i in range(steps):
        state, metrics = trainer.train_step(state, data[i % 2])
    jax.block_until_ready(metrics["loss"])
    step_s = (time.perf_counter() - t0) / steps
    flops = model_flops(config, batch, lin, lout)["train_flops_per_step"]
    tokens = batch * (lin + lout)
    ndev = mesh.devices.size
    out = {"step_s": step_s, "tokens_per_s": tokens / step_s, "tflops": flops / step_s / 1e12,
           "mfu": flops / step_s / (peak * ndev) if peak else None, "compile_s": compile_s,
           "peak_bytes": _peak_memory(mesh.devices.flat[0]), "estimate_bytes": est.total_bytes,
           "remat": config.remat, "accumulation": accumulation, "loss": float(metrics["loss"])}
    mfu = f"MFU {100 * out['mfu']:.1f}%" if out["mfu"] is not None else "MFU n/a (unknown peak)"
    peak_mem = (f"peak memory {out['peak_bytes'] / memory.GIB:.1f} GiB" if out["peak_bytes"]
                else f"peak memory n/a on this device (XLA estimate {est.total_bytes / memory.GIB:.2f} GiB)")
    say(f"  train batch {batch} x ({lin} + {lout}): {out['tokens_per_s']:.0f} tokens/s ({1000 * step_s:.0f} ms/step, "
        f"{out['tflops']:.1f} TFLOP/s, {mfu}); {peak_mem}; remat={config.remat!r}, accumulation {accumulation}; "
        f"compile {compile_s:.0f}s")
    return out


def greedy_throughput(config, batch, lin, new_tokens, mesh, compiler_options, say) -> dict:
    import jax

    from jaxlt.model.network import unboxed_init_params
    from jaxlt.train.engine import Trainer

    trainer = Trainer(config, batch_size=batch, feature_lengths={"inputs": lin, "targets": new_tokens}, mesh=mesh,
                      compiler_options=compiler_options)
    params = trainer.place_params(unboxed_init_params(config, jax.random.key(1)))
    enc = np.random.default_rng(0).integers(2, config.vocab_size, size=(batch, lin)).astype(np.int32)
    trainer.predict(params, enc, new_tokens)  # compile
    t0 = time.perf_counter()
    out = trainer.predict(params, enc, new_tokens)
    seconds = time.perf_counter() - t0
    generated = int((out != 0).sum())
    say(f"  greedy batch {batch}, {lin} input tokens, {new_tokens} new: {generated / seconds:.0f} tokens/s "
        f"({1000 * seconds / new_tokens:.1f} ms per step)")
    return {"tokens_per_s": generated / seconds, "seconds": seconds}


def packed_cells_per_hour(config, batch, lin, lout, pack, steps, mesh, compiler_options, say) -> dict:
    import jax

    from jaxlt.model.network import unboxed_init_params
    from jaxlt.train.engine import Trainer
    from jaxlt.train.optimizer import make_optimizer
    from jaxlt.train.packed import PackedTrainer

    trainer = Trainer(config, batch_size=batch, feature_lengths={"inputs": lin, "targets": lout},
                      optimizer=make_optimizer(), mesh=mesh, compiler_options=compiler_options)
    packed = PackedTrainer(trainer, pack)
    params = unboxed_init_params(config, jax.random.key(2))
    state = packed.init_state([params] * pack)
    compile_s = packed.compile()
    data = [random_batch(np.random.default_rng(i), batch, lin, lout, config.vocab_size) for i in range(steps + 1)]
    state, _, _ = packed.train(state, [iter(data[:1]) for _ in range(pack)], [1] * pack, list(range(pack)))  # warm-up
    iterators = [iter(data[1:]) for _ in range(pack)]
    t0 = time.perf_counter()
    state, _, _ = packed.train(state, iterators, [1 + steps] * pack, list(range(pack)))
    jax.block_until_ready(state.step)
    step_s = (time.perf_counter() - t0) / steps
    # evaluation: one member's greedy decode of one evaluation batch, timed after its compile
    member = trainer.place_params(packed.member_params(state, 0))
    enc = data[0]["encoder_input_tokens"]
    rows = np.concatenate([enc] * (-(-EVAL_BATCH // batch)))[:EVAL_BATCH] if batch < EVAL_BATCH else enc
    eval_trainer = Trainer(config, batch_size=rows.shape[0], feature_lengths={"inputs": lin, "targets": lout},
                           mesh=mesh, compiler_options=compiler_options)
    eval_trainer.predict(member, rows, lout)
    t0 = time.perf_counter()
    eval_trainer.predict(member, rows, lout)
    eval_batch_s = time.perf_counter() - t0
    eval_s = eval_batch_s * -(-CELL_EVAL_EXAMPLES // rows.shape[0])
    cell_s = (CELL_STEPS * step_s + pack * eval_s) / pack
    say(f"  packed few-shot cells (K={pack}, {CELL_STEPS} steps at batch {batch} x ({lin} + {lout}), greedy eval of "
        f"{CELL_EVAL_EXAMPLES} examples): {3600 / cell_s:.1f} cells/hour ({1000 * step_s:.0f} ms per packed step, "
        f"{eval_s:.1f}s eval per cell; compile {compile_s:.0f}s; extrapolated, data loading excluded)")
    return {"cells_per_hour": 3600 / cell_s, "packed_step_s": step_s, "eval_s": eval_s, "pack": pack}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mt5_base")
    p.add_argument("--steps", type=int, default=5, help="timed training steps per shape")
    p.add_argument("--pack", type=int, default=None, help="cells per packed step (default: from device memory)")
    p.add_argument("--tiny", action="store_true", help="mt5_tiny and small shapes (CPU test)")
    args = p.parse_args(argv)

    import jax

    from jaxlt import partitioning
    from jaxlt.model.config import get_config
    from jaxlt.train import memory

    t_start = time.perf_counter()
    say = lambda line: print(line, flush=True)  # noqa: E731
    device = jax.devices()[0]
    kind = device.device_kind
    peak = peak_flops(kind)
    device_bytes = memory.device_memory_bytes(kind) if device.platform != "cpu" else None
    mesh = partitioning.create_mesh((-1, 1))
    say(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {jax.device_count()} x {kind} ({device.platform}); "
        f"peak bf16 {peak / 1e12 if peak else float('nan'):.0f} TFLOP/s per device; memory "
        f"{device_bytes / memory.GIB if device_bytes else float('nan'):.0f} GiB per device; jax {jax.__version__}")
    if args.tiny:
        config = get_config("mt5_tiny", dtype="bfloat16", dropout_rate=0.1)
        shapes = {"128x512": (8, 32, 16), "xnli": (8, 16, 4)}
        greedy, steps, pack = (8, 16, 8), 2, args.pack or 2
        options = {"xla_backend_optimization_level": 0} if device.platform == "cpu" else None
    else:
        config = get_config(args.model, dtype="bfloat16", dropout_rate=0.1)
        shapes = {"128x512": (128, 512, 128), "xnli": (128, 128, 8)}
        greedy, steps, pack = (128, 128, 32), args.steps, args.pack
        options = None
    say(f"model {config.vocab_size}-vocab {'mt5_tiny' if args.tiny else args.model}: d_model {config.d_model}, "
        f"{config.num_layers}+{config.num_decoder_layers} layers, bf16 compute, float32 params, "
        f"loss vocabulary chunk {config.loss_chunk}")
    results = {"device_kind": kind, "devices": jax.device_count()}
    for name, (b, lin, lout) in shapes.items():
        say(f"[{name}]")
        results[name] = train_throughput(config, b, lin, lout, steps, mesh, device_bytes, peak, options, say)
    say("[greedy]")
    results["greedy"] = greedy_throughput(config, *greedy, mesh, options, say)
    say("[packed few-shot cells]")
    if pack is None:  # as many members as fit: the XNLI-shape estimate per member, 80% of the device
        per_member = results["xnli"]["estimate_bytes"]
        pack = int(max(1, min(16, 0.8 * device_bytes // per_member))) if device_bytes else 2
    b, lin, lout = shapes["xnli"]
    results["packed"] = packed_cells_per_hour(config.replace(remat=results["xnli"]["remat"]), b, lin, lout, pack,
                                              steps, mesh, options, say)
    say(f"total {time.perf_counter() - t_start:.0f}s")
    return results


if __name__ == "__main__":
    main()
    raise SystemExit(0)
