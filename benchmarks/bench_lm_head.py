"""The greedy-decoding step's output layer alone: logits = x [B, d_model] @ W [d_model, vocab], then
argmax, in XLA (jaxlt's compiled code), OpenBLAS (numpy) and PyTorch, each side in fresh processes,
interleaved.

At mT5-small's decode shape (batch 8, d_model 512, 250,112 entries) this one product is most of a
decoding step on CPU: it says how much of the greedy-decoding ratio against transformers is set by
the CPU matrix kernels rather than by the decoding loop. Same float32 weights on every side (one
seeded draw; the weights each side holds are printed and asserted equal); each side's argmax is
checked against numpy's.

    python benchmarks/bench_lm_head.py [--batch 8] [--rounds 2] [--repeats 8] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SIDES = ("xla", "openblas", "torch")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--d_model", type=int, default=512)
    p.add_argument("--vocab", type=int, default=250112)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--threads", type=int, default=None, help="CPU threads per side (default: all)")
    p.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def weights(args):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((args.d_model, args.vocab), dtype=np.float32) * 0.05
    x = rng.standard_normal((args.batch, args.d_model), dtype=np.float32)
    return x, w


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up (compilation for XLA)
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def worker(args) -> None:
    from interleave import emit

    x, w = weights(args)
    expected = np.argmax(x @ w, axis=-1)
    if args.worker == "xla":
        import jax
        import jax.numpy as jnp

        xj, wj = jnp.asarray(x), jnp.asarray(w)
        step = jax.jit(lambda x, w: jnp.argmax(x @ w, axis=-1))
        got, held = np.asarray(step(xj, wj)), wj.size
        times = timed(lambda: step(xj, wj).block_until_ready(), args.repeats)
    elif args.worker == "openblas":
        got, held = np.argmax(x @ w, axis=-1), w.size
        times = timed(lambda: np.argmax(x @ w, axis=-1), args.repeats)
    else:
        import torch

        torch.set_grad_enabled(False)
        xt, wt = torch.from_numpy(x), torch.from_numpy(np.ascontiguousarray(w.T))  # nn.Linear's [vocab, d] layout
        got, held = torch.nn.functional.linear(xt, wt).argmax(-1).numpy(), wt.numel()
        times = timed(lambda: torch.nn.functional.linear(xt, wt).argmax(-1), args.repeats)
    emit({"step": times, "argmax_agrees": float(np.mean(got == expected)), "weights": int(held)})


def main(argv=None):
    args = parse(argv if argv is not None else sys.argv[1:])
    if args.worker:
        return worker(args)
    from interleave import pooled, run_interleaved, summary, thread_env

    flops = 2 * args.batch * args.d_model * args.vocab
    print(f"output layer [{args.batch}, {args.d_model}] x [{args.d_model}, {args.vocab}] + argmax "
          f"({args.d_model * args.vocab:,} weights, {flops / 1e9:.2f} GFLOP per call)", flush=True)
    argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    results = run_interleaved(os.path.abspath(__file__), list(SIDES), argv, args.rounds, env=thread_env(args.threads))
    held = {side: {r["weights"] for r in results[side]} for side in SIDES}
    print("weights held per side: " + ", ".join(f"{side} {', '.join(f'{n:,}' for n in held[side])}" for side in SIDES))
    assert all(h == {args.d_model * args.vocab} for h in held.values()), held  # the same layer on every side
    medians = {}
    for side in SIDES:
        s = summary(pooled(results[side], "step"))
        medians[side] = s["median"]
        agree = min(r["argmax_agrees"] for r in results[side])
        print(f"{side:9s} min {1e3 * s['min']:7.1f} ms  median {1e3 * s['median']:7.1f} ms  "
              f"({flops / s['median'] / 1e9:5.1f} GFLOP/s; argmax equal to numpy's on {100 * agree:.0f}% of rows)")
    print(f"xla vs torch {medians['torch'] / medians['xla']:.2f}x, xla vs openblas "
          f"{medians['openblas'] / medians['xla']:.2f}x (medians)")


if __name__ == "__main__":
    main()
