"""The `jaxlt` command: a thin dispatcher to one module per sub-command.

Sub-command modules are imported lazily so that analysis commands never import
JAX or TensorFlow. Before the import, the start-up noise of TensorFlow, CUDA,
TPU runtimes, absl and gin is silenced unless `--verbose` (`jaxlt.console`).
Every expected failure (`jaxlt.errors.UserError`, a full disk) ends with one
line, "jaxlt COMMAND: error: what is wrong; what to do", and exit status 2; a
traceback is printed only with `--verbose` (or for a real bug).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

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


def _accepts_verbose(module) -> bool:
    build = getattr(module, "build_parser", None)
    try:
        return build is not None and "--verbose" in build().format_help()
    except Exception:  # a parser that cannot be built here: let the command deal with its flags
        return True


def main(argv: list[str] | None = None) -> int:
    in_process = argv is not None  # tests call main([...]); the console script passes nothing
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
    if name == "demo" and not in_process:  # many small XLA steps on CPU: see jaxlt/malloc_env.py
        from jaxlt import malloc_env

        malloc_env.reexec(argv)
    verbose = "--verbose" in rest or os.environ.get("JAXLT_VERBOSE", "") not in ("", "0")
    from jaxlt import console, errors

    console.quiet_environment(verbose)  # before TensorFlow / JAX / absl are imported
    console.configure_logging(verbose)
    try:
        module = importlib.import_module(COMMANDS[name][0])
        if "--verbose" in rest and not _accepts_verbose(module):
            rest = [a for a in rest if a != "--verbose"]
        return int(module.main(rest) or 0)
    except errors.UserError as e:
        return _fail(name, errors.one_line(e), verbose, in_process)
    except OSError as e:
        if not errors.is_disk_full(e):
            raise
        where = f" writing {e.filename}" if getattr(e, "filename", None) else ""
        return _fail(name, f"disk full{where} (No space left on device); free some space or write elsewhere, "
                           "then rerun: finished work is kept", verbose, in_process)
    except errors.DivergenceError as e:  # jaxlt train: the run stopped before saving a non-finite state
        return _fail(name, errors.one_line(e), verbose, in_process)
    except KeyboardInterrupt:
        return _fail(name, "interrupted; rerun to continue (finished work is kept)", verbose, in_process, 130)
    except BaseException as e:
        if errors.is_disk_full(e):  # e.g. wrapped by a library (orbax, TensorFlow)
            return _fail(name, "disk full (No space left on device); free some space or write elsewhere, "
                               "then rerun: finished work is kept", verbose, in_process)
        raise


def _fail(name: str, message: str, verbose: bool, in_process: bool, status: int = 2) -> int:
    if verbose:
        traceback.print_exc()
    sys.stdout.flush()
    print(f"jaxlt {name}: error: {message}", file=sys.stderr, flush=True)
    if not in_process:
        # Background threads (async checkpoint writers, TensorFlow) can still fail while the
        # interpreter shuts down and bury the message under hundreds of lines: leave now.
        os._exit(status)
    return status


if __name__ == "__main__":
    sys.exit(main())
