"""Forward and greedy-decode throughput: jaxlt (Flax) vs transformers (PyTorch), interleaved processes.

The same model on both sides: mT5-small widths with the real 250,112-entry vocabulary by default,
untied head (the PyTorch head gets its own Parameter: transformers 5 ties mT5's at construction),
the same weights (jaxlt's init, copied into PyTorch), parameter counts printed and asserted equal.
Each round starts one fresh process per framework (order alternating); each times the forward
pass and greedy decoding with a KV cache at each --decode_lengths (transformers: `generate`,
greedy, `use_cache`), --repeats times after compiling (jaxlt) or one short untimed call (transformers). The summary gives min and median
over all rounds, the ratios, and whether both sides produced the same tokens.

    python benchmarks/bench_model.py                          # CPU: jaxlt vs transformers
    python benchmarks/bench_model.py --config mt5_base --dtype bfloat16 --batch_size 64 --jax_only
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="mt5_small", help="jaxlt config name (default mt5_small)")
    p.add_argument("--vocab_size", type=int, default=None, help="vocabulary size (default: the config's, 250,112)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="jaxlt compute dtype")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--input_length", type=int, default=128)
    p.add_argument("--target_length", type=int, default=32, help="decoder length of the forward pass")
    p.add_argument("--decode_lengths", default="32,256", help="new tokens for greedy decoding (comma-separated)")
    p.add_argument("--repeats", type=int, default=2, help="timed repetitions per process")
    p.add_argument("--rounds", type=int, default=2, help="fresh processes per framework, interleaved")
    p.add_argument("--jax_only", action="store_true", help="skip transformers (e.g. on an accelerator)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per framework (default: all)")
    p.add_argument("--worker", choices=["jaxlt", "torch"], help=argparse.SUPPRESS)
    return p.parse_known_args(argv)[0]


def _config(args):
    from jaxlt.model.config import get_config

    overrides = {"vocab_size": args.vocab_size} if args.vocab_size else {}
    return get_config(args.config, dropout_rate=0.0, dtype=args.dtype, **overrides)


def _inputs(args, vocab):
    rng = np.random.RandomState(0)
    b, s, t = args.batch_size, args.input_length, args.target_length
    enc = rng.randint(2, vocab, (b, s)).astype(np.int32)
    enc[:, -1] = 1
    dec = np.concatenate([np.zeros((b, 1), np.int32), rng.randint(2, vocab, (b, t - 1))], 1).astype(np.int32)
    return enc, dec


def _timed(fn, repeats, warm=None):
    (warm or fn)()  # untimed: compilation / first-call allocation
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def jaxlt_worker(args) -> dict:
    import jax

    from interleave import jaxlt_params, param_count
    from jaxlt.model.decoding import greedy_decode
    from jaxlt.model.network import Transformer

    config = _config(args)
    params = jax.device_put(jaxlt_params(config))
    enc, dec = _inputs(args, config.vocab_size)
    forward = jax.jit(lambda p, e, d: Transformer(config).apply({"params": p}, e, d)).lower(params, enc, dec).compile()
    result = {"params": param_count(params)}
    result["forward"], _ = _timed(lambda: forward(params, enc, dec).block_until_ready(), args.repeats)
    for n in _lengths(args):
        decode = greedy_decode.lower(config, params, enc, n).compile()  # compiled, not run: no untimed decode
        times, tokens = _timed(lambda: np.asarray(decode(params, enc)), args.repeats, warm=lambda: None)
        result[f"greedy{n}"], result[f"tokens{n}"] = times, tokens.tolist()
    return result


def torch_worker(args) -> dict:
    import torch

    from interleave import jaxlt_params, torch_model

    if args.threads:
        torch.set_num_threads(args.threads)
    config = _config(args)
    model, count = torch_model(config, jaxlt_params(config))
    model.eval()
    enc, dec = _inputs(args, config.vocab_size)
    te, td = torch.from_numpy(enc.astype(np.int64)), torch.from_numpy(dec.astype(np.int64))
    result = {"params": count}
    with torch.inference_mode():
        result["forward"], _ = _timed(lambda: model(input_ids=te, decoder_input_ids=td).logits, args.repeats)
        for n in _lengths(args):
            kwargs = dict(max_new_tokens=n, do_sample=False, num_beams=1, use_cache=True, decoder_start_token_id=0,
                          eos_token_id=1, pad_token_id=0)
            times, out = _timed(lambda: model.generate(input_ids=te, attention_mask=te != 0, **kwargs), args.repeats,
                                warm=lambda: model.generate(input_ids=te, attention_mask=te != 0,
                                                            **{**kwargs, "max_new_tokens": 2}))
            tokens = out.numpy()[:, 1:]
            result[f"greedy{n}"] = times
            result[f"tokens{n}"] = np.pad(tokens, ((0, 0), (0, n - tokens.shape[1]))).tolist()
    return result


def _lengths(args) -> list[int]:
    return [int(x) for x in args.decode_lengths.split(",") if x]


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        from interleave import emit

        emit((jaxlt_worker if args.worker == "jaxlt" else torch_worker)(args))
        return 0

    import jax

    from interleave import pooled, run_interleaved, summary, thread_env

    config = _config(args)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; jax on {jax.devices()[0].device_kind}, "
          f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"config {args.config} vocab {config.vocab_size}, dtype {args.dtype}, batch {args.batch_size}, "
          f"input {args.input_length}, forward target {args.target_length}, greedy {args.decode_lengths} new tokens, "
          f"threads per framework: {args.threads or 'all'}")
    sides = ["jaxlt"] + ([] if args.jax_only else ["torch"])
    argv = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--jax_only"]
    results = run_interleaved(os.path.abspath(__file__), sides, argv, args.rounds, env=thread_env(args.threads))
    counts = {r["params"] for side in sides for r in results[side]}
    assert len(counts) == 1, f"parameter counts differ: {counts}"
    print(f"parameters: {counts.pop():,} on {' and '.join(sides)}")
    keys = ["forward"] + [f"greedy{n}" for n in _lengths(args)]
    stats = {side: {k: summary(pooled(results[side], k)) for k in keys} for side in sides}
    for side in sides:
        parts = []
        for k in keys:
            st = stats[side][k]
            if k == "forward":
                rate = f"{args.batch_size / st['median']:.2f} ex/s"
            else:
                n = int(k[len("greedy"):])
                generated = int((np.asarray(results[side][0][f"tokens{n}"]) != 0).sum())
                rate = f"{generated / st['median']:.1f} tok/s, {1000 * st['median'] / n:.1f} ms/token"
            parts.append(f"{k} min {1000 * st['min']:.0f} / median {1000 * st['median']:.0f} ms ({rate})")
        print(f"{side:6s}: " + "; ".join(parts))
    if "torch" in stats:
        for k in keys:
            print(f"ratio jaxlt / transformers {k:9s}: {stats['torch'][k]['median'] / stats['jaxlt'][k]['median']:.2f}x "
                  f"on medians, {stats['torch'][k]['min'] / stats['jaxlt'][k]['min']:.2f}x on minima"
                  + (" (target >= 2x)" if k.startswith("greedy") else ""))
        for n in _lengths(args):
            a = np.asarray(results["jaxlt"][0][f"tokens{n}"])
            b = np.asarray(results["torch"][0][f"tokens{n}"])
            print(f"greedy {n}: tokens identical {(a == b).mean():.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
