"""Metric parity: NER against seqeval, QA against the SQuAD v1.1 script's semantics (hand-worked)."""

import json
import random

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score

from jaxlt.commands import metrics as metrics_command
from jaxlt.data import formats, metrics

pytestmark = pytest.mark.filterwarnings("ignore:.*ill-defined")

TYPES = ("PER", "ORG", "LOC")
IOB2 = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]
IOBES = IOB2 + [f"{p}-{t}" for t in TYPES for p in "ES"]


def random_tags(rng, n, vocab):
    # Unconstrained draws: includes I- after O, type switches inside a chunk, E-/S- tags.
    return [rng.choice(vocab) if rng.random() < 0.6 else "O" for _ in range(n)]


def generation(tokens, tags):
    return formats.ner_targets(tokens, tags)


@pytest.mark.parametrize("vocab", [IOB2, IOBES], ids=["iob2", "iobes"])
def test_ner_f1_equals_seqeval_on_random_sequences(vocab):
    rng = random.Random(len(vocab))
    for trial in range(300):  # 300 corpora x 2 tag sets = 600 random comparisons
        gold, pred, gold_strings, pred_strings = [], [], [], []
        for _ in range(rng.randint(1, 6)):
            n = rng.randint(1, 12)
            tokens = [rng.choice(["Anna", "in", "Москва", "القاهرة", ":", "|", "दिल्ली", "a-b"])
                      for _ in range(n)]
            g, p = random_tags(rng, n, vocab), random_tags(rng, n, vocab)
            if rng.random() < 0.3:  # predictions that are partly right
                p = [gt if rng.random() < 0.7 else pt for gt, pt in zip(g, p)]
            gold.append(g)
            pred.append(p)
            gold_strings.append(generation(tokens, g))
            pred_strings.append(generation(tokens, p))
        ours = metrics.ner_f1(gold_strings, pred_strings)
        assert ours["f1"] == pytest.approx(100 * f1_score(gold, pred), abs=1e-9), (gold, pred)
        assert ours["precision"] == pytest.approx(100 * precision_score(gold, pred), abs=1e-9)
        assert ours["recall"] == pytest.approx(100 * recall_score(gold, pred), abs=1e-9)
        # tag lists are accepted as well as strings
        assert metrics.ner_f1(gold, pred) == ours


def test_ner_parse_keeps_separator_tokens():
    text = formats.ner_targets([":", "|", "a : b"], ["O", "B-PER", "I-PER"])
    assert metrics.tags_from_generation(text) == ["O", "B-PER", "I-PER"]


