"""benchmarks/bench_lm_head.py runs at a tiny shape (so it cannot rot) and every side's argmax
agrees with numpy's."""

import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "bench_lm_head.py")


def test_bench_lm_head_runs_at_a_tiny_shape():
    out = subprocess.run([sys.executable, SCRIPT, "--batch", "2", "--d_model", "8", "--vocab", "64",
                          "--rounds", "1", "--repeats", "2"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if "argmax equal to numpy's" in line]
    assert [line.split()[0] for line in lines] == ["xla", "openblas", "torch"]
    assert all("on 100% of rows" in line for line in lines)
    assert "xla vs torch" in out.stdout
    assert "weights held per side: xla 512, openblas 512, torch 512" in out.stdout
