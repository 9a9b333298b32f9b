"""benchmarks/accelerator.py runs end to end with tiny shapes on the CPU, so it cannot rot."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))


def test_peak_table():
    import accelerator

    assert accelerator.peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert accelerator.peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert accelerator.peak_flops("TPU v5 lite") == 197e12
    assert accelerator.peak_flops("cpu") is None


@pytest.mark.slow
def test_accelerator_report_runs_tiny_on_cpu(capsys):
    import accelerator

    results = accelerator.main(["--tiny"])
    out = capsys.readouterr().out
    for name in ("128x512", "xnli"):
        r = results[name]
        assert r["tokens_per_s"] > 0 and r["estimate_bytes"] > 0 and r["mfu"] is None  # no peak for a CPU
        assert r["loss"] == r["loss"]  # finite, not NaN
    assert results["greedy"]["tokens_per_s"] > 0
    assert results["packed"]["cells_per_hour"] > 0 and results["packed"]["pack"] == 2
    assert "MFU n/a" in out and "cells/hour" in out and "memory per device (XLA estimate)" in out
