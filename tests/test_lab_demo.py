"""The lab demo on the shipped lab model: a reduced NER grid must show transfer above chance and a
transfer gap that grows less negative with planted similarity; the demo writes its tables.
(The full ground truth, both tasks, is `runs/lab.gin`: benchmarks/README.md has the numbers.)"""

import json
import os

import pandas as pd
import pytest


def test_cpu_groups_give_each_worker_its_own_cpu():
    from jaxlt.grid.demo import cpu_groups

    assert cpu_groups(2, [0, 1]) == [{0}, {1}]
    assert cpu_groups(2, [5, 1, 3, 7, 2]) == [{1}, {2}]  # one each, the first usable ones
    assert cpu_groups(3, [4, 6, 9]) == [{4}, {6}, {9}]
    assert cpu_groups(3, [0, 1]) is None  # fewer CPUs than workers: nothing pinned
    assert cpu_groups(1, [0, 1]) is None  # one worker keeps every CPU
    groups = cpu_groups(2)
    if groups is not None:
        assert set().union(*groups) <= os.sched_getaffinity(0) and len(set().union(*groups)) == 2


def test_model_features_are_computed_by_one_process_only(tmp_path, monkeypatch):
    """The first demo process to finish its cells claims the features; the others skip at once."""
    from jaxlt.grid import demo, model_features

    calls = []
    monkeypatch.setattr(model_features, "compute", lambda *a, **k: calls.append(a[4]))

    class Spec:
        tasks, model = ("lab_nli",), "mt5-lab"

        def all_sources_for(self, task):
            return ["syn_a"]

        def all_targets_for(self, task):
            return ["syn_b", "syn_a"]

    class Settings:
        pretrained, init_seed = "lab_model", 0

    first = demo.compute_features_if_first(str(tmp_path), Spec(), Settings(), 8, progress=False)
    second = demo.compute_features_if_first(str(tmp_path), Spec(), Settings(), 8, progress=False)
    assert (first, second) == (True, False)
    assert calls == [str(tmp_path / "model_features")]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from jaxlt.grid import demo

    out = tmp_path_factory.mktemp("lab_demo")
    before = os.sched_getaffinity(0)
    result = demo.run(str(out), gin_files=["runs/lab_ci.gin"], progress=False, num_sentences=8)
    assert os.sched_getaffinity(0) == before  # the pinning during the grid is undone
    return out, result


@pytest.mark.slow
def test_reduced_lab_grid_transfers_as_planted(demo_run):
    out, result = demo_run
    found = result["findings"]
    chance = json.load(open(out / "lab.json"))
    assert set(chance) == {"lab_ner"}
    # NER: transfer above chance, and the gap S_T - S_S shrinks as planted similarity grows
    assert found["lab_ner"]["best_source_zero_shot"] > chance["lab_ner"]["chance"], found["lab_ner"]
    assert found["lab_ner"]["pearson_r"] > 0, found["lab_ner"]


@pytest.mark.slow
def test_demo_tables_and_report(demo_run):
    out, result = demo_run
    langs = pd.read_csv(out / "languages.csv")
    assert list(langs.columns) == ["language", "order", "adjective", "adposition", "morphology", "script",
                                   "lexical_share"]
    assert set(langs["language"]) == {"syn_a", "syn_b", "syn_d", "syn_f", "syn_h"}
    assert langs["lexical_share"].between(0, 1).all()
    results = pd.read_csv(out / "results.csv")
    assert {"task", "source", "target", "n_target", "seed", "metric", "score"} <= set(results.columns)
    assert set(results["n_target"]) == {0, 10}
    report = open(out / "analysis" / "report.md").read()
    assert report.startswith("## What the lab demo found (against the planted truth)")
    assert os.path.samefile(os.path.dirname(result["paths"]["lab_data"]), out)
