"""Text-to-text formats of the study (paper, Appendix A.3), defined once, and record schemas.

* Classification (XNLI, PAWS-X): T5 classification. The inputs name the task and its fields,
  the target is an English label word (as mT5's zero-shot setup: the label words do not
  change with the language).
* QA (TyDiQA, XQuAD): T5's SQuAD format, `question: ... context: ...` -> answer text.
* NER (PAN-X): the gold tokens joined by spaces -> `tok : TAG | tok : TAG | ...`.

The builders here (`classification_format`, `ner_format`, `qa_format`, their validators and
plain-text functions) are what `jaxlt.data.datasets` declares each dataset with; a format
turns a raw record into `{"inputs", "targets", "answers"}` (answers: every acceptable target;
one for classification and NER, all gold answers for QA). Pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence

from jaxlt.errors import DataError

XNLI_LABELS = ("entailment", "neutral", "contradiction")  # hub ClassLabel order
PAWSX_LABELS = ("not_paraphrase", "paraphrase")  # 0: different meaning, 1: paraphrase
# PAN-X (WikiANN as XTREME ships it) tag ids, in the hub's ClassLabel order.
PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")

NER_TOKEN_SEP = " : "
NER_PAIR_SEP = " | "


class RecordError(DataError):
    """A data record that does not match its dataset's schema."""


# ---------------------------------------------------------------------------------------------
# classification


def classification_inputs(prefix: str, fields: Sequence[tuple[str, str]]) -> str:
    return f"{prefix}: " + " ".join(f"{name}: {value}" for name, value in fields)


def xnli_inputs(premise: str, hypothesis: str) -> str:
    return classification_inputs("xnli", [("premise", premise), ("hypothesis", hypothesis)])


def pawsx_inputs(sentence1: str, sentence2: str) -> str:
    return classification_inputs("pawsx", [("sentence1", sentence1), ("sentence2", sentence2)])


def label_word(label, labels: Sequence[str]) -> str:
    """The label word of an index (hub ClassLabel) or of the word itself."""
    return label if isinstance(label, str) else labels[label]


def classification_format(prefix: str, fields: Sequence[str], labels: Sequence[str]):
    fields, labels = tuple(fields), tuple(labels)

    def fmt(record: dict) -> dict:
        target = label_word(record["label"], labels)
        return {"inputs": classification_inputs(prefix, [(f, record[f]) for f in fields]),
                "targets": target, "answers": [target]}
    return fmt


def classification_validator(fields: Sequence[str], labels: Sequence[str]):
    fields, labels = tuple(fields), tuple(labels)

    def check(record: dict) -> None:
        for field in fields:
            if not isinstance(record.get(field), str):
                raise RecordError(f"field {field!r} must be a string, got {record.get(field)!r}")
        label = record.get("label")
        ok = (isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(labels)) \
            or (isinstance(label, str) and label in labels)
        if not ok:
            raise RecordError(f"field 'label' must be an integer in [0, {len(labels)}) or one of "
                              f"{', '.join(labels)}, got {label!r}")
    return check


def fields_text(fields: Sequence[str]):
    fields = tuple(fields)

    def text(record: dict) -> str:
        return " ".join(record[f] for f in fields)
    return text


# ---------------------------------------------------------------------------------------------
# NER


def ner_inputs(tokens: list[str]) -> str:
    return " ".join(tokens)


def ner_targets(tokens: list[str], tags: list[str]) -> str:
    """`It : O | was : O | Williams : B-ORG` (paper, Appendix A.3)."""
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    return NER_PAIR_SEP.join(f"{tok}{NER_TOKEN_SEP}{tag}" for tok, tag in zip(tokens, tags))


