"""The synthetic-language lab: generator determinism, labels under every transformation, tables."""

import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxlt.lab import data, grammar, truth
from jaxlt.lab.grammar import Clause, Language, LanguageParams, NounPhrase


def hand_language(**params) -> Language:
    """A language whose word forms are the English glosses (so examples can be worked by hand)."""
    lang = Language(LanguageParams("hand", **params))
    lang.latin_lexicon = {c: c for c in grammar.CONCEPTS}
    lang.suffixes = {"AGENT": "ka", "PATIENT": "mo", "PLURAL": "li"}
    return lang


CLAUSE = Clause(agent=NounPhrase("noun", "dog", modifier="big", number=3), verb="sees",
                patient=NounPhrase("person", "Anna Berg"), place=NounPhrase("place_name", "Tarvo"))
ORG_CLAUSE = Clause(agent=NounPhrase("org", "bank", modifier="Nordia"), verb="helps",
                    patient=NounPhrase("noun", "cat"))


@pytest.mark.parametrize("params, tokens, tags", [
    (dict(), "3 big dog sees Anna Berg at Tarvo", "O O O O B-PER I-PER O B-LOC"),
    (dict(order="SOV", adposition="post"), "3 big dog Anna Berg sees Tarvo at", "O O O B-PER I-PER O B-LOC O"),
    (dict(order="VSO", adjective="NA"), "sees 3 dog big Anna Berg at Tarvo", "O O O O B-PER I-PER O B-LOC"),
    (dict(order="VOS", morphology="agglutinative"), "sees Anna Bergmo 3 big doglika at Tarvo",
     "O B-PER I-PER O O O O B-LOC"),
    (dict(script="cyrillic"), "3 бiг дог сеес Anna Berg ат Tarvo", "O O O O B-PER I-PER O B-LOC"),
])
def test_render_hand_worked(params, tokens, tags):
    lang = hand_language(**params)
    pairs = lang.render(CLAUSE)
    expected = tokens.split()
    if params.get("script") == "cyrillic":  # the transliteration table, letter by letter
        expected = [grammar.transliterate(w, "cyrillic") if w in ("big", "dog", "sees", "at") else w
                    for w in "3 big dog sees Anna Berg at Tarvo".split()]
    assert [t for t, _ in pairs] == expected
    assert [g for _, g in pairs] == tags.split()


def test_organisation_follows_modifier_order_and_case():
    assert hand_language().render(ORG_CLAUSE) == [("Nordia", "B-ORG"), ("bank", "I-ORG"), ("helps", "O"),
                                                  ("cat", "O")]
    assert hand_language(adjective="NA", morphology="agglutinative", order="SOV").render(ORG_CLAUSE) == [
        ("bank", "B-ORG"), ("Nordiaka", "I-ORG"), ("catmo", "O"), ("helps", "O")]


def test_intransitive_hypothesis_order():
    hyp = Clause(NounPhrase("noun", "cat"), "sees")
    assert hand_language().sentence(hyp) == "cat sees"
    assert hand_language(order="VOS").sentence(hyp) == "sees cat"
    assert hand_language(order="SOV", morphology="agglutinative").sentence(hyp) == "catka sees"


def test_nli_labels_hand_worked():
    """Entailment: the premise's agent as it is; contradiction: with the opposite adjective;
    neutral: with another, compatible adjective. Word order, modifier
    order, case suffixes and script change the strings, never the label."""
    premise = Clause(NounPhrase("noun", "dog", modifier="big"), "sees", NounPhrase("noun", "cat"))
    hyp = {label: Clause(NounPhrase("noun", noun, modifier=adjective), "sees")
           for label, (adjective, noun) in {0: ("big", "dog"), 2: ("small", "dog"),
                                            1: ("red", "dog")}.items()}
    svo = hand_language()
    assert [data.nli_record(svo, premise, hyp[y], y) for y in (0, 1, 2)] == [
        {"premise": "big dog sees cat", "hypothesis": "big dog sees", "label": 0},
        {"premise": "big dog sees cat", "hypothesis": "red dog sees", "label": 1},
        {"premise": "big dog sees cat", "hypothesis": "small dog sees", "label": 2}]
    far = hand_language(order="VSO", adjective="NA", morphology="agglutinative")
    assert data.nli_record(far, premise, hyp[2], 2) == {
        "premise": "sees dogka big catmo", "hypothesis": "sees dogka small", "label": 2}
    cyrillic = hand_language(script="cyrillic")
    assert data.nli_record(cyrillic, premise, hyp[0], 0) == {
        "premise": "биг дог сеес цат", "hypothesis": "биг дог сеес", "label": 0}
    assert data.OPPOSITE["big"] == "small" and data.OPPOSITE["small"] == "big"
    assert sorted(data.OPPOSITE) == sorted(grammar.ADJECTIVES)


