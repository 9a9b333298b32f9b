"""Text features from each task's training text: LEX, Vr, SENTLEN, MORPH (paper section 2.1).

The analysis stage cannot read seqio tasks, so training text arrives in a plain form
that the accelerator stage writes (``jaxlt.features.text.write_text_dir`` does it):

* a directory ``DIR/<task>/<lang>.txt``: UTF-8, one training example per line
  (for pairs such as XNLI premise and hypothesis, one line each); or
* a JSONL file with one object per example: ``{"task": ..., "language": ..., "text": ...}``.

Per language: character 3-gram distribution, vocabulary (whitespace types), mean
sentence length in whitespace tokens, type-token ratio. Per pair within a task:

* LEX(T,S) = 1 - JSD(X_S, X_T) / max over the task's pairs of JSD (base 2, so 0 <= JSD <= 1)
* Vr = |V_T| / |V_S|;  SENTLEN = mean length T / mean length S
* MORPH(T,S) = (TTR_T / TTR_S) / K with K = max over the task's pairs of TTR_T / TTR_S
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import itertools
import json
import pathlib
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from jaxlt import atomic, languages

NGRAM = 3


@dataclasses.dataclass
class LanguageText:
    """Statistics of one language's training text for one task."""

    ngrams: collections.Counter
    types: int
    tokens: int
    sentences: int

    @property
    def ttr(self) -> float:
        return self.types / self.tokens if self.tokens else float("nan")

    @property
    def mean_sentence_length(self) -> float:
        return self.tokens / self.sentences if self.sentences else float("nan")


def text_stats(lines: Iterable[str], n: int = NGRAM) -> LanguageText:
    ngrams: collections.Counter = collections.Counter()
    vocabulary: set[str] = set()
    tokens = sentences = 0
    for line in lines:
        line = " ".join(line.split())  # collapse whitespace so it does not create spurious n-grams
        if not line:
            continue
        sentences += 1
        words = line.split(" ")
        tokens += len(words)
        vocabulary.update(words)
        ngrams.update(line[i : i + n] for i in range(len(line) - n + 1))
    return LanguageText(ngrams, len(vocabulary), tokens, sentences)


def jensen_shannon(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence in bits between two count/frequency mappings (0 <= JSD <= 1):
    the square of scipy's Jensen-Shannon distance (base 2) over the union of their keys."""
    from scipy.spatial.distance import jensenshannon

    keys = sorted(set(p) | set(q))
    pv = np.array([p.get(k, 0) for k in keys], float)
    qv = np.array([q.get(k, 0) for k in keys], float)
    if pv.sum() <= 0 or qv.sum() <= 0:
        raise ValueError("Jensen-Shannon divergence of an empty distribution (no character 3-grams in the text)")
    return float(jensenshannon(pv, qv, base=2) ** 2)


def pair_text_features(stats: Mapping[str, LanguageText]) -> pd.DataFrame:
    """LEX, Vr, SENTLEN, MORPH (and the raw JSD and TTR ratio) for all ordered pairs of one task."""
    codes = sorted(stats)
    if len(codes) < 2:
        raise ValueError(f"text features need at least two languages, got {codes}")
    rows = []
    for s, t in itertools.permutations(codes, 2):
        rows.append(
            {
                "source": s,
                "target": t,
                "JSD": jensen_shannon(stats[s].ngrams, stats[t].ngrams),
                "TTR_ratio": stats[t].ttr / stats[s].ttr,
                "Vr": stats[t].types / stats[s].types,
                "SENTLEN": stats[t].mean_sentence_length / stats[s].mean_sentence_length,
            }
        )
    frame = pd.DataFrame(rows)
    max_jsd = frame["JSD"].max()
    frame["LEX"] = 1.0 - frame["JSD"] / max_jsd if max_jsd > 0 else 1.0
    frame["MORPH"] = frame["TTR_ratio"] / frame["TTR_ratio"].max()
    return frame[["source", "target", "LEX", "Vr", "SENTLEN", "MORPH", "JSD", "TTR_ratio"]]


def language_text_features(stats: Mapping[str, LanguageText]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"language": c, "TTR": s.ttr, "vocabulary": s.types, "tokens": s.tokens, "sentences": s.sentences,
             "mean_sentence_length": s.mean_sentence_length}
            for c, s in sorted(stats.items())
        ]
    )


