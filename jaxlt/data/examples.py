"""Text-to-text examples of one (dataset, language, split), as every task and sampler sees them."""

from __future__ import annotations

import functools
import logging

from jaxlt.data import sources

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=256)
def _load_examples(dataset: str, lang: str, split: str, directory: str | None) -> tuple[dict, ...]:
    spec = sources.get_spec(dataset)
    records = sources.load_records(dataset, lang, split, directory)
    examples, dropped = [], 0
    for index, record in enumerate(records):
        # QA: a training target must be extractable from its context; evaluation keeps every
        # record (its references are the answer texts, whatever their offsets).
        if split == "train" and spec.keep_train_record is not None and not spec.keep_train_record(record):
            dropped += 1
            continue
        examples.append(spec.to_example(record, index, split))
    if dropped:
        logger.warning("%s.%s %s: dropped %d of %d records %s", dataset, lang, split, dropped,
                       len(records), spec.dropped_train_reason)
    if not examples:
        raise sources.DataError(f"{dataset}.{lang} {split}: none of the {len(records)} records is usable")
    return tuple(examples)


def load_examples(dataset: str, lang: str, split: str, data_dir: str | None = None
                  ) -> tuple[dict, ...]:
    """`{"id", "inputs", "targets", "answers"}` dicts for (dataset, lang, split), in file order."""
    lang = sources.check_language(dataset, lang, data_dir)
    sources.check_split(dataset, split)
    return _load_examples(dataset, lang, split, sources.get_data_dir(data_dir))
