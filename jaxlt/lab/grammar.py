"""Synthetic languages from one base grammar, each defined by recorded, interpretable parameters.

A language (`LanguageParams`) fixes:

* `order`: the order of subject (agent), verb and object (patient): SVO, SOV, VSO or VOS; an
  intransitive clause keeps S before V unless the order is verb-initial;
* `adjective`: "AN" (adjective, or a name modifying an organisation noun, before its head) or "NA";
* `adposition`: "pre" (`at park`) or "post" (`park at`);
* `morphology`: "isolating" (bare nouns) or "agglutinative" (agent and patient case suffixes and
  a plural suffix, glued to nouns and names);
* `lexical_share`: the share of the base lexicon's word forms it keeps (cognates); the rest of its
  words are its own forms. Shares are nested (a concept shared at share 0.4 is also shared at 0.6),
  so two languages share min(share_a, share_b) of the lexicon when both use the same script;
* `script`: "latin", or "cyrillic" / "greek" (a letter-by-letter transliteration of the Latin forms).

Names (people's, places', organisations'), digits and punctuation are the same in every language
(written in Latin letters whatever the script), as names and numbers are anchors in real text.

Meaning is language-independent: a `Clause` (agent, verb, patient, optional place) is rendered by
`Language.render(clause)` into tokens, each with its NER tag, so labels survive every parameter.
Everything is deterministic for a seed (no Python `hash`, only seeded `random.Random`).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence

ORDERS = ("SVO", "SOV", "VSO", "VOS")
ADJECTIVE_ORDERS = ("AN", "NA")
ADPOSITIONS = ("pre", "post")
MORPHOLOGIES = ("isolating", "agglutinative")
SCRIPTS = ("latin", "cyrillic", "greek")
PARAMETERS = ("order", "adjective", "adposition", "morphology", "script", "lexical_share")

# Concepts of the base lexicon (English glosses; forms are generated).
NOUNS = ("dog", "cat", "horse", "bird", "fish", "farmer", "teacher", "child", "doctor", "baker",
         "soldier", "king", "queen", "wolf", "bear", "fox", "mouse", "goat", "sheep", "cow",
         "singer", "driver", "nurse", "pilot", "judge", "thief", "friend", "girl", "boy", "monk")
VERBS = ("sees", "chases", "helps", "calls", "follows", "finds", "greets", "paints", "feeds",
         "pushes", "visits", "teaches", "hears", "watches", "thanks", "meets")
ADJECTIVES = ("big", "small", "old", "young", "red", "black", "happy", "tired", "quick", "quiet",
              "brave", "kind")
PLACES = ("park", "river", "market", "school", "forest", "garden", "house", "village", "church",
          "harbour")
ORG_NOUNS = ("bank", "club", "company", "school_org", "band")
FUNCTION_WORDS = ("at", "and")  # the adposition; "and" joins sentences in pre-training text
CONCEPTS = NOUNS + VERBS + ADJECTIVES + PLACES + ORG_NOUNS + FUNCTION_WORDS
SUFFIX_CONCEPTS = ("AGENT", "PATIENT", "PLURAL")

# Shared anchors: the same in every language.
PERSON_NAMES = ("Anna", "Boris", "Carla", "David", "Elena", "Felix", "Greta", "Hugo", "Irene",
                "Jonas", "Karin", "Leon", "Maria", "Nils", "Olga", "Pedro", "Rosa", "Simon",
                "Tanja", "Ugo", "Vera", "Walter", "Yara", "Zeno")
FAMILY_NAMES = ("Berg", "Costa", "Dahl", "Ebert", "Fischer", "Garcia", "Holm", "Ivanov", "Kovac",
                "Lund", "Moreau", "Novak")
PLACE_NAMES = ("Tarvo", "Belmira", "Kessa", "Olvado", "Runstad", "Vilmar", "Ostra", "Palenda",
               "Quinby", "Sorvik", "Umbria", "Zelan")
ORG_NAMES = ("Nordia", "Alcor", "Brisa", "Cobalt", "Delfin", "Ember", "Fjord", "Helix")

ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kr", "st",
          "tr", "pl", "gl")
VOWELS = ("a", "e", "i", "o", "u")
CODAS = ("", "", "", "n", "r", "s", "l", "k")

TRANSLITERATION = {
    "cyrillic": dict(zip("abcdefghijklmnopqrstuvwxyz", "абцдефгхийклмнопкрстувшксз")),
    "greek": dict(zip("abcdefghijklmnopqrstuvwxyz", "αβψδεφγηιξκλμνοπκρστυβωχυζ")),
}


@dataclasses.dataclass(frozen=True)
class LanguageParams:
    """The planted parameters of one lab language (see the module docstring)."""

    code: str
    order: str = "SVO"
    adjective: str = "AN"
    adposition: str = "pre"
    morphology: str = "isolating"
    script: str = "latin"
    lexical_share: float = 1.0

    def __post_init__(self):
        for name, known in (("order", ORDERS), ("adjective", ADJECTIVE_ORDERS),
                            ("adposition", ADPOSITIONS), ("morphology", MORPHOLOGIES),
                            ("script", SCRIPTS)):
            if getattr(self, name) not in known:
                raise ValueError(f"language {self.code}: {name}={getattr(self, name)!r}; known: "
                                 f"{', '.join(known)}")
        if not 0.0 <= float(self.lexical_share) <= 1.0:
            raise ValueError(f"language {self.code}: lexical_share must be in [0, 1], "
                             f"got {self.lexical_share}")
        if not self.code or "." in self.code:
            raise ValueError(f"language code must be non-empty without dots, got {self.code!r}")

    def as_row(self) -> dict:
        return dataclasses.asdict(self)


def planted_similarity(a: LanguageParams, b: LanguageParams) -> float:
    """Mean over the planted parameters of 1 for equal categories, 1 - |a - b| for numeric ones."""
    total = 0.0
    for name in PARAMETERS:
        x, y = getattr(a, name), getattr(b, name)
        total += 1.0 - abs(float(x) - float(y)) if isinstance(x, float) else float(x == y)
    return total / len(PARAMETERS)


# ---------------------------------------------------------------------------------------------
# lexicon


def _word(rng: random.Random, syllables: tuple[int, int]) -> str:
    n = rng.randint(*syllables)
    return "".join(rng.choice(ONSETS) + rng.choice(VOWELS) for _ in range(n - 1)) + \
        rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)


def base_lexicon(seed: int) -> dict[str, str]:
    """Base word forms (Latin letters) for every concept and suffix; distinct forms."""
    rng = random.Random(f"jaxlt-lab-base-{seed}")
    used = {w.lower() for w in PERSON_NAMES + FAMILY_NAMES + PLACE_NAMES + ORG_NAMES}
    lexicon = {}
    for concept in CONCEPTS:
        syllables = (1, 1) if concept in FUNCTION_WORDS else (2, 3)
        while True:
            form = _word(rng, syllables)
            if form not in used:
                break
        used.add(form)
        lexicon[concept] = form
    return lexicon


def concept_ranks(seed: int) -> dict[str, float]:
    """A seeded order of the concepts as ranks i / N: a language with share s keeps the base form
    of the concepts with rank < s, i.e. exactly ceil(s * N) of them (so shares are nested across
    languages and the realised share is the planted one)."""
    order = list(CONCEPTS)
    random.Random(f"jaxlt-lab-ranks-{seed}").shuffle(order)
    return {concept: i / len(order) for i, concept in enumerate(order)}


def transliterate(text: str, script: str) -> str:
    if script == "latin":
        return text
    table = TRANSLITERATION[script]
    return "".join(table.get(ch, ch) for ch in text)


class Language:
    """A lab language: its parameters and its lexicon (built deterministically from `seed`)."""

    def __init__(self, params: LanguageParams, seed: int = 0):
        self.params = params
        base = base_lexicon(seed)
        ranks = concept_ranks(seed)
        rng = random.Random(f"jaxlt-lab-lexicon-{seed}-{params.code}")
        taken = set(base.values()) | {w.lower() for w in PERSON_NAMES + FAMILY_NAMES + PLACE_NAMES + ORG_NAMES}
        lexicon = {}
        for concept in CONCEPTS:
            own = None
            # Always draw, so a language's own forms do not depend on its share.
            syllables = (1, 1) if concept in FUNCTION_WORDS else (2, 3)
            while own is None or own in taken:
                own = _word(rng, syllables) + ("" if concept in FUNCTION_WORDS else rng.choice(("", "e", "o")))
                own = own if own not in taken else None
            taken.add(own)
            lexicon[concept] = base[concept] if ranks[concept] < params.lexical_share else own
        self.latin_lexicon = lexicon
        self.cognates = sorted(c for c in CONCEPTS if lexicon[c] == base[c])
        # Case and plural suffixes: one short syllable each, the language's own.
        srng = random.Random(f"jaxlt-lab-suffix-{seed}-{params.code}")
        forms = []
        while len(forms) < len(SUFFIX_CONCEPTS):
            s = srng.choice(("k", "m", "n", "t", "l", "r", "s")) + srng.choice(VOWELS)
            if s not in forms:
                forms.append(s)
        self.suffixes = dict(zip(SUFFIX_CONCEPTS, forms))

    @property
    def code(self) -> str:
        return self.params.code

    def word(self, concept: str) -> str:
        return transliterate(self.latin_lexicon[concept], self.params.script)

    # -- rendering -------------------------------------------------------------------------
    def noun_phrase(self, np: "NounPhrase", role: str | None) -> list[tuple[str, str]]:
        """Tokens with NER tags of one noun phrase in a role ("AGENT", "PATIENT" or None)."""
        agglutinative = self.params.morphology == "agglutinative"

        def inflect(form: str, latin: bool = False) -> str:
            suffix = ""
            if agglutinative and np.plural and np.kind == "noun":
                suffix += self.suffixes["PLURAL"]
            if agglutinative and role is not None:
                suffix += self.suffixes[role]
            if not suffix:
                return form
            return form + (suffix if latin else transliterate(suffix, self.params.script))

        if np.kind == "person":
            words = np.head.split(" ")
            words[-1] = inflect(words[-1], latin=True)
            return [(w, "B-PER" if i == 0 else "I-PER") for i, w in enumerate(words)]
        if np.kind == "org":  # name modifies the organisation noun: follows the adjective order
            name, noun = (np.modifier, "B-ORG"), (inflect(self.word(np.head)), "I-ORG")
            if self.params.adjective == "AN":
                return [name, noun]
            return [(self.word(np.head), "B-ORG"), (inflect(np.modifier, latin=True), "I-ORG")]
        if np.kind == "place_name":
            return [(np.head, "B-LOC")]
        # a common noun, with an optional numeral and adjective
        out = []
        if np.number:
            out.append((str(np.number), "O"))
        noun = (inflect(self.word(np.head)), "O")
        if np.modifier:
            adjective = (self.word(np.modifier), "O")
            out += [adjective, noun] if self.params.adjective == "AN" else [noun, adjective]
        else:
            out.append(noun)
        return out

    def place_phrase(self, place: "NounPhrase") -> list[tuple[str, str]]:
        adposition = (self.word("at"), "O")
        phrase = self.noun_phrase(place, None)
        return [adposition] + phrase if self.params.adposition == "pre" else phrase + [adposition]

    def render(self, clause: "Clause") -> list[tuple[str, str]]:
        """(token, NER tag) pairs of a clause; intransitive when `clause.patient` is None."""
        s = self.noun_phrase(clause.agent, "AGENT")
        v = [(self.word(clause.verb), "O")]
        if clause.patient is None:
            core = v + s if self.params.order in ("VSO", "VOS") else s + v
        else:
            o = self.noun_phrase(clause.patient, "PATIENT")
            parts = {"S": s, "V": v, "O": o}
            core = [t for slot in self.params.order for t in parts[slot]]
        if clause.place is not None:
            core = core + self.place_phrase(clause.place)
        return core

    def sentence(self, clause: "Clause") -> str:
        return " ".join(tok for tok, _ in self.render(clause))


@dataclasses.dataclass(frozen=True)
class NounPhrase:
    """kind: "noun" (head: a NOUNS/PLACES concept), "person" (head: "First [Family]"),
    "org" (head: an ORG_NOUNS concept, modifier: an org name), "place_name" (head: a place name)."""

    kind: str
    head: str
    modifier: str | None = None  # adjective concept (noun) or org name (org)
    number: int | None = None  # a numeral (noun); plural when > 1

    @property
    def plural(self) -> bool:
        return self.number is not None and self.number > 1


@dataclasses.dataclass(frozen=True)
class Clause:
    agent: NounPhrase
    verb: str
    patient: NounPhrase | None = None
    place: NounPhrase | None = None


# ---------------------------------------------------------------------------------------------
# random meanings


def random_noun_phrase(rng: random.Random, *, entities: bool = True, exclude: Sequence[str] = (),
                       simple: bool = False) -> NounPhrase:
    """A random agent / patient: a common noun (with optional numeral / adjective), or a name.
    `simple`: one-word phrases only (a bare noun or a first name)."""
    r = rng.random()
    if entities and r < 0.25:
        first = rng.choice(PERSON_NAMES)
        head = first if simple or rng.random() < 0.5 else f"{first} {rng.choice(FAMILY_NAMES)}"
        if head in exclude or first in exclude:
            return random_noun_phrase(rng, entities=entities, exclude=exclude, simple=simple)
        return NounPhrase("person", head)
    if entities and not simple and r < 0.35:
        name = rng.choice(ORG_NAMES)
        if name in exclude:
            return random_noun_phrase(rng, entities=entities, exclude=exclude, simple=simple)
        return NounPhrase("org", rng.choice(ORG_NOUNS), modifier=name)
    head = rng.choice([n for n in NOUNS if n not in exclude])
    if simple:
        return NounPhrase("noun", head)
    number = rng.choice((None, None, None, 1, 2, 3, 4, 5, 7, 12))
    modifier = rng.choice(ADJECTIVES) if rng.random() < 0.4 else None
    return NounPhrase("noun", head, modifier=modifier, number=number)


def random_place(rng: random.Random) -> NounPhrase:
    if rng.random() < 0.5:
        return NounPhrase("place_name", rng.choice(PLACE_NAMES))
    return NounPhrase("noun", rng.choice(PLACES), modifier=rng.choice(ADJECTIVES) if rng.random() < 0.3 else None)


def np_key(np: NounPhrase) -> str:
    """What identifies a referent (for keeping agent and patient apart)."""
    return np.modifier if np.kind == "org" else np.head.split(" ")[0]


def random_clause(rng: random.Random, transitive: bool = True, place_rate: float = 0.4,
                  simple: bool = False) -> Clause:
    agent = random_noun_phrase(rng, simple=simple)
    patient = random_noun_phrase(rng, exclude=(np_key(agent),), simple=simple) if transitive else None
    place = random_place(rng) if rng.random() < place_rate else None
    return Clause(agent, rng.choice(VERBS), patient, place)