def read_text_source(path: str | pathlib.Path, extra: frozenset = frozenset()) -> dict[tuple[str, str], list[str]]:
    """``{(task, lang): lines}`` from a ``<task>/<lang>.txt`` directory or a JSONL file; codes in
    ``extra`` (synthetic languages declared by a typology file) are kept as written."""
    path = pathlib.Path(path)
    texts: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    if path.is_dir():
        files = sorted(path.glob("*/*.txt"))
        if not files:
            raise ValueError(f"{path}: no <task>/<lang>.txt files found")
        for file in files:
            lang = file.stem if file.stem in extra else languages.normalize(file.stem)
            texts[(file.parent.name, lang)].extend(file.read_text(encoding="utf-8").splitlines())
    elif path.is_file():
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    task, lang, text = record["task"], record["language"], record["text"]
                except (json.JSONDecodeError, KeyError, TypeError) as error:
                    raise ValueError(f"{path}:{number}: expected a JSON object with task, language, text ({error})") from None
                try:
                    code = lang if lang in extra else languages.normalize(lang)
                except languages.UnknownLanguageError as error:
                    raise ValueError(f"{path}:{number}: {error}") from None
                texts[(str(task), code)].append(str(text))
    else:
        raise FileNotFoundError(f"text source not found: {path}")
    return dict(texts)


def write_text_dir(directory: str | pathlib.Path, task: str, language: str, lines: Iterable[str]) -> pathlib.Path:
    """Write ``DIR/<task>/<lang>.txt`` atomically (for the accelerator stage's export)."""
    target = pathlib.Path(directory) / task / f"{languages.normalize(language)}.txt"
    with atomic.atomic_path(str(target)) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(" ".join(str(line).split()) + "\n")
    return target


def _cached_stats(lines: list[str], cache_dir: pathlib.Path | None) -> LanguageText:
    if cache_dir is None:
        return text_stats(lines)
    digest = hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()[:32]
    cache = cache_dir / f"text_stats_{digest}.json"
    if cache.exists():
        data = json.loads(cache.read_text(encoding="utf-8"))
        return LanguageText(collections.Counter(data["ngrams"]), data["types"], data["tokens"], data["sentences"])
    stats = text_stats(lines)
    atomic.write_text(str(cache), json.dumps({"ngrams": stats.ngrams, "types": stats.types, "tokens": stats.tokens,
                                              "sentences": stats.sentences}))
    return stats


def compute_text_features(source: str | pathlib.Path, cache_dir: str | pathlib.Path | None = None,
                          extra: frozenset = frozenset()):
    """(pair table, language table) for every task in a text source; stats cached by content hash."""
    texts = read_text_source(source, extra)
    cache = pathlib.Path(cache_dir) if cache_dir else None
    by_task: dict[str, dict[str, LanguageText]] = collections.defaultdict(dict)
    from jaxlt.console import Progress

    # a bar on a terminal; in a log file plain lines (every 30 s and at the end), never carriage returns
    progress = Progress(len(texts), "text statistics", enabled=len(texts) >= 8, every_cells=len(texts), every_s=30, unit="languages")
    for (task, lang), lines in progress.track(sorted(texts.items())):
        by_task[task][lang] = _cached_stats(lines, cache)
    pairs, langs = [], []
    for task, stats in sorted(by_task.items()):
        if len(stats) < 2:
            raise ValueError(f"task {task!r} has text for only {sorted(stats)}; pair features need two languages")
        pairs.append(pair_text_features(stats).assign(task=task))
        langs.append(language_text_features(stats).assign(task=task))
    return pd.concat(pairs, ignore_index=True), pd.concat(langs, ignore_index=True)
