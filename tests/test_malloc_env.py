"""jaxlt.malloc_env: the demo's processes get glibc settings that keep freed memory."""

import os
import sys

import pytest

from jaxlt import malloc_env


@pytest.fixture
def linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    for key in (*malloc_env.MALLOC_ENV, malloc_env.OPT_OUT):
        monkeypatch.delenv(key, raising=False)


def test_environment_adds_the_settings_and_keeps_the_rest(linux):
    env = malloc_env.environment({"PATH": "/bin", "MALLOC_ARENA_MAX": "8"})
    assert env["PATH"] == "/bin"
    assert {k: env[k] for k in malloc_env.MALLOC_ENV} == malloc_env.MALLOC_ENV


def test_opt_out_and_other_platforms_keep_glibc_defaults(linux, monkeypatch):
    monkeypatch.setenv(malloc_env.OPT_OUT, "1")
    assert "MALLOC_ARENA_MAX" not in malloc_env.environment({})
    monkeypatch.delenv(malloc_env.OPT_OUT)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert malloc_env.environment({}) == {}


def test_reexec_replaces_the_process_once(linux, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "execve", lambda path, args, env: calls.append((path, args, env)))
    malloc_env.reexec(["demo", "/tmp/x"])
    assert len(calls) == 1
    path, args, env = calls[0]
    assert path == sys.executable and args == [sys.executable, "-m", "jaxlt.cli", "demo", "/tmp/x"]
    assert all(env[k] == v for k, v in malloc_env.MALLOC_ENV.items())
    for k, v in malloc_env.MALLOC_ENV.items():  # in the re-executed process: no second exec
        monkeypatch.setenv(k, v)
    malloc_env.reexec(["demo", "/tmp/x"])
    assert len(calls) == 1


def test_jaxlt_demo_reexecs_only_from_the_console_script(linux, monkeypatch):
    from jaxlt import cli

    calls = []
    monkeypatch.setattr(malloc_env, "reexec", lambda argv: calls.append(argv) or (_ for _ in ()).throw(SystemExit(0)))
    monkeypatch.setattr(sys, "argv", ["jaxlt", "demo", "--help"])
    with pytest.raises(SystemExit):
        cli.main()
    assert calls == [["demo", "--help"]]
    with pytest.raises(SystemExit):  # in-process (tests, notebooks): never replaces the caller
        cli.main(["demo", "--help"])
    assert calls == [["demo", "--help"]]
