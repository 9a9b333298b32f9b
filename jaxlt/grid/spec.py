"""The grid spec: which tasks, languages, n values, seeds and strategies to run.

Declared in gin (`gin/runs/grid*.gin`) through the configurable `grid_spec`, or
built directly as a `GridSpec`. Languages and n values are one list for every task or a
dict task -> list. Zero-shot-only languages (`zero_shot_sources`, `zero_shot_targets`) add
zero-shot cells but no few-shot ones (the paper's 7 extra XNLI languages; evaluation-only
targets such as Swahili PAN-X). Validation of tasks and languages against what is actually
available (and against the dataset table's training availability) happens in
`validate_spec`, before any training.
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
    """What to run. Language and n lists are one list for every task, or a dict task -> list."""

    tasks: tuple[str, ...]
    sources: LanguageSpec  # sources of zero-shot and few-shot cells
    targets: LanguageSpec  # targets of zero-shot and few-shot cells
    n_values: tuple[int, ...] | Mapping[str, tuple[int, ...]] = PAPER_N_VALUES
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    strategy: str = "sequential"
    sampling: str = "random"
    model: str = "mt5-base"
    zero_shot: bool = True
    # Few-shot cells with source == target add target examples to a model already fine-tuned on
    # the target: not a transfer pair, so off by default (the zero-shot diagonal S_S is kept).
    fewshot_same_language: bool = False
    # Extra languages for zero-shot cells only (a list for every task or a dict with some tasks).
    zero_shot_sources: LanguageSpec = ()
    zero_shot_targets: LanguageSpec = ()

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if isinstance(self.n_values, Mapping):
            object.__setattr__(self, "n_values", {str(k): tuple(int(n) for n in v) for k, v in self.n_values.items()})
        else:
            object.__setattr__(self, "n_values", tuple(int(n) for n in self.n_values))
        for name in ("sources", "targets", "zero_shot_sources", "zero_shot_targets"):
            value = getattr(self, name)
            optional = name.startswith("zero_shot")
            if isinstance(value, Mapping):
                value = {str(k): _as_tuple(v, name, optional) for k, v in value.items()}
            else:
                value = _as_tuple(value, name, optional)
            object.__setattr__(self, name, value)
        if not self.tasks:
            raise GridSpecError("grid spec has no tasks")
        if self.strategy not in STRATEGIES:
            raise GridSpecError(f"unknown n-shot strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")
        if self.sampling not in SAMPLINGS:
            raise GridSpecError(f"unknown sampling {self.sampling!r}; known: {', '.join(SAMPLINGS)}")
        if not self.seeds:
            raise GridSpecError("grid spec has no seeds")
        if len(set(self.seeds)) != len(self.seeds):
            raise GridSpecError(f"duplicate seeds: {self.seeds}")
        for name in ("sources", "targets", "n_values", "zero_shot_sources", "zero_shot_targets"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                missing = [] if name.startswith("zero_shot") else [t for t in self.tasks if t not in value]
                extra = [t for t in value if t not in self.tasks]
                if missing or extra:
                    raise GridSpecError(f"{name} is a dict but its tasks {sorted(value)} do not match tasks "
                                        f"{list(self.tasks)} (missing {missing}, extra {extra})")
        for task in self.tasks:
            n_values = self.n_values_for(task)
            bad_n = [n for n in n_values if n <= 0]
            if bad_n:
                raise GridSpecError(f"n_values must be positive (zero-shot is always included): got {bad_n}")
            if len(set(n_values)) != len(n_values):
                raise GridSpecError(f"duplicate n_values for {task}: {n_values}")
            for role in ("sources", "targets"):
                both = set(getattr(self, f"{role}_for")(task)) & set(getattr(self, f"zero_shot_{role}_for")(task))
                if both:
                    raise GridSpecError(f"{task}: {sorted(both)} listed in both {role} and zero_shot_{role}")

    def _for(self, name: str, task: str):
        value = getattr(self, name)
        return value.get(task, ()) if isinstance(value, Mapping) else value

    def sources_for(self, task: str) -> tuple[str, ...]:
        return self._for("sources", task)

    def targets_for(self, task: str) -> tuple[str, ...]:
        return self._for("targets", task)

    def n_values_for(self, task: str) -> tuple[int, ...]:
        return self._for("n_values", task)

    def zero_shot_sources_for(self, task: str) -> tuple[str, ...]:
        return self._for("zero_shot_sources", task)

    def zero_shot_targets_for(self, task: str) -> tuple[str, ...]:
        return self._for("zero_shot_targets", task)

    def all_sources_for(self, task: str) -> tuple[str, ...]:
        return self.sources_for(task) + self.zero_shot_sources_for(task)

    def all_targets_for(self, task: str) -> tuple[str, ...]:
        return self.targets_for(task) + self.zero_shot_targets_for(task)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name in ("sources", "targets", "n_values", "zero_shot_sources", "zero_shot_targets"):
            v = getattr(self, name)
            d[name] = {k: list(x) for k, x in v.items()} if isinstance(v, Mapping) else list(v)
        d["tasks"], d["seeds"] = list(self.tasks), list(self.seeds)
        return d


def _as_tuple(value, name: str, optional: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(",", " ").split() if v]
    out = tuple(str(v) for v in value)
    if not out and not optional:
        raise GridSpecError(f"grid spec has an empty {name} list")
    return out


def _iso_codes(task: str) -> bool:
    """Whether `task`'s language codes are ISO codes to normalise (a declared dataset can say no)."""
    from jaxlt.data.datasets import get_dataset, is_registered

    return not is_registered(task) or get_dataset(task).iso_languages


