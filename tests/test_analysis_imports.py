"""The analysis stage must not import JAX, TensorFlow, torch, flax or seqio."""
import subprocess
import sys

MODULES = [
    "jaxlt.languages", "jaxlt.features.text", "jaxlt.features.typology", "jaxlt.features.sizes",
    "jaxlt.features.model_features", "jaxlt.features.frame", "jaxlt.features.user", "jaxlt.report.paper",
    "jaxlt.stats.results", "jaxlt.stats.ledger",
    "jaxlt.stats.correlations", "jaxlt.stats.metaregression", "jaxlt.stats.nshot", "jaxlt.stats.transfer",
    "jaxlt.stats.recommend", "jaxlt.stats.pipeline", "jaxlt.report.figures", "jaxlt.report.markdown",
    "jaxlt.commands.analyze", "jaxlt.commands.recommend", "jaxlt.commands.features",
]
FORBIDDEN = ["jax", "jaxlib", "tensorflow", "torch", "flax", "seqio", "optax", "orbax"]


def test_analysis_modules_import_no_accelerator_stack(tmp_path):
    code = f"""
import sys, importlib
for name in {MODULES!r}:
    importlib.import_module(name)
from jaxlt import cli
# run the commands too (published data, tiny settings), not only import them
assert cli.main(["recommend", "--task", "tydiqa", "--target", "fi", "--top", "2"]) == 0
assert cli.main(["features", "typology", "--languages", "en,sw"]) == 0
assert cli.main(["analyze", "--results", "published:muller2022", "--tasks", "xnli", "--permutations", "20",
                 "--out", {str(tmp_path / "out")!r}, "--no-models"]) == 0
loaded = sorted(m for m in {FORBIDDEN!r} if m in sys.modules)
assert not loaded, f"analysis stage imported {{loaded}}"
print("clean")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "clean" in proc.stdout
