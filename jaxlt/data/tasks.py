"""seqio Tasks `"{dataset}.{lang}"` for every dataset and language of the study.

Importing this module registers them (and `span_corruption.{dataset}.{lang}`, see
`jaxlt.data.span_corruption`). Registration reads no data: each split is loaded (hub or local
data directory, `jaxlt.data.sources`) the first time a dataset is asked for.

The tasks' vocabulary is a `ConfiguredVocabulary`: it delegates to the SentencePiece model in
effect when it is used, chosen by `set_vocabulary(path)` (which `jaxlt train` calls once with the
checkpoint's model), env `JAXLT_VOCABULARY`, or else the bundled tiny test vocabulary. Code that
knows its vocabulary passes it explicitly instead (`register_task(..., vocabulary=path)`, as the
grid does).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence

import jaxlt.data.tf_cpu  # noqa: F401  (hides accelerators from TensorFlow before seqio / JAX)
import seqio
import tensorflow as tf

from jaxlt.data import sources
from jaxlt.data.examples import load_examples
from jaxlt.data.vocabulary import get_vocabulary

logger = logging.getLogger(__name__)

VOCABULARY_ENV = "JAXLT_VOCABULARY"
TINY_VOCABULARY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources",
                               "tiny_model", "spiece.model")

# ---------------------------------------------------------------------------------------------
# vocabulary

_vocabulary_override: str | None = None


def set_vocabulary(path: str | os.PathLike | None) -> None:
    """Uses the SentencePiece model at `path` (file or checkpoint dir) for every jaxlt task."""
    global _vocabulary_override
    _vocabulary_override = None if path is None else os.fspath(path)


def current_vocabulary_path() -> str:
    for candidate in (_vocabulary_override, os.environ.get(VOCABULARY_ENV)):
        if candidate:
            return os.fspath(candidate)
    return TINY_VOCABULARY


class ConfiguredVocabulary(seqio.Vocabulary):
    """A seqio vocabulary that delegates to the configured SentencePiece model at each use."""

    def __init__(self):
        super().__init__(extra_ids=0)

    @property
    def delegate(self) -> seqio.SentencePieceVocabulary:
        return get_vocabulary(current_vocabulary_path())

    @property
    def eos_id(self):
        return self.delegate.eos_id

    @property
    def unk_id(self):
        return self.delegate.unk_id

    @property
    def pad_id(self):
        return self.delegate.pad_id

    @property
    def bos_id(self):
        return self.delegate.bos_id

    @property
    def _base_vocab_size(self):
        return self.delegate.vocab_size

    def _encode(self, s):
        return self.delegate.encode(s)

    def _decode(self, ids):
        return self.delegate.decode(ids)

    def _encode_tf(self, s):
        return self.delegate.encode_tf(s)

    def _decode_tf(self, ids):
        return self.delegate.decode_tf(ids)

    def decode(self, ids):
        return self.delegate.decode(ids)

    def decode_tf(self, ids):
        return self.delegate.decode_tf(ids)

    def __getattr__(self, name):  # e.g. `sentencepiece_model_file`, `tf_tokenizer`
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.delegate, name)

    def __eq__(self, other):
        return isinstance(other, ConfiguredVocabulary) or self.delegate == other

    def __hash__(self):
        return hash(ConfiguredVocabulary)


VOCABULARY = ConfiguredVocabulary()


def output_features(vocabulary: seqio.Vocabulary | None = None) -> dict[str, seqio.Feature]:
    vocabulary = vocabulary or VOCABULARY
    return {"inputs": seqio.Feature(vocabulary, add_eos=True, required=True),
            "targets": seqio.Feature(vocabulary, add_eos=True, required=True)}


# ---------------------------------------------------------------------------------------------
# examples -> tf.data


def examples_to_tf(examples: Sequence[dict]) -> tf.data.Dataset:
    """`{"id", "inputs", "targets", "answers"}` string features (answers: a 1-D string list)."""
    answers = [list(ex["answers"]) for ex in examples]
    flat = [a for group in answers for a in group]
    return tf.data.Dataset.from_tensor_slices({
        "id": tf.constant([str(ex["id"]) for ex in examples], tf.string, shape=[len(examples)]),
        "inputs": tf.constant([ex["inputs"] for ex in examples], tf.string, shape=[len(examples)]),
        "targets": tf.constant([ex["targets"] for ex in examples], tf.string,
                               shape=[len(examples)]),
        "answers": tf.RaggedTensor.from_row_lengths(
            tf.constant(flat, tf.string, shape=[len(flat)]),
            tf.constant([len(g) for g in answers], tf.int64, shape=[len(answers)])),
    })


def _shuffled(examples: Sequence[dict], shuffle: bool, seed: int | None) -> tf.data.Dataset:
    # The examples are in memory: a full shuffle (not seqio's 1000-example buffer over file
    # order) when seqio asks for shuffled "files", reshuffled each epoch.
    dataset = examples_to_tf(examples)
    if shuffle and len(examples) > 1:
        dataset = dataset.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
    return dataset


_TASK_DATA_DIRS: dict[str, str] = {}  # task name -> the data directory it was registered over


def _dataset_fn(dataset: str, lang: str, name: str):
    def dataset_fn(split: str, shuffle_files: bool = False, seed: int | None = None):
        return _shuffled(load_examples(dataset, lang, split, _TASK_DATA_DIRS.get(name)), shuffle_files, seed)
    return dataset_fn


def postprocessor(dataset: str) -> Callable:
    """seqio postprocess_fn of a dataset (`DatasetSpec.postprocess`)."""
    return sources.get_spec(dataset).postprocess


# ---------------------------------------------------------------------------------------------
# registration


def task_name(dataset: str, lang: str) -> str:
    return f"{dataset}.{sources.check_language(dataset, lang)}"


def vocabulary_suffix(vocabulary: str | None) -> str:
    """"" for the configured vocabulary; else a short tag of the SentencePiece path, so tasks over
    different vocabularies have different names."""
    if vocabulary is None:
        return ""
    return ".spm" + hashlib.sha256(os.fspath(vocabulary).encode()).hexdigest()[:8]


def _features(vocabulary: str | None) -> dict[str, seqio.Feature]:
    return output_features(None if vocabulary is None else get_vocabulary(os.fspath(vocabulary)))


def register_examples_task(name: str, dataset: str, examples_by_split: Callable[[str], Sequence[dict]],
                           splits: Sequence[str], vocabulary: str | None = None) -> str:
    """Registers (once) a task over in-memory examples with `dataset`'s format and metrics.
    `vocabulary`: a SentencePiece model (None: the configured one); the caller names the task."""
    if name in seqio.TaskRegistry.names():
        return name

    def dataset_fn(split: str, shuffle_files: bool = False, seed: int | None = None):
        return _shuffled(examples_by_split(split), shuffle_files, seed)

    _add_task(name, dataset, seqio.FunctionDataSource(dataset_fn, splits=list(splits)), vocabulary)
    return name


def _add_task(name: str, dataset: str, source: seqio.DataSource, vocabulary: str | None = None) -> None:
    seqio.TaskRegistry.add(
        name,
        source=source,
        preprocessors=[seqio.preprocessors.tokenize, seqio.CacheDatasetPlaceholder(),
                       seqio.preprocessors.append_eos_after_trim],
        output_features=_features(vocabulary),
        postprocess_fn=postprocessor(dataset),
        metric_fns=[sources.get_spec(dataset).metric],
    )


def register_task(dataset: str, lang: str, data_dir: str | None = None, vocabulary: str | None = None) -> str:
    """Registers `"{dataset}.{lang}"` (idempotent) and returns its name.

    `data_dir` (None: the configured one, `sources.get_data_dir`, read when the data is) is kept
    with the task: asking for the same task over another directory later is an error.
    `vocabulary` (a SentencePiece model; None: the configured one) registers the task over that
    vocabulary, named `"{dataset}.{lang}.spm<tag>"` (`vocabulary_suffix`)."""
    lang = sources.check_language(dataset, lang, data_dir)
    name = f"{dataset}.{lang}{vocabulary_suffix(vocabulary)}"
    if data_dir is not None:
        if _TASK_DATA_DIRS.get(name, data_dir) != data_dir:
            raise ValueError(f"task {name} reads data directory {_TASK_DATA_DIRS[name]}, not {data_dir}; "
                             "one data directory per process")
        _TASK_DATA_DIRS[name] = data_dir
    if name not in seqio.TaskRegistry.names():
        spec = sources.get_spec(dataset)
        _add_task(name, dataset, seqio.FunctionDataSource(_dataset_fn(dataset, lang, name),
                                                          splits=list(spec.splits)), vocabulary)
    return name


def register_all() -> list[str]:
    names = [register_task(dataset, lang)
             for dataset, spec in sources.DATASETS.items() for lang in spec.languages]
    from jaxlt.data import span_corruption

    names += [span_corruption.register_span_corruption_task(dataset, lang)
              for dataset, spec in sources.DATASETS.items() for lang in spec.languages]
    return names


def registered_tasks(dataset: str | None = None) -> list[str]:
    """Names of the registered per-language tasks, optionally of one dataset."""
    datasets = [dataset] if dataset else list(sources.DATASETS)
    return [f"{d}.{lang}" for d in datasets for lang in sources.get_spec(d).languages
            if f"{d}.{lang}" in seqio.TaskRegistry.names()]


TASK_NAMES = register_all()
