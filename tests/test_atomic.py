import os

import pytest

from jaxlt import atomic


def test_success_replaces_and_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic.write_text(str(path), "first")
    assert path.read_text() == "first" and oct(path.stat().st_mode & 0o777) == "0o644"

    def broken(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic.write_with(str(path), broken)
    assert path.read_text() == "first"
    assert os.listdir(path.parent) == ["out.txt"]  # no temp file left behind
    atomic.write_bytes(str(path), b"second")
    assert path.read_bytes() == b"second"


def test_modes_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic.write_text(str(tmp_path / "a.txt"), "x")
        with atomic.atomic_directory(str(tmp_path / "d")) as d:
            atomic.write_text(os.path.join(d, "f"), "y")
    finally:
        os.umask(old)
    assert oct((tmp_path / "a.txt").stat().st_mode & 0o777) == "0o640"
    assert oct((tmp_path / "d").stat().st_mode & 0o777) == "0o750"
    assert (tmp_path / "d" / "f").read_text() == "y"
    with pytest.raises(RuntimeError):
        with atomic.atomic_directory(str(tmp_path / "e")):
            raise RuntimeError("killed")
    assert sorted(os.listdir(tmp_path)) == ["a.txt", "d"]


def test_grid_records_and_manifest_are_readable_by_others(tmp_path):
    from jaxlt.grid.runner import GridRunner
    from jaxlt.grid.settings import GridSettings
    from jaxlt.grid.spec import GridSpec
    from jaxlt.grid.store import ResultsStore
    from jaxlt.grid.toy import ToyExecutor

    settings = GridSettings(executor="toy", source_steps=20, fewshot_steps=5, batch_size=16)
    spec = GridSpec(tasks=["toy_nli"], sources=["en"], targets=["de"], n_values=[10], seeds=[0], model="t")
    old = os.umask(0o022)
    try:
        GridRunner(spec, settings, ResultsStore(str(tmp_path)), lambda: ToyExecutor(settings), progress=False).run()
    finally:
        os.umask(old)
    files = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path) for f in fs]
    assert any(f.endswith("grid.json") for f in files) and any("records" in f for f in files)
    for f in files:
        assert os.stat(f).st_mode & 0o777 == 0o644, f
