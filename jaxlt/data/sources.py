"""Where the raw datasets come from: the Hugging Face hub, or a local directory of the same files.

One loading path, two places to read from. `load_records(dataset, lang, split)` returns the
raw records (dicts in the hub schema) of one language and split, validated field by field:

* a dataset declared with its own `data_dir` (not on the hub) reads
  `{spec.data_dir}/{config}/{split}.jsonl`;
* with a data directory given (argument, `set_data_dir(path)` -- which the commands call once
  with `DataConfig.data_dir` -- or env `JAXLT_DATA_DIR`, in that order of precedence), it
  reads `{data_dir}/{hub_id or name}/{config}/{split}.jsonl`: exactly what
  `datasets.Dataset.to_json` writes for that hub split (one JSON object per line, ClassLabels as
  integers);
* otherwise it calls `datasets.load_dataset(hub_id, config, split=split)` (the hub, or the local
  HF cache when `HF_DATASETS_OFFLINE=1`).

Which datasets exist, their languages, configs and splits: `jaxlt.data.datasets`.

`export_to_dir` writes the local layout from the hub, for offline clusters.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Sequence

from jaxlt import atomic, jsonl
from jaxlt.data import datasets as datasets_table
from jaxlt.data import formats

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "JAXLT_DATA_DIR"

# The declarations live in jaxlt.data.datasets; these names stay importable from here.
DatasetSpec = datasets_table.DatasetSpec
DATASETS = datasets_table.DATASETS  # read-only live view; datasets.register_dataset adds
PANX_TAGS = formats.PANX_TAGS
TYDIQA_ID_LANGUAGES = datasets_table.TYDIQA_ID_LANGUAGES
DataError = formats.RecordError


# ---------------------------------------------------------------------------------------------
# data directory configuration

_data_dir_override: str | None = None


def set_data_dir(path: str | os.PathLike | None) -> None:
    """Reads data from `path` (the local layout) from now on; None goes back to env/hub. Called once
    by the commands (DataConfig.data_dir); library code passes data directories explicitly."""
    global _data_dir_override
    _data_dir_override = None if path is None else os.fspath(path)


BUNDLED_PREFIX = "bundled:"


def resolve_data_dir(path: str) -> str:
    """"bundled:tiny_data" is the tiny fixture data shipped in jaxlt/resources; anything else a path."""
    if path.startswith(BUNDLED_PREFIX):
        resources = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources")
        resolved = os.path.join(resources, path[len(BUNDLED_PREFIX):])
        if not os.path.isdir(resolved):
            raise FileNotFoundError(f"no bundled data {path!r}; bundled: "
                                    + ", ".join(sorted(d for d in os.listdir(resources) if d.endswith("_data"))))
        return resolved
    return path


def get_data_dir(path: str | os.PathLike | None = None) -> str | None:
    """The data directory in effect: argument, `set_data_dir`, env JAXLT_DATA_DIR, or None (hub)."""
    for candidate in (path, _data_dir_override, os.environ.get(DATA_DIR_ENV) or None):
        if candidate:
            return os.fspath(candidate)
    return None


def config_dir(data_dir_: str | None, spec: DatasetSpec, config: str) -> str | None:
    """The local directory of one config: under the dataset's own data_dir, else under
    `data_dir_/{hub_id or name}`; None when neither is set (the hub)."""
    if spec.data_dir:
        return os.path.join(spec.data_dir, config)
    if data_dir_:
        return os.path.join(data_dir_, spec.hub_id or spec.name, config)
    return None


def local_path(data_dir_: str | None, dataset: str, lang: str, split: str) -> str:
    spec = get_spec(dataset)
    directory = config_dir(data_dir_, spec, spec.config_for(lang))
    if directory is None:
        raise ValueError(f"{dataset} is read from the hub: no data directory is set")
    return os.path.join(directory, f"{split}.jsonl")


def _directory(spec: DatasetSpec, data_dir_: str | None) -> str | None:
    """The local root for `spec` in effect (None: the hub)."""
    if spec.data_dir:
        return spec.data_dir
    directory = get_data_dir(data_dir_)
    if directory is None and spec.hub_id is None:
        raise FileNotFoundError(f"dataset {spec.name} is not on the hub and has no data_dir; "
                                "give a data directory")
    return directory


# ---------------------------------------------------------------------------------------------
# dataset / language lookup


def get_spec(dataset: str) -> DatasetSpec:
    return datasets_table.get_dataset(dataset)


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
    code = normalize_language(lang) if spec.iso_languages else str(lang).strip()
    if code in spec.languages:
        return code
    # open_languages: any language present locally is accepted (PAN-X has more than we list).
    if spec.open_languages and spec.language_of_record is None:
        directory = _directory(spec, data_dir_)
        local = config_dir(directory, spec, spec.config_for(code))
        if local and os.path.isdir(local):
            return code
    raise KeyError(f"language {lang!r} is not available for {dataset}; supported: "
                   f"{', '.join(spec.languages)}")


def check_split(dataset: str, split: str) -> str:
    spec = get_spec(dataset)
    if split not in spec.splits:
        raise KeyError(f"{dataset} has no split {split!r}; splits: {', '.join(spec.splits)}")
    return split


# ---------------------------------------------------------------------------------------------
# reading


def _read_jsonl(path: str, validate: Callable[[dict], None]) -> list[dict]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"missing data file: expected {path}")
    records = []
    for lineno, line in jsonl.iter_lines(path, DataError):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise DataError(f"expected a JSON object, got {type(record).__name__}")
            validate(record)
        except (json.JSONDecodeError, DataError, KeyError, IndexError, TypeError) as e:
            raise DataError(f"{path}:{lineno}: malformed record: {e}") from None
        records.append(record)
    return records


def _read_hub(hub_id: str, config: str, split: str, validate: Callable[[dict], None]) -> list[dict]:
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
    local = config_dir(directory, spec, config)
    if local:
        records = _read_jsonl(os.path.join(local, f"{split}.jsonl"), spec.validate)
    else:
        records = _read_hub(spec.hub_id, config, split, spec.validate)
    logger.info("%s %s %s: %d records from %s", dataset, config, split, len(records),
                directory or "the Hugging Face hub")
    return tuple(records)


@functools.lru_cache(maxsize=8)
def _load_records_cached(dataset: str, lang: str, split: str, directory: str | None
                         ) -> tuple[dict, ...]:
    spec = get_spec(dataset)
    records = _load_config_split(dataset, spec.config_for(lang), split, directory)
    if spec.language_of_record is not None:
        records = tuple(r for r in records if spec.language_of_record(r) == lang)
    if not records:  # an empty split (or a language missing from a shared file) is never a score of 0
        where = config_dir(directory, spec, spec.config_for(lang)) or f"{spec.hub_id} {spec.config_for(lang)}"
        raise DataError(f"{dataset}.{lang} {split}: no records in {where}"
                        + (" for this language" if spec.language_of_record is not None else ""))
    return records


def load_records(dataset: str, lang: str, split: str, data_dir: str | None = None
                 ) -> tuple[dict, ...]:
    """The raw records (hub schema) of `dataset` in language `lang`, split `split`.

    Errors: unknown dataset/language/split (listing the known ones), missing local file (naming
    the expected path), malformed record (file and line, or hub record index).
    """
    lang = check_language(dataset, lang, data_dir)
    check_split(dataset, split)
    return _load_records_cached(dataset, lang, split, _directory(get_spec(dataset), data_dir))



def available_splits(dataset: str, lang: str, data_dir: str | None = None) -> tuple[str, ...]:
    """Splits present for (dataset, lang): all of the dataset's splits on the hub; the files
    present in a local directory."""
    spec = get_spec(dataset)
    directory = _directory(spec, data_dir)
    if not directory:
        return spec.splits
    lang = check_language(dataset, lang, directory)
    return tuple(s for s in spec.splits if os.path.isfile(local_path(directory, dataset, lang, s)))


def local_languages(dataset: str, data_dir: str | None = None) -> tuple[str, ...]:
    """Languages with files for `dataset` under a local data directory (the dataset's own
    data_dir when it declares one)."""
    spec = get_spec(dataset)
    directory = _directory(spec, data_dir)
    if not directory:
        return spec.languages
    if spec.language_of_record is not None:
        found = set()
        config = spec.config_for(spec.languages[0])
        for split in spec.splits:
            local = config_dir(directory, spec, config)
            if os.path.isfile(os.path.join(local, f"{split}.jsonl")):
                found.update(spec.language_of_record(r)
                             for r in _load_config_split(dataset, config, split, directory))
        return tuple(sorted(found))
    langs = [lang for lang in spec.languages
             if os.path.isdir(config_dir(directory, spec, spec.config_for(lang)))]
    root = os.path.dirname(config_dir(directory, spec, spec.config_for(spec.languages[0])))
    if spec.open_languages and os.path.isdir(root):
        for name in os.listdir(root):
            lang = spec.language_of_config(name)
            if lang and lang not in langs and os.path.isdir(os.path.join(root, name)):
                langs.append(lang)
    return tuple(sorted(langs))


def export_to_dir(dataset: str, languages: Sequence[str], directory: str) -> list[str]:
    """Downloads (or reads from the HF cache) and writes the local layout; returns file paths.

    Run once on a machine with internet, copy `directory` to the offline cluster.
    """
    import datasets

    spec = get_spec(dataset)
    if spec.hub_id is None:
        raise ValueError(f"dataset {dataset} is not on the hub: nothing to export")
    written, configs = [], {spec.config_for(check_language(dataset, lang)) for lang in languages}
    for config in sorted(configs):
        for split in spec.splits:
            data = datasets.load_dataset(spec.hub_id, config, split=split)
            path = os.path.join(directory, spec.hub_id, config, f"{split}.jsonl")
            atomic.write_with(path, lambda tmp, d=data: d.to_json(tmp, lines=True, force_ascii=False))
            written.append(path)
    return written
