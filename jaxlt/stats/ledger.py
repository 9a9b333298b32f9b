"""A record of everything the analysis left out, so that nothing is dropped silently."""

from __future__ import annotations

import dataclasses
import logging

log = logging.getLogger("jaxlt.analysis")


@dataclasses.dataclass
class Entry:
    stage: str  # where it happened: results, sizes, features, correlations ...
    what: str  # what was excluded or unavailable (rows, a feature name ...)
    reason: str
    count: int
    examples: str = ""


class Ledger:
    """Exclusions (rows left out) and unavailable features, with counts and reasons."""

    def __init__(self) -> None:
        self.exclusions: list[Entry] = []
        self.unavailable: list[Entry] = []
        self.notes: list[Entry] = []  # changes made to the input (rescaled scores, chosen codes ...)
        self.entries: list[tuple[str, Entry]] = []  # every entry in order, to replay into another ledger

    def exclude(self, stage: str, what: str, reason: str, count: int, examples=()) -> None:
        if count <= 0:
            return
        examples = ", ".join(map(str, list(examples)[:5]))
        self.exclusions.append(Entry(stage, what, reason, int(count), examples))
        self.entries.append(("excluded", self.exclusions[-1]))
        log.warning("%s: excluded %d %s (%s)%s", stage, count, what, reason, f" e.g. {examples}" if examples else "")

    def unavailable_feature(self, feature: str, reason: str, count: int = 1, stage: str = "features") -> None:
        if any(e.what == feature and e.reason == reason for e in self.unavailable):
            return
        self.unavailable.append(Entry(stage, feature, reason, int(count)))
        self.entries.append(("unavailable", self.unavailable[-1]))
        log.info("feature %s unavailable: %s", feature, reason)

    def note(self, stage: str, what: str, reason: str, count: int = 1) -> None:
        self.notes.append(Entry(stage, what, reason, int(count)))
        self.entries.append(("note", self.notes[-1]))
        log.warning("%s: %s (%s)", stage, what, reason)

    def replay(self, entry: tuple[str, Entry]) -> None:
        """Add an entry recorded by another ledger (e.g. in a worker process), without logging it again."""
        kind, e = entry
        {"excluded": self.exclusions, "unavailable": self.unavailable, "note": self.notes}[kind].append(e)
        self.entries.append(entry)

    def records(self) -> list[dict]:
        return ([dict(kind="excluded", **dataclasses.asdict(e)) for e in self.exclusions]
                + [dict(kind="unavailable", **dataclasses.asdict(e)) for e in self.unavailable]
                + [dict(kind="note", **dataclasses.asdict(e)) for e in self.notes])
