"""Data sources: the local layout is what `datasets` writes for the hub's splits; one loading path
for hub and directory; formats per dataset; clear errors; nothing silently dropped."""

import json
import logging
import os
import shutil
import unicodedata

import datasets
import pytest
from model_fixtures import no_process_data_dir_fixture

from jaxlt.data import examples, formats, sources

TINY_DATA = os.path.normpath(os.path.join(os.path.dirname(sources.__file__), os.pardir,
                                          "resources", "tiny_data"))

# The hub's features (schema) of each dataset, to rebuild hub-typed datasets from the fixtures.
QA_FEATURES = {"id": datasets.Value("string"), "context": datasets.Value("string"),
               "question": datasets.Value("string"),
               "answers": datasets.Sequence({"text": datasets.Value("string"),
                                             "answer_start": datasets.Value("int32")})}
HUB_FEATURES = {
    "xnli": datasets.Features({"premise": datasets.Value("string"),
                               "hypothesis": datasets.Value("string"),
                               "label": datasets.ClassLabel(
                                   names=["entailment", "neutral", "contradiction"])}),
    "panx": datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                               "ner_tags": datasets.Sequence(datasets.ClassLabel(
                                   names=["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC",
                                          "I-LOC"])),
                               "langs": datasets.Sequence(datasets.Value("string"))}),
    "tydiqa": datasets.Features({**QA_FEATURES, "title": datasets.Value("string")}),
    "xquad": datasets.Features(QA_FEATURES),
    "pawsx": datasets.Features({"id": datasets.Value("int32"),
                                "sentence1": datasets.Value("string"),
                                "sentence2": datasets.Value("string"),
                                "label": datasets.ClassLabel(names=["0", "1"])}),
}
no_configured_dir = pytest.fixture(autouse=True)(no_process_data_dir_fixture)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def hub_dataset(dataset, config, split):
    spec = sources.get_spec(dataset)
    path = os.path.join(TINY_DATA, spec.hub_id, config, f"{split}.jsonl")
    return datasets.Dataset.from_list(read_jsonl(path), features=HUB_FEATURES[dataset])


@pytest.mark.parametrize("dataset,lang", [("xnli", "ar"), ("panx", "ru"), ("tydiqa", "bn"),
                                          ("xquad", "hi"), ("pawsx", "en")])
def test_local_layout_is_what_datasets_to_json_writes(tmp_path, dataset, lang):
    spec = sources.get_spec(dataset)
    for split in sources.available_splits(dataset, lang, TINY_DATA):
        hub = hub_dataset(dataset, spec.config_for(lang), split)
        out = tmp_path / spec.hub_id / spec.config_for(lang) / f"{split}.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        hub.to_json(str(out), force_ascii=False)
        ours = sources.load_records(dataset, lang, split, str(tmp_path))
        assert list(ours) == [r for r in hub if spec.language_of_record is None
                              or spec.language_of_record(r) == lang]
        # and the bundled fixtures read the same as datasets' own JSON reader reads them
        reference = datasets.load_dataset(
            "json", data_files=os.path.join(TINY_DATA, spec.hub_id, spec.config_for(lang),
                                            f"{split}.jsonl"), split="train")
        assert list(sources.load_records(dataset, lang, split, TINY_DATA)) == [
            r for r in reference if spec.language_of_record is None
            or spec.language_of_record(r) == lang]


@pytest.mark.parametrize("dataset,lang,config", [
    ("xnli", "hi", "hi"), ("panx", "bn", "PAN-X.bn"), ("tydiqa", "fi", "secondary_task"),
    ("xquad", "ru", "xquad.ru"), ("pawsx", "de", "de")])
def test_hub_path_uses_the_hub_ids_and_gives_the_same_examples(monkeypatch, dataset, lang, config):
    calls = []

    def fake_load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        return hub_dataset(dataset, name, split)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub_ids = {"xnli": "facebook/xnli", "panx": "google/xtreme",
               "tydiqa": "google-research-datasets/tydiqa", "xquad": "google/xquad",
               "pawsx": "google-research-datasets/paws-x"}
    split = "validation"
    from_hub = examples.load_examples(dataset, lang, split)  # no data dir: the hub
    assert calls == [(hub_ids[dataset], config, split)]
    assert from_hub == examples.load_examples(dataset, lang, split, TINY_DATA)


def scripts(text):
    return {unicodedata.name(ch).split()[0] for ch in text if ch.isalpha()}


