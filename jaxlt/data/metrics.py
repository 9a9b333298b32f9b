"""The study's metrics, on a 0-100 scale, as seqio `metric_fns(targets, predictions) -> dict`.

* `accuracy`: exact string match (XNLI, PAWS-X).
* `ner_f1`: entity-level micro precision / recall / F1 with CoNLL (conlleval, seqeval default
  mode) chunk semantics, over tags parsed from `tok : TAG | ...` strings.
* `squad`: exact match and token F1 with SQuAD v1.1 normalisation, max over the references
  (how XTREME scores TyDiQA-GoldP and XQuAD).

This module imports neither JAX nor TensorFlow itself (note: the `jaxlt.data` package
`__init__` imports TensorFlow to hide accelerators from it).
"""

from __future__ import annotations

import collections
import difflib
import re
import string
from collections.abc import Sequence

from jaxlt.data.formats import parse_ner

# ---------------------------------------------------------------------------------------------
# classification


def accuracy(targets: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    _check_lengths(targets, predictions)
    correct = sum(str(t).strip() == str(p).strip() for t, p in zip(targets, predictions))
    return {"accuracy": 100.0 * correct / len(targets)}


def _check_lengths(targets: Sequence, predictions: Sequence) -> None:
    if len(targets) != len(predictions):
        raise ValueError(f"{len(targets)} targets but {len(predictions)} predictions")
    if not len(targets):  # an empty evaluation set is a data problem, never a score of 0
        raise ValueError("nothing to score: no targets and no predictions")


# ---------------------------------------------------------------------------------------------
# NER

_TAG = re.compile(r"^(O|[BIES]-\S+)$")


def _split_tag(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def _chunk_ends(prev_prefix, prefix, prev_kind, kind) -> bool:
    # conlleval's endOfChunk
    if prev_prefix in ("E", "S"):
        return True
    if prev_prefix in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return prev_prefix != "O" and prev_kind != kind


def _chunk_starts(prev_prefix, prefix, prev_kind, kind) -> bool:
    # conlleval's startOfChunk
    if prefix in ("B", "S"):
        return True
    if prev_prefix in ("E", "S", "O") and prefix in ("E", "I"):
        return True
    return prefix != "O" and prev_kind != kind


def entities(tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """(type, first, last) chunks of one tag sequence, conlleval semantics."""
    chunks, start, prev_prefix, prev_kind = set(), None, "O", ""
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, kind = _split_tag(tag)
        if start is not None and _chunk_ends(prev_prefix, prefix, prev_kind, kind):
            chunks.add((prev_kind, start, i - 1))
            start = None
        if _chunk_starts(prev_prefix, prefix, prev_kind, kind):
            start = i
        prev_prefix, prev_kind = prefix, kind
    return chunks


def tags_from_generation(text: str, num_tokens: int | None = None) -> list[str]:
    """Tags of a generated `tok : TAG | ...` string, aligned by position to `num_tokens` gold tokens.

    A malformed piece (no ' : ', or a tag that is not O / X-TYPE) becomes 'O'; a truncated
    generation is padded with 'O' and a long one cut, so bad output costs recall, never a crash.
    """
    tags = []
    for pair in parse_ner(text):
        tag = pair[1] if pair is not None else "O"
        tags.append(tag if _TAG.match(tag) else "O")
    if num_tokens is not None:
        tags = (tags + ["O"] * num_tokens)[:num_tokens]
    return tags


def _as_tags(value, num_tokens: int | None = None) -> list[str]:
    if isinstance(value, str):
        return tags_from_generation(value, num_tokens)
    return [str(t) for t in value]


def align_to_gold(gold_tokens: Sequence[str], text: str) -> list[str]:
    """Tags of a generated `tok : TAG | ...` string for each gold token, matched by token text.

    The generated pairs are aligned to the gold tokens with a longest-matching-blocks diff on
    the token strings (difflib), so a dropped, added or misspelled token costs its own tag, not
    the tags of every token after it. A gold token no generated token matches gets 'O'; a
    malformed pair or tag counts as 'O'.
    """
    pairs = [p if p is not None else ("", "O") for p in parse_ner(text)]
    pred_tokens = [tok.strip() for tok, _ in pairs]
    pred_tags = [tag if _TAG.match(tag) else "O" for _, tag in pairs]
    tags = ["O"] * len(gold_tokens)
    matcher = difflib.SequenceMatcher(None, [t.strip() for t in gold_tokens], pred_tokens, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            tags[block.a + k] = pred_tags[block.b + k]
    return tags


def _gold_tokens_and_tags(target) -> tuple[list[str] | None, list[str]]:
    """(tokens, tags) of a gold `tok : TAG | ...` string; (None, tags) for a tag list."""
    if not isinstance(target, str):
        return None, [str(t) for t in target]
    pairs = parse_ner(target)
    if any(p is None for p in pairs):
        raise ValueError(f"malformed gold NER target: {target!r}")
    return [tok for tok, _ in pairs], [tag for _, tag in pairs]


def ner_f1(targets: Sequence, predictions: Sequence) -> dict[str, float]:
    """Entity micro P/R/F1 (0-100). Targets: gold `tok : TAG | ...` strings or tag lists;
    predictions: generated strings (or tag lists). A generated string is aligned to a gold string
    by token text (`align_to_gold`), to a gold tag list by position."""
    _check_lengths(targets, predictions)
    n_gold = n_pred = n_correct = 0
    for target, prediction in zip(targets, predictions):
        gold_tokens, gold = _gold_tokens_and_tags(target)
        if isinstance(prediction, str) and gold_tokens is not None:
            pred = align_to_gold(gold_tokens, prediction)
        else:
            pred = _as_tags(prediction, len(gold))
        gold_chunks, pred_chunks = entities(gold), entities(pred)
        n_gold += len(gold_chunks)
        n_pred += len(pred_chunks)
        n_correct += len(gold_chunks & pred_chunks)
    precision = n_correct / n_pred if n_pred else 0.0
    recall = n_correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": 100.0 * f1, "precision": 100.0 * precision, "recall": 100.0 * recall}


# ---------------------------------------------------------------------------------------------
# QA (SQuAD v1.1 evaluation script semantics)

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower case, drop ASCII punctuation and English articles, collapse whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def qa_exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def qa_f1(prediction: str, reference: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    common = collections.Counter(pred_tokens) & collections.Counter(ref_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def squad(targets: Sequence, predictions: Sequence[str]) -> dict[str, float]:
    """Exact match and F1 (0-100); each target is one answer or a list of acceptable answers."""
    _check_lengths(targets, predictions)
    em = f1 = 0.0
    for target, prediction in zip(targets, predictions):
        references = [target] if isinstance(target, str) else list(target)
        if not references:
            raise ValueError("a QA example has no reference answer")
        em += max(qa_exact_match(prediction, r) for r in references)
        f1 += max(qa_f1(prediction, r) for r in references)
    return {"exact_match": 100.0 * em / len(targets), "f1": 100.0 * f1 / len(targets)}


def score(dataset: str, references: Sequence, predictions: Sequence) -> dict[str, float]:
    """The metric of a registered dataset (`jaxlt.data.datasets`) over references and predictions."""
    from jaxlt.data.datasets import get_dataset

    return get_dataset(dataset).score(references, predictions)