def parse_ner(text: str) -> list[tuple[str, str] | None]:
    """Splits a `tok : TAG | ...` string into (token, tag) pairs; None for a malformed piece.

    Splitting on the *last* ' : ' keeps tokens such as ':' intact; a trailing ' |' (a generation
    cut after a separator) does not spoil the last pair. Never raises.
    """
    text = text.strip()
    if text.endswith(NER_PAIR_SEP.rstrip()) and text != NER_PAIR_SEP.strip():
        text = text[:-len(NER_PAIR_SEP.rstrip())].rstrip()
    if not text:
        return []
    pairs: list[tuple[str, str] | None] = []
    for piece in text.split(NER_PAIR_SEP):
        token, sep, tag = piece.rpartition(NER_TOKEN_SEP)
        tag = tag.strip()
        pairs.append((token, tag) if sep and tag else None)
    return pairs


def tag_names(tags: list, names: Sequence[str] = PANX_TAGS) -> list[str]:
    return [t if isinstance(t, str) else names[t] for t in tags]


def panx_tag_names(tags: list) -> list[str]:
    return tag_names(tags, PANX_TAGS)


def ner_format(tags: Sequence[str]):
    names = tuple(tags)

    def fmt(record: dict) -> dict:
        target = ner_targets(record["tokens"], tag_names(record["ner_tags"], names))
        return {"inputs": ner_inputs(record["tokens"]), "targets": target, "answers": [target]}
    return fmt


def _is_str_list(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def ner_validator(tags: Sequence[str]):
    names = tuple(tags)

    def check(record: dict) -> None:
        tokens, ner_tags = record.get("tokens"), record.get("ner_tags")
        if not _is_str_list(tokens):
            raise RecordError(f"field 'tokens' must be a list of strings, got {tokens!r}")
        if not isinstance(ner_tags, list) or len(ner_tags) != len(tokens):
            raise RecordError(f"field 'ner_tags' must be a list as long as 'tokens' ({len(tokens)}), "
                              f"got {ner_tags!r}")
        for tag in ner_tags:
            ok = (isinstance(tag, int) and not isinstance(tag, bool) and 0 <= tag < len(names)
                  ) or tag in names
            if not ok:
                raise RecordError(f"unknown NER tag {tag!r}; known: ids 0-{len(names) - 1} "
                                  f"or {', '.join(names)}")
    return check


def tokens_text(record: dict) -> str:
    return " ".join(record["tokens"])


# ---------------------------------------------------------------------------------------------
# QA


def qa_inputs(question: str, context: str) -> str:
    return f"question: {question} context: {context}"


def qa_format(record: dict) -> dict:
    answers = list(record["answers"]["text"])
    return {"inputs": qa_inputs(record["question"], record["context"]),
            "targets": answers[0] if answers else "", "answers": answers}


def qa_text(record: dict) -> str:
    return f"{record['question']} {record['context']}"


def validate_qa(record: dict) -> None:
    for field in ("id", "context", "question"):
        if not isinstance(record.get(field), str):
            raise RecordError(f"field {field!r} must be a string, got {record.get(field)!r}")
    answers = record.get("answers")
    if not isinstance(answers, dict) or not _is_str_list(answers.get("text")):
        raise RecordError(f"field 'answers' must be {{'text': [str], 'answer_start': [int]}}, "
                          f"got {answers!r}")
    starts = answers.get("answer_start")
    if not isinstance(starts, list) or len(starts) != len(answers["text"]):
        raise RecordError(f"'answers.answer_start' must be a list as long as 'answers.text', "
                          f"got {starts!r}")


def qa_answer_found(record: dict) -> bool:
    """Whether the first gold answer occurs in the context (at answer_start, or anywhere)."""
    answers = record["answers"]
    if not answers["text"]:
        return False
    text, start = answers["text"][0], answers["answer_start"][0]
    context = record["context"]
    return context[start:start + len(text)] == text or text in context


# ---------------------------------------------------------------------------------------------


def to_example(dataset: str, record: dict, index: int, split: str) -> dict:
    """The text-to-text example for one raw record of a registered dataset."""
    from jaxlt.data.datasets import get_dataset

    return get_dataset(dataset).to_example(record, index, split)