def normalize_language(code: str) -> str:
    """ISO 639-1 through `jaxlt.languages` (the single table of codes)."""
    from jaxlt.languages import normalize

    try:
        return normalize(code)
    except (KeyError, ValueError) as e:
        raise GridSpecError(f"grid spec: {e}") from None


def normalize_spec(spec: GridSpec) -> GridSpec:
    """The spec with every language code normalised to ISO 639-1 (duplicates are an error);
    codes of datasets declared with `iso_languages=False` are taken as written."""
    def norm(langs: Iterable[str], where: str, iso: bool) -> tuple[str, ...]:
        out = tuple(normalize_language(c) if iso else c.strip() for c in langs)
        dup = sorted({c for c in out if out.count(c) > 1})
        if dup:
            raise GridSpecError(f"{where} lists the same language twice after normalisation: {dup}")
        return out

    def norm_field(value, name):
        if isinstance(value, Mapping):
            return {t: norm(v, f"{name}[{t}]", _iso_codes(t)) for t, v in value.items()}
        if all(_iso_codes(t) for t in spec.tasks):
            return norm(value, name, True)
        if len(spec.tasks) == 1:
            return norm(value, name, False)
        raise GridSpecError(f"{name}: give a dict task -> languages when a task's codes are not ISO codes")

    fields = ("sources", "targets", "zero_shot_sources", "zero_shot_targets")
    return dataclasses.replace(spec, **{f: norm_field(getattr(spec, f), f) for f in fields})


def _training_languages(task: str) -> tuple[set[str], bool]:
    """(evaluation-only languages of a declared dataset, whether the dataset is declared)."""
    from jaxlt.data.datasets import get_dataset, is_registered

    if not is_registered(task):
        return set(), False
    return set(get_dataset(task).eval_only_languages), True


def validate_spec(spec: GridSpec, available: Callable[[str], Iterable[str]]) -> None:
    """Checks every task and language exists; `available(task)` lists a task's languages
    (raising KeyError for an unknown task). A source, or a few-shot target, must have training
    data (the dataset table's `eval_only_languages` have none). Collects every problem into one
    error."""
    problems = []
    for task in spec.tasks:
        try:
            langs = set(available(task))
        except KeyError as e:
            problems.append(f"unknown task {task!r} ({e.args[0] if e.args else 'not registered'})")
            continue
        for role, wanted in (("source", spec.all_sources_for(task)), ("target", spec.all_targets_for(task))):
            unknown = [lang for lang in wanted if lang not in langs]
            if unknown:
                problems.append(f"task {task!r} has no {role} language(s) {unknown}; "
                                f"available: {', '.join(sorted(langs)) or 'none'}")
        eval_only, _ = _training_languages(task)
        untrainable = [lang for lang in spec.all_sources_for(task) if lang in eval_only]
        if untrainable:
            problems.append(f"task {task!r}: source language(s) {untrainable} have evaluation data only")
        fewshot_into = [lang for lang in spec.targets_for(task) if lang in eval_only]
        if fewshot_into and spec.n_values_for(task):
            problems.append(f"task {task!r}: few-shot target(s) {fewshot_into} have evaluation data only; "
                            "list them in zero_shot_targets")
    if problems:
        raise GridSpecError("invalid grid spec:\n  " + "\n  ".join(problems))
