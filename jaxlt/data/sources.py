"""Where the raw datasets come from: the Hugging Face hub, or a local directory of the same files.

One loading path, two places to read from. `load_records(dataset, lang, split)` returns the
raw records (dicts in the hub schema) of one language and split, validated field by field:

* with a data directory configured (`set_data_dir(path)`, gin `jaxlt.data.sources.data_dir.path`,
  or env `JAXLT_DATA_DIR`, in that order of precedence), it reads
  `{data_dir}/{hub_id}/{config}/{split}.jsonl`: exactly what `datasets.Dataset.to_json` writes
  for that hub split (one JSON object per line, ClassLabels as integers);
* otherwise it calls `datasets.load_dataset(hub_id, config, split=split)` (the hub, or the local
  HF cache when `HF_DATASETS_OFFLINE=1`).

`export_to_dir` writes the local layout from the hub, for offline clusters.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
from collections.abc import Callable, Sequence

import gin

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "JAXLT_DATA_DIR"

# PAN-X (WikiANN as XTREME ships it) tag ids, in the hub's ClassLabel order.
PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

# TyDiQA-GoldP names the language in the example id ("arabic-2387335860751143628-1").
TYDIQA_ID_LANGUAGES = {
    "arabic": "ar", "bengali": "bn", "english": "en", "finnish": "fi", "indonesian": "id",
    "korean": "ko", "russian": "ru", "swahili": "sw", "telugu": "te",
}


class DataError(ValueError):
    """A data file or record that does not match the expected schema."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How one dataset is found on the hub and laid out locally."""

    name: str
    hub_id: str
    languages: tuple[str, ...]
    splits: tuple[str, ...]
    config_for: Callable[[str], str]  # language -> hub config name
    # When set, every language shares one config and the language is read from each record.
    language_of_record: Callable[[dict], str] | None = None
    description: str = ""

    def config(self, lang: str) -> str:
        return self.config_for(lang)


def _tydiqa_language(record: dict) -> str:
    prefix = str(record.get("id", "")).split("-", 1)[0]
    if prefix not in TYDIQA_ID_LANGUAGES:
        raise DataError(f"TyDiQA id {record.get('id')!r} does not start with a known language "
                        f"({', '.join(sorted(TYDIQA_ID_LANGUAGES))})")
    return TYDIQA_ID_LANGUAGES[prefix]


DATASETS: dict[str, DatasetSpec] = {
    "xnli": DatasetSpec(
        "xnli", "facebook/xnli",
        ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh"),
        ("train", "validation", "test"), lambda lang: lang,
        description="natural language inference (accuracy)"),
    "panx": DatasetSpec(
        "panx", "google/xtreme",
        ("af", "ar", "bg", "bn", "de", "el", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi",
         "hu", "id", "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "ms", "my", "nl", "pt", "ru",
         "sw", "ta", "te", "th", "tl", "tr", "ur", "vi", "yo", "zh"),
        ("train", "validation", "test"), lambda lang: f"PAN-X.{lang}",
        description="named-entity recognition, WikiANN/PAN-X (entity F1)"),
    "tydiqa": DatasetSpec(
        "tydiqa", "google-research-datasets/tydiqa",
        ("ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te"),
        ("train", "validation"), lambda lang: "secondary_task",
        language_of_record=_tydiqa_language,
        description="extractive QA, TyDiQA-GoldP (exact match, F1)"),
    "pawsx": DatasetSpec(
        "pawsx", "google-research-datasets/paws-x",
        ("de", "en", "es", "fr", "ja", "ko", "zh"),
        ("train", "validation", "test"), lambda lang: lang,
        description="paraphrase identification (accuracy)"),
    "xquad": DatasetSpec(
        "xquad", "google/xquad",
        ("ar", "de", "el", "en", "es", "hi", "ro", "ru", "th", "tr", "vi", "zh"),
        ("validation",), lambda lang: f"xquad.{lang}",
        description="extractive QA, evaluation only (exact match, F1)"),
}


# ---------------------------------------------------------------------------------------------
# data directory configuration

_data_dir_override: str | None = None


def set_data_dir(path: str | os.PathLike | None) -> None:
    """Reads data from `path` (the local layout) from now on; None goes back to gin/env/hub."""
    global _data_dir_override
    _data_dir_override = None if path is None else os.fspath(path)


@gin.configurable(module="jaxlt.data.sources")
def data_dir(path: str | None = None) -> str | None:
    """Gin hook: bind `jaxlt.data.sources.data_dir.path = "/data/jaxlt"`."""
    return path


