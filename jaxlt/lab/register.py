"""Importing this module declares the lab's datasets (`lab_nli`, `lab_ner`) over the default lab data
directory, writing the data there first if it is missing: gin files say `import jaxlt.lab.register`.

The directory is env `JAXLT_LAB_DATA`, else `~/.cache/jaxlt/lab_data` (the data is a
deterministic function of the generator, so any copy is the same).
"""

from __future__ import annotations

import os

from jaxlt.lab.tasks import ensure_lab_data, register_lab_datasets

LAB_DATA_ENV = "JAXLT_LAB_DATA"


def default_data_dir() -> str:
    return os.environ.get(LAB_DATA_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "jaxlt", "lab_data")


DATA_DIR = ensure_lab_data(default_data_dir())
DATASETS = register_lab_datasets(DATA_DIR)
