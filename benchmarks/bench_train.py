"""Training throughput: the jaxlt train step vs a plain transformers (PyTorch) AdamW loop, in one run.

Same model config, batch, sequence lengths, optimizer (AdamW, lr 3e-4, weight decay 0.01, global-norm
clipping 1.0), dropout and fp32 on both sides; random token batches. Prints tokens/s (input + target
positions per second, padding included, i.e. what the hardware processes), the ratio, and the model
FLOPs per step/token so MFU can be computed on accelerators:

    forward FLOPs = 2 x (matmul parameters x the tokens they act on) + attention score FLOPs
      - encoder layer matrices act on the input tokens; decoder self-attention / MLP matrices and the
        LM head on the target tokens; the decoder's cross-attention key/value matrices on the input
        tokens (their query/output matrices on the target tokens);
      - attention scores: per layer 2 x 2 x Lq x Lk x (heads x d_kv) for QK^T and AV
        (encoder Lin x Lin, decoder self Lout x Lout counted in full, cross Lout x Lin);
      - embeddings lookups, layer norms, softmax and the loss are not counted.
    training FLOPs = 3 x forward (backward = 2 x forward).

    python benchmarks/bench_train.py                        # CPU, mT5-small shape with a 32k vocab, both frameworks
    python benchmarks/bench_train.py --small                # CPU, a narrower d_model=256 config
    python benchmarks/bench_train.py --model mt5_base --batch 128 --inputs 512 --targets 128 \\
        --dtype bfloat16 --skip_torch --peak_tflops 989      # accelerator MFU (H100 bf16 dense peak)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

BENCH_CONFIG = dict(vocab_size=1024, d_model=256, d_kv=32, d_ff=512, num_layers=4, num_heads=8,
                    relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1)


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


def bench_jaxlt(config, batches, steps, warmup):
    import jax
    import optax

    from jaxlt import partitioning
    from jaxlt.train.engine import Trainer

    batch, lin = batches[0]["encoder_input_tokens"].shape
    lout = batches[0]["decoder_target_tokens"].shape[1]
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(3e-4, weight_decay=0.01))
    trainer = Trainer(config, batch_size=batch, feature_lengths={"inputs": lin, "targets": lout}, optimizer=tx,
                      mesh=partitioning.create_mesh((-1, 1)), z_loss=0.0)
    from jaxlt.model.network import init_params

    state = trainer.init_state(init_params(config, jax.random.key(0)))
    compile_s = trainer.compile()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        state, metrics = trainer.train_step(state, batches[i % len(batches)], seed=0)
        jax.block_until_ready(metrics["loss"])
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times, compile_s, float(metrics["loss"])


def bench_torch(config, batches, steps, warmup):
    import torch
    from transformers import MT5Config, MT5ForConditionalGeneration

    torch.manual_seed(0)
    hf = MT5Config(vocab_size=config.vocab_size, d_model=config.d_model, d_kv=config.d_kv, d_ff=config.d_ff,
                   num_layers=config.num_layers, num_decoder_layers=config.num_decoder_layers,
                   num_heads=config.num_heads, relative_attention_num_buckets=config.relative_attention_num_buckets,
                   relative_attention_max_distance=config.relative_attention_max_distance,
                   dropout_rate=config.dropout_rate, feed_forward_proj=config.feed_forward_proj,
                   tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = MT5ForConditionalGeneration(hf).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)
    tensors = [{k: torch.from_numpy(v).long() if v.dtype == np.int32 else torch.from_numpy(v) for k, v in b.items()}
               for b in batches]
    times = []
    for i in range(warmup + steps):
        b = tensors[i % len(tensors)]
        t0 = time.perf_counter()
        out = model(input_ids=b["encoder_input_tokens"], attention_mask=(b["encoder_input_tokens"] != 0).long(),
                    decoder_input_ids=b["decoder_input_tokens"], labels=b["decoder_target_tokens"])
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times, float(out.loss.detach())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench_train.py", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None,
                        help="a jaxlt config name (default: mt5_small with a 32k vocab, as benchmarks/bench_model.py)")
    parser.add_argument("--small", action="store_true", help="a narrower CPU config (d_model 256, 4+4 layers, vocab 1024)")
    parser.add_argument("--vocab", type=int, default=None, help="override the vocabulary size")
    parser.add_argument("--scan_unroll", type=int, default=None,
                        help="layers per compiled loop iteration (default: all on CPU, as gin/hardware/cpu.gin; 1 elsewhere)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inputs", type=int, default=128)
    parser.add_argument("--targets", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--skip_torch", action="store_true")
    parser.add_argument("--peak_tflops", type=float, default=None, help="device peak for MFU (e.g. 989 for H100 bf16)")
    args = parser.parse_args(argv)

    import jax

    from jaxlt.model.config import T5Config, get_config

    if args.small:
        config = T5Config(**BENCH_CONFIG, dtype=args.dtype)
    else:
        config = get_config(args.model or "mt5_small", dtype=args.dtype, **({} if args.model else {"vocab_size": 32768}))
    if args.vocab:
        config = config.replace(vocab_size=args.vocab)
    unroll = args.scan_unroll or (config.num_layers if jax.default_backend() == "cpu" else 1)
    config = config.replace(scan_unroll=unroll)
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, args.batch, args.inputs, args.targets, config.vocab_size) for _ in range(4)]
    tokens = args.batch * (args.inputs + args.targets)
    flops = model_flops(config, args.batch, args.inputs, args.targets)
    print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()} ({jax.default_backend()}), "
          f"cpu threads: {os.cpu_count()}")
    print(f"config: d_model={config.d_model} d_ff={config.d_ff} layers={config.num_layers}+{config.num_decoder_layers} "
          f"heads={config.num_heads} vocab={config.vocab_size} dtype={config.dtype} scan_unroll={config.scan_unroll}; batch {args.batch} x "
          f"({args.inputs} inputs + {args.targets} targets) = {tokens} tokens/step")
    print(f"model FLOPs: {flops['train_flops_per_step']:.4g} per step, {flops['train_flops_per_token']:.4g} per token "
          f"(non-embedding params {flops['non_embedding_params']:,}; attention scores "
          f"{100 * flops['attention_share']:.1f}% of forward)")

    jt, compile_s, jloss = bench_jaxlt(config, batches, args.steps, args.warmup)
    j_med = statistics.median(jt)
    j_tps = tokens / j_med
    print(f"jaxlt  : {j_tps:10.0f} tokens/s  (median step {1000 * j_med:.1f} ms over {len(jt)} steps; "
          f"compile {compile_s:.1f}s; loss {jloss:.3f}); achieved {flops['train_flops_per_step'] / j_med / 1e12:.3f} TFLOP/s"
          + (f", MFU {100 * flops['train_flops_per_step'] / j_med / (args.peak_tflops * 1e12):.1f}%"
             if args.peak_tflops else ""))
    if not args.skip_torch:
        if args.dtype != "float32":
            print("torch  : skipped (the PyTorch reference runs in float32 only)")
        else:
            tt, tloss = bench_torch(config, batches, args.steps, args.warmup)
            t_med = statistics.median(tt)
            t_tps = tokens / t_med
            print(f"torch  : {t_tps:10.0f} tokens/s  (median step {1000 * t_med:.1f} ms over {len(tt)} steps; "
                  f"loss {tloss:.3f}); achieved {flops['train_flops_per_step'] / t_med / 1e12:.3f} TFLOP/s")
            print(f"ratio jaxlt / torch: {j_tps / t_tps:.2f}x (target >= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
