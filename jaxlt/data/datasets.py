"""One declaration per dataset: where its data lives, its languages, format, metric and paper facts.

Everything in jaxlt that needs to know something about a dataset (text-to-text format, plain
text for span corruption, references for scoring, metric and main score, which languages can be
trained on, which split is evaluated, the paper's source size) reads it from a `DatasetSpec`
in this table, in the spirit of seqio's task registry. Nothing else branches on dataset names.

Built-in datasets: xnli, panx, tydiqa (the paper's three), pawsx, xquad.

API
---
* `DatasetSpec`: a frozen dataclass declaring one dataset (fields documented below).
* `register_dataset(spec, replace=False)`: adds a spec to the table (idempotent for an equal
  spec; a different spec under a taken name is an error unless `replace=True`).
* `get_dataset(name)`: the spec, or a KeyError listing the known names; `dataset_names()`.
* Builders that fill in format, validation, plain text, metric and main score for the three
  kinds of task the study uses: `classification_dataset`, `ner_dataset`, `qa_dataset`.

Declaring a dataset that is not on the hub, with arbitrary language codes (what the
synthetic-language lab does)::

    from jaxlt.data.datasets import classification_dataset, ner_dataset, register_dataset

    register_dataset(classification_dataset(
        "lab_nli", languages=("syn_a", "syn_b"), labels=("entailment", "neutral", "contradiction"),
        fields=("premise", "hypothesis"), data_dir="/path/lab_data", iso_languages=False))
    register_dataset(ner_dataset(
        "lab_ner", languages=("syn_a", "syn_b"), tags=("O", "B-PER", "I-PER"),
        data_dir="/path/lab_data", iso_languages=False, eval_only_languages=("syn_b",)))

The data then lives in `{data_dir}/{config}/{split}.jsonl` (config defaults to the language
code): one JSON object per line in the kind's record schema (classification: the `fields` as
strings and `label` as an index into `labels` or the label word; NER: `tokens` and `ner_tags`,
tag indices into `tags` or tag names; QA: `id`, `question`, `context`,
`answers: {text: [...], answer_start: [...]}`). Hub datasets (`hub_id` set, `data_dir` None)
are read from the hub, or from `{run data directory}/{hub_id}/{config}/{split}.jsonl` when a
run is given a local data directory. Registering does not read data; seqio tasks
`"{name}.{lang}"` are registered on demand by `jaxlt.data.tasks.register_task`.

This module is pure Python (no TensorFlow, JAX or gin): the analysis stage may import it.
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Callable, Mapping, Sequence

from jaxlt.data import formats, metrics

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # no dots: task names are "{dataset}.{lang}"
KINDS = ("classification", "ner", "qa")


class DatasetError(ValueError):
    """A dataset declaration that is inconsistent."""


def _no_validation(record: dict) -> None:
    del record


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything jaxlt knows about one dataset.

    name: short id, also the seqio task prefix (`"{name}.{lang}"`) and the results' `task`.
    kind: "classification", "ner" or "qa" (how references and rank classification work).
    languages: every language with data (training and/or evaluation), in a stable order.
    eval_only_languages: languages with evaluation data only: never a training source and
        never a few-shot target (e.g. Swahili PAN-X in the paper's Table 4).
    splits: the dataset's splits (TyDiQA-GoldP has no "test").
    eval_split: the split the study scores on.
    format: raw record -> {"inputs", "targets", "answers"} (answers: every acceptable target).
    text: raw record -> its plain text (what span corruption and text features read).
    validate: raises `formats.RecordError` for a record that does not match the schema.
    metric: seqio metric fn `(targets, predictions) -> {name: 0-100 score}`.
    main_metric: the metric's key the results table reports.
    multiple_references: QA: references are all gold answers, not the target string.
    labels: classification label words (the rank-classification candidates).
    keep_train_record: training records to keep (QA: the answer occurs in its context);
        dropped_train_reason says why in the log.
    hub_id, config: Hugging Face hub id and config name (`"{lang}"` is replaced by the language).
    data_dir: a fixed local directory `{data_dir}/{config}/{split}.jsonl` (a dataset that is not
        on the hub); wins over any run-level data directory.
    language_of_record: when every language shares one config, the language of a record.
    open_languages: also accept any language whose config directory exists locally.
    iso_languages: language codes go through `jaxlt.languages.normalize` (False: arbitrary codes,
        taken as written).
    source_size: the paper's number of source training examples (None: the whole train split).
    """

    name: str
    kind: str
    languages: tuple[str, ...]
    splits: tuple[str, ...]
    eval_split: str
    format: Callable[[dict], dict]
    text: Callable[[dict], str]
    metric: Callable[[Sequence, Sequence], dict]
    main_metric: str
    validate: Callable[[dict], None] = _no_validation
    eval_only_languages: tuple[str, ...] = ()
    multiple_references: bool = False
    labels: tuple[str, ...] = ()
    keep_train_record: Callable[[dict], bool] | None = None
    dropped_train_reason: str = "that keep_train_record rejects"
    hub_id: str | None = None
    config: str = "{lang}"
    data_dir: str | None = None
    language_of_record: Callable[[dict], str] | None = None
    open_languages: bool = False
    iso_languages: bool = True
    source_size: int | None = None
    description: str = ""

    def __post_init__(self):
        for name in ("languages", "splits", "eval_only_languages", "labels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        problems = []
        if not NAME_PATTERN.match(self.name):
            problems.append(f"name must match {NAME_PATTERN.pattern} (no dots)")
        if self.kind not in KINDS:
            problems.append(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not self.languages:
            problems.append("no languages")
        if len(set(self.languages)) != len(self.languages):
            problems.append(f"duplicate languages in {self.languages}")
        if bad := [lang for lang in self.languages if "." in lang or not lang.strip()]:
            problems.append(f"language codes must be non-empty without dots: {bad}")
        if extra := [lang for lang in self.eval_only_languages if lang not in self.languages]:
            problems.append(f"eval_only_languages {extra} are not in languages")
        if self.eval_split not in self.splits:
            problems.append(f"eval_split {self.eval_split!r} is not one of the splits {self.splits}")
        if self.train_languages and "train" not in self.splits:
            problems.append("languages with training data need a 'train' split "
                            "(or list them in eval_only_languages)")
        if self.config != "{lang}" and "{lang}" not in self.config and self.language_of_record is None:
            problems.append(f"config {self.config!r} has no '{{lang}}' and no language_of_record")
        if self.source_size is not None and self.source_size <= 0:
            problems.append(f"source_size must be positive or None, got {self.source_size}")
        if self.kind == "classification" and not self.labels:
            problems.append("a classification dataset needs its label words (labels)")
        if problems:
            raise DatasetError(f"dataset {self.name!r}: " + "; ".join(problems))

    # ---- languages
    @property
    def train_languages(self) -> tuple[str, ...]:
        return tuple(lang for lang in self.languages if lang not in self.eval_only_languages)

    def has_train(self, lang: str) -> bool:
        return lang not in self.eval_only_languages

    def config_for(self, lang: str) -> str:
        return self.config.replace("{lang}", lang)

    def language_of_config(self, config: str) -> str | None:
        """The language a local config directory holds (None when it is not this dataset's)."""
        if "{lang}" not in self.config:
            return None
        prefix, suffix = self.config.split("{lang}", 1)
        if config.startswith(prefix) and config.endswith(suffix) and len(config) > len(prefix) + len(suffix):
            return config[len(prefix):len(config) - len(suffix)]
        return None

    # ---- records -> examples -> scores
    def to_example(self, record: dict, index: int, split: str) -> dict:
        """`{"id", "inputs", "targets", "answers"}` for one raw record."""
        example = self.format(record)
        return {"id": str(record.get("id", f"{split}-{index}")), **example}

    def reference(self, example: Mapping):
        """What the metric compares a prediction with: all answers (QA) or the target text."""
        if self.multiple_references:
            return [_text(a) for a in example["answers"]]
        return _text(example["targets"])

    def postprocess(self, output, example: Mapping | None = None, is_target: bool = False):
        """seqio postprocess_fn: decoded text for predictions; all gold answers for QA targets."""
        if is_target and self.multiple_references and example is not None and "answers" in example:
            return [_text(a) for a in example["answers"]]
        return _text(output).strip()

    def score(self, references: Sequence, predictions: Sequence) -> dict[str, float]:
        """The metric over (references, predictions); an empty set is an error, never a 0."""
        if not len(references):
            raise ValueError(f"{self.name}: nothing to score (no examples)")
        return self.metric(references, predictions)


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------------------------------------
# the table

_REGISTRY: dict[str, DatasetSpec] = {}
DATASETS: Mapping[str, DatasetSpec] = types.MappingProxyType(_REGISTRY)  # read-only live view


def register_dataset(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Adds `spec` to the table and returns it (see the module docstring)."""
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"register_dataset takes a DatasetSpec, got {type(spec).__name__}")
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing != spec and not replace:
        raise DatasetError(f"dataset {spec.name!r} is already registered with a different declaration; "
                           "pass replace=True to redefine it")
    _REGISTRY[spec.name] = spec
    return spec


def get_dataset(name: str) -> DatasetSpec:
    if name not in _REGISTRY:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def dataset_names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def is_registered(name: str) -> bool:
    return name in _REGISTRY


def main_metric(name: str) -> str:
    return get_dataset(name).main_metric


def paper_source_size(name: str) -> int | None:
    return get_dataset(name).source_size


# ---------------------------------------------------------------------------------------------
# builders for the three kinds of task


def classification_dataset(name: str, *, languages: Sequence[str], labels: Sequence[str],
                           fields: Sequence[str], prefix: str | None = None, **kwargs) -> DatasetSpec:
    """A T5 classification dataset: inputs `"{prefix}: f1: ... f2: ..."`, target the label word."""
    labels, fields = tuple(labels), tuple(fields)
    kwargs.setdefault("splits", ("train", "validation", "test"))
    kwargs.setdefault("eval_split", "test")
    return DatasetSpec(
        name=name, kind="classification", languages=tuple(languages), labels=labels,
        format=formats.classification_format(prefix or name, fields, labels),
        text=formats.fields_text(fields), validate=formats.classification_validator(fields, labels),
        metric=metrics.accuracy, main_metric="accuracy", **kwargs)


def ner_dataset(name: str, *, languages: Sequence[str], tags: Sequence[str], **kwargs) -> DatasetSpec:
    """A sequence-labelling dataset in the paper's format: `tok : TAG | tok : TAG | ...`."""
    tags = tuple(tags)
    kwargs.setdefault("splits", ("train", "validation", "test"))
    kwargs.setdefault("eval_split", "test")
    return DatasetSpec(
        name=name, kind="ner", languages=tuple(languages), format=formats.ner_format(tags),
        text=formats.tokens_text, validate=formats.ner_validator(tags), metric=metrics.ner_f1,
        main_metric="f1", **kwargs)


def qa_dataset(name: str, *, languages: Sequence[str], **kwargs) -> DatasetSpec:
    """Extractive QA in T5's SQuAD format: `question: ... context: ...` -> answer text."""
    kwargs.setdefault("splits", ("train", "validation"))
    kwargs.setdefault("eval_split", "validation")
    kwargs.setdefault("keep_train_record", formats.qa_answer_found)
    kwargs.setdefault("dropped_train_reason", "whose answer is not in the context")
    return DatasetSpec(
        name=name, kind="qa", languages=tuple(languages), format=formats.qa_format,
        text=formats.qa_text, validate=formats.validate_qa, metric=metrics.squad,
        main_metric="exact_match", multiple_references=True, **kwargs)


# ---------------------------------------------------------------------------------------------
# the study's datasets

# TyDiQA-GoldP names the language in the example id ("arabic-2387335860751143628-1").
TYDIQA_ID_LANGUAGES = {
    "arabic": "ar", "bengali": "bn", "english": "en", "finnish": "fi", "indonesian": "id",
    "korean": "ko", "russian": "ru", "swahili": "sw", "telugu": "te",
}


def _tydiqa_language(record: dict) -> str:
    prefix = str(record.get("id", "")).split("-", 1)[0]
    if prefix not in TYDIQA_ID_LANGUAGES:
        raise formats.RecordError(f"TyDiQA id {record.get('id')!r} does not start with a known language "
                                  f"({', '.join(sorted(TYDIQA_ID_LANGUAGES))})")
    return TYDIQA_ID_LANGUAGES[prefix]


XNLI = classification_dataset(
    "xnli", hub_id="facebook/xnli",
    languages=("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"),
    labels=formats.XNLI_LABELS, fields=("premise", "hypothesis"), source_size=100_000,
    description="natural language inference (accuracy); the paper uses 100k source examples")

# The hub's PAN-X has 40 languages (any PAN-X.xx present locally is accepted). Swahili is
# evaluation-only, as in the paper's Table 4 (its train split is far below the 10k source size).
PANX = ner_dataset(
    "panx", hub_id="google/xtreme", config="PAN-X.{lang}",
    languages=("af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi",
               "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru",
               "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "yo", "zh"),
    eval_only_languages=("sw",), tags=formats.PANX_TAGS, open_languages=True, source_size=10_000,
    description="named-entity recognition, WikiANN/PAN-X (entity F1); the paper uses 10k source examples")

# One shared config; no test split: the study scores TyDiQA-GoldP on validation.
TYDIQA = qa_dataset(
    "tydiqa", hub_id="google-research-datasets/tydiqa", config="secondary_task",
    languages=("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te"),
    language_of_record=_tydiqa_language, source_size=2_200,
    description="extractive QA, TyDiQA-GoldP (exact match, F1); the paper uses 2.2k source examples")

PAWSX = classification_dataset(
    "pawsx", hub_id="google-research-datasets/paws-x",
    languages=("de", "en", "es", "fr", "ja", "ko", "zh"),
    labels=formats.PAWSX_LABELS, fields=("sentence1", "sentence2"),
    description="paraphrase identification (accuracy)")

XQUAD = qa_dataset(
    "xquad", hub_id="google/xquad", config="xquad.{lang}", splits=("validation",),
    languages=("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh"),
    eval_only_languages=("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh"),
    description="extractive QA, evaluation only (exact match, F1)")

for _spec in (XNLI, PANX, TYDIQA, PAWSX, XQUAD):
    register_dataset(_spec)
del _spec
