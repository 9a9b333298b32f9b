"""Run-level settings that change results (model, training budget, evaluation), and their hash.

Everything here enters the config hash: two grids with different settings never
share cells or a results directory. The grid axes (tasks, languages, n, seeds,
strategy, sampling) are not here: they name cells, so extending a grid with
more targets or seeds reuses what is already finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

EXECUTORS = ("trainer", "toy")


@dataclasses.dataclass(frozen=True)
class GridSettings:
    executor: str = "trainer"
    # Pre-trained model: a Hugging Face / jaxlt checkpoint directory, or "init:CONFIG_NAME"
    # for a freshly initialised model (tiny demo and tests; seeded by `init_seed`).
    pretrained: str = "init:mt5_tiny"
    init_seed: int = 0
    vocabulary: str = ""  # SentencePiece model; "" = the checkpoint's, or the bundled tiny one for init:
    data_dir: str = ""  # local data directory ("" = HF hub ids / JAXLT_DATA_DIR)
    source_steps: int = 100
    fewshot_steps: int = 20
    batch_size: int = 8
    input_length: int = 64
    target_length: int = 16
    learning_rate: float = 3e-4
    eval_split: str = "test"
    eval_batch_size: int = 16
    max_eval_examples: int = 0  # 0 = the whole split
    max_decode_length: int = 16
    rank_classification: bool = False
    # How many source training examples: 0 = the paper's size for the dataset
    # (jaxlt.data.sampling.source_sizes), -1 = the whole train split.
    source_size: int = 0
    toy_step_seconds: float = 0.0  # toy executor only: simulated work per step
    # Few-shot cells trained together in one compiled step (parameters stacked, jax.vmap);
    # 1 = one cell at a time, 0 = chosen from device memory. Speed only: results are the same.
    pack_cells: int = 1

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown grid executor {self.executor!r}; known: {', '.join(EXECUTORS)}")
        for name in ("source_steps", "fewshot_steps", "batch_size", "input_length", "target_length",
                     "eval_batch_size", "max_decode_length"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"grid setting {name} must be positive, got {getattr(self, name)}")
        if int(self.pack_cells) < 0:
            raise ValueError(f"grid setting pack_cells must be >= 0 (0 = from device memory), got {self.pack_cells}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hashed_dict(self) -> dict:
        """What identifies results: everything but pure speed knobs. The mesh and sharding rules
        (gin/hardware) are not settings at all: they change speed, not results."""
        d = self.to_dict()
        for speed_only in ("eval_batch_size", "toy_step_seconds", "pack_cells"):
            d.pop(speed_only)
        return d


def config_hash(settings: GridSettings, model: str) -> str:
    """A short stable hash of the settings that change results, plus the model name."""
    payload = json.dumps({"model": model, **settings.hashed_dict()}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:12]