def test_nli_meanings_match_their_labels():
    for premise, hypothesis, label in data.nli_meanings("test", 300):
        agent, subject = premise.agent, hypothesis.agent
        assert hypothesis.verb == premise.verb and hypothesis.patient is None
        assert agent.kind == subject.kind == "noun" and agent.modifier and subject.modifier
        if label == 0:
            assert subject == agent
        elif label == 2:
            assert subject.head == agent.head and subject.modifier == data.OPPOSITE[agent.modifier]
        else:  # a compatible adjective on the same agent
            assert subject.head == agent.head
            assert subject.modifier not in (agent.modifier, data.OPPOSITE[agent.modifier])
    labels = collections.Counter(y for _, _, y in data.nli_meanings("test", 300))
    assert labels == {0: 100, 1: 100, 2: 100}


def _entities(record):
    tags = [data.NER_TAGS[t] for t in record["ner_tags"]]
    return sorted(t[2:] for t in tags if t.startswith("B-"))


def test_labels_preserved_in_every_language():
    langs = data.languages()
    by_lang = {lang.code: {task: data.task_records(task, lang, "test", 120) for task in data.TASKS}
               for lang in langs}
    base = by_lang["syn_a"]
    for code, records in by_lang.items():
        assert [r["label"] for r in records["lab_nli"]] == [r["label"] for r in base["lab_nli"]], code
        assert [_entities(r) for r in records["lab_ner"]] == [_entities(r) for r in base["lab_ner"]], code
        # names are anchors: the same PER tokens in every language (with case suffixes when agglutinative)
        for r, b in zip(records["lab_ner"], base["lab_ner"]):
            assert len(r["tokens"]) == len(r["ner_tags"])
            per = [t for t, g in zip(r["tokens"], r["ner_tags"]) if data.NER_TAGS[g] == "B-PER"]
            base_per = [t for t, g in zip(b["tokens"], b["ner_tags"]) if data.NER_TAGS[g] == "B-PER"]
            assert sorted(next(p for p in per if p.startswith(q)) for q in base_per) == sorted(per)