@pytest.mark.parametrize("dataset,lang,script", [
    ("xnli", "en", "LATIN"), ("xnli", "ar", "ARABIC"), ("xnli", "ru", "CYRILLIC"),
    ("xnli", "hi", "DEVANAGARI"), ("panx", "bn", "BENGALI"), ("panx", "ar", "ARABIC"),
    ("panx", "hi", "DEVANAGARI"), ("tydiqa", "ru", "CYRILLIC"), ("tydiqa", "bn", "BENGALI"),
    ("tydiqa", "sw", "LATIN"), ("xquad", "ar", "ARABIC")])
def test_fixtures_cover_scripts_and_n_shot_sizes(dataset, lang, script):
    for split in sources.available_splits(dataset, lang, TINY_DATA):
        exs = examples.load_examples(dataset, lang, split, TINY_DATA)
        assert exs
        body = [ex["inputs"].split("context:")[-1].split("premise:")[-1] for ex in exs]
        assert all(script in scripts(text) for text in body)
        if split == "train":
            assert len(exs) >= 50


def test_formats_follow_the_paper():
    rec = sources.load_records("xnli", "ru", "test", TINY_DATA)[0]
    ex = examples.load_examples("xnli", "ru", "test", TINY_DATA)[0]
    assert ex["inputs"] == f"xnli: premise: {rec['premise']} hypothesis: {rec['hypothesis']}"
    assert ex["targets"] == ["entailment", "neutral", "contradiction"][rec["label"]]

    for rec, ex in zip(sources.load_records("panx", "hi", "train", TINY_DATA),
                       examples.load_examples("panx", "hi", "train", TINY_DATA)):
        assert ex["inputs"] == " ".join(rec["tokens"])
        pieces = ex["targets"].split(" | ")
        assert [p.rsplit(" : ", 1)[0] for p in pieces] == rec["tokens"]
        names = HUB_FEATURES["panx"]["ner_tags"].feature.names
        assert [p.rsplit(" : ", 1)[1] for p in pieces] == [names[t] for t in rec["ner_tags"]]

    for rec, ex in zip(sources.load_records("tydiqa", "ar", "validation", TINY_DATA),
                       examples.load_examples("tydiqa", "ar", "validation", TINY_DATA)):
        assert ex["inputs"] == f"question: {rec['question']} context: {rec['context']}"
        start, text = rec["answers"]["answer_start"][0], rec["answers"]["text"][0]
        assert ex["targets"] == text == rec["context"][start:start + len(text)]
        assert ex["answers"] == rec["answers"]["text"]
        assert rec["id"].startswith("arabic-")

    rec = sources.load_records("pawsx", "es", "validation", TINY_DATA)[3]
    ex = examples.load_examples("pawsx", "es", "validation", TINY_DATA)[3]
    assert ex["inputs"] == f"pawsx: sentence1: {rec['sentence1']} sentence2: {rec['sentence2']}"
    assert ex["targets"] == ["not_paraphrase", "paraphrase"][rec["label"]]


def test_data_dir_precedence(monkeypatch, tmp_path):
    assert sources.get_data_dir() is None  # the hub
    monkeypatch.setenv("JAXLT_DATA_DIR", "/env")
    assert sources.get_data_dir() == "/env"
    sources.set_data_dir(tmp_path)  # what the commands do with DataConfig.data_dir
    assert sources.get_data_dir() == str(tmp_path)
    assert sources.get_data_dir("/arg") == "/arg"


def test_unknown_language_split_dataset():
    with pytest.raises(KeyError, match="language 'ja' is not available for xnli; supported: ar, "
                                       "bg, de, el, en, es, fr, hi, ru, sw, th, tr, ur, vi, zh"):
        sources.load_records("xnli", "ja", "train", TINY_DATA)
    with pytest.raises(KeyError, match="xquad has no split 'train'; splits: validation"):
        sources.load_records("xquad", "en", "train", TINY_DATA)
    with pytest.raises(KeyError, match="unknown dataset 'mlqa'; known datasets: xnli, panx"):
        sources.load_records("mlqa", "en", "train", TINY_DATA)


def test_missing_file_names_the_expected_path(tmp_path):
    expected = os.path.join(str(tmp_path), "google", "xtreme", "PAN-X.fi", "test.jsonl")
    with pytest.raises(FileNotFoundError, match=f"missing data file: expected {expected}"):
        sources.load_records("panx", "fi", "test", str(tmp_path))