def get_data_dir(path: str | os.PathLike | None = None) -> str | None:
    """The data directory in effect: argument, `set_data_dir`, gin, env JAXLT_DATA_DIR, or None (hub)."""
    for candidate in (path, _data_dir_override, data_dir(), os.environ.get(DATA_DIR_ENV) or None):
        if candidate:
            return os.fspath(candidate)
    return None


def local_path(data_dir_: str, dataset: str, lang: str, split: str) -> str:
    spec = get_spec(dataset)
    return os.path.join(data_dir_, spec.hub_id, spec.config(lang), f"{split}.jsonl")


# ---------------------------------------------------------------------------------------------
# dataset / language lookup


def get_spec(dataset: str) -> DatasetSpec:
    if dataset not in DATASETS:
        raise KeyError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[dataset]


def normalize_language(code: str) -> str:
    """ISO 639-1 code for `code`, through `jaxlt.languages` when that table exists."""
    try:
        from jaxlt.languages import normalize
    except ImportError:  # the language table is another part of the project
        return code.strip().lower()
    try:
        return normalize(code)
    except (KeyError, ValueError):
        return code.strip().lower()


def check_language(dataset: str, lang: str, data_dir_: str | None = None) -> str:
    """The normalised language code, or an error listing the dataset's languages."""
    spec = get_spec(dataset)
    code = normalize_language(lang)
    if code in spec.languages:
        return code
    # The loader accepts any language present locally (PAN-X has more than we list).
    directory = get_data_dir(data_dir_)
    if directory and spec.language_of_record is None and os.path.isdir(
            os.path.join(directory, spec.hub_id, spec.config(code))):
        return code
    raise KeyError(f"language {lang!r} is not available for {dataset}; supported: "
                   f"{', '.join(spec.languages)}")


def check_split(dataset: str, split: str) -> str:
    spec = get_spec(dataset)
    if split not in spec.splits:
        raise KeyError(f"{dataset} has no split {split!r}; splits: {', '.join(spec.splits)}")
    return split


# ---------------------------------------------------------------------------------------------
# record validation (shared by both places to read from)


def _is_str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _validate_classification(fields: Sequence[str], labels: int):
    def check(record: dict) -> None:
        for field in fields:
            if not isinstance(record.get(field), str):
                raise DataError(f"field {field!r} must be a string, got {record.get(field)!r}")
        label = record.get("label")
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < labels:
            raise DataError(f"field 'label' must be an integer in [0, {labels}), got {label!r}")
    return check


def _validate_panx(record: dict) -> None:
    tokens, tags = record.get("tokens"), record.get("ner_tags")
    if not _is_str_list(tokens):
        raise DataError(f"field 'tokens' must be a list of strings, got {tokens!r}")
    if not isinstance(tags, list) or len(tags) != len(tokens):
        raise DataError(f"field 'ner_tags' must be a list as long as 'tokens' ({len(tokens)}), "
                        f"got {tags!r}")
    for tag in tags:
        ok = (isinstance(tag, int) and not isinstance(tag, bool) and 0 <= tag < len(PANX_TAGS)
              ) or tag in PANX_TAGS
        if not ok:
            raise DataError(f"unknown NER tag {tag!r}; known: ids 0-{len(PANX_TAGS) - 1} "
                            f"or {', '.join(PANX_TAGS)}")


def _validate_qa(record: dict) -> None:
    for field in ("id", "context", "question"):
        if not isinstance(record.get(field), str):
            raise DataError(f"field {field!r} must be a string, got {record.get(field)!r}")
    answers = record.get("answers")
    if not isinstance(answers, dict) or not _is_str_list(answers.get("text")):
        raise DataError(f"field 'answers' must be {{'text': [str], 'answer_start': [int]}}, "
                        f"got {answers!r}")
    starts = answers.get("answer_start")
    if not isinstance(starts, list) or len(starts) != len(answers["text"]):
        raise DataError(f"'answers.answer_start' must be a list as long as 'answers.text', "
                        f"got {starts!r}")


VALIDATORS: dict[str, Callable[[dict], None]] = {
    "xnli": _validate_classification(("premise", "hypothesis"), 3),
    "pawsx": _validate_classification(("sentence1", "sentence2"), 2),
    "panx": _validate_panx,
    "tydiqa": _validate_qa,
    "xquad": _validate_qa,
}


# ---------------------------------------------------------------------------------------------
# reading


def _read_jsonl(path: str, validate: Callable[[dict], None]) -> list[dict]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"missing data file: expected {path}")
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise DataError(f"expected a JSON object, got {type(record).__name__}")
                validate(record)
            except (json.JSONDecodeError, DataError) as e:
                raise DataError(f"{path}:{lineno}: malformed record: {e}") from None
            records.append(record)
    return records


