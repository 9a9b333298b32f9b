"""jaxlt.languages: the single table of language codes."""
import csv
import pathlib

import pytest

from jaxlt import languages as L

SHARED = pathlib.Path("/work/shared/data")


@pytest.mark.parametrize(
    "code, expected",
    [
        ("ar", "ar"), ("ara", "ar"), ("arb", "ar"), ("Arabic", "ar"),
        ("sw", "sw"), ("swa", "sw"), ("swh", "sw"),
        ("ms", "ms"), ("msa", "ms"), ("zsm", "ms"),
        ("et", "et"), ("est", "et"), ("ekk", "et"),
        ("zh", "zh"), ("zho", "zh"), ("cmn", "zh"), ("chi", "zh"),
        ("iw", "he"), ("heb", "he"), ("jw", "jv"), ("in", "id"),
        ("EN", "en"), (" de ", "de"), ("pt-BR", "pt"), ("en_US", "en"),
        ("ceb", "ceb"), ("fil", "fil"), ("tgl", "tl"), ("nb", "no"), ("zh-Hans", "zh"), ("sr-Cyrl", "sr"),
    ],
)
def test_normalize_accepts_every_spelling(code, expected):
    assert L.normalize(code) == expected


@pytest.mark.parametrize("bad", ["xx", "klingon", "ru-Latn", "zh-Latn", "", "e"])
def test_unknown_code_is_an_error_naming_it(bad):
    with pytest.raises(L.UnknownLanguageError, match="unknown language code"):
        L.normalize(bad)
    assert not L.is_known(bad)


def test_non_string_is_an_error():
    with pytest.raises(L.UnknownLanguageError):
        L.normalize(None)


def test_macrolanguages_record_their_individual_language():
    assert L.get("ar").iso3 == "ara" and L.get("ar").individual == "arb"
    assert L.get("sw").is_macrolanguage and not L.get("en").is_macrolanguage
    assert L.get("he").mc4 == "iw"


def test_every_canonical_code_round_trips_through_its_aliases():
    for lang in L.languages():
        for alias in (lang.code, lang.iso3, lang.individual, lang.name):
            assert L.normalize(alias) == lang.code, alias
        if lang.iso1:
            assert lang.code == lang.iso1


def test_lang2vec_codes_exist_in_lang2vec():
    from jaxlt.features.typology import import_lang2vec

    l2v = import_lang2vec()

    available = set(l2v.available_languages())
    missing = [lang.code for lang in L.languages() if lang.lang2vec not in available]
    assert missing == []


def test_study_and_mc4_languages_are_covered():
    study = "af ar bg bn de el en es et eu fa fi fr he hi hu id it ja jv ka kk ko ml mr ms my nl pt ru sw ta te th tl tr ur vi yo zh ro".split()
    assert all(L.is_known(c) for c in study)
    with open(SHARED / "pretraining_sizes" / "mc4.csv") as f:
        mc4 = [row["Language"] for row in csv.DictReader(f)]
    unknown = [c for c in mc4 if not L.is_known(c)]
    # only romanised variants and 'und' are outside the table
    assert all(c.endswith("-Latn") or c == "und" for c in unknown), unknown
    for c in mc4:
        if L.is_known(c):
            assert L.mc4_code(c) == c
