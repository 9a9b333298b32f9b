"""Estimated cost of the paper's whole grid (runs/grid_paper.gin) per accelerator type.

Analytic FLOPs, not a measurement: the planned cells and training steps come from the preset
itself (the same planning code as `jaxlt grid --dry_run`); FLOPs per training step and per
decoded example from mT5-base's shapes (matrix multiplies and attention, 2 FLOPs per
multiply-add, backward = 2 x forward); the time from an assumed model-FLOPs utilisation (MFU).
Evaluation-set sizes are the public splits' (XNLI test 5,010 per language; PAN-X test 10,000,
1,000 for hi and sw; TyDiQA-GoldP validation per language); generated lengths are assumptions
stated below. Prints a markdown table (the README's).

    python benchmarks/paper_grid_cost.py [--train_mfu 0.4] [--decode_mfu 0.1]
"""

from __future__ import annotations

import argparse
import collections

# bf16 dense peak, TFLOP/s per chip (vendor data sheets)
ACCELERATORS = {
    "NVIDIA A100 (80 GB)": 312, "NVIDIA H100 SXM": 989, "NVIDIA H200": 989,
    "TPU v4 (per chip)": 275, "TPU v5e (per chip)": 197, "TPU v5p (per chip)": 459,
}
EVAL_EXAMPLES = {
    "xnli": collections.defaultdict(lambda: 5010),
    "panx": collections.defaultdict(lambda: 10000, {"hi": 1000, "sw": 1000}),
    "tydiqa": {"en": 440, "ar": 921, "bn": 113, "fi": 782, "id": 565, "ru": 812, "sw": 499},
}
DECODED_TOKENS = {"xnli": 4, "panx": 64, "tydiqa": 16}  # assumed mean generated length, EOS included


def matmul_params(c) -> tuple[int, int, int]:
    """Multiply-accumulate weights touched per token: encoder layers, decoder layers, LM head."""
    attn = 4 * c.d_model * c.num_heads * c.d_kv
    ffn = (3 if c.feed_forward_proj.startswith("gated") else 2) * c.d_model * c.d_ff
    return c.num_layers * (attn + ffn), c.num_decoder_layers * (2 * attn + ffn), c.d_model * c.vocab_size


def forward_flops(c, enc_len: int, dec_len: int) -> float:
    """One example's forward pass, teacher-forced (FLOPs)."""
    enc, dec, head = matmul_params(c)
    inner = c.num_heads * c.d_kv
    attention = (4 * inner * (c.num_layers * enc_len * enc_len
                              + c.num_decoder_layers * (dec_len * dec_len + dec_len * enc_len)))
    return 2 * (enc * enc_len + (dec + head) * dec_len) + attention


def decode_flops(c, enc_len: int, generated: int) -> float:
    """Greedy decoding with a key/value cache: the encoder once, the decoder per generated token."""
    enc, dec, head = matmul_params(c)
    inner = c.num_heads * c.d_kv
    per_token = 2 * (dec + head) + 4 * inner * c.num_decoder_layers * (enc_len + generated / 2)
    return 2 * enc * enc_len + 4 * inner * c.num_layers * enc_len * enc_len + generated * per_token


def plan():
    """(settings, cells, source runs) of runs/grid_paper.gin, through the grid's own planning."""
    from jaxlt.commands.grid import parse_grid_gin
    from jaxlt.grid import configurables
    from jaxlt.grid.cells import enumerate_cells, source_runs
    from jaxlt.grid.spec import normalize_spec

    parse_grid_gin(["runs/grid_paper.gin"], [], "")
    spec, settings = configurables.from_gin()
    cells = enumerate_cells(normalize_spec(spec))
    return settings, cells, source_runs(cells)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train_mfu", type=float, default=0.4)
    p.add_argument("--decode_mfu", type=float, default=0.1, help="greedy decoding is memory-bound")
    args = p.parse_args()
    from jaxlt.model.config import get_config

    config = get_config("mt5_base")
    settings, cells, runs = plan()
    data = settings.data
    steps = sum(settings.source_steps_for(r.task) for r in runs) + sum(
        settings.cell_steps(c) for c in cells if not c.zero_shot)
    train = 3 * forward_flops(config, data.input_length, data.target_length) * data.batch_size * steps
    decode = sum(EVAL_EXAMPLES[c.task][c.target] * decode_flops(config, data.input_length, DECODED_TOKENS[c.task])
                 for c in cells)
    print(f"cells {len(cells)}, source fine-tunes {len(runs)}, training steps {steps:,} of "
          f"{data.batch_size} x ({data.input_length} + {data.target_length}) tokens; "
          f"evaluations {len(cells)} ({sum(EVAL_EXAMPLES[c.task][c.target] for c in cells):,} decoded examples)")
    print(f"training {train:.3g} FLOPs at MFU {args.train_mfu:g}; evaluation {decode:.3g} FLOPs at MFU "
          f"{args.decode_mfu:g}\n")
    print("| accelerator | peak bf16 TFLOP/s | training (chip-hours) | evaluation (chip-hours) | total (chip-hours) |")
    print("|---|---:|---:|---:|---:|")
    for name, peak in ACCELERATORS.items():
        t = train / (peak * 1e12 * args.train_mfu) / 3600
        e = decode / (peak * 1e12 * args.decode_mfu) / 3600
        print(f"| {name} | {peak} | {t:,.0f} | {e:,.0f} | {t + e:,.0f} |")


if __name__ == "__main__":
    main()
