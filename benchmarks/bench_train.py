"""Training throughput: the jaxlt train step vs a transformers (PyTorch) loop, interleaved processes.

The same model on both sides: mT5 at the given widths with an untied head (as google/mt5-*; the
PyTorch head gets its own Parameter, since transformers 5 ties mT5's at construction), the same
initial weights (jaxlt's init, copied), parameter counts printed and asserted equal. The paper's
recipe on both sides: mean token cross-entropy, Adam lr 3e-4, global-norm clipping 1.0, dropout
0.1, fp32, random token batches. Each round starts one fresh process per framework (the order
alternating), each compiles / warms up, then times --steps steps; the summary gives the min and
median step time over all rounds, tokens/s (input + target positions per second) and the ratio.
Model FLOPs per step/token are printed so MFU can be computed on accelerators:

    forward FLOPs = 2 x (matmul parameters x the tokens they act on) + attention score FLOPs
      - encoder layer matrices act on the input tokens; decoder self-attention / MLP matrices and the
        LM head on the target tokens; the decoder's cross-attention key/value matrices on the input
        tokens (their query/output matrices on the target tokens);
      - attention scores: per layer 2 x 2 x Lq x Lk x (heads x d_kv) for QK^T and AV
        (encoder Lin x Lin, decoder self Lout x Lout counted in full, cross Lout x Lin);
      - embeddings lookups, layer norms, softmax and the loss are not counted.
    training FLOPs = 3 x forward (backward = 2 x forward).

    python benchmarks/bench_train.py                 # CPU, mT5-small widths, 250,112 vocab, batch 8 x (128+32)
    python benchmarks/bench_train.py --vocab 32768   # the smaller vocabulary
    python benchmarks/bench_train.py --model mt5_base --batch 128 --inputs 512 --targets 128 \\
        --dtype bfloat16 --skip_torch --peak_tflops 989      # accelerator MFU (H100 bf16 dense peak)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

def model_flops(config, batch: int, lin: int, lout: int) -> dict:
    """Training FLOPs per step (3 x forward), counted from the config as the module docstring says."""
    d, f, h, k = config.d_model, config.d_ff, config.num_heads, config.d_kv
    inner = h * k
    n_mlp_in = 2 if config.is_gated else 1
    attn = 4 * d * inner                       # q, k, v, o
    mlp = (n_mlp_in + 1) * d * f
    enc_layer = attn + mlp
    dec_on_targets = attn + 2 * d * inner + mlp  # self-attention + cross q/o + MLP
    dec_on_inputs = 2 * d * inner                # cross k/v act on the encoder outputs
    head = d * config.vocab_size
    ld = config.num_decoder_layers
    matmul = 2 * (config.num_layers * enc_layer * lin + ld * dec_on_targets * lout + ld * dec_on_inputs * lin
                  + head * lout)
    scores = 4 * inner * (config.num_layers * lin * lin + ld * (lout * lout + lout * lin))
    forward = (matmul + scores) * batch
    non_embedding = config.num_layers * enc_layer + ld * (dec_on_targets + dec_on_inputs)
    return {"train_flops_per_step": 3 * forward, "train_flops_per_token": 3 * forward / (batch * (lin + lout)),
            "non_embedding_params": non_embedding, "attention_share": scores / (matmul + scores)}


def random_batch(rng, batch, lin, lout, vocab):
    enc = rng.integers(2, vocab, size=(batch, lin)).astype(np.int32)
    tgt = rng.integers(2, vocab, size=(batch, lout)).astype(np.int32)
    tgt[:, -1] = 1
    dec_in = np.concatenate([np.zeros((batch, 1), np.int32), tgt[:, :-1]], axis=1)
    return {"encoder_input_tokens": enc, "decoder_input_tokens": dec_in, "decoder_target_tokens": tgt,
            "decoder_loss_weights": np.ones((batch, lout), np.float32)}


def jaxlt_worker(config, batches, steps, warmup) -> dict:
    import jax

    from jaxlt import partitioning
    from jaxlt.train.engine import Trainer
    from jaxlt.train.optimizer import make_optimizer
    from interleave import jaxlt_params, param_count

    batch, lin = batches[0]["encoder_input_tokens"].shape
    lout = batches[0]["decoder_target_tokens"].shape[1]
    trainer = Trainer(config, batch_size=batch, feature_lengths={"inputs": lin, "targets": lout},
                      optimizer=make_optimizer("adam", 3e-4, clip_norm=1.0), mesh=partitioning.create_mesh((-1, 1)))
    params = jaxlt_params(config)
    count = param_count(params)
    state = trainer.init_state(params)
    del params
    compile_s = trainer.compile()
    times, losses = [], []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        state, metrics = trainer.train_step(state, batches[i % len(batches)], seed=0)
        losses.append(float(jax.block_until_ready(metrics["loss"])))
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {"step": times, "compile_s": compile_s, "params": count, "first_loss": losses[0], "last_loss": losses[-1]}


def torch_worker(config, batches, steps, warmup, threads=None) -> dict:
    import torch

    from interleave import jaxlt_params, torch_model

    torch.manual_seed(0)
    if threads:
        torch.set_num_threads(threads)
    model, count = torch_model(config, jaxlt_params(config))
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    tensors = [{k: torch.from_numpy(v).long() if v.dtype == np.int32 else torch.from_numpy(v) for k, v in b.items()}
               for b in batches]
    times, losses = [], []
    for i in range(warmup + steps):
        b = tensors[i % len(tensors)]
        t0 = time.perf_counter()
        out = model(input_ids=b["encoder_input_tokens"], attention_mask=(b["encoder_input_tokens"] != 0).long(),
                    decoder_input_ids=b["decoder_input_tokens"], labels=b["decoder_target_tokens"])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(out.loss.detach()))
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return {"step": times, "params": count, "first_loss": losses[0], "last_loss": losses[-1]}


def build_config(args):
    import jax

    from jaxlt.model.config import get_config

    config = get_config(args.model, dtype=args.dtype, dropout_rate=0.1)
    if args.vocab:
        config = config.replace(vocab_size=args.vocab)
    if args.logits_chunk_size is not None:
        config = config.replace(logits_chunk_size=args.logits_chunk_size)
    unroll = args.scan_unroll or (config.num_layers if jax.default_backend() == "cpu" else 1)
    return config.replace(scan_unroll=unroll)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench_train.py", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mt5_small", help="a jaxlt config name (default mt5_small)")
    parser.add_argument("--vocab", type=int, default=None, help="override the vocabulary size (default: the "
                        "config's, 250,112 for mT5)")
    parser.add_argument("--scan_unroll", type=int, default=None,
                        help="layers per compiled loop iteration (default: all on CPU, as gin/hardware/cpu.gin; 1 elsewhere)")
    parser.add_argument("--logits_chunk_size", type=int, default=None,
                        help="jaxlt loss vocabulary chunk (default: the config's; 0: plain loss)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inputs", type=int, default=128)
    parser.add_argument("--targets", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per framework, interleaved")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--skip_torch", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per framework (default: all)")
    parser.add_argument("--peak_tflops", type=float, default=None, help="device peak for MFU (e.g. 989 for H100 bf16)")
    parser.add_argument("--worker", choices=["jaxlt", "torch"], help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)

    config = build_config(args)
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, args.batch, args.inputs, args.targets, config.vocab_size) for _ in range(4)]
    if args.worker:
        from interleave import emit

        if args.worker == "jaxlt":
            emit(jaxlt_worker(config, batches, args.steps, args.warmup))
        else:
            emit(torch_worker(config, batches, args.steps, args.warmup, args.threads))
        return 0

    import jax

    from interleave import pooled, run_interleaved, summary, thread_env

    tokens = args.batch * (args.inputs + args.targets)
    flops = model_flops(config, args.batch, args.inputs, args.targets)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; device: {jax.devices()[0].device_kind} "
          f"x{jax.device_count()} ({jax.default_backend()}), cpu threads: {os.cpu_count()}; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"config: d_model={config.d_model} d_ff={config.d_ff} layers={config.num_layers}+{config.num_decoder_layers} "
          f"heads={config.num_heads} vocab={config.vocab_size} dtype={config.dtype} scan_unroll={config.scan_unroll} "
          f"loss chunk={config.loss_chunk}; batch {args.batch} x ({args.inputs} inputs + {args.targets} targets) = "
          f"{tokens} tokens/step; Adam 3e-4, clip 1.0, dropout 0.1; threads per framework: {args.threads or 'all'}")
    print(f"model FLOPs: {flops['train_flops_per_step']:.4g} per step, {flops['train_flops_per_token']:.4g} per token "
          f"(non-embedding params {flops['non_embedding_params']:,}; attention scores "
          f"{100 * flops['attention_share']:.1f}% of forward)")
    sides = ["jaxlt"] + ([] if args.skip_torch or args.dtype != "float32" else ["torch"])
    worker_argv = [a for a in argv if a != "--skip_torch"]
    results = run_interleaved(os.path.abspath(__file__), sides, worker_argv, args.rounds, env=thread_env(args.threads))
    stats = {}
    for side in sides:
        st = stats[side] = summary(pooled(results[side], "step"))
        counts = {r["params"] for r in results[side]}
        extra = (f"; compile {statistics.median(r['compile_s'] for r in results[side]):.1f}s"
                 if side == "jaxlt" else "")
        mfu = (f", MFU {100 * flops['train_flops_per_step'] / st['min'] / (args.peak_tflops * 1e12):.1f}%"
               if args.peak_tflops else "")
        print(f"{side:6s}: {tokens / st['median']:8.1f} tokens/s median, {tokens / st['min']:8.1f} best "
              f"(step min {1000 * st['min']:.0f} ms, median {1000 * st['median']:.0f} ms over {st['n']} steps in "
              f"{args.rounds} processes{extra}); params {', '.join(f'{c:,}' for c in sorted(counts))}; first-step "
              f"loss {results[side][0]['first_loss']:.3f}; "
              f"{flops['train_flops_per_step'] / st['min'] / 1e12:.3f} TFLOP/s at best{mfu}")
    if "torch" in stats:
        counts = {r["params"] for side in sides for r in results[side]}
        assert len(counts) == 1, f"parameter counts differ between the frameworks: {counts}"
        print(f"ratio jaxlt / torch: {stats['torch']['median'] / stats['jaxlt']['median']:.2f}x on medians, "
              f"{stats['torch']['min'] / stats['jaxlt']['min']:.2f}x on minima (target >= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