def copy_fixture(tmp_path, *parts):
    target = tmp_path.joinpath(*parts)
    shutil.copytree(os.path.join(TINY_DATA, *parts), target)
    return target


@pytest.mark.parametrize("line,problem", [
    ("{not json", "malformed record: Expecting property name"),
    ('["a list"]', "expected a JSON object, got list"),
    ('{"premise": "a", "hypothesis": "b", "label": 3}', "'label' must be an integer in [0, 3)"),
    ('{"premise": "a", "label": 0}', "field 'hypothesis' must be a string"),
])
def test_malformed_record_names_file_and_line(tmp_path, line, problem):
    folder = copy_fixture(tmp_path, "facebook", "xnli", "sw")
    path = folder / "validation.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines.insert(4, line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(sources.DataError, match=f"{path}:5: ") as error:
        sources.load_records("xnli", "sw", "validation", str(tmp_path))
    assert problem in str(error.value)


def test_malformed_ner_and_qa_records(tmp_path):
    folder = copy_fixture(tmp_path, "google", "xtreme", "PAN-X.id")
    (folder / "test.jsonl").write_text(
        json.dumps({"tokens": ["a", "b"], "ner_tags": [0], "langs": ["id", "id"]}) + "\n")
    with pytest.raises(sources.DataError, match=r"test.jsonl:1: .*as long as 'tokens' \(2\)"):
        sources.load_records("panx", "id", "test", str(tmp_path))
    (folder / "test.jsonl").write_text(json.dumps({"tokens": ["a"], "ner_tags": [9]}) + "\n")
    with pytest.raises(sources.DataError, match="unknown NER tag 9"):
        sources.load_records("panx", "id", "test", str(tmp_path))
    folder = copy_fixture(tmp_path, "google-research-datasets", "tydiqa", "secondary_task")
    with open(folder / "validation.jsonl", "a") as f:
        f.write(json.dumps({"id": "klingon-1-0", "context": "c", "question": "q",
                            "answers": {"text": ["c"], "answer_start": [0]}}) + "\n")
    with pytest.raises(sources.DataError, match="'klingon-1-0' does not start with a known language"):
        sources.load_records("tydiqa", "en", "validation", str(tmp_path))


def test_qa_training_answers_not_in_context_are_dropped_and_counted(tmp_path, caplog):
    folder = copy_fixture(tmp_path, "google-research-datasets", "tydiqa", "secondary_task")
    with open(folder / "train.jsonl", "a", encoding="utf-8") as f:
        for i in range(3):
            f.write(json.dumps({"id": f"finnish-9{i}-0", "title": "t", "context": "Helsinki",
                                "question": "Missä?", "answers": {"text": ["Oulu"],
                                                                  "answer_start": [0]}}) + "\n")
    with caplog.at_level(logging.WARNING):
        train = examples.load_examples("tydiqa", "fi", "train", str(tmp_path))
    assert len(train) == 56
    assert "tydiqa.fi train: dropped 3 of 59 records whose answer is not in the context" in caplog.text


def test_any_panx_language_present_locally_is_accepted(tmp_path):
    shutil.copytree(os.path.join(TINY_DATA, "google", "xtreme", "PAN-X.fi"),
                    tmp_path / "google" / "xtreme" / "PAN-X.cy")
    assert "cy" in sources.local_languages("panx", str(tmp_path))
    assert len(examples.load_examples("panx", "cy", "train", str(tmp_path))) == 56
    sources.set_data_dir(tmp_path)
    from jaxlt.data import tasks

    import seqio

    name = tasks.register_task("panx", "cy")
    got = list(seqio.get_mixture_or_task(name).get_dataset(
        {"inputs": 64, "targets": 64}, split="test", shuffle=False).as_numpy_iterator())
    assert len(got) == 16


def test_export_to_dir_writes_the_local_layout(monkeypatch, tmp_path):
    monkeypatch.setattr(datasets, "load_dataset",
                        lambda path, name=None, split=None, **kw: hub_dataset("panx", name, split))
    written = sources.export_to_dir("panx", ["hi", "bn"], str(tmp_path))
    assert len(written) == 6 and all(os.path.isfile(p) for p in written)
    for lang in ("hi", "bn"):
        for split in ("train", "validation", "test"):
            assert sources.load_records("panx", lang, split, str(tmp_path)) == \
                sources.load_records("panx", lang, split, TINY_DATA)
