"""Grid cells: one evaluation of one fine-tuned model on one target, named deterministically.

A *source run* (task, source, seed) fine-tunes on the source once; its zero-shot
cells are that model evaluated on every target (source == target gives S_S).
A *few-shot cell* (task, source, target, n, seed, strategy, sampling) adds n
target examples, sequentially (continuing from the source checkpoint) or jointly
(a source + target mixture from the pre-trained model).
"""

from __future__ import annotations

import dataclasses

from jaxlt.grid.spec import GridSpec

ZERO_SHOT = "zero_shot"


@dataclasses.dataclass(frozen=True, order=True)
class SourceRun:
    task: str
    source: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.task}.{self.source}.seed{self.seed}"


@dataclasses.dataclass(frozen=True, order=True)
class Cell:
    task: str
    source: str
    seed: int
    target: str
    n: int
    strategy: str  # zero_shot, sequential, joint
    sampling: str  # "" for zero-shot (no target examples are sampled)

    @property
    def source_run(self) -> SourceRun:
        return SourceRun(self.task, self.source, self.seed)

    @property
    def zero_shot(self) -> bool:
        return self.n == 0

    @property
    def key(self) -> str:
        """Unique within a config: used as the record's file name."""
        if self.zero_shot:
            return f"{self.task}.{self.source}-{self.target}.n0.seed{self.seed}.zero_shot"
        return f"{self.task}.{self.source}-{self.target}.n{self.n}.seed{self.seed}.{self.strategy}-{self.sampling}"

    def cell_id(self, config_hash: str) -> str:
        """Deterministic id: a changed config is a different cell."""
        return f"{config_hash}/{self.key}"

    def fields(self) -> dict:
        return dataclasses.asdict(self)


def enumerate_cells(spec: GridSpec) -> list[Cell]:
    """Every cell of the grid, sorted so that cells sharing a source run are adjacent."""
    cells = []
    for task in spec.tasks:
        fewshot_sources, fewshot_targets = set(spec.sources_for(task)), set(spec.targets_for(task))
        for source in spec.all_sources_for(task):
            for seed in spec.seeds:
                for target in spec.all_targets_for(task):
                    if spec.zero_shot:
                        cells.append(Cell(task, source, seed, target, 0, ZERO_SHOT, ""))
                    if source not in fewshot_sources or target not in fewshot_targets:
                        continue  # a zero-shot-only language
                    if target == source and not spec.fewshot_same_language:
                        continue
                    for n in spec.n_values_for(task):
                        cells.append(Cell(task, source, seed, target, n, spec.strategy, spec.sampling))
    cells.sort()
    return cells


def source_runs(cells: list[Cell]) -> list[SourceRun]:
    return sorted({c.source_run for c in cells})


def cells_needing_source_checkpoint(cells: list[Cell]) -> list[Cell]:
    """Zero-shot cells evaluate the source model; sequential cells continue from it; joint ones do not."""
    return [c for c in cells if c.zero_shot or c.strategy == "sequential"]
