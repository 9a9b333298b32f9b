"""gin for `jaxlt predict` / `jaxlt score`: the same flags as train and evaluate.

Bindings of `jaxlt.train.model_settings` (dtype, param_dtype, remat) override the
checkpoint's config, e.g. `--gin_file models/mt5_base.gin` for bf16 compute.
"""

from __future__ import annotations


def apply_gin(loaded, gin_files, bindings, search_paths=""):
    """Parses gin (if any was given) and returns `loaded` with the model overrides applied."""
    if not gin_files and not bindings:
        return loaded
    from jaxlt import experiment_gin
    from jaxlt.gin_flags import parse_gin
    from jaxlt.train import run

    run.import_before_parsing()
    parse_gin(gin_files, bindings, search_paths)
    return loaded._replace(config=loaded.config.replace(**experiment_gin.from_gin("model").overrides()))
