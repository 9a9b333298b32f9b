"""Typed experiment configuration: model, optimizer (with the loss), data and evaluation.

Built once from gin at the command line (`jaxlt.experiment_gin.from_gin`,
`jaxlt.grid.configurables.from_gin`) and passed explicitly to the library: this module has no
gin dependency, and nothing below the commands reads gin or module globals.
`jaxlt train`, `jaxlt evaluate` and `jaxlt grid` read the same gin names, so the same bindings
train the same way in all three:

    jaxlt.train.model_settings.{dtype, param_dtype, dropout_rate, remat, scan_unroll,
                                logits_chunk_size, pretrained, init_seed, vocabulary} -> ModelConfig
    OptimizerConfig.{name, learning_rate, clip_norm, warmup_steps, decay_steps, weight_decay,
                     b1, b2, eps, z_loss, label_smoothing, loss_normalizing_factor}
    DataConfig.{data_dir, batch_size, input_length, target_length, source_size,
                accumulation_steps}
    EvalConfig.{split, batch_size, max_examples, max_decode_length, rank_classification}

Defaults are the paper's recipe (Appendix A.4): Adam, learning rate 3e-4, global-norm clipping
1.0, batch 128, input length 512, and the plain mean token cross-entropy (no z-loss, no
constant normaliser, no label smoothing), as its PyTorch / transformers fine-tuning.

Every field can change a result except those listed in each class's `RESULT_NEUTRAL` (speed and
memory knobs: evaluation batch size, rematerialisation, layer-loop unrolling, the loss's vocabulary
chunks, micro-batching);
`flat_dict(..., result_only=True)` gives the keys the grid hashes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from jaxlt.errors import ConfigError  # noqa: F401  (raised here; callers catch it from jaxlt.errors)

LOSS_FIELDS = ("z_loss", "label_smoothing", "loss_normalizing_factor")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The pre-trained model and the overrides applied to its config."""

    # A Hugging Face / jaxlt checkpoint directory or hub id, or "init:CONFIG_NAME" for a freshly
    # initialised model seeded by `init_seed` (tiny demo and tests). `jaxlt train` takes its
    # checkpoint from INITIAL_CHECKPOINT_PATH instead.
    pretrained: str = "init:mt5_tiny"
    init_seed: int = 0
    vocabulary: str = ""  # SentencePiece model; "" = the checkpoint's (bundled tiny one for init:)
    dtype: str = "float32"  # activations / compute
    param_dtype: str = "float32"
    dropout_rate: float | None = None  # None: the checkpoint's
    remat: str = "none"
    scan_unroll: int = 1
    # Vocabulary columns per chunk of the training loss (the full float32 logits are never
    # materialised); None: 16,384 at mT5's 250,112 vocabulary, plain below 65,536; 0: plain.
    # Equal to the plain loss within float tolerance (tests/test_chunked_loss.py), like remat.
    logits_chunk_size: int | None = None

    RESULT_NEUTRAL: ClassVar[tuple[str, ...]] = ("remat", "scan_unroll", "logits_chunk_size")

    def __post_init__(self):
        _check(self.dtype in ("float32", "bfloat16", "float16"), f"model dtype {self.dtype!r} is not "
               "float32, bfloat16 or float16")
        _check(self.param_dtype in ("float32", "bfloat16"), f"model param_dtype {self.param_dtype!r} is "
               "not float32 or bfloat16")
        _check(self.dropout_rate is None or 0.0 <= self.dropout_rate < 1.0,
               f"model dropout_rate must be in [0, 1), got {self.dropout_rate}")
        _check(int(self.scan_unroll) >= 1, f"model scan_unroll must be >= 1, got {self.scan_unroll}")
        _check(self.logits_chunk_size is None or int(self.logits_chunk_size) >= 0,
               f"model logits_chunk_size must be >= 0 or None, got {self.logits_chunk_size}")

    def overrides(self) -> dict[str, Any]:
        """Fields applied on top of a checkpoint's (or a named) model config."""
        out = {"dtype": self.dtype, "param_dtype": self.param_dtype, "remat": self.remat,
               "scan_unroll": int(self.scan_unroll)}
        if self.dropout_rate is not None:
            out["dropout_rate"] = float(self.dropout_rate)
        if self.logits_chunk_size is not None:
            out["logits_chunk_size"] = int(self.logits_chunk_size)
        return out


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer, schedule and loss (the paper: Adam 3e-4, clipping 1.0, plain mean cross-entropy)."""

    name: str = "adam"
    learning_rate: float = 3e-4
    clip_norm: float | None = 1.0
    warmup_steps: int = 0
    decay_steps: int | None = None
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    z_loss: float = 0.0
    label_smoothing: float = 0.0
    loss_normalizing_factor: float | None = None  # None: the number of real target tokens

    RESULT_NEUTRAL: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        _check(self.learning_rate > 0, f"optimizer learning_rate must be > 0, got {self.learning_rate}")
        _check(self.clip_norm is None or self.clip_norm > 0,
               f"optimizer clip_norm must be > 0 or None, got {self.clip_norm}")
        _check(self.z_loss >= 0 and 0 <= self.label_smoothing < 1,
               f"loss z_loss must be >= 0 and label_smoothing in [0, 1), got {self.z_loss}, {self.label_smoothing}")
        _check(self.loss_normalizing_factor is None or self.loss_normalizing_factor > 0,
               f"loss_normalizing_factor must be > 0 or None, got {self.loss_normalizing_factor}")

    def make(self):
        """The optax transformation (`jaxlt.train.optimizer.make_optimizer`, every argument explicit)."""
        from jaxlt.train.optimizer import make_optimizer

        return make_optimizer(self.name, self.learning_rate, self.clip_norm, self.warmup_steps, self.decay_steps,
                              self.weight_decay, self.b1, self.b2, self.eps)

    def loss_kwargs(self) -> dict[str, Any]:
        """The Trainer's explicit loss arguments."""
        return {name: getattr(self, name) for name in LOSS_FIELDS}


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it is batched."""

    data_dir: str = ""  # local data directory; "" = the Hugging Face hub (or a dataset's own data_dir)
    batch_size: int = 128
    # Token lengths: one number, or a dict task -> length (tasks differ: an NLI target is a label,
    # an NER target repeats the sentence); each task trains and is evaluated at its own lengths.
    input_length: int | Mapping[str, int] = 512
    target_length: int | Mapping[str, int] = 128
    # Source training examples: 0 = the dataset's declared (paper) size, -1 = the whole train split.
    source_size: int = 0
    # Micro-batches per step (the update equals the full batch's: memory, not results).
    accumulation_steps: int = 1

    RESULT_NEUTRAL: ClassVar[tuple[str, ...]] = ("accumulation_steps",)

    def __post_init__(self):
        for name in ("input_length", "target_length"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                _check(bool(value) and all(isinstance(v, int) and v > 0 for v in value.values()),
                       f"data {name} must be a positive number or a dict task -> positive number, got {value}")
                object.__setattr__(self, name, {str(k): int(v) for k, v in value.items()})
            else:
                _check(int(value) > 0, f"data {name} must be positive, got {value}")
        for name in ("batch_size", "accumulation_steps"):
            _check(int(getattr(self, name)) > 0, f"data {name} must be positive, got {getattr(self, name)}")
        _check(self.batch_size % self.accumulation_steps == 0,
               f"data batch_size {self.batch_size} is not divisible by accumulation_steps {self.accumulation_steps}")
        _check(int(self.source_size) >= -1, f"data source_size must be >= -1, got {self.source_size}")

    @property
    def lengths(self) -> dict[str, int]:
        """The lengths, or with per-task lengths the longest of each (memory estimates, one-task runs)."""
        longest = lambda v: max(v.values()) if isinstance(v, Mapping) else int(v)  # noqa: E731
        return {"inputs": longest(self.input_length), "targets": longest(self.target_length)}

    def lengths_for(self, task: str) -> dict[str, int]:
        """`{"inputs": ..., "targets": ...}` of `task` (ConfigError when a per-task dict lacks it)."""
        out = {}
        for feature, name in (("inputs", "input_length"), ("targets", "target_length")):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                _check(task in value, f"data {name} has no length for task {task!r} (it has {', '.join(value)})")
                value = value[task]
            out[feature] = int(value)
        return out


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """How models are scored."""

    split: str = ""  # "" = each dataset's declared evaluation split (TyDiQA: validation, else test)
    batch_size: int = 16
    max_examples: int = 0  # 0 = the whole split
    max_decode_length: int = 0  # 0 = DataConfig.target_length (the task's)
    rank_classification: bool = False

    RESULT_NEUTRAL: ClassVar[tuple[str, ...]] = ("batch_size",)

    def __post_init__(self):
        _check(int(self.batch_size) > 0, f"evaluation batch_size must be positive, got {self.batch_size}")
        _check(int(self.max_examples) >= 0, f"evaluation max_examples must be >= 0, got {self.max_examples}")
        _check(int(self.max_decode_length) >= 0,
               f"evaluation max_decode_length must be >= 0, got {self.max_decode_length}")

    def split_for(self, task: str) -> str:
        """The split scored for `task`: the explicit one, else the dataset's declared one."""
        if self.split:
            return self.split
        from jaxlt.data.datasets import get_dataset, is_registered

        return get_dataset(task).eval_split if is_registered(task) else "test"

    def decode_length(self, data: DataConfig, task: str | None = None) -> int:
        """Tokens decoded: `max_decode_length`, else the target length (`task`'s; without a task,
        the longest)."""
        return int(self.max_decode_length) or (data.lengths_for(task) if task else data.lengths)["targets"]


SECTIONS: dict[str, type] = {"model": ModelConfig, "optimizer": OptimizerConfig, "data": DataConfig,
                             "evaluation": EvalConfig}


def flat_dict(configs: Mapping[str, Any], result_only: bool = False) -> dict[str, Any]:
    """`{"optimizer.learning_rate": 3e-4, ...}` for {section: config}; with `result_only`, without the
    fields that cannot change a result."""
    out = {}
    for section, config in configs.items():
        neutral = getattr(config, "RESULT_NEUTRAL", ())
        for field in dataclasses.fields(config):
            if result_only and field.name in neutral:
                continue
            out[f"{section}.{field.name}"] = _jsonable(getattr(config, field.name))
    return out


def _jsonable(value):
    if isinstance(value, tuple):
        return list(value)
    return value
