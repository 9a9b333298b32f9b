"""The `jaxlt` command: a thin dispatcher to one module per sub-command.

Sub-command modules are imported lazily so that analysis commands never import
JAX or TensorFlow.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module with a `main(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("jaxlt.commands.demo", "tiny end-to-end run on CPU (the embedded default)"),
    "predict": ("jaxlt.commands.predict", "greedy-decode a JSONL file of inputs"),
    "score": ("jaxlt.commands.score", "log-likelihood of targets given inputs"),
    "tasks": ("jaxlt.commands.tasks", "list registered tasks, languages and split sizes"),
    "metrics": ("jaxlt.commands.metrics", "score a JSONL file of predictions against references"),
    "train": ("jaxlt.commands.train", "fine-tune a model (gin-configured)"),
    "evaluate": ("jaxlt.commands.evaluate", "evaluate a checkpoint on tasks (gin-configured)"),
    "grid": ("jaxlt.commands.grid", "run the task x source x target x n x seed grid"),
    "results": ("jaxlt.commands.results", "inspect and export the grid's results store"),
    "features": ("jaxlt.commands.features", "compute language features (text, typology, model)"),
    "analyze": ("jaxlt.commands.analyze", "correlations, meta-regression and a report"),
    "recommend": ("jaxlt.commands.recommend", "rank source languages for a target"),
    "lab": ("jaxlt.commands.lab", "synthetic-language lab: data, typology, pre-training, alignment probe"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: jaxlt COMMAND [options]   (jaxlt COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from jaxlt import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"jaxlt: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
