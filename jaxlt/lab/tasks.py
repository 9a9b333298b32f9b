"""The lab's tasks declared as datasets (`jaxlt.data.datasets`), like the real ones.

`register_lab_datasets(data_dir)` declares `lab_nli` (classification, XNLI's label words and
format) and `lab_ner` (PAN-X's tags and `tok : TAG | ...` format) over the JSONL files that
`jaxlt.lab.data.write_lab_data(data_dir)` writes; seqio tasks `"lab_nli.syn_a"` etc. are then
registered on demand by `jaxlt.data.tasks.register_task`, so the grid, the metrics and the
features run on them unchanged. `ensure_lab_data(data_dir)` writes the files when missing.
"""

from __future__ import annotations

import os

from jaxlt.lab import data

MARKER = "lab_data.json"


def lab_specs(data_dir: str | None, params=data.DEFAULT_LANGUAGES):
    from jaxlt.data.datasets import classification_dataset, ner_dataset

    codes = tuple(p.code for p in params)

    def where(task):  # each dataset reads {its data_dir}/{lang}/{split}.jsonl
        return None if data_dir is None else os.path.join(os.path.abspath(data_dir), task)

    nli = classification_dataset(
        "lab_nli", languages=codes, labels=data.NLI_LABELS, fields=("premise", "hypothesis"),
        data_dir=where("lab_nli"), iso_languages=False,
        description="lab: 3-way inference about an adjective: same / opposite / compatible (accuracy)")
    ner = ner_dataset("lab_ner", languages=codes, tags=data.NER_TAGS, data_dir=where("lab_ner"),
                      iso_languages=False, description="lab: PER/ORG/LOC tagging, tok : TAG | ... (entity F1)")
    return nli, ner


def register_lab_datasets(data_dir: str | None, params=data.DEFAULT_LANGUAGES) -> tuple[str, ...]:
    """Declares lab_nli and lab_ner reading from `data_dir` (replacing an earlier declaration)."""
    from jaxlt.data.datasets import register_dataset

    return tuple(register_dataset(spec, replace=True).name for spec in lab_specs(data_dir, params))


def ensure_lab_data(data_dir: str, params=data.DEFAULT_LANGUAGES, seed: int = data.SEED) -> str:
    """Writes the lab's data files into `data_dir` unless a complete set for these parameters is there."""
    import json

    from jaxlt import atomic

    # `version`: bumped whenever the generator changes what it writes for the same parameters
    want = {"seed": seed, "languages": [p.as_row() for p in params], "sizes": data.SPLIT_SIZES,
            "version": 2}
    marker = os.path.join(data_dir, MARKER)
    if os.path.isfile(marker):
        with open(marker) as f:
            if json.load(f) == want:
                return data_dir
    data.write_lab_data(data_dir, params, seed)
    atomic.write_json(marker, want, indent=1)
    return data_dir