def test_generator_is_deterministic_and_seeded(tmp_path):
    a = data.write_lab_data(str(tmp_path / "a"), sizes={"train": 20, "validation": 5, "test": 5})
    b = data.write_lab_data(str(tmp_path / "b"), sizes={"train": 20, "validation": 5, "test": 5})
    assert a.keys() == b.keys() and len(a) == 8 * 2 * 3
    for key in a:
        assert open(a[key], "rb").read() == open(b[key], "rb").read(), key
    # in a fresh process too (no dependence on Python's hash seed or import order)
    code = ("from jaxlt.lab import data; import json; "
            "print(json.dumps(data.task_records('lab_nli', data.languages()[6], 'train', 5)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "123"}).stdout
    assert json.loads(out) == data.task_records("lab_nli", data.languages()[6], "train", 5)
    other = data.languages(seed=1)[1]
    assert data.task_records("lab_nli", other, "train", 5, seed=1) != data.task_records(
        "lab_nli", data.languages()[1], "train", 5)


def test_lexical_share_is_nested_and_graded():
    langs = {lang.code: lang for lang in data.languages()}
    base = grammar.base_lexicon(data.SEED)
    for code, lang in langs.items():
        share = len(lang.cognates) / len(grammar.CONCEPTS)
        assert 0 <= share - lang.params.lexical_share < 1 / len(grammar.CONCEPTS), (code, share)
    # nested: every cognate of a lower-share language is a cognate of a higher-share one
    assert set(langs["syn_g"].cognates) <= set(langs["syn_f"].cognates) <= set(langs["syn_e"].cognates) \
        <= set(langs["syn_c"].cognates) <= set(langs["syn_b"].cognates)
    assert langs["syn_a"].latin_lexicon == base
    # a non-Latin script shares no word form with Latin ones, only names and digits
    assert not set(langs["syn_h"].word(c) for c in grammar.CONCEPTS) & set(base.values())


def test_typology_and_languages_tables():
    params = data.DEFAULT_LANGUAGES
    typ = truth.typology_table(params).set_index("language")
    assert typ.loc["syn_h"].to_dict() == {
        "S_SVO": 0, "S_SOV": 0, "S_VSO": 1, "S_VOS": 0, "S_ADJECTIVE_BEFORE_NOUN": 0,
        "S_ADJECTIVE_AFTER_NOUN": 1, "S_ADPOSITION_BEFORE_NOUN": 0, "S_ADPOSITION_AFTER_NOUN": 1,
        "S_CASE_SUFFIX": 1, "S_PLURAL_SUFFIX": 1, "SCRIPT_LATIN": 0, "SCRIPT_CYRILLIC": 0, "SCRIPT_GREEK": 1}
    assert set(typ.values.ravel()) <= {0, 1}
    langs = truth.languages_table(params)
    assert list(langs.columns) == ["language", *grammar.PARAMETERS] and len(langs) == 8
    sim = truth.planted_similarity_table(langs).set_index(["source", "target"])["similarity"]
    assert sim[("syn_a", "syn_b")] == pytest.approx((5 + 0.9) / 6)
    # syn_a vs syn_h: nothing categorical in common, share 1.0 vs 0.2
    assert sim[("syn_a", "syn_h")] == pytest.approx(0.2 / 6)
    # syn_d vs syn_c: script and modifier order differ, shares 0.8 vs 0.7
    assert sim[("syn_d", "syn_c")] == pytest.approx((3 + 0.9) / 6)
    assert sim[("syn_a", "syn_g")] == pytest.approx(grammar.planted_similarity(params[0], params[6]))
    # languages.csv reads back with pandas' defaults unchanged (no value is taken for a missing one)
    import io

    import pandas as pd

    back = pd.read_csv(io.StringIO(langs.to_csv(index=False)))
    assert not back.isna().any().any()
    pd.testing.assert_frame_equal(back, langs, check_dtype=False)
    assert set(langs["adjective"]) == {"adjective-noun", "noun-adjective"}


def test_chance_scores(tmp_path):
    directory = str(tmp_path)
    data.write_lab_data(directory, sizes={"train": 60, "validation": 3, "test": 30})
    chance = truth.chance_scores(directory, ["syn_a", "syn_b"])
    assert chance["lab_nli"]["chance"] == pytest.approx(100 / 3)
    assert 0 < chance["lab_ner"]["chance"] < 25


def test_findings_on_a_planted_results_table():
    """Scores built to follow similarity give r > 0 and the best source above chance."""
    import pandas as pd

    langs = truth.languages_table(data.DEFAULT_LANGUAGES)
    sim = truth.planted_similarity_table(langs).set_index(["source", "target"])["similarity"]
    rows = []
    for s in ("syn_a", "syn_d"):
        for t in langs["language"]:
            score = 90.0 if s == t else 30 + 60 * sim[(s, t)]
            rows.append({"task": "lab_nli", "source": s, "target": t, "n_target": 0, "metric": "accuracy",
                         "score": score})
            if s != t:
                rows.append({"task": "lab_nli", "source": s, "target": t, "n_target": 10,
                             "metric": "accuracy", "score": score + 5})
    found = truth.findings(pd.DataFrame(rows), langs, {"lab_nli": {"chance": 100 / 3}})["lab_nli"]
    assert found["pearson_r"] == pytest.approx(1.0)
    assert found["above_chance"] > 0
    assert found["fewshot_curve"][10] > found["fewshot_curve"][0]
    assert "rising with n" in truth.findings_markdown({"lab_nli": found})
    # +5 points from n=0 to n=10 on every pair: slope 5 / log(11) on all 8 targets (each is another source's target)
    trend = found["fewshot_trend"]
    assert trend["targets"] == 8 == trend["targets_rising"]
    assert trend["mean_slope"] == pytest.approx(5 / np.log(11))
    assert "positive for 8 of 8 targets (mean +2.09 points per unit" in truth.findings_markdown({"lab_nli": found})


def test_fewshot_trend_slopes_per_target_by_hand():
    """Slopes of score on log(n+1) per target, pooled over sources, against hand-worked values and
    scipy's one-sample t-test over targets."""
    import pandas as pd
    from scipy import stats

    ns = np.array([0, 10, 100])
    x = np.log1p(ns)
    rows = []
    for target, slope in (("t1", 2.0), ("t2", -1.0), ("t3", 4.0)):
        for source, offset in (("s1", 10.0), ("s2", 30.0)):
            rows += [{"source": source, "target": target, "n_target": n, "score": offset + slope * xi}
                     for n, xi in zip(ns, x)]
    trend = truth.fewshot_trend(pd.DataFrame(rows))
    # pooled over the two sources the offsets differ; the slope is still the planted one only when
    # each source has every n (here it has), since the offsets are balanced across n
    assert trend["slopes"] == pytest.approx({"t1": 2.0, "t2": -1.0, "t3": 4.0})
    assert trend["targets_rising"] == 2 and trend["mean_slope"] == pytest.approx(5 / 3)
    assert trend["p_value"] == pytest.approx(stats.ttest_1samp([2.0, -1.0, 4.0], 0).pvalue)


def test_findings_name_the_route_that_carries_transfer():
    """Transfer built to depend only on sharing the script: that route has r = 1, the report says so."""
    import pandas as pd

    langs = truth.languages_table(data.DEFAULT_LANGUAGES)
    script = dict(zip(langs["language"], langs["script"]))
    rows = [{"task": "lab_ner", "source": s, "target": t, "n_target": 0, "metric": "f1",
             "score": 80.0 if s == t else 20.0 + 40.0 * (script[s] == script[t])}
            for s in ("syn_a", "syn_d") for t in langs["language"]]
    found = truth.findings(pd.DataFrame(rows), langs, {"lab_ner": {"chance": 5.0}})["lab_ner"]
    assert found["routes"]["script"] == pytest.approx(1.0)
    assert set(found["routes"]) <= set(grammar.PARAMETERS)
    assert max(found["routes"], key=found["routes"].get) == "script"
    assert "script +1.00" in truth.findings_markdown({"lab_ner": found})


def test_demo_rejects_a_bad_worker_count_before_any_work(tmp_path, capsys):
    from jaxlt.commands import demo

    assert demo.main([str(tmp_path / "out"), "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_code_switched_pretraining_documents():
    """A non-Latin language's code-switched documents mix its own forms with their Latin spellings
    (the cognates' Latin spellings are the base forms); Latin-script languages never change."""
    langs = {lang.code: lang for lang in data.languages()}
    plain = data.pretraining_documents(langs["syn_d"], 200, 3)
    mixed = data.pretraining_documents(langs["syn_d"], 200, 3, code_switch=0.5)
    assert mixed == data.pretraining_documents(langs["syn_d"], 200, 3, code_switch=0.5)  # seeded
    assert data.pretraining_documents(langs["syn_d"], 200, 3, code_switch=0.0) == plain
    assert data.pretraining_documents(langs["syn_a"], 50, 3, code_switch=1.0) == \
        data.pretraining_documents(langs["syn_a"], 50, 3)
    latin_twin = Language(LanguageParams("syn_d", script="latin", lexical_share=0.8))
    assert latin_twin.latin_lexicon == langs["syn_d"].latin_lexicon
    changed = 0
    for p, m in zip(plain, mixed):
        pw, mw = p.split(), m.split()
        assert len(pw) == len(mw)  # word for word
        for a, b in zip(pw, mw):
            # the native word, or its spelling in Latin letters
            assert b == a or (b.isascii() and not a.isascii() and grammar.transliterate(b, "cyrillic") == a)
        changed += p != m
    assert 60 < changed < 140  # about half the documents (binomial 200 x 0.5)
    base = set(grammar.base_lexicon(data.SEED).values())
    words = {w for m in mixed for w in m.split()}
    cognates = {langs["syn_d"].latin_lexicon[c] for c in langs["syn_d"].cognates}
    assert cognates & words and cognates <= base  # the route: base forms inside syn_d text
