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
