import os
import re
import subprocess
import sys

import pytest

from jaxlt import cli


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


def test_unknown_command_is_an_error(capsys):
    assert cli.main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


def test_every_command_has_help():
    for name in cli.COMMANDS:
        proc = subprocess.run([sys.executable, "-m", "jaxlt.cli", name, "--help"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
        assert "usage" in proc.stdout.lower(), name


# ---- one-line errors (exit status 2) and quiet runs
def _jaxlt(*args, env=None, **kw):
    env = {**os.environ, "PYTHONWARNINGS": "default", **(env or {})}
    return subprocess.run([sys.executable, "-m", "jaxlt.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, **kw)


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("jaxlt ") and ": error: " in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args, needles", [
    (["--gin.grid_spec.nope=1"], ["nope"]),  # an unknown binding
    (["--gin_file=runs/no_such_file.gin"], ["no_such_file.gin"]),
    (["--gin.grid_settings.source_steps=[1"], ["gin"]),  # does not parse
    (["--worker_index=4", "--num_workers=2"], ["worker index 4 is not in [0, 2)"]),
    (["--gin.grid_spec.n_values=[10, 5000]"], ["n-shot pool", "n=5000"]),
])
def test_expected_grid_failures_end_with_one_line(tmp_path, args, needles):
    _one_line_error(_jaxlt("grid", "--gin_file=runs/grid_toy.gin", f"--results_dir={tmp_path}", *args), *needles)
    assert not (tmp_path / "grid.json").exists()


def test_results_dir_of_another_configuration_is_one_line(tmp_path):
    ok = _jaxlt("grid", "--gin_file=runs/grid_toy.gin", f"--results_dir={tmp_path}", "--gin.grid_spec.seeds=[0]")
    assert ok.returncode == 0, ok.stderr[-2000:]
    _one_line_error(_jaxlt("grid", "--gin_file=runs/grid_toy.gin", f"--results_dir={tmp_path}",
                           "--gin.grid_settings.source_steps=3"), "source_steps")


def test_a_quiet_grid_run_prints_progress_lines_and_a_summary(tmp_path):
    out = _jaxlt("grid", "--gin_file=runs/grid_toy.gin", f"--results_dir={tmp_path}", "--progress_every=12")
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    # no start-up noise (gin file probes, warnings); progress as plain lines, not a 3,000-character bar
    assert not [l for l in lines if "system_path_file_exists" in l or "Warning" in l], lines
    progress = [l for l in lines if " cells (" in l]
    assert [l.split(": ")[1].split(" ")[0] for l in progress] == ["12/36", "24/36", "36/36"], lines
    assert all(len(l) < 200 and "\r" not in l for l in lines)
    assert re.fullmatch(r"grid \w+ worker 0/1: 36 cells done, 0 skipped \(.*\), 0 diverged, 0 failed in \d+s",
                        lines[-1]), lines[-1]
    again = _jaxlt("grid", "--gin_file=runs/grid_toy.gin", f"--results_dir={tmp_path}")
    assert "0 cells done, 36 skipped" in again.stderr.strip().splitlines()[-1]


DISK_FULL = """
import errno, sys
from jaxlt import atomic
calls = {"n": 0}
real = atomic.atomic_path.__wrapped__

def full(path, fsync=False):
    calls["n"] += 1
    if calls["n"] > 5:
        raise OSError(errno.ENOSPC, "No space left on device", path)
    return real(path, fsync)

import contextlib
atomic.atomic_path = contextlib.contextmanager(full)
from jaxlt import cli
sys.argv = ["jaxlt", "grid", "--gin_file=runs/grid_toy.gin", "--results_dir=" + sys.argv[1]]
sys.exit(cli.main())
"""


def test_disk_full_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-c", DISK_FULL, str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 2, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert "disk full" in last and "No space left on device" in last and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 4, out.stderr  # the summary line may precede it


def test_verbose_shows_the_traceback(tmp_path):
    out = _jaxlt("results", "summary", f"--results_dir={tmp_path}", "--verbose")
    assert out.returncode == 2 and "not a grid results directory" in out.stderr


def test_handler_turns_expected_failures_into_one_line(monkeypatch, capsys):
    """Every command gets the handler: user errors, a divergence, a full disk; bugs keep their traceback."""
    import errno
    import types

    from jaxlt import console
    from jaxlt.errors import DataError, DivergenceError

    # keep this pytest process's logging and warning filters as they are
    monkeypatch.setattr(console, "configure_logging", lambda verbose: None)
    monkeypatch.setattr(console, "quiet_environment", lambda verbose: None)

    def command(exc):
        module = types.ModuleType("jaxlt_fake_command")

        def main(argv):
            raise exc

        module.main = main
        monkeypatch.setitem(sys.modules, "jaxlt_fake_command", module)
        monkeypatch.setitem(cli.COMMANDS, "fake", ("jaxlt_fake_command", "a test command"))

    for exc, text in [(DataError("x.jsonl:3: malformed record", hint="fix the line"),
                       "x.jsonl:3: malformed record; fix the line"),
                      (DivergenceError("training diverged at step 7: loss is nan"), "diverged at step 7"),
                      (OSError(errno.ENOSPC, "No space left on device", "/r/x.json"), "disk full writing /r/x.json")]:
        command(exc)
        assert cli.main(["fake"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("jaxlt fake: error: ") and text in err[0], err
    command(ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError):
        cli.main(["fake"])
