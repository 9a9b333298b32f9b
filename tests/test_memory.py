"""Training memory from XLA's compiled memory analysis, and the choice of settings that fit."""

import numpy as np
import pytest

from jaxlt import partitioning as P
from jaxlt.model.config import get_config
from jaxlt.train import memory

FAST = {"xla_backend_optimization_level": 0}
CFG = get_config("mt5_tiny", dropout_rate=0.0, num_layers=3)
LENGTHS = {"inputs": 64, "targets": 16}
BATCH = 16


def _estimate(remat="none", accumulation=1):
    return memory.train_step_memory(CFG.replace(remat=remat), BATCH, LENGTHS, mesh=P.create_mesh((1, 1)),
                                    accumulation_steps=accumulation, compiler_options=FAST)


def _param_count(config):
    import jax
    from flax import linen as nn

    from jaxlt.model.network import param_shapes

    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.meta.unbox(param_shapes(config))))


def test_state_and_arguments_are_exact_and_remat_and_microbatches_save_temporaries():
    base, full, micro = _estimate(), _estimate("full"), _estimate("none", 4)
    # Adam (default optimizer, clipping has no state): params + two moments, float32, one device
    n = _param_count(CFG)
    assert 3 * 4 * n < base.state_bytes <= 3 * 4 * n + 16  # + a few int32 step counters
    batch_bytes = 4 * BATCH * (2 * LENGTHS["targets"] + LENGTHS["targets"] + LENGTHS["inputs"])
    assert 0 <= base.argument_bytes - base.state_bytes - batch_bytes <= 8  # (+ the dropout key)
    assert full.temp_bytes < base.temp_bytes and micro.temp_bytes < base.temp_bytes
    assert base.total_bytes == base.argument_bytes + base.output_bytes - base.alias_bytes + base.temp_bytes
    line = memory.format_estimate(base, 1e12)
    assert "remat='none', accumulation_steps=1" in line and "fits" in line


def test_choose_takes_the_fastest_setting_that_fits():
    kwargs = dict(mesh=P.create_mesh((1, 1)), compiler_options=FAST, remat_order=("none",), max_accumulation=2)
    chosen, tried = memory.choose_memory_settings(CFG, BATCH, LENGTHS, 1e12, **kwargs)
    assert (chosen.remat, chosen.accumulation_steps) == ("none", 1) and len(tried) == 1
    chosen, tried = memory.choose_memory_settings(CFG, BATCH, LENGTHS, 1.0, **kwargs)  # 1 byte: nothing fits
    assert chosen is None and [(e.remat, e.accumulation_steps) for e in tried] == [("none", 1), ("none", 2)]
    assert memory.candidate_settings(128, 8, 4) == [(r, a) for a in (1, 2, 4) for r in memory.REMAT_ORDER]
    assert memory.candidate_settings(16, 8, 4) == [(r, a) for a in (1, 2) for r in memory.REMAT_ORDER]


def test_device_memory_table():
    assert memory.device_memory_bytes("NVIDIA H100 80GB HBM3") == 80e9
    assert memory.device_memory_bytes("TPU v5 lite") == 16 * memory.GIB
    assert memory.device_memory_bytes("cpu") is None
