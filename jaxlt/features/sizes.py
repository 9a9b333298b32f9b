"""Pre-training corpus sizes (the SIZE feature) from the bundled tables."""

from __future__ import annotations

import functools
import importlib.resources
import pathlib

import numpy as np
import pandas as pd

from jaxlt import languages
from jaxlt.stats.ledger import Ledger

CORPORA = ("mc4", "wiki", "cc100")
MODEL_CORPUS = {"mt5": "mc4", "mbert": "wiki", "xlmr": "cc100", "xlm-r": "cc100"}


def _resource(name: str) -> pathlib.Path:
    return pathlib.Path(str(importlib.resources.files("jaxlt") / "resources" / "pretraining_sizes" / name))


def _number(value) -> float:
    text = str(value).replace(",", "").strip()
    return float(text) if text else float("nan")


@functools.lru_cache(maxsize=1)
def _load() -> tuple[pd.DataFrame, tuple]:
    rows, skipped = [], []
    mc4 = pd.read_csv(_resource("mc4.csv"), keep_default_na=False)
    for code, billions in zip(mc4["Language"], mc4["Tokens (Billions)"]):
        rows.append(("mc4", code, _number(billions) * 1e9))
    wiki = pd.read_csv(_resource("wiki.csv"), keep_default_na=False)
    for code, tokens in zip(wiki["Wiki"], wiki["Tokens"]):
        rows.append(("wiki", code, _number(tokens)))
    cc = pd.read_csv(_resource("cc-100.csv"), keep_default_na=False)
    for code, millions in zip(cc["ISO code"], cc["Tokens (M)"]):
        rows.append(("cc100", code, _number(millions) * 1e6))
    kept = []
    for corpus, code, tokens in rows:
        if not np.isfinite(tokens):
            skipped.append((corpus, f"{code} (no size)"))
        elif languages.is_known(code):
            kept.append((corpus, languages.normalize(code), code, tokens))
        else:
            skipped.append((corpus, code))
    table = pd.DataFrame(kept, columns=["corpus", "language", "raw_code", "tokens"])
    # Several raw rows can be one language (cc-100's zh Hans/Hant, my/my_zaw): their sizes add up.
    merged = table.groupby(["corpus", "language"], as_index=False).agg(
        raw_code=("raw_code", lambda c: "+".join(sorted(set(c)))), tokens=("tokens", "sum"), n_raw=("tokens", "size")
    )
    return merged, tuple(skipped)


def pretraining_sizes(ledger: Ledger | None = None) -> pd.DataFrame:
    """Tidy table ``corpus, language, raw_code, tokens, n_raw`` for mc4, wiki and cc100.

    Raw rows whose code is not a language of jaxlt's table (romanised variants,
    '-', 'und', small Wikipedia editions) are counted in the ledger.
    """
    table, skipped = _load()
    if ledger is not None:
        for corpus in CORPORA:
            codes = [c for k, c in skipped if k == corpus]
            ledger.exclude("sizes", f"{corpus} rows", "code not in jaxlt.languages (romanised variant, '-', 'und' or unlisted language)", len(codes), codes)
    return table.copy()


def corpus_for_model(model: str) -> str:
    key = model.lower()
    for prefix, corpus in MODEL_CORPUS.items():
        if key.startswith(prefix):
            return corpus
    raise ValueError(f"no pre-training corpus known for model {model!r}; known model prefixes: {sorted(MODEL_CORPUS)}")


def log_size(corpus: str = "mc4") -> pd.Series:
    """log10 of pre-training tokens per language for one corpus."""
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; known: {CORPORA}")
    table = pretraining_sizes()
    sub = table[table["corpus"] == corpus]
    return pd.Series(np.log10(sub["tokens"].to_numpy()), index=sub["language"].to_numpy(), name=f"log10_tokens_{corpus}")
