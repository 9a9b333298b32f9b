"""Features the user brings, under any name: pair features, per-language features and a typology file.

* Pair features: long ``task, source, target, feature, value [, model]`` (DESIGN.md) or wide
  ``[task,] source, target, <feature columns...> [, model]``. A missing task/model column means
  the value holds for every task/model.
* Language features: long ``[model,] [task,] language, feature, value`` or wide
  ``[model,] [task,] language, <feature columns...>``; feature F becomes F_S (of the source) and
  F_T (of the target) in the analysis frame.
* Typology file (for languages lang2vec does not know, e.g. synthetic ones): CSV with a
  ``language`` column and one column per binary property (1 has, 0 lacks, empty unknown).
  Columns ``S_*`` feed SYNT and ``P_*`` feed PHONO (lang2vec's WALS names, so a real language's
  WALS row lines up); all columns feed TYPO. Codes jaxlt does not know are kept as written and
  declare synthetic languages.
"""

from __future__ import annotations

import pathlib

import pandas as pd

from jaxlt import languages
from jaxlt.stats.results import ResultsError, read_table

KEYS_PAIR = ("task", "model", "source", "target")
KEYS_LANGUAGE = ("task", "model", "language")


def code(value, extra: frozenset = frozenset()) -> str:
    """Canonical code, or the code as written when it is a declared extra (synthetic) language."""
    text = str(value).strip()
    if text in extra:
        return text
    return languages.normalize(text)


def _long(table: pd.DataFrame, keys: tuple[str, ...], where: str) -> pd.DataFrame:
    present = [k for k in keys if k in table.columns]
    if {"feature", "value"} <= set(table.columns):
        long = table[present + ["feature", "value"]].copy()
    else:
        values = [c for c in table.columns if c not in keys]
        if not values:
            raise ResultsError(f"{where}: no feature columns besides {present}")
        long = table.melt(id_vars=present, value_vars=values, var_name="feature", value_name="value")
    numeric = pd.to_numeric(long["value"], errors="coerce")
    bad = numeric.isna() & long["value"].notna() & (long["value"].astype(str).str.strip() != "")
    if bad.any():
        raise ResultsError(f"{where}: non-numeric feature value(s) {sorted(set(long.loc[bad, 'value'].astype(str)))[:3]} "
                           f"for feature(s) {sorted(set(long.loc[bad, 'feature']))[:3]}")
    long["value"] = numeric
    long["feature"] = long["feature"].astype(str)
    for key in ("task", "model"):
        if key not in long.columns:
            long[key] = "*"  # applies to every task / model
    return long


def read_pair_table(path: str | pathlib.Path, extra: frozenset = frozenset()) -> pd.DataFrame:
    """Long pair table (task, model, source, target, feature, value) from a long or wide file."""
    table = read_table(path)
    missing = [c for c in ("source", "target") if c not in table.columns]
    if missing:
        raise ResultsError(f"{path}: pair-feature table lacks column(s) {missing}; needs source, target and either "
                           "feature, value (long) or one column per feature (wide)")
    long = _long(table, KEYS_PAIR, str(path))
    for column in ("source", "target"):
        long[column] = _codes(long[column], extra, path, column)
    return long


def read_language_table(path: str | pathlib.Path, extra: frozenset = frozenset()) -> pd.DataFrame:
    """Long language table (task, model, language, feature, value) from a long or wide file."""
    table = read_table(path)
    if "language" not in table.columns:
        raise ResultsError(f"{path}: language-feature table lacks a 'language' column; needs language and either "
                           "feature, value (long) or one column per feature (wide)")
    table = table.drop(columns=[c for c in ("sentences",) if c in table.columns])
    long = _long(table, KEYS_LANGUAGE, str(path))
    long["language"] = _codes(long["language"], extra, path, "language")
    dup = long.duplicated(["task", "model", "language", "feature"], keep=False)
    if dup.any():
        raise ResultsError(f"{path}: {int(dup.sum())} duplicate (task, model, language, feature) rows, e.g. "
                           f"{long[dup].head(2).to_dict('records')}")
    return long


def _codes(column: pd.Series, extra: frozenset, path, name: str) -> pd.Series:
    out = []
    for value in column:
        try:
            out.append(code(value, extra))
        except languages.UnknownLanguageError as error:
            raise ResultsError(f"{path}: column {name!r}: {error}") from None
    return pd.Series(out, index=column.index)


def read_typology(path: str | pathlib.Path) -> pd.DataFrame:
    """The user typology file as a frame indexed by language (float 0/1, NaN unknown)."""
    path = pathlib.Path(path)
    if not path.exists():
        raise ResultsError(f"typology file not found: {path}")
    table = pd.read_csv(path)
    if "language" not in table.columns or len(table.columns) < 2:
        raise ResultsError(f"{path}: a typology file needs a 'language' column and one 0/1 column per property; "
                           f"has {list(table.columns)}")
    codes = [str(c).strip() for c in table["language"]]
    codes = [languages.normalize(c) if languages.is_known(c) else c for c in codes]
    if len(set(codes)) != len(codes):
        raise ResultsError(f"{path}: language(s) listed twice: {sorted({c for c in codes if codes.count(c) > 1})}")
    values = table.drop(columns=["language"]).apply(pd.to_numeric, errors="coerce")
    raw = table.drop(columns=["language"])
    bad = (values.isna() & raw.notna()) | ~values.isin([0, 1]) & values.notna()
    if bad.to_numpy().any():
        column = values.columns[bad.any(axis=0).to_numpy()][0]
        raise ResultsError(f"{path}: property {column!r} has values other than 0, 1 or empty")
    values.index = pd.Index(codes, name="language")
    return values.astype(float)


def extra_languages(typology: pd.DataFrame | None) -> frozenset:
    """Codes in a user typology file that jaxlt.languages does not know (synthetic languages)."""
    if typology is None:
        return frozenset()
    return frozenset(c for c in typology.index if not languages.is_known(c))


def select(long: pd.DataFrame, task: str, model: str) -> pd.DataFrame:
    """Rows of a long user table that apply to one task and model ('*' = all)."""
    return long[long["task"].isin([task, "*"]) & long["model"].isin([model, "*"])]


def language_features_wide(long: pd.DataFrame) -> pd.DataFrame:
    """One column per feature, indexed by (task, model, language)."""
    return long.pivot_table(index=list(KEYS_LANGUAGE), columns="feature", values="value", aggfunc="first")

