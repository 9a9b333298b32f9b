"""The one table of language codes used everywhere in jaxlt.

Every part of jaxlt converts language codes through :func:`normalize`, which
returns the *canonical code*: the ISO 639-1 code where one exists (``ar``,
``sw``), otherwise the ISO 639-3 code (``ceb``, ``haw``, ``fil``). Accepted
inputs are ISO 639-1, ISO 639-3 (macrolanguage *and* the individual language
that stands for it, e.g. Arabic ``ara``/``arb``, Swahili ``swa``/``swh``,
Malay ``msa``/``zsm``, Estonian ``est``/``ekk``, Chinese ``zho``/``cmn``),
ISO 639-2/B bibliographic codes (``ger``, ``chi``), deprecated codes still used
by mT5's mC4 (``iw`` Hebrew, ``jw`` Javanese, ``in`` Indonesian), English names,
and BCP-47 tags with a region subtag (``pt-BR``) or the language's usual script
(``zh-Hans``, ``sr-Cyrl``). Other script subtags are refused (``ru-Latn`` is romanised
Russian, a different corpus), as is anything unknown.

Module is dependency-free on purpose: both stages import it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterator


class UnknownLanguageError(ValueError):
    """A language code that is not in jaxlt's table."""


@dataclasses.dataclass(frozen=True)
class Language:
    code: str  # canonical jaxlt code: ISO 639-1 if it exists, else ISO 639-3
    iso1: str | None  # ISO 639-1
    iso3: str  # ISO 639-3 (the macrolanguage code where the language is one)
    individual: str  # ISO 639-3 individual language the macrolanguage stands for
    name: str  # English name
    script: str  # ISO 15924 code of the usual script
    lang2vec: str  # code in lang2vec / URIEL
    mc4: str | None  # name of the language in mT5's mC4 corpus, None if absent

    @property
    def is_macrolanguage(self) -> bool:
        return self.iso3 != self.individual


