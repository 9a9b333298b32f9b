"""Text-to-text formats of the study (paper, Appendix A.3), defined once.

* XNLI, PAWS-X: T5 classification. The inputs name the task and its fields, the target is an
  English label word (as mT5's zero-shot setup: the label words do not change with the language).
* TyDiQA, XQuAD: T5's SQuAD format, `question: ... context: ...` -> answer text.
* PAN-X: the gold tokens joined by spaces -> `tok : TAG | tok : TAG | ...`.

`to_example(dataset, record, index, split)` turns a raw hub record into
`{"id", "inputs", "targets", "answers"}` (answers: every acceptable target; one for
classification and NER, all gold answers for QA).
"""

from __future__ import annotations

from jaxlt.data.sources import PANX_TAGS

XNLI_LABELS = ("entailment", "neutral", "contradiction")  # hub ClassLabel order
PAWSX_LABELS = ("not_paraphrase", "paraphrase")  # 0: different meaning, 1: paraphrase
CLASS_LABELS: dict[str, tuple[str, ...]] = {"xnli": XNLI_LABELS, "pawsx": PAWSX_LABELS}

NER_TOKEN_SEP = " : "
NER_PAIR_SEP = " | "


def xnli_inputs(premise: str, hypothesis: str) -> str:
    return f"xnli: premise: {premise} hypothesis: {hypothesis}"


def pawsx_inputs(sentence1: str, sentence2: str) -> str:
    return f"pawsx: sentence1: {sentence1} sentence2: {sentence2}"


def qa_inputs(question: str, context: str) -> str:
    return f"question: {question} context: {context}"


def ner_inputs(tokens: list[str]) -> str:
    return " ".join(tokens)


def ner_targets(tokens: list[str], tags: list[str]) -> str:
    """`It : O | was : O | Williams : B-ORG` (paper, Appendix A.3)."""
    if len(tokens) != len(tags):
        raise ValueError(f"{len(tokens)} tokens but {len(tags)} tags")
    return NER_PAIR_SEP.join(f"{tok}{NER_TOKEN_SEP}{tag}" for tok, tag in zip(tokens, tags))


def parse_ner(text: str) -> list[tuple[str, str] | None]:
    """Splits a `tok : TAG | ...` string into (token, tag) pairs; None for a malformed piece.

    Splitting on the *last* ' : ' keeps tokens such as ':' intact. Never raises.
    """
    text = text.strip()
    if not text:
        return []
    pairs: list[tuple[str, str] | None] = []
    for piece in text.split(NER_PAIR_SEP):
        token, sep, tag = piece.rpartition(NER_TOKEN_SEP)
        tag = tag.strip()
        pairs.append((token, tag) if sep and tag else None)
    return pairs


def panx_tag_names(tags: list) -> list[str]:
    return [t if isinstance(t, str) else PANX_TAGS[t] for t in tags]


def qa_answer_found(record: dict) -> bool:
    """Whether the first gold answer occurs in the context (at answer_start, or anywhere)."""
    answers = record["answers"]
    if not answers["text"]:
        return False
    text, start = answers["text"][0], answers["answer_start"][0]
    context = record["context"]
    return context[start:start + len(text)] == text or text in context


def to_example(dataset: str, record: dict, index: int, split: str) -> dict:
    """The text-to-text example for one raw record (see module docstring)."""
    ident = str(record.get("id", f"{split}-{index}"))
    if dataset == "xnli":
        target = XNLI_LABELS[record["label"]]
        inputs = xnli_inputs(record["premise"], record["hypothesis"])
        answers = [target]
    elif dataset == "pawsx":
        target = PAWSX_LABELS[record["label"]]
        inputs = pawsx_inputs(record["sentence1"], record["sentence2"])
        answers = [target]
    elif dataset == "panx":
        inputs = ner_inputs(record["tokens"])
        target = ner_targets(record["tokens"], panx_tag_names(record["ner_tags"]))
        answers = [target]
    elif dataset in ("tydiqa", "xquad"):
        inputs = qa_inputs(record["question"], record["context"])
        answers = list(record["answers"]["text"])
        target = answers[0] if answers else ""
    else:
        raise KeyError(f"no text-to-text format for dataset {dataset!r}")
    return {"id": ident, "inputs": inputs, "targets": target, "answers": answers}
