"""seqio Mixtures for the transfer grid, registered on demand.

`register_mixture(dataset, source, target, n, seed, strategy, sampling)` returns the name of the
mixture to train on (`data_dir` and `vocabulary`, a SentencePiece model, are explicit options;
None: the configured ones):

* `zero_shot`: the source subset alone (`source_size` examples, default per dataset);
* `sequential`: the target n-shot set alone, for continued fine-tuning of the zero-shot model
  (`training_phases` gives both phases: [source mixture, target mixture]);
* `joint`: source subset plus target n-shot set, mixed with rates proportional to their sizes, or
  `target_rate` (the target's share of sampled examples, e.g. 0.5).

Each subset is also a task of its own: `source_task(...)` -> `"{dataset}.{lang}.source{size}.seed{seed}"`,
`nshot_task(...)` -> `"{dataset}.{lang}.{n}shot.{sampling}.seed{seed}"`; both have a "train" split only
(evaluate on the per-language task `"{dataset}.{lang}"`).
"""

from __future__ import annotations

import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
import seqio

from jaxlt.data import sampling, sources
from jaxlt.data.tasks import register_examples_task, vocabulary_suffix

STRATEGIES = ("zero_shot", "sequential", "joint")
_NUM_EXAMPLES: dict[str, int] = {}  # subset task name -> number of examples


def _only_train(examples: list[dict]):
    def by_split(split: str) -> list[dict]:
        if split != "train":
            raise KeyError(f"subset tasks have only a 'train' split, not {split!r}")
        return examples
    return by_split


def source_task(dataset: str, lang: str, seed: int = 0, size: int | None = None, *,
                data_dir: str | None = None, vocabulary: str | None = None) -> str:
    """Registers the seeded source subset of `size` train examples (default per dataset, capped
    at the split size; see `sampling.source_examples`)."""
    lang = sources.check_language(dataset, lang, data_dir)
    examples = sampling.source_examples(dataset, lang, seed, size, data_dir=data_dir)
    name = f"{dataset}.{lang}.source{len(examples)}.seed{seed}{vocabulary_suffix(vocabulary)}"
    _NUM_EXAMPLES[name] = len(examples)
    return register_examples_task(name, dataset, _only_train(examples), ["train"], vocabulary)


def nshot_task(dataset: str, lang: str, n: int, seed: int = 0, sampling_: str = "random", *,
               min_length: int | None = None, max_length: int | None = None,
               data_dir: str | None = None, vocabulary: str | None = None) -> str:
    """Registers the nested n-shot set of the target language (see `jaxlt.data.sampling`)."""
    lang = sources.check_language(dataset, lang, data_dir)
    if n <= 0:
        raise ValueError(f"an n-shot task needs n > 0, got {n}")
    if not sources.get_spec(dataset).has_train(lang):
        raise ValueError(f"{dataset}.{lang} has evaluation data only: no n-shot set")
    examples = sampling.nshot_examples(dataset, lang, n, seed, sampling_, min_length=min_length,
                                       max_length=max_length, data_dir=data_dir)
    # seqio task names allow only [\w.:#]
    bounds = "" if min_length is None and max_length is None else \
        f".len{min_length or 0}_{'inf' if max_length is None else max_length}"
    name = f"{dataset}.{lang}.{n}shot.{sampling_}.seed{seed}{bounds}{vocabulary_suffix(vocabulary)}"
    return register_examples_task(name, dataset, _only_train(examples), ["train"], vocabulary)


def _add_mixture(name: str, tasks_and_rates: list[tuple[str, float]]) -> str:
    if name not in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.add(name, tasks_and_rates)
    return name


def register_mixture(dataset: str, source: str, target: str, n: int = 0, seed: int = 0,
                     strategy: str = "zero_shot", sampling: str = "random", *,
                     source_size: int | None = None, target_rate: float | None = None,
                     min_length: int | None = None, max_length: int | None = None,
                     data_dir: str | None = None, vocabulary: str | None = None) -> str:
    """Registers (once) and returns the training mixture for one grid cell (module docstring).

    `n`, `sampling`, `min_length`, `max_length` select the target set (sequential, joint);
    `source_size` the source subset (zero_shot, joint; default per dataset).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    source = sources.check_language(dataset, source, data_dir)
    target = sources.check_language(dataset, target, data_dir)
    if strategy == "zero_shot":
        if n:
            raise ValueError(f"zero_shot uses no target examples, got n={n}")
        task = source_task(dataset, source, seed, source_size, data_dir=data_dir, vocabulary=vocabulary)
        return _add_mixture(f"{task}.zero_shot", [(task, 1.0)])
    if n <= 0:
        raise ValueError(f"strategy {strategy!r} needs n > 0 target examples, got n={n}")
    target_task = nshot_task(dataset, target, n, seed, sampling, min_length=min_length,
                             max_length=max_length, data_dir=data_dir, vocabulary=vocabulary)
    if strategy == "sequential":
        return _add_mixture(f"{target_task}.sequential", [(target_task, 1.0)])
    src_task = source_task(dataset, source, seed, source_size, data_dir=data_dir, vocabulary=vocabulary)
    num_source = _NUM_EXAMPLES[src_task]
    if target_rate is None:
        rates = [(src_task, float(num_source)), (target_task, float(n))]
        rate_name = "prop"
    else:
        if not 0.0 < target_rate < 1.0:
            raise ValueError(f"target_rate must be in (0, 1), got {target_rate}")
        rates = [(src_task, 1.0 - target_rate), (target_task, float(target_rate))]
        rate_name = f"rate{target_rate:g}"
    return _add_mixture(f"{src_task}+{target_task}.joint.{rate_name}", rates)


def training_phases(dataset: str, source: str, target: str, n: int = 0, seed: int = 0,
                    strategy: str = "zero_shot", sampling: str = "random", **options) -> list[str]:
    """Mixtures to train on, in order: [source] for zero_shot, [source, target n-shot] for
    sequential, [source + target] for joint. `options` as `register_mixture`."""
    target_options = {k: v for k, v in options.items() if k in ("min_length", "max_length", "data_dir", "vocabulary")}
    source_options = {k: v for k, v in options.items() if k in ("source_size", "data_dir", "vocabulary")}
    if strategy == "sequential":
        return [register_mixture(dataset, source, target, 0, seed, "zero_shot", **source_options),
                register_mixture(dataset, source, target, n, seed, "sequential", sampling,
                                 **target_options)]
    return [register_mixture(dataset, source, target, n, seed, strategy, sampling, **options)]
