"""Text-to-text examples of one (dataset, language, split), as every task and sampler sees them."""

from __future__ import annotations

import functools
import logging

from jaxlt.data import formats, sources

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=256)
def _load_examples(dataset: str, lang: str, split: str, directory: str | None) -> tuple[dict, ...]:
    records = sources.load_records(dataset, lang, split, directory)
    examples, dropped = [], 0
    for index, record in enumerate(records):
        # A training target must be extractable from its context; evaluation keeps every record
        # (its references are the answer texts, whatever their offsets).
        if dataset in ("tydiqa", "xquad") and split == "train" and not formats.qa_answer_found(record):
            dropped += 1
            continue
        examples.append(formats.to_example(dataset, record, index, split))
    if dropped:
        logger.warning("%s.%s %s: dropped %d of %d records whose answer is not in the context",
                       dataset, lang, split, dropped, len(records))
    return tuple(examples)


def load_examples(dataset: str, lang: str, split: str, data_dir: str | None = None
                  ) -> tuple[dict, ...]:
    """`{"id", "inputs", "targets", "answers"}` dicts for (dataset, lang, split), in file order."""
    lang = sources.check_language(dataset, lang, data_dir)
    sources.check_split(dataset, split)
    return _load_examples(dataset, lang, split, sources.get_data_dir(data_dir))
