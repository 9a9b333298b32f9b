"""Runs benchmark sides in separate processes, interleaved, and summarises repetitions (min, median).

A benchmark script calls `run_interleaved(__file__, sides, argv, rounds)`: each round starts one
fresh process per side (`script --worker SIDE argv...`, the order alternating between rounds so
neither side always runs first on a warm or cold machine), and each worker prints one JSON line
(`emit(result)`) with lists of timings under any keys. `summary` gives min and median per key.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

MARK = "BENCH_RESULT "


def emit(result: dict) -> None:
    print(MARK + json.dumps(result), flush=True)


def thread_env(threads: int | None) -> dict | None:
    """Environment limiting both frameworks to `threads` CPU threads (None: their defaults, all cores)."""
    if not threads:
        return None
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                            "intra_op_parallelism_threads=1").strip()
    return env


def run_worker(script: str, side: str, argv: list[str], env: dict | None = None) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, script, "--worker", side, *argv], capture_output=True, text=True,
                          env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"the {side} worker failed (exit {proc.returncode})")
    result = json.loads(lines[-1][len(MARK):])
    result["process_seconds"] = time.perf_counter() - t0
    return result


def run_interleaved(script: str, sides: list[str], argv: list[str], rounds: int, log=print,
                    env: dict | None = None) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {side: [] for side in sides}
    for r in range(rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))
        for side in order:
            res = run_worker(script, side, argv, env)
            results[side].append(res)
            log(f"round {r + 1}/{rounds} {side:6s}: " + ", ".join(
                f"{k} " + "/".join(f"{1000 * t:.0f}" for t in v) + " ms"
                for k, v in res.items() if isinstance(v, list) and v and isinstance(v[0], float)))
    return results


def pooled(results: list[dict], key: str) -> list[float]:
    return [t for res in results for t in res[key]]


def summary(times: list[float]) -> dict:
    return {"min": min(times), "median": statistics.median(times), "n": len(times)}


def jaxlt_params(config, seed: int = 0):
    """jaxlt's random init (host numpy arrays), the weights both sides of a benchmark use."""
    import jax

    from jaxlt.model.network import unboxed_init_params

    return jax.device_get(unboxed_init_params(config, jax.random.key(seed)))


def param_count(tree) -> int:
    import jax

    return int(sum(x.size for x in jax.tree_util.tree_leaves(tree)))


def torch_model(config, params):
    """transformers' MT5ForConditionalGeneration holding exactly `params` (untied head, as google/mt5-*:
    transformers 5 ties mT5's head at construction, so lm_head gets its own Parameter). Returns
    (model, parameter count)."""
    import torch
    from transformers import MT5Config, MT5ForConditionalGeneration
    from transformers.initialization import no_init_weights

    from jaxlt.model.hf_io import params_to_state_dict

    hf = config.to_hf_dict()
    hf_config = MT5Config(**{k: v for k, v in hf.items() if k not in ("model_type", "architectures", "dense_act_fn",
                                                                       "is_gated_act", "scale_decoder_outputs")})
    with no_init_weights():  # the weights come from `params`; this also skips tying the input embeddings
        model = MT5ForConditionalGeneration(hf_config)
    model.encoder.embed_tokens.weight = model.decoder.embed_tokens.weight = model.shared.weight
    state = {k: torch.from_numpy(v) for k, v in params_to_state_dict(config, params).items()}
    model.lm_head.weight = torch.nn.Parameter(torch.empty_like(state["lm_head.weight"]))
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}, (
        missing, unexpected)
    assert model.lm_head.weight is not model.shared.weight
    assert model.encoder.embed_tokens.weight is model.shared.weight
    count = sum(p.numel() for p in model.parameters())  # shared/tied tensors counted once
    return model, int(count)
