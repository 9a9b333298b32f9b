"""The dataset table: the paper's facts, and declaring a dataset that is not on the hub."""

import json

import pytest

from jaxlt.data import datasets, examples, formats, metrics, sources


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def test_the_papers_datasets_as_table_4_and_section_3_state():
    xnli, panx, tydiqa = (datasets.get_dataset(n) for n in ("xnli", "panx", "tydiqa"))
    # section 3: 100k samples for XNLI, 10k for NER and 2.2k for QA per source language
    assert (xnli.source_size, panx.source_size, tydiqa.source_size) == (100_000, 10_000, 2_200)
    # main scores: accuracy, F1, exact match
    assert (xnli.main_metric, panx.main_metric, tydiqa.main_metric) == ("accuracy", "f1", "exact_match")
    # Table 4: Swahili NER is evaluation-only; the other paper languages train and evaluate
    assert not panx.has_train("sw") and "sw" in panx.languages and "sw" not in panx.train_languages
    for lang in ("en", "ar", "hi", "fi", "id", "ru", "es", "de"):
        assert panx.has_train(lang)
    for lang in ("en", "ar", "bn", "fi", "id", "ru", "sw"):
        assert tydiqa.has_train(lang)
    for lang in ("en", "ar", "hi", "ru", "sw", "es", "de", "bg", "el", "fr", "tr", "ur", "vi", "zh"):
        assert xnli.has_train(lang)
    # TyDiQA-GoldP has no test split: scored on validation; the others on test
    assert "test" not in tydiqa.splits and tydiqa.eval_split == "validation"
    assert xnli.eval_split == panx.eval_split == "test"
    assert datasets.get_dataset("xquad").train_languages == ()


def test_builtin_formats_are_the_papers():
    xnli = datasets.get_dataset("xnli")
    ex = xnli.to_example({"premise": "A man.", "hypothesis": "A person.", "label": 0}, 3, "test")
    assert ex == {"id": "test-3", "inputs": "xnli: premise: A man. hypothesis: A person.",
                  "targets": "entailment", "answers": ["entailment"]}
    panx = datasets.get_dataset("panx")
    ex = panx.to_example({"tokens": ["It", "was", "Williams"], "ner_tags": [0, 0, 3]}, 0, "train")
    assert ex["inputs"] == "It was Williams" and ex["targets"] == "It : O | was : O | Williams : B-ORG"
    qa = datasets.get_dataset("tydiqa")
    rec = {"id": "english-1-0", "question": "Where?", "context": "In Paris.",
           "answers": {"text": ["Paris", "in Paris"], "answer_start": [3, 0]}}
    ex = qa.to_example(rec, 0, "validation")
    assert ex["inputs"] == "question: Where? context: In Paris." and ex["answers"] == ["Paris", "in Paris"]
    assert qa.reference(ex) == ["Paris", "in Paris"] and xnli.reference({"targets": b"neutral"}) == "neutral"
    assert qa.text(rec) == "Where? In Paris." and panx.text({"tokens": ["a", "b"]}) == "a b"


def test_a_local_dataset_with_arbitrary_language_codes(tmp_path):
    """What the synthetic-language lab does: local JSONL, its own languages, the study's formats."""
    labels = ("entailment", "neutral", "contradiction")
    nli = datasets.classification_dataset(
        "labtest_nli", languages=("syn_a", "syn_b"), labels=labels, fields=("premise", "hypothesis"),
        data_dir=str(tmp_path / "nli"), iso_languages=False, source_size=40)
    ner = datasets.ner_dataset(
        "labtest_ner", languages=("syn_a", "syn_b"), tags=("O", "B-X", "I-X"),
        data_dir=str(tmp_path / "ner"), iso_languages=False, eval_only_languages=("syn_b",))
    datasets.register_dataset(nli, replace=True)
    datasets.register_dataset(ner, replace=True)
    assert datasets.register_dataset(nli) is nli  # the same declaration again: no-op
    rows = [{"premise": f"p{i}", "hypothesis": f"h{i}", "label": labels[i % 3] if i % 2 else i % 3}
            for i in range(6)]
    for lang in ("syn_a", "syn_b"):
        for split in ("train", "validation", "test"):
            write_jsonl(tmp_path / "nli" / lang / f"{split}.jsonl", rows)
    write_jsonl(tmp_path / "ner" / "syn_b" / "test.jsonl",
                [{"tokens": ["zo", "ka"], "ner_tags": ["B-X", 2]}])

    # codes are taken as written (no ISO normalisation), and not found on the hub
    assert sources.check_language("labtest_nli", "syn_a") == "syn_a"
    with pytest.raises(KeyError, match="syn_c"):
        sources.check_language("labtest_nli", "syn_c")
    exs = examples.load_examples("labtest_nli", "syn_b", "test")
    assert [e["targets"] for e in exs] == [labels[i % 3] for i in range(6)]
    assert exs[0]["inputs"] == "labtest_nli: premise: p0 hypothesis: h0"
    assert sources.local_languages("labtest_nli") == ("syn_a", "syn_b")
    assert sources.local_languages("labtest_ner") == ("syn_b",)
    assert sources.available_splits("labtest_ner", "syn_b") == ("test",)
    ner_ex = examples.load_examples("labtest_ner", "syn_b", "test")[0]
    assert ner_ex["targets"] == "zo : B-X | ka : I-X"
    assert datasets.get_dataset("labtest_ner").train_languages == ("syn_a",)
    assert metrics.score("labtest_ner", [ner_ex["targets"]], ["zo : B-X | ka : I-X"])["f1"] == 100.0
    assert metrics.score("labtest_nli", ["neutral", "neutral"], ["neutral", "entailment"]) == {"accuracy": 50.0}

    # and seqio sees it as a task like any other
    import seqio

    from jaxlt.data import tasks

    name = tasks.register_task("labtest_nli", "syn_a")
    task = seqio.get_mixture_or_task(name)
    got = [ex["targets_pretokenized"].decode() for ex in
           task.get_dataset(None, split="validation", shuffle=False, use_cached=False).as_numpy_iterator()]
    assert got == [labels[i % 3] for i in range(6)]
    assert task.predict_metric_fns[0] is metrics.accuracy