def test_paper_example_format():
    tokens = "It was named for Williams College in Williamstown .".split()
    tags = ["O", "O", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC", "O"]
    assert formats.ner_targets(tokens, tags) == (
        "It : O | was : O | named : O | for : O | Williams : B-ORG | College : I-ORG | "
        "in : O | Williamstown : B-LOC | . : O")


def test_malformed_and_truncated_generations_score_as_wrong_not_crash():
    gold = "Anna : B-PER | Smith : I-PER | lives : O | in : O | Paris : B-LOC"
    # Truncated after two pieces: PER found, LOC missed -> P = 1/1, R = 1/2.
    truncated = metrics.ner_f1([gold], ["Anna : B-PER | Smith : I-PER | liv"])
    assert truncated == pytest.approx({"precision": 100.0, "recall": 50.0, "f1": 200 / 3})
    # Broken tag 'I-' on Smith: predicted chunk is Anna alone (wrong span) -> 0 correct of 2.
    broken = metrics.ner_f1([gold], ["Anna : B-PER | Smith : I- | lives : O | in : O | Paris : B-LOC"])
    assert broken == pytest.approx({"precision": 50.0, "recall": 50.0, "f1": 50.0})
    # Garbage and empty strings: no entities predicted.
    assert metrics.ner_f1([gold, gold], ["", "no separators here"])["f1"] == 0.0
    # Too many pieces are cut to the gold length.
    longer = gold + " | extra : B-ORG"
    assert metrics.ner_f1([gold], [longer])["f1"] == 100.0
    rng = random.Random(0)
    alphabet = "ab :|-BIOPERLC\u0645\u043c "
    for _ in range(300):
        junk = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        result = metrics.ner_f1([gold], [junk])
        assert all(0.0 <= v <= 100.0 for v in result.values())


# (prediction, references, exact match, F1), worked by hand with the SQuAD v1.1 script's rules:
# lower case, drop ASCII punctuation, drop the words a/an/the, collapse whitespace; token F1;
# max over references; two empty normalised answers match exactly but have F1 0.
QA_CASES = [
    ("the Eiffel Tower", ["Eiffel Tower"], 1, 1.0),
    ("Eiffel Tower!", ["eiffel   tower"], 1, 1.0),
    ("in Paris, France", ["Paris"], 0, 0.5),  # P 1/3, R 1
    ("1985", ["in 1985", "1985"], 1, 1.0),
    ("in 1985", ["1985", "1980s"], 0, 2 / 3),  # P 1/2, R 1
    ("القاهرة", ["القاهرة"], 1, 1.0),
    ("Москва, Россия", ["Москва"], 0, 2 / 3),  # Cyrillic lower-cased, ASCII comma dropped
    ("दिल्ली।", ["दिल्ली"], 0, 0.0),  # the danda is not ASCII punctuation: no match
    ("an apple", ["the apple"], 1, 1.0),
    ("Banana", ["banana"], 1, 1.0),  # 'an' inside a word stays
    ("", ["x"], 0, 0.0),
    ("the", ["a"], 1, 0.0),
    ("Anna Smith Smith", ["Smith Anna"], 0, 0.8),  # P 2/3, R 1, bag of tokens
]


@pytest.mark.parametrize("prediction,references,em,f1", QA_CASES)
def test_squad_cases(prediction, references, em, f1):
    result = metrics.squad([references], [prediction])
    assert result["exact_match"] == pytest.approx(100 * em)
    assert result["f1"] == pytest.approx(100 * f1)


def test_squad_averages_over_examples_and_accepts_single_strings():
    refs = [case[1] for case in QA_CASES]
    preds = [case[0] for case in QA_CASES]
    result = metrics.squad(refs, preds)
    assert result["exact_match"] == pytest.approx(100 * sum(c[2] for c in QA_CASES) / len(QA_CASES))
    assert result["f1"] == pytest.approx(100 * sum(c[3] for c in QA_CASES) / len(QA_CASES))
    assert metrics.squad(["Paris"], ["paris."]) == {"exact_match": 100.0, "f1": 100.0}


def test_accuracy_and_length_mismatch():
    assert metrics.accuracy(["entailment", "neutral", "contradiction", "neutral"],
                            ["entailment", "neutral", "neutral", " neutral "]) == {"accuracy": 75.0}
    with pytest.raises(ValueError, match="3 targets but 2 predictions"):
        metrics.accuracy(["a", "b", "c"], ["a", "b"])


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


def test_metrics_command(tmp_path, capsys):
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"prediction": "the Eiffel Tower",
                                              "reference": ["Eiffel Tower", "tower"]},
                                             {"prediction": "Paris", "reference": "Lyon"}])
    assert metrics_command.main(["--task", "tydiqa", "--input", qa]) == 0
    assert json.loads(capsys.readouterr().out) == {"exact_match": 50.0, "f1": 50.0}

    ner = write_jsonl(tmp_path / "ner.jsonl", [
        {"prediction": "Anna : B-PER | in : O | Paris : B-ORG",
         "reference": "Anna : B-PER | in : O | Paris : B-LOC"}])
    assert metrics_command.main(["--task", "panx", "--input", ner]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(
        {"f1": 50.0, "precision": 50.0, "recall": 50.0})

    cls = write_jsonl(tmp_path / "cls.jsonl", [{"prediction": "neutral", "reference": "neutral"},
                                               {"prediction": "neutral", "reference": "entailment"}])
    assert metrics_command.main(["--task", "xnli", "--input", cls]) == 0
    assert json.loads(capsys.readouterr().out) == {"accuracy": 50.0}


def test_metrics_command_bad_input(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prediction": "a", "reference": "a"}\n{"prediction": "a"}\n')
    with pytest.raises(SystemExit, match=r"bad.jsonl:2: expected an object with 'prediction'"):
        metrics_command.main(["--task", "xnli", "--input", str(bad)])
    bad.write_text('{"prediction": "a", "reference": "a"}\nnot json\n')
    with pytest.raises(SystemExit, match=r"bad.jsonl:2: not JSON"):
        metrics_command.main(["--task", "xnli", "--input", str(bad)])
    with pytest.raises(SystemExit, match="cannot read"):
        metrics_command.main(["--task", "xnli", "--input", str(tmp_path / "missing.jsonl")])


def test_generated_tags_are_aligned_to_gold_tokens_by_text():
    gold = "Ann : B-PER | Lee : I-PER | saw : O | Rome : B-LOC"
    # a dropped token: by position, Rome's tag would land on 'saw' and Rome would get none
    dropped = "Ann : B-PER | Lee : I-PER | Rome : B-LOC"
    assert metrics.align_to_gold(["Ann", "Lee", "saw", "Rome"], dropped) == ["B-PER", "I-PER", "O", "B-LOC"]
    assert metrics.ner_f1([gold], [dropped])["f1"] == 100.0
    # an inserted token and a trailing separator
    inserted = "Ann : B-PER | Lee : I-PER | then : O | saw : O | Rome : B-LOC |"
    assert metrics.ner_f1([gold], [inserted])["f1"] == 100.0
    # a wrong tag still costs: Rome as an organisation, one of two entities right
    wrong = "Ann : B-PER | Lee : I-PER | saw : O | Rome : B-ORG"
    assert metrics.ner_f1([gold], [wrong]) == pytest.approx({"f1": 50.0, "precision": 50.0, "recall": 50.0})
    # the same as seqeval once aligned
    from seqeval.metrics import f1_score

    assert metrics.ner_f1([gold], [inserted])["f1"] == 100.0 * f1_score(
        [["B-PER", "I-PER", "O", "B-LOC"]], [metrics.align_to_gold(["Ann", "Lee", "saw", "Rome"], inserted)])


def test_empty_evaluation_sets_are_errors_not_zero_scores():
    for fn in (metrics.accuracy, metrics.squad, metrics.ner_f1):
        with pytest.raises(ValueError, match="nothing to score"):
            fn([], [])
