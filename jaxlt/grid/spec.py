"""The grid spec: which tasks, languages, n values, seeds and strategies to run.

Declared in gin (`gin/runs/grid*.gin`) through the configurable `grid_spec`, or
built directly as a `GridSpec`. Validation of tasks and languages against what is
actually available happens in `validate_spec`, before any training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping

STRATEGIES = ("sequential", "joint")
SAMPLINGS = ("random", "shortest", "longest")
# The paper's n values (section 3).
PAPER_N_VALUES = (10, 30, 50, 100, 250, 500, 750, 1000)


class GridSpecError(ValueError):
    """A grid spec names something that does not exist or is inconsistent."""


LanguageSpec = tuple[str, ...] | Mapping[str, tuple[str, ...]]


@dataclasses.dataclass(frozen=True)
class GridSpec:
    """What to run. `sources`/`targets` are one list for every task, or a dict task -> list."""

    tasks: tuple[str, ...]
    sources: LanguageSpec
    targets: LanguageSpec
    n_values: tuple[int, ...] = PAPER_N_VALUES
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    strategy: str = "sequential"
    sampling: str = "random"
    model: str = "mt5-base"
    zero_shot: bool = True
    # Few-shot cells with source == target add target examples to a model already fine-tuned on
    # the target: not a transfer pair, so off by default (the zero-shot diagonal S_S is kept).
    fewshot_same_language: bool = False

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "n_values", tuple(int(n) for n in self.n_values))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        for name in ("sources", "targets"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                value = {str(k): _as_tuple(v, name) for k, v in value.items()}
            else:
                value = _as_tuple(value, name)
            object.__setattr__(self, name, value)
        if not self.tasks:
            raise GridSpecError("grid spec has no tasks")
        if self.strategy not in STRATEGIES:
            raise GridSpecError(f"unknown n-shot strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")
        if self.sampling not in SAMPLINGS:
            raise GridSpecError(f"unknown sampling {self.sampling!r}; known: {', '.join(SAMPLINGS)}")
        bad_n = [n for n in self.n_values if n <= 0]
        if bad_n:
            raise GridSpecError(f"n_values must be positive (zero-shot is always included): got {bad_n}")
        if len(set(self.n_values)) != len(self.n_values) or len(set(self.seeds)) != len(self.seeds):
            raise GridSpecError(f"duplicate n_values or seeds: n_values={self.n_values} seeds={self.seeds}")
        if not self.seeds:
            raise GridSpecError("grid spec has no seeds")
        for name in ("sources", "targets"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                missing = [t for t in self.tasks if t not in value]
                extra = [t for t in value if t not in self.tasks]
                if missing or extra:
                    raise GridSpecError(f"{name} is a dict but its tasks {sorted(value)} do not match tasks "
                                        f"{list(self.tasks)} (missing {missing}, extra {extra})")

    def sources_for(self, task: str) -> tuple[str, ...]:
        return self.sources[task] if isinstance(self.sources, Mapping) else self.sources

    def targets_for(self, task: str) -> tuple[str, ...]:
        return self.targets[task] if isinstance(self.targets, Mapping) else self.targets

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name in ("sources", "targets"):
            v = getattr(self, name)
            d[name] = {k: list(x) for k, x in v.items()} if isinstance(v, Mapping) else list(v)
        d["tasks"], d["n_values"], d["seeds"] = list(self.tasks), list(self.n_values), list(self.seeds)
        return d


def _as_tuple(value, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    out = tuple(str(v) for v in value)
    if not out:
        raise GridSpecError(f"grid spec has an empty {name} list")
    return out


def normalize_language(code: str) -> str:
    """ISO 639-1 through `jaxlt.languages` (the single table of codes) when it exists."""
    try:
        from jaxlt.languages import normalize
    except ImportError:  # analysis engineer's module not there yet: accept codes as written
        return code.strip().lower()
    try:
        return normalize(code)
    except (KeyError, ValueError) as e:
        raise GridSpecError(f"grid spec: {e}") from None


def normalize_spec(spec: GridSpec) -> GridSpec:
    """The spec with every language code normalised to ISO 639-1 (duplicates are an error)."""
    def norm(langs: Iterable[str], where: str) -> tuple[str, ...]:
        out = tuple(normalize_language(c) for c in langs)
        dup = sorted({c for c in out if out.count(c) > 1})
        if dup:
            raise GridSpecError(f"{where} lists the same language twice after normalisation: {dup}")
        return out

    def norm_field(value, name):
        if isinstance(value, Mapping):
            return {t: norm(v, f"{name}[{t}]") for t, v in value.items()}
        return norm(value, name)

    return dataclasses.replace(spec, sources=norm_field(spec.sources, "sources"),
                               targets=norm_field(spec.targets, "targets"))


def validate_spec(spec: GridSpec, available: Callable[[str], Iterable[str]]) -> None:
    """Checks every task and language exists; `available(task)` lists a task's languages
    (raising KeyError for an unknown task). Collects every problem into one error."""
    problems = []
    for task in spec.tasks:
        try:
            langs = set(available(task))
        except KeyError as e:
            problems.append(f"unknown task {task!r} ({e.args[0] if e.args else 'not registered'})")
            continue
        for role, wanted in (("source", spec.sources_for(task)), ("target", spec.targets_for(task))):
            unknown = [lang for lang in wanted if lang not in langs]
            if unknown:
                problems.append(f"task {task!r} has no {role} language(s) {unknown}; "
                                f"available: {', '.join(sorted(langs)) or 'none'}")
    if problems:
        raise GridSpecError("invalid grid spec:\n  " + "\n  ".join(problems))