# canonical | iso1 | iso3 (macro) | individual | name | script | lang2vec | mc4 | extra aliases
# Macrolanguages map to the individual language that carries the bulk of the
# text (Standard Arabic, Coastal Swahili, Standard Malay, Standard Estonian,
# Mandarin, Western Persian ...); lang2vec only has the individual codes.
_TABLE = """
af|af|afr|afr|Afrikaans|Latn|afr|af|
am|am|amh|amh|Amharic|Ethi|amh|am|
ar|ar|ara|arb|Arabic|Arab|arb|ar|Standard Arabic;Modern Standard Arabic
as|as|asm|asm|Assamese|Beng|asm||
az|az|aze|azj|Azerbaijani|Latn|azj|az|North Azerbaijani;Azeri
be|be|bel|bel|Belarusian|Cyrl|bel|be|
bg|bg|bul|bul|Bulgarian|Cyrl|bul|bg|
bn|bn|ben|ben|Bengali|Beng|ben|bn|Bangla
br|br|bre|bre|Breton|Latn|bre||
bs|bs|bos|bos|Bosnian|Latn|bos||
ca|ca|cat|cat|Catalan|Latn|cat|ca|
ceb||ceb|ceb|Cebuano|Latn|ceb|ceb|
co|co|cos|cos|Corsican|Latn|cos|co|
cs|cs|ces|ces|Czech|Latn|ces|cs|cze
cy|cy|cym|cym|Welsh|Latn|cym|cy|wel
da|da|dan|dan|Danish|Latn|dan|da|
de|de|deu|deu|German|Latn|deu|de|ger
el|el|ell|ell|Greek|Grek|ell|el|gre;Modern Greek
en|en|eng|eng|English|Latn|eng|en|
eo|eo|epo|epo|Esperanto|Latn|epo|eo|
es|es|spa|spa|Spanish|Latn|spa|es|Castilian
et|et|est|ekk|Estonian|Latn|ekk|et|Standard Estonian
eu|eu|eus|eus|Basque|Latn|eus|eu|baq
fa|fa|fas|pes|Persian|Arab|pes|fa|per;Farsi;Western Persian;Iranian Persian
fi|fi|fin|fin|Finnish|Latn|fin|fi|
fil||fil|fil|Filipino|Latn|tgl|fil|
fr|fr|fra|fra|French|Latn|fra|fr|fre
fy|fy|fry|fry|Western Frisian|Latn|fry|fy|Frisian
ga|ga|gle|gle|Irish|Latn|gle|ga|
gd|gd|gla|gla|Scottish Gaelic|Latn|gla|gd|Gaelic
gl|gl|glg|glg|Galician|Latn|glg|gl|
gu|gu|guj|guj|Gujarati|Gujr|guj|gu|
ha|ha|hau|hau|Hausa|Latn|hau|ha|
haw||haw|haw|Hawaiian|Latn|haw|haw|
he|he|heb|heb|Hebrew|Hebr|heb|iw|iw
hi|hi|hin|hin|Hindi|Deva|hin|hi|
hmn||hmn|mww|Hmong|Latn|mww|hmn|Hmong Daw
hr|hr|hrv|hrv|Croatian|Latn|hrv||
ht|ht|hat|hat|Haitian Creole|Latn|hat|ht|Haitian
hu|hu|hun|hun|Hungarian|Latn|hun|hu|
hy|hy|hye|hye|Armenian|Armn|hye|hy|arm
id|id|ind|ind|Indonesian|Latn|ind|id|in
ig|ig|ibo|ibo|Igbo|Latn|ibo|ig|
is|is|isl|isl|Icelandic|Latn|isl|is|ice
it|it|ita|ita|Italian|Latn|ita|it|
ja|ja|jpn|jpn|Japanese|Jpan|jpn|ja|
jv|jv|jav|jav|Javanese|Latn|jav|jv|jw
ka|ka|kat|kat|Georgian|Geor|kat|ka|geo
kk|kk|kaz|kaz|Kazakh|Cyrl|kaz|kk|
km|km|khm|khm|Khmer|Khmr|khm|km|Central Khmer
kn|kn|kan|kan|Kannada|Knda|kan|kn|
ko|ko|kor|kor|Korean|Kore|kor|ko|
ku|ku|kur|kmr|Kurdish|Latn|kmr|ku|Northern Kurdish;Kurmanji
ky|ky|kir|kir|Kyrgyz|Cyrl|kir|ky|Kirghiz
la|la|lat|lat|Latin|Latn|lat|la|
lb|lb|ltz|ltz|Luxembourgish|Latn|ltz|lb|
lo|lo|lao|lao|Lao|Laoo|lao|lo|
lt|lt|lit|lit|Lithuanian|Latn|lit|lt|
lv|lv|lav|lvs|Latvian|Latn|lav|lv|Standard Latvian
mg|mg|mlg|plt|Malagasy|Latn|plt|mg|Plateau Malagasy
mi|mi|mri|mri|Maori|Latn|mri|mi|mao
mk|mk|mkd|mkd|Macedonian|Cyrl|mkd|mk|mac
ml|ml|mal|mal|Malayalam|Mlym|mal|ml|
mn|mn|mon|khk|Mongolian|Cyrl|khk|mn|Khalkha Mongolian
mr|mr|mar|mar|Marathi|Deva|mar|mr|
ms|ms|msa|zsm|Malay|Latn|zsm|ms|may;Standard Malay
mt|mt|mlt|mlt|Maltese|Latn|mlt|mt|
my|my|mya|mya|Burmese|Mymr|mya|my|bur;Myanmar
ne|ne|nep|npi|Nepali|Deva|nep|ne|
nl|nl|nld|nld|Dutch|Latn|nld|nl|dut;Flemish
nn|nn|nno|nno|Norwegian Nynorsk|Latn|nno||
no|no|nor|nob|Norwegian|Latn|nob|no|nb;Norwegian Bokmal;Norwegian Bokmål
ny|ny|nya|nya|Chichewa|Latn|nya|ny|Nyanja;Chewa
oc|oc|oci|oci|Occitan|Latn|oci||
om|om|orm|gaz|Oromo|Latn|gaz||
or|or|ori|ory|Odia|Orya|ori||Oriya
pa|pa|pan|pan|Punjabi|Guru|pan|pa|Panjabi
pl|pl|pol|pol|Polish|Latn|pol|pl|
ps|ps|pus|pbt|Pashto|Arab|pst|ps|Pushto
pt|pt|por|por|Portuguese|Latn|por|pt|
ro|ro|ron|ron|Romanian|Latn|ron|ro|rum;mo;mol;Moldavian
ru|ru|rus|rus|Russian|Cyrl|rus|ru|
sa|sa|san|san|Sanskrit|Deva|san||
sd|sd|snd|snd|Sindhi|Arab|snd|sd|
si|si|sin|sin|Sinhala|Sinh|sin|si|Sinhalese
sk|sk|slk|slk|Slovak|Latn|slk|sk|slo
sl|sl|slv|slv|Slovenian|Latn|slv|sl|Slovene
sm|sm|smo|smo|Samoan|Latn|smo|sm|
sn|sn|sna|sna|Shona|Latn|sna|sn|
so|so|som|som|Somali|Latn|som|so|
sq|sq|sqi|als|Albanian|Latn|als|sq|alb;Tosk Albanian
sr|sr|srp|srp|Serbian|Cyrl|srp|sr|
st|st|sot|sot|Southern Sotho|Latn|sot|st|Sesotho;Sotho
su|su|sun|sun|Sundanese|Latn|sun|su|
sv|sv|swe|swe|Swedish|Latn|swe|sv|
sw|sw|swa|swh|Swahili|Latn|swh|sw|Kiswahili;Coastal Swahili
ta|ta|tam|tam|Tamil|Taml|tam|ta|
te|te|tel|tel|Telugu|Telu|tel|te|
tg|tg|tgk|tgk|Tajik|Cyrl|tgk|tg|
th|th|tha|tha|Thai|Thai|tha|th|
tl|tl|tgl|tgl|Tagalog|Latn|tgl||
tr|tr|tur|tur|Turkish|Latn|tur|tr|
tt|tt|tat|tat|Tatar|Cyrl|tat||
ug|ug|uig|uig|Uyghur|Arab|uig||Uighur
uk|uk|ukr|ukr|Ukrainian|Cyrl|ukr|uk|
ur|ur|urd|urd|Urdu|Arab|urd|ur|
uz|uz|uzb|uzn|Uzbek|Latn|uzn|uz|Northern Uzbek
vi|vi|vie|vie|Vietnamese|Latn|vie|vi|
xh|xh|xho|xho|Xhosa|Latn|xho|xh|
yi|yi|yid|ydd|Yiddish|Hebr|ydd|yi|
yo|yo|yor|yor|Yoruba|Latn|yor|yo|
zh|zh|zho|cmn|Chinese|Hans|cmn|zh|chi;Mandarin;Mandarin Chinese
zu|zu|zul|zul|Zulu|Latn|zul|zu|
"""


