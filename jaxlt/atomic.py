"""Atomic file writes: a temp file beside the target, renamed onto it only when complete.

A killed process leaves either the old file or the new one, never half of one; an
error leaves no temp file behind. Files get the mode a plain `open()` would give
(0666 minus the umask: 0644 by default), not mkstemp's 0600, so other users of a
shared results directory can read them. Standard library only, so both stages can use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator

TMP_SUFFIX = ".tmp"


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask() sets it, which races with threads)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permission bits of a newly created file under the current umask."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str, fsync: bool = False) -> Iterator[str]:
    """Yields a temp path beside `path` to write to; it replaces `path` on success, vanishes on error.

    `fsync=True` flushes the data to disk before the rename (records that must survive a crash).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: str, data: bytes, fsync: bool = False) -> None:
    with atomic_path(path, fsync) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path: str, text: str, fsync: bool = False) -> None:
    with atomic_path(path, fsync) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path: str, payload, fsync: bool = False, **dump_kwargs) -> None:
    dump_kwargs = {"indent": 1, "sort_keys": True, **dump_kwargs}
    write_text(path, json.dumps(payload, **dump_kwargs), fsync)


def write_with(path: str, write, fsync: bool = False) -> None:
    """`write(tmp_path)` writes the file (e.g. `df.to_csv`); it then replaces `path` atomically."""
    with atomic_path(path, fsync) as tmp:
        write(tmp)


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yields a temp directory beside `path`; on success it is renamed to `path` (which must not
    exist yet), on error removed. A complete directory appears under its final name or none does."""
    import shutil

    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=TMP_SUFFIX)
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
