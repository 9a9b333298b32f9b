"""The grid's resolved configuration: the schedule plus the typed experiment configs, and its hash.

`GridSettings` holds the grid's own settings (executor, source and few-shot step budgets) and
the typed configs of `jaxlt.experiment` (model, optimizer with the loss, data, evaluation).
Everything that can change a number enters the config hash (`hashed_dict`, flat dotted keys
such as `optimizer.learning_rate`): two grids with different settings never share cells or a
results directory. Speed and memory knobs stay out (evaluation batch size, remat, layer-loop
unrolling, micro-batching, `pack_cells`, the toy executor's simulated step time); the mesh and
sharding rules (gin/hardware) are not settings at all. The grid axes (tasks, languages, n,
seeds, strategy, sampling) are not here either: they name cells, so extending a grid with more
targets or seeds reuses what is already finished.

The flat names of earlier versions (`grid_settings.batch_size`, `.learning_rate`, `.eval_split`
...) still work, as constructor arguments and gin bindings, and as read-only attributes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping

from jaxlt.experiment import DataConfig, EvalConfig, ModelConfig, OptimizerConfig, flat_dict

EXECUTORS = ("trainer", "toy")

# flat name of earlier versions -> (section, field of the typed config)
FLAT_NAMES = {
    "pretrained": ("model", "pretrained"), "init_seed": ("model", "init_seed"),
    "vocabulary": ("model", "vocabulary"),
    "learning_rate": ("optimizer", "learning_rate"),
    "data_dir": ("data", "data_dir"), "batch_size": ("data", "batch_size"),
    "input_length": ("data", "input_length"), "target_length": ("data", "target_length"),
    "source_size": ("data", "source_size"),
    "eval_split": ("evaluation", "split"), "eval_batch_size": ("evaluation", "batch_size"),
    "max_eval_examples": ("evaluation", "max_examples"),
    "max_decode_length": ("evaluation", "max_decode_length"),
    "rank_classification": ("evaluation", "rank_classification"),
}
SECTION_TYPES = {"model": ModelConfig, "optimizer": OptimizerConfig, "data": DataConfig,
                 "evaluation": EvalConfig}
# Settings of the grid itself that change no result.
RESULT_NEUTRAL = ("toy_step_seconds", "pack_cells")


def _flat_property(section: str, field: str):
    return property(lambda self: getattr(getattr(self, section), field),
                    doc=f"`{section}.{field}` (flat name of earlier versions)")


@dataclasses.dataclass(frozen=True, init=False)
class GridSettings:
    executor: str
    # Training budgets in steps: one number, or a dict task -> steps (the paper's source sets
    # differ 45x in size). Joint cells train for the source budget.
    source_steps: int | Mapping[str, int]
    fewshot_steps: int | Mapping[str, int]
    toy_step_seconds: float  # toy executor only: simulated work per step
    # Few-shot cells trained together in one compiled step (parameters stacked, jax.vmap);
    # 1 = one cell at a time, 0 = chosen from device memory. Speed only: results are the same.
    pack_cells: int
    # A source run that diverges (non-finite loss, gradient or parameters) is retried up to
    # `divergence_retries` times, each time at the learning rate times `retry_lr_factor`; if it
    # still diverges its cells are recorded as "diverged". Hashed (when retries > 0): changes results.
    divergence_retries: int
    retry_lr_factor: float
    # Share of each sequential few-shot batch drawn from the source language's training set
    # (rehearsal): 0 = the paper's protocol (the n target examples only). A small model fine-tuned
    # on n examples alone forgets the task (the lab's NER scores fell below zero-shot at every n);
    # replaying source examples keeps it while the target examples are learnt. Hashed when > 0.
    fewshot_replay: float
    # Sequential few-shot runs restart the optimizer: True repeats the schedule's warmup, False
    # starts at the rate the schedule reaches after it (`optimizer.warmup_steps`), with a fresh
    # Adam state either way. Hashed when False.
    fewshot_warmup: bool
    # Peak learning rate of sequential few-shot runs: one number or a dict task -> rate; 0 = the
    # optimizer's (`optimizer.learning_rate`, the paper's protocol). Few-shot runs see a handful of
    # examples many times: at the source's rate the lab's NER model learns its n sentences by heart
    # (benchmarks/README.md, lab section). Hashed when set.
    fewshot_learning_rate: float | Mapping[str, float]
    model: ModelConfig
    optimizer: OptimizerConfig
    data: DataConfig
    evaluation: EvalConfig

    def __init__(self, executor: str = "trainer", source_steps: int = 100, fewshot_steps: int = 20,
                 toy_step_seconds: float = 0.0, pack_cells: int = 1, divergence_retries: int = 0,
                 retry_lr_factor: float = 0.1, fewshot_replay: float = 0.0, fewshot_warmup: bool = True,
                 fewshot_learning_rate: float | Mapping[str, float] = 0.0, model: ModelConfig | None = None,
                 optimizer: OptimizerConfig | None = None, data: DataConfig | None = None,
                 evaluation: EvalConfig | None = None, **flat):
        unknown = sorted(set(flat) - set(FLAT_NAMES))
        if unknown:
            raise TypeError(f"GridSettings got unknown setting(s) {unknown}; known: executor, source_steps, "
                            f"fewshot_steps, toy_step_seconds, pack_cells, divergence_retries, retry_lr_factor, fewshot_replay, fewshot_warmup, fewshot_learning_rate, model, optimizer, data, evaluation, "
                            f"{', '.join(FLAT_NAMES)}")
        sections = {"model": model or ModelConfig(), "optimizer": optimizer or OptimizerConfig(),
                    "data": data or DataConfig(), "evaluation": evaluation or EvalConfig()}
        by_section: dict[str, dict] = {}
        for name, value in flat.items():
            section, field = FLAT_NAMES[name]
            by_section.setdefault(section, {})[field] = value
        for section, changes in by_section.items():
            sections[section] = dataclasses.replace(sections[section], **changes)
        for name, value in dict(executor=executor, source_steps=source_steps, fewshot_steps=fewshot_steps,
                                toy_step_seconds=toy_step_seconds, pack_cells=pack_cells,
                                divergence_retries=divergence_retries, retry_lr_factor=retry_lr_factor,
                                fewshot_replay=float(fewshot_replay), fewshot_warmup=bool(fewshot_warmup),
                                fewshot_learning_rate=fewshot_learning_rate,
                                **sections).items():
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __post_init__(self):
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown grid executor {self.executor!r}; known: {', '.join(EXECUTORS)}")
        for name in ("source_steps", "fewshot_steps"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                value = {str(k): int(v) for k, v in value.items()}
                object.__setattr__(self, name, value)
            if not value or any(int(v) <= 0 for v in (value.values() if isinstance(value, Mapping) else [value])):
                raise ValueError(f"grid setting {name} must be positive (or a dict task -> positive steps), "
                                 f"got {getattr(self, name)}")
        rate = self.fewshot_learning_rate
        rate = {str(k): float(v) for k, v in rate.items()} if isinstance(rate, Mapping) else float(rate)
        object.__setattr__(self, "fewshot_learning_rate", rate)
        rates = list(rate.values()) if isinstance(rate, Mapping) else [rate] if rate else []
        if (isinstance(rate, Mapping) and not rate) or any(v <= 0 for v in rates):
            raise ValueError(f"grid setting fewshot_learning_rate must be positive (or a dict task -> positive "
                             f"rate; 0 = the optimizer's), got {self.fewshot_learning_rate}")
        if int(self.pack_cells) < 0:
            raise ValueError(f"grid setting pack_cells must be >= 0 (0 = from device memory), got {self.pack_cells}")
        if int(self.divergence_retries) < 0 or not 0 < float(self.retry_lr_factor) < 1:
            raise ValueError(f"grid settings divergence_retries must be >= 0 and retry_lr_factor in (0, 1), got "
                             f"{self.divergence_retries} and {self.retry_lr_factor}")
        if not 0 <= self.fewshot_replay < 1:
            raise ValueError(f"grid setting fewshot_replay must be in [0, 1), got {self.fewshot_replay}")
        if self.fewshot_replay and not 0 < self.replay_rows < self.data.batch_size:
            raise ValueError(f"grid setting fewshot_replay {self.fewshot_replay} of a batch of {self.data.batch_size} "
                             f"leaves no room for the source or the target examples")
        for section, cls in SECTION_TYPES.items():
            if not isinstance(getattr(self, section), cls):
                raise TypeError(f"GridSettings.{section} must be a {cls.__name__}")

    def sections(self) -> dict:
        return {name: getattr(self, name) for name in SECTION_TYPES}

    def to_dict(self) -> dict:
        """The whole resolved configuration, flat (`optimizer.learning_rate`, ...)."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in SECTION_TYPES}
        return {**own, **flat_dict(self.sections())}

    def hashed_dict(self, tasks=()) -> dict:
        """What identifies results: every setting that can change a number (see the module docstring).
        With the grid's `tasks`, `evaluation.split` is the split each task is scored on ({task: split},
        the setting resolved through the dataset table), not the setting ("" = each dataset's own)."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in SECTION_TYPES and f.name not in RESULT_NEUTRAL}
        if not own["divergence_retries"]:  # without retries the factor changes nothing (older hashes hold)
            del own["divergence_retries"], own["retry_lr_factor"]
        for name, default in (("fewshot_replay", 0.0), ("fewshot_warmup", True), ("fewshot_learning_rate", 0.0)):
            if own[name] == default:  # the paper's protocol: hashes of earlier versions hold
                del own[name]
        out = {**own, **flat_dict(self.sections(), result_only=True)}
        if tasks:
            out["evaluation.split"] = {task: self.eval_split_for(task) for task in sorted(tasks)}
        return out

    def _per_task(self, name: str, task: str, what: str):
        """Setting `name` for `task`: the one value, or the task's entry of a per-task dict."""
        value = getattr(self, name)
        if not isinstance(value, Mapping):
            return value
        if task not in value:
            raise KeyError(f"grid setting {name} has no {what} for task {task!r} (it has {', '.join(value)})")
        return value[task]

    def source_steps_for(self, task: str) -> int:
        return int(self._per_task("source_steps", task, "steps"))

    def fewshot_steps_for(self, task: str) -> int:
        return int(self._per_task("fewshot_steps", task, "steps"))

    def cell_steps(self, cell) -> int:
        """A few-shot cell's steps: the few-shot budget (sequential) or the source budget (joint)."""
        return self.fewshot_steps_for(cell.task) if cell.strategy == "sequential" else self.source_steps_for(cell.task)

    def learning_rate_for(self, cell) -> float:
        """The peak learning rate a cell trains at: `fewshot_learning_rate` (for its task) for a
        sequential few-shot cell when set, else the optimizer's."""
        if cell.strategy != "sequential" or cell.zero_shot or not self.fewshot_learning_rate:
            return float(self.optimizer.learning_rate)
        return self._per_task("fewshot_learning_rate", cell.task, "rate")

    @property
    def replay_rows(self) -> int:
        """Source examples in each sequential few-shot batch (`fewshot_replay` of the batch, rounded)."""
        return int(round(self.fewshot_replay * self.data.batch_size))

    def schedule_start(self, cell) -> int:
        """Where a cell's learning-rate schedule starts: past the warmup for a sequential few-shot
        cell when `fewshot_warmup` is False, else at 0."""
        if cell.strategy == "sequential" and not cell.zero_shot and not self.fewshot_warmup:
            return int(self.optimizer.warmup_steps)
        return 0

    def check_tasks(self, tasks) -> None:
        """Every per-task setting covers every task of the grid (before any work)."""
        for task in tasks:
            self.source_steps_for(task)
            self.fewshot_steps_for(task)
            self.data.lengths_for(task)
            self._per_task("fewshot_learning_rate", task, "rate")

    def lengths_for(self, task: str) -> dict[str, int]:
        return self.data.lengths_for(task)

    def decode_length_for(self, task: str) -> int:
        return self.evaluation.decode_length(self.data, task)

    def eval_split_for(self, task: str) -> str:
        return self.evaluation.split_for(task)

    @property
    def decode_length(self) -> int:
        return self.evaluation.decode_length(self.data)


for _name, (_section, _field) in FLAT_NAMES.items():
    setattr(GridSettings, _name, _flat_property(_section, _field))
del _name, _section, _field
# Read as numbers by callers: the resolved decode length (0 means the target length).
GridSettings.max_decode_length = property(lambda self: self.decode_length,
                                          doc="the decode length in effect (`evaluation.max_decode_length` "
                                              "or `data.target_length`)")


def config_hash(settings: GridSettings, model: str, tasks=()) -> str:
    """A short stable hash of the settings that change results (the evaluation split resolved for
    each of the grid's `tasks`), plus the model name."""
    payload = json.dumps({"model": model, **settings.hashed_dict(tasks)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:12]
