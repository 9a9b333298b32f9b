"""Reading JSONL files line by line, so every error names its file and line. Standard library only."""

from __future__ import annotations

from collections.abc import Iterator


def iter_lines(path: str, error: type[Exception]) -> Iterator[tuple[int, str]]:
    """(line number, text) for each non-blank line; a non-UTF-8 line raises `error` naming file and line."""
    with open(path, "rb") as f:  # decoded line by line, so a non-UTF-8 byte is reported with its line
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise error(f"{path}:{lineno}: not UTF-8 text ({e.reason} at byte {e.start} of the line); "
                            "convert the file to UTF-8") from None
            if line.strip():
                yield lineno, line