def _read_hub(dataset: str, hub_id: str, config: str, split: str,
              validate: Callable[[dict], None]) -> list[dict]:
    import datasets  # only needed on this path

    data = datasets.load_dataset(hub_id, config, split=split)
    records = []
    for index, record in enumerate(data):
        try:
            validate(record)
        except DataError as e:
            raise DataError(f"{hub_id} {config} {split} record {index}: malformed record: {e}") \
                from None
        records.append(record)
    return records


# Raw records are only kept briefly (the examples built from them are cached downstream);
# a few entries so that TyDiQA's one shared file is read once for all its languages.
@functools.lru_cache(maxsize=8)
def _load_config_split(dataset: str, config: str, split: str, directory: str | None
                       ) -> tuple[dict, ...]:
    spec = get_spec(dataset)
    validate = VALIDATORS[dataset]
    if directory:
        path = os.path.join(directory, spec.hub_id, config, f"{split}.jsonl")
        records = _read_jsonl(path, validate)
    else:
        records = _read_hub(dataset, spec.hub_id, config, split, validate)
    logger.info("%s %s %s: %d records from %s", dataset, config, split, len(records),
                directory or "the Hugging Face hub")
    return tuple(records)


@functools.lru_cache(maxsize=8)
def _load_records_cached(dataset: str, lang: str, split: str, directory: str | None
                         ) -> tuple[dict, ...]:
    spec = get_spec(dataset)
    records = _load_config_split(dataset, spec.config(lang), split, directory)
    if spec.language_of_record is not None:
        records = tuple(r for r in records if spec.language_of_record(r) == lang)
    return records


def load_records(dataset: str, lang: str, split: str, data_dir: str | None = None
                 ) -> tuple[dict, ...]:
    """The raw records (hub schema) of `dataset` in language `lang`, split `split`.

    Errors: unknown dataset/language/split (listing the known ones), missing local file (naming
    the expected path), malformed record (file and line, or hub record index).
    """
    lang = check_language(dataset, lang, data_dir)
    check_split(dataset, split)
    return _load_records_cached(dataset, lang, split, get_data_dir(data_dir))



def available_splits(dataset: str, lang: str, data_dir: str | None = None) -> tuple[str, ...]:
    """Splits present for (dataset, lang): all of the dataset's splits on the hub; the files
    present in a local directory."""
    spec = get_spec(dataset)
    directory = get_data_dir(data_dir)
    if not directory:
        return spec.splits
    lang = check_language(dataset, lang, directory)
    return tuple(s for s in spec.splits if os.path.isfile(local_path(directory, dataset, lang, s)))


def local_languages(dataset: str, data_dir: str) -> tuple[str, ...]:
    """Languages with files for `dataset` under a local data directory."""
    spec = get_spec(dataset)
    if spec.language_of_record is not None:
        found = set()
        for split in spec.splits:
            path = os.path.join(data_dir, spec.hub_id, spec.config(spec.languages[0]),
                                f"{split}.jsonl")
            if os.path.isfile(path):
                found.update(spec.language_of_record(r)
                             for r in _load_config_split(dataset, spec.config(spec.languages[0]),
                                                         split, data_dir))
        return tuple(sorted(found))
    langs = [lang for lang in spec.languages if os.path.isdir(
        os.path.join(data_dir, spec.hub_id, spec.config(lang)))]
    if dataset == "panx":  # any PAN-X.xx present is accepted
        root = os.path.join(data_dir, spec.hub_id)
        if os.path.isdir(root):
            langs += [d.split(".", 1)[1] for d in os.listdir(root)
                      if d.startswith("PAN-X.") and d.split(".", 1)[1] not in langs]
    return tuple(sorted(langs))


def export_to_dir(dataset: str, languages: Sequence[str], directory: str) -> list[str]:
    """Downloads (or reads from the HF cache) and writes the local layout; returns file paths.

    Run once on a machine with internet, copy `directory` to the offline cluster.
    """
    import datasets

    spec = get_spec(dataset)
    written, configs = [], {spec.config(check_language(dataset, lang)) for lang in languages}
    for config in sorted(configs):
        for split in spec.splits:
            data = datasets.load_dataset(spec.hub_id, config, split=split)
            path = os.path.join(directory, spec.hub_id, config, f"{split}.jsonl")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{os.getpid()}"
            data.to_json(tmp, lines=True, force_ascii=False)
            os.replace(tmp, path)
            written.append(path)
    return written