def _parse_table() -> tuple[dict[str, Language], dict[str, str]]:
    languages: dict[str, Language] = {}
    aliases: dict[str, str] = {}

    def add_alias(alias: str, code: str) -> None:
        key = alias.strip().casefold()
        if not key:
            return
        if aliases.get(key, code) != code:
            raise AssertionError(f"alias {alias!r} is ambiguous: {aliases[key]} and {code}")
        aliases[key] = code

    for line_number, line in enumerate(_TABLE.strip().splitlines(), start=1):
        fields = line.split("|")
        if len(fields) != 9:
            raise AssertionError(f"languages table line {line_number}: {len(fields)} fields, expected 9")
        code, iso1, iso3, individual, name, script, l2v, mc4, extra = fields
        lang = Language(code, iso1 or None, iso3, individual, name, script, l2v, mc4 or None)
        languages[code] = lang
        # Own codes first so that, e.g., Tagalog's 'tgl' stays Tagalog even though
        # Filipino borrows it as its lang2vec code.
        for alias in (code, iso1, iso3, individual, name):
            add_alias(alias, code)
    for line in _TABLE.strip().splitlines():
        code, *_, l2v, mc4, extra = line.split("|")
        for alias in [mc4, *extra.split(";")]:
            add_alias(alias, code)
        if l2v.casefold() not in aliases:
            add_alias(l2v, code)
    return languages, aliases


_LANGUAGES, _ALIASES = _parse_table()
_REGION = re.compile(r"^([A-Za-z]{2,3})[-_]([A-Za-z]{2}|\d{3})$")
_SCRIPT = re.compile(r"^([A-Za-z]{2,3})[-_]([A-Za-z]{4})$")


def normalize(code: str) -> str:
    """Canonical jaxlt code (ISO 639-1 where it exists) for any accepted spelling.

    Raises UnknownLanguageError naming the code when it is not in the table.
    """
    if not isinstance(code, str):
        raise UnknownLanguageError(f"language code must be a string, got {type(code).__name__}: {code!r}")
    key = code.strip().casefold()
    if key in _ALIASES:
        return _ALIASES[key]
    match = _REGION.match(code.strip())
    if match and match.group(1).casefold() in _ALIASES:
        return _ALIASES[match.group(1).casefold()]  # pt-BR -> pt: region does not change the language
    script = _SCRIPT.match(code.strip())
    if script and script.group(1).casefold() in _ALIASES:
        lang = _LANGUAGES[_ALIASES[script.group(1).casefold()]]
        if script.group(2).casefold() == lang.script.casefold():
            return lang.code  # zh-Hans, sr-Cyrl: the language in its usual script
    hint = ""
    if script:
        hint = " (a script subtag such as '-Latn' marks a romanised variant, which jaxlt keeps apart)"
    raise UnknownLanguageError(
        f"unknown language code {code!r}{hint}; known: ISO 639-1/639-3 codes or English names of "
        f"{len(_LANGUAGES)} languages, see jaxlt.languages.codes()"
    )


def is_known(code: str) -> bool:
    try:
        normalize(code)
    except UnknownLanguageError:
        return False
    return True


def get(code: str) -> Language:
    """The table row for any accepted spelling of a language."""
    return _LANGUAGES[normalize(code)]


def iso3(code: str) -> str:
    return get(code).iso3


def name(code: str) -> str:
    return get(code).name


def lang2vec_code(code: str) -> str:
    return get(code).lang2vec


def mc4_code(code: str) -> str | None:
    return get(code).mc4


def codes() -> list[str]:
    """All canonical codes, sorted."""
    return sorted(_LANGUAGES)


def languages() -> Iterator[Language]:
    return (_LANGUAGES[c] for c in codes())


def as_records() -> list[dict]:
    """The table as a list of dicts (``pandas.DataFrame(as_records())`` for a frame)."""
    return [dataclasses.asdict(lang) for lang in languages()]