def test_bad_declarations_and_bad_records_are_named(tmp_path):
    with pytest.raises(datasets.DatasetError, match="eval_split 'test' is not one of the splits"):
        datasets.qa_dataset("bad_qa", languages=("en",), eval_split="test")
    with pytest.raises(datasets.DatasetError, match="no dots"):
        datasets.ner_dataset("bad.ner", languages=("en",), tags=("O",))
    with pytest.raises(datasets.DatasetError, match=r"eval_only_languages \['xx'\] are not in languages"):
        datasets.ner_dataset("bad_ner", languages=("en",), tags=("O",), eval_only_languages=("xx",))
    with pytest.raises(datasets.DatasetError, match="already registered"):
        datasets.register_dataset(datasets.ner_dataset("xnli", languages=("en",), tags=("O",)))
    with pytest.raises(KeyError, match="unknown dataset 'nope'; known datasets: xnli, panx"):
        datasets.get_dataset("nope")
    spec = datasets.register_dataset(datasets.classification_dataset(
        "labtest_bad", languages=("q1",), labels=("yes", "no"), fields=("text",),
        data_dir=str(tmp_path), iso_languages=False), replace=True)
    write_jsonl(tmp_path / "q1" / "train.jsonl", [{"text": "a", "label": "yes"}, {"text": "b", "label": "maybe"}])
    with pytest.raises(sources.DataError, match=r"train.jsonl:2: .*one of yes, no, got 'maybe'"):
        sources.load_records("labtest_bad", "q1", "train")
    # an empty split is an error, never an empty evaluation scored 0
    write_jsonl(tmp_path / "q1" / "test.jsonl", [])
    with pytest.raises(sources.DataError, match="labtest_bad.q1 test: no records"):
        sources.load_records("labtest_bad", "q1", "test")
    with pytest.raises(ValueError, match="nothing to score"):
        spec.score([], [])


def test_ner_parser_keeps_the_last_pair_after_a_trailing_separator():
    assert formats.parse_ner("a : O | Paris : B-LOC |") == [("a", "O"), ("Paris", "B-LOC")]
    assert formats.parse_ner("a : O | Paris : B-LOC | ") == [("a", "O"), ("Paris", "B-LOC")]
    assert formats.parse_ner("| : O") == [("|", "O")]


def test_a_language_missing_from_a_shared_file_is_an_error(tmp_path):
    """TyDiQA keeps every language in one file: a language with no records there is named, not empty."""
    import shutil

    from jaxlt.commands.tasks import TINY_DATA

    src = f"{TINY_DATA}/google-research-datasets/tydiqa/secondary_task"
    dst = tmp_path / "google-research-datasets" / "tydiqa" / "secondary_task"
    dst.mkdir(parents=True)
    for split in ("train", "validation"):
        rows = [json.loads(line) for line in open(f"{src}/{split}.jsonl", encoding="utf-8")]
        write_jsonl(dst / f"{split}.jsonl", [r for r in rows if not r["id"].startswith("swahili-")])
    assert "sw" not in sources.local_languages("tydiqa", str(tmp_path))
    with pytest.raises(sources.DataError, match="tydiqa.sw validation: no records .* for this language"):
        sources.load_records("tydiqa", "sw", "validation", str(tmp_path))
    assert examples.load_examples("tydiqa", "fi", "validation", str(tmp_path))  # the others are there
