"""t5x-style gin flags: --gin_file (repeatable), --gin_search_paths, --gin.NAME=VALUE.

`gin` is imported only when a command actually parses gin, so analysis
commands stay light.
"""

from __future__ import annotations

import argparse
import logging
import os
import tokenize
from collections.abc import Sequence

GIN_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gin")


def add_gin_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("gin", "t5x-style configuration")
    group.add_argument("--gin_file", action="append", default=[], metavar="FILE",
                       help="gin file to parse (repeatable); relative paths are looked up in --gin_search_paths and jaxlt's gin/")
    group.add_argument("--gin_search_paths", default="", metavar="DIRS",
                       help="comma-separated directories searched for gin files and includes")
    group.add_argument("--gin.NAME=VALUE", dest="_gin_help", action="append", default=[], metavar="",
                       help="a gin binding, e.g. --gin.TRAIN_STEPS=100 or --gin.MODEL_DIR=\"'/tmp/m'\" (repeatable)")


def split_gin_bindings(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separates `--gin.NAME=VALUE` (or `--gin.NAME VALUE`) from the other arguments."""
    bindings, rest = [], []
    it = iter(argv)
    for arg in it:
        if arg.startswith("--gin."):
            body = arg[len("--gin."):]
            if "=" not in body:
                try:
                    body = f"{body}={next(it)}"
                except StopIteration:
                    raise SystemExit(f"gin flag {arg} has no value; write --gin.NAME=VALUE") from None
            bindings.append(body)
        else:
            rest.append(arg)
    return bindings, rest


class _DropGinProbeErrors(logging.Filter):
    """gin logs ERROR 'Path not found' for every search path it merely probes; a real miss still raises."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.msg == "Path not found: %s" and record.pathname.endswith("resource_reader.py"))


def parse_gin(gin_files: Sequence[str], bindings: Sequence[str], search_paths: str | Sequence[str] = "",
              finalize: bool = True, skip_unknown: bool = False) -> None:
    """Parses gin files then bindings (bindings win), searching user paths then jaxlt's gin/."""
    import gin

    root = logging.getLogger()
    if not any(isinstance(f, _DropGinProbeErrors) for f in root.filters):
        root.addFilter(_DropGinProbeErrors())
    if isinstance(search_paths, str):
        search_paths = [p for p in search_paths.split(",") if p]
    for path in [*search_paths, GIN_ROOT, os.getcwd()]:
        gin.add_config_file_search_path(path)
    try:
        gin.parse_config_files_and_bindings(list(gin_files), list(bindings), finalize_config=finalize,
                                            skip_unknown=skip_unknown)
    except (ValueError, KeyError, SyntaxError, OSError, tokenize.TokenError) as e:  # a typo, unknown name, no file
        from jaxlt.errors import ConfigError, one_line

        raise ConfigError(f"gin: {one_line(e)}", hint="check the --gin_file and --gin.NAME=VALUE flags") from e
