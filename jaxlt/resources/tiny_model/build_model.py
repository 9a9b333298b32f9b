"""Builds the bundled tiny mT5 checkpoint (config.json + model.safetensors) beside spiece.model.

Deterministic: the `mt5_tiny` config (946-piece vocabulary rounded up to 1024, d_model 64,
2+2 layers, 4 heads) randomly initialised from PRNGKey(0) by jaxlt.model.network.init_params,
written in the Hugging Face layout (transformers' MT5ForConditionalGeneration loads it).

    python jaxlt/resources/tiny_model/build_model.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 0


def build(out_dir: str = HERE) -> str:
    import jax

    from jaxlt.model.config import get_config
    from jaxlt.model.hf_io import save_hf_checkpoint
    from jaxlt.model.network import unboxed_init_params

    config = get_config("mt5_tiny")
    params = unboxed_init_params(config, jax.random.PRNGKey(SEED))
    spm = os.path.join(HERE, "spiece.model")
    same_dir = os.path.abspath(out_dir) == HERE
    save_hf_checkpoint(out_dir, config, params, spm_path=None if same_dir else spm)
    return out_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=HERE, help=f"output directory (default: {HERE})")
    print("wrote", build(parser.parse_args().out))
