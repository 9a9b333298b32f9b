"""Forward and greedy-decode throughput: jaxlt (Flax) vs transformers (PyTorch), same weights, same inputs.

Default: the mT5-small shape with a 32k vocabulary, float32, on the CPU, both frameworks in one
run. Prints examples/s (forward) and generated tokens/s (greedy decoding with a KV cache), the
jaxlt/transformers ratios, and checks that both agree (logits max |diff|, identical tokens).

    python benchmarks/bench_model.py                       # CPU, jaxlt vs transformers
    python benchmarks/bench_model.py --config mt5_base --dtype bfloat16 --batch_size 64 \
        --jax_only                                          # accelerator: jaxlt alone
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="mt5_small", help="jaxlt config name (default mt5_small)")
    p.add_argument("--vocab_size", type=int, default=32768, help="vocabulary size (default 32768)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="jaxlt compute dtype")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--input_length", type=int, default=128)
    p.add_argument("--target_length", type=int, default=32)
    p.add_argument("--decode_length", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions (best is reported)")
    p.add_argument("--jax_only", action="store_true", help="skip transformers (e.g. on an accelerator)")
    return p.parse_args()


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    args = parse_args()
    import jax
    import jax.numpy as jnp

    from jaxlt.model.config import get_config
    from jaxlt.model.decoding import greedy_decode
    from jaxlt.model.network import Transformer, unboxed_init_params

    config = get_config(args.config, vocab_size=args.vocab_size, dropout_rate=0.0, dtype=args.dtype)
    params = jax.device_put(unboxed_init_params(config, jax.random.PRNGKey(0)))
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(params))
    rng = np.random.RandomState(0)
    b, s, t = args.batch_size, args.input_length, args.target_length
    enc = rng.randint(2, args.vocab_size, (b, s)).astype(np.int32)
    enc[:, -1] = 1
    dec = np.concatenate([np.zeros((b, 1), np.int32), rng.randint(2, args.vocab_size, (b, t - 1))], 1).astype(np.int32)
    print(f"config {args.config} vocab {args.vocab_size} ({n_params / 1e6:.1f}M params), dtype {args.dtype}, "
          f"batch {b}, input {s}, target {t}, decode {args.decode_length}; jax on {jax.devices()[0].device_kind}, "
          f"{os.cpu_count()} CPUs")

    forward = jax.jit(lambda p, e, d: Transformer(config).apply({"params": p}, e, d))
    t0 = time.perf_counter()
    jax_logits = np.asarray(forward(params, enc, dec))
    compile_fwd = time.perf_counter() - t0
    jax_fwd = best_time(lambda: forward(params, enc, dec).block_until_ready(), args.repeats)
    t0 = time.perf_counter()
    jax_tokens = np.asarray(greedy_decode(config, params, enc, args.decode_length))
    compile_dec = time.perf_counter() - t0
    jax_dec = best_time(lambda: greedy_decode(config, params, enc, args.decode_length).block_until_ready(),
                        args.repeats)
    gen = int((jax_tokens != 0).sum())
    print(f"jaxlt        forward {b / jax_fwd:9.1f} ex/s ({jax_fwd * 1e3:8.1f} ms/batch, compile {compile_fwd:.1f}s)"
          f" | greedy {gen / jax_dec:9.1f} tok/s ({jax_dec * 1e3:8.1f} ms/batch, compile {compile_dec:.1f}s)")
    if args.jax_only:
        return

    import torch
    from transformers import MT5Config, MT5ForConditionalGeneration

    from jaxlt.model.hf_io import params_to_state_dict

    torch.set_num_threads(os.cpu_count())
    hf = config.to_hf_dict()
    hf_config = MT5Config(**{k: v for k, v in hf.items() if k not in ("model_type", "architectures", "dense_act_fn",
                                                                       "is_gated_act")})
    model = MT5ForConditionalGeneration(hf_config).eval()
    state = {k: torch.from_numpy(np.array(v)) for k, v in params_to_state_dict(config, params).items()}
    # transformers 5 ties lm_head to the shared embedding at construction: untie before loading.
    model.lm_head.weight = torch.nn.Parameter(torch.empty_like(state["lm_head.weight"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}, (
        missing, unexpected)
    te, td = torch.from_numpy(enc.astype(np.int64)), torch.from_numpy(dec.astype(np.int64))
    with torch.inference_mode():
        torch_logits = model(input_ids=te, decoder_input_ids=td).logits.numpy()
        torch_fwd = best_time(lambda: model(input_ids=te, decoder_input_ids=td), args.repeats)
        gen_kwargs = dict(max_new_tokens=args.decode_length, do_sample=False, num_beams=1, decoder_start_token_id=0,
                          eos_token_id=1, pad_token_id=0)
        torch_tokens = model.generate(input_ids=te, **gen_kwargs).numpy()[:, 1:]
        torch_dec = best_time(lambda: model.generate(input_ids=te, **gen_kwargs), args.repeats)
    torch_tokens = np.pad(torch_tokens, ((0, 0), (0, args.decode_length - torch_tokens.shape[1])))
    torch_gen = int((torch_tokens != 0).sum())
    print(f"transformers forward {b / torch_fwd:9.1f} ex/s ({torch_fwd * 1e3:8.1f} ms/batch)"
          f"                | greedy {torch_gen / torch_dec:9.1f} tok/s ({torch_dec * 1e3:8.1f} ms/batch)")
    print(f"ratio jaxlt/transformers: forward {torch_fwd / jax_fwd:.2f}x, greedy decode {torch_dec / jax_dec:.2f}x "
          f"(>1 means jaxlt is faster)")
    diff = np.abs(jax_logits - torch_logits).max()
    same = (jax_tokens == torch_tokens).mean()
    print(f"agreement: logits max |diff| {diff:.2e} (dtype {args.dtype}); greedy tokens identical {same:.1%}")


if __name__ == "__main__":
    main()
