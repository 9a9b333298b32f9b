"""The lab's languages, tasks and text, written as local JSONL files.

* `DEFAULT_LANGUAGES`: the lab (8 languages), a family with graded distance from the base language
  `syn_a`: the closer a language, the more base word forms it keeps and the more structure it shares;
  `syn_c` (modifier order) and `syn_d` (script only) isolate one route each.
* `lab_nli`: 3-way inference about an adjective: the premise's agent has an adjective (`big dog sees
  cat`); the hypothesis restates it (*entailment*), gives its opposite (*contradiction*, `small dog
  sees`) or another, compatible adjective (*neutral*, `red dog sees`). The label is a function of the
  two adjectives' concepts, so it survives every transformation; what it takes is the lexicon, which
  a target shares with the source only through shared word forms (see `nli_meanings`).
* `lab_ner`: PAN-X-style tagging (`tok : TAG | ...`, tags O, B/I-PER, B/I-ORG, B/I-LOC) of one
  transitive clause: person names are PER, a name with an organisation noun is ORG (its order
  follows the modifier order), a place name is LOC: the tags depend on modifier order, and case
  suffixes glued to names (agglutinative languages) change the name tokens.

The meanings are drawn once per split and rendered in every language (parallel data, as XNLI's
translated test sets), so the labels are identical across languages by construction.
`write_lab_data(directory)` writes `{directory}/{task}/{lang}/{split}.jsonl` (the layout
`jaxlt.data.datasets` reads for a dataset declared with `data_dir`) and the pre-training text.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence

from jaxlt.lab.grammar import (ADJECTIVES, NOUNS, VERBS, Clause, Language, LanguageParams, NounPhrase,
                               np_key, random_clause, random_noun_phrase)

SEED = 0
NLI_LABELS = ("entailment", "neutral", "contradiction")  # XNLI's label words and order
NER_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")  # PAN-X's
TASKS = ("lab_nli", "lab_ner")
SPLITS = ("train", "validation", "test")
SPLIT_SIZES = {"train": 2000, "validation": 200, "test": 300}

DEFAULT_LANGUAGES = (
    # A family with graded distance from syn_a: the closer a language, the more of the base word
    # forms it keeps AND the more of its structure it shares (as related languages do), so the planted
    # similarity is not dominated by parameters the tasks ignore; syn_c (modifier order) and syn_d
    # (script only, cognates transliterated, names in Latin letters) isolate one route each.
    LanguageParams("syn_a", "SVO", "AN", "pre", "isolating", "latin", 1.0),
    LanguageParams("syn_b", "SVO", "AN", "pre", "isolating", "latin", 0.9),
    LanguageParams("syn_c", "SVO", "NA", "pre", "isolating", "latin", 0.7),
    LanguageParams("syn_d", "SVO", "AN", "pre", "isolating", "cyrillic", 0.8),
    LanguageParams("syn_e", "SOV", "NA", "post", "isolating", "latin", 0.6),
    LanguageParams("syn_f", "SOV", "NA", "post", "agglutinative", "latin", 0.5),
    LanguageParams("syn_g", "VSO", "NA", "post", "agglutinative", "latin", 0.3),
    LanguageParams("syn_h", "VSO", "NA", "post", "agglutinative", "greek", 0.2),
)


def languages(params: Sequence[LanguageParams] = DEFAULT_LANGUAGES, seed: int = SEED) -> list[Language]:
    return [Language(p, seed) for p in params]


# ---------------------------------------------------------------------------------------------
# meanings (language-independent)


def _split_rng(task: str, split: str, seed: int) -> random.Random:
    return random.Random(f"jaxlt-lab-{task}-{split}-{seed}")


# The lab's world pairs every adjective with one opposite (what makes a contradiction).
OPPOSITES = (("big", "small"), ("old", "young"), ("red", "black"), ("happy", "tired"),
             ("quick", "quiet"), ("brave", "kind"))
OPPOSITE = {**dict(OPPOSITES), **{b: a for a, b in OPPOSITES}}


def nli_meanings(split: str, size: int, seed: int = SEED) -> list[tuple[Clause, Clause, int]]:
    """(premise, hypothesis, label index) triples; labels cycle so the classes are balanced.

    The premise: an agent with an adjective (`big dog`) does something to a patient (a noun or a
    name). The hypothesis: an intransitive clause with the same agent noun and verb and an adjective:
    *entailment*: the premise's adjective (`big dog sees`); *contradiction*: its opposite (`small dog
    sees`); *neutral*: another, compatible adjective (`red dog sees`: a big dog may be red). The label
    is a function of the two adjectives' concepts, so it survives word order, modifier order, case
    suffixes and script; what it takes is the lexicon (which forms are the same adjective and which
    are opposites), which a target language shares with the source only through shared word forms.
    (A first version also had neutral hypotheses about a noun not in the premise: noun matching was
    not learnt by the tiny model in 600 steps, see benchmarks/README.md.)"""
    rng = _split_rng("lab_nli", split, seed)
    out = []
    for i in range(size):
        adjective = rng.choice(ADJECTIVES)
        head = rng.choice(NOUNS)
        agent = NounPhrase("noun", head, modifier=adjective)
        patient = random_noun_phrase(rng, exclude=(head,), simple=True)
        premise = Clause(agent, rng.choice(VERBS), patient)
        label = i % 3
        if label == 0:
            subject = agent
        elif label == 2:
            subject = NounPhrase("noun", head, modifier=OPPOSITE[adjective])
        else:
            other = rng.choice([a for a in ADJECTIVES if a not in (adjective, OPPOSITE[adjective])])
            subject = NounPhrase("noun", head, modifier=other)
        out.append((premise, Clause(subject, premise.verb), label))
    rng.shuffle(out)
    return out


def ner_meanings(split: str, size: int, seed: int = SEED) -> list[Clause]:
    """Transitive clauses with at least one entity (names, organisations, place names)."""
    rng = _split_rng("lab_ner", split, seed)
    out = []
    while len(out) < size:
        clause = random_clause(rng, transitive=True, place_rate=0.6)
        # numerals and adjectives only lengthen the target; entities keep their full forms
        clause = Clause(_plain(clause.agent), clause.verb, _plain(clause.patient),
                        _plain(clause.place) if clause.place else None)
        nps = [clause.agent, clause.patient] + ([clause.place] if clause.place else [])
        if any(np.kind != "noun" for np in nps):
            out.append(clause)
    return out


def _plain(np: NounPhrase) -> NounPhrase:
    return NounPhrase("noun", np.head) if np.kind == "noun" else np


def text_meanings(size: int, seed: int = SEED) -> list[Clause]:
    """Pre-training sentences: transitive and intransitive clauses, with and without places."""
    rng = random.Random(f"jaxlt-lab-text-{seed}")
    return [random_clause(rng, transitive=rng.random() < 0.7, place_rate=0.4) for _ in range(size)]


# ---------------------------------------------------------------------------------------------
# records (the schema jaxlt.data.datasets' classification and NER kinds read)


def nli_record(language: Language, premise: Clause, hypothesis: Clause, label: int) -> dict:
    return {"premise": language.sentence(premise), "hypothesis": language.sentence(hypothesis),
            "label": label}


def ner_record(language: Language, clause: Clause) -> dict:
    pairs = language.render(clause)
    return {"tokens": [t for t, _ in pairs], "ner_tags": [NER_TAGS.index(tag) for _, tag in pairs]}


def task_records(task: str, language: Language, split: str, size: int | None = None,
                 seed: int = SEED) -> list[dict]:
    size = SPLIT_SIZES[split] if size is None else size
    if task == "lab_nli":
        return [nli_record(language, p, h, y) for p, h, y in nli_meanings(split, size, seed)]
    if task == "lab_ner":
        return [ner_record(language, c) for c in ner_meanings(split, size, seed)]
    raise KeyError(f"unknown lab task {task!r}; known: {', '.join(TASKS)}")


def pretraining_documents(language: Language, num_documents: int, sentences_per_document: int = 3,
                          seed: int = SEED, code_switch: float = 0.0) -> list[str]:
    """Monolingual documents of a few sentences (the same meanings in every language).

    `code_switch`: for a language not written in Latin letters, the share of its documents in
    which each word is written in Latin letters with probability 1/2 (its own word forms before
    transliteration), as transliterated words mix into real text: the route by which a model
    can learn that a form and its transliteration are one word."""
    meanings = text_meanings(num_documents * sentences_per_document, seed)
    latin = None
    if code_switch > 0 and language.params.script != "latin":
        import dataclasses

        latin = Language(dataclasses.replace(language.params, script="latin"), seed)
        rng = random.Random(f"jaxlt-lab-code-switch-{seed}-{language.code}")
    docs = []
    for i in range(num_documents):
        chunk = meanings[i * sentences_per_document:(i + 1) * sentences_per_document]
        if latin is not None and rng.random() < code_switch:
            sentences = []
            for c in chunk:  # the same clause rendered twice: tokens correspond one to one
                native, latin_tokens = language.render(c), latin.render(c)
                sentences.append(" ".join(lt if rng.random() < 0.5 else nt
                                          for (nt, _), (lt, _) in zip(native, latin_tokens)))
            docs.append(" ".join(s + " ." for s in sentences))
        else:
            docs.append(" ".join(language.sentence(c) + " ." for c in chunk))
    return docs


# ---------------------------------------------------------------------------------------------
# files


def _write_jsonl(path: str, records: Sequence[dict]) -> None:
    from jaxlt import atomic

    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def write_lab_data(directory: str, params: Sequence[LanguageParams] = DEFAULT_LANGUAGES,
                   seed: int = SEED, sizes: dict[str, int] | None = None) -> dict[str, str]:
    """Writes every task, language and split; returns {f"{task}/{lang}/{split}": path}."""
    sizes = {**SPLIT_SIZES, **(sizes or {})}
    written = {}
    for language in languages(params, seed):
        for task in TASKS:
            for split in SPLITS:
                path = os.path.join(directory, task, language.code, f"{split}.jsonl")
                _write_jsonl(path, task_records(task, language, split, sizes[split], seed))
                written[f"{task}/{language.code}/{split}"] = path
    return written


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


__all__ = ["DEFAULT_LANGUAGES", "NLI_LABELS", "NER_TAGS", "TASKS", "languages", "nli_meanings",
           "ner_meanings", "task_records", "pretraining_documents", "write_lab_data", "NounPhrase"]
