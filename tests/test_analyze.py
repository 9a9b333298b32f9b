"""`jaxlt analyze` end to end: the bundled published results, user-supplied features, bad input."""
import itertools
import re

import numpy as np
import pandas as pd
import pytest

from jaxlt import cli
from jaxlt.features import text


@pytest.fixture(scope="module")
def published_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("published")
    assert cli.main(["analyze", "--results", "published:muller2022", "--out", str(out), "--permutations", "99"]) == 0
    return out


def test_published_report_is_complete(published_report):
    out = published_report
    report = (out / "report.md").read_text()
    for section in ("What the analysis found", "Exclusions, unavailable features", "paper Table 1", "paper Table 2",
                    "paper Table 3a", "paper Figure 2", "paper Table 3b", "paper Figures 3-8", "Relative zero-shot",
                    "Recommended sources", "The paper's numbers beside jaxlt's", "lang2vec codes per feature set"):
        assert section in report, section
    assert report.index("## What the analysis found") < report.index("## Inputs")
    # every figure the report links exists and is a PNG
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert len(links) >= 12
    for link in links:
        assert (out / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
    cv = pd.read_csv(out / "tables" / "metaregression_cv.csv")
    assert set(cv["task"]) == {"tydiqa", "panx", "xnli", "xnli_new"}
    assert {"meta_regression", "training_mean", "source_mean", "always_english", "largest_corpus"} <= set(cv["method"])
    assert list((out / "models").glob("*.joblib"))
    folds = pd.read_csv(out / "tables" / "metaregression_folds.csv")
    assert len(folds) == 7 + 9 + 7 + 14  # one row per target fold and task (PAN-X: 9 targets)


def test_published_report_sets_the_papers_numbers_beside_jaxlts(published_report):
    report = (published_report / "report.md").read_text()
    side = report[report.index("## The paper's numbers beside jaxlt's"):]
    # transcribed values of Table 1 (QA SYNT), Table 2 (QA log), Table 3a (QA RMSE), 3b (NER), Figure 2 (QA PHONO)
    for value in ("| QA (TyDiQA) | SYNT | 38.4* |", "| QA (TyDiQA) | log(n+1) | 83.9 |", "| QA (TyDiQA) | 5.48 |", "7.6",
                  "| QA (TyDiQA) | PHONO | 156.4 |", "needs the mT5 checkpoint", "n = 0 and 100 only"):
        assert value in side, value
    # every model row next to its baselines, with a flag where one beats it (the finding on this data)
    cv = pd.read_csv(published_report / "tables" / "metaregression_cv.csv")
    model = cv[cv.method == "meta_regression"].set_index("task")
    source_mean = cv[cv.method == "source_mean"].set_index("task")
    loses = model["rmse_mean_over_folds"] > source_mean["rmse_mean_over_folds"]
    assert loses.any()
    for task in loses[loses].index:
        assert "source_mean (RMSE" in model.loc[task, "loses_to"]
    assert "LOSES to a baseline" in report and "no better than a baseline" in report
    assert (published_report / "figures" / "heatmap_tydiqa__mt5-base_n0.png").exists()
    codes = pd.read_csv(published_report / "tables" / "language_codes.csv").set_index("language")
    assert codes.loc["ar", "phonology_wals"] == "ara" and codes.loc["ar", "default"] == "arb"


def test_unavailable_features_are_stated_with_counts(published_report):
    ledger = pd.read_csv(published_report / "tables" / "ledger.csv")
    unavailable = ledger[ledger["kind"] == "unavailable"].set_index("what")
    pairs = len(pd.read_csv(published_report / "tables" / "analysis_frame.csv"))
    for feature in ("LEX", "Vr", "SENTLEN", "MORPH", "EMB", "LM_L_T", "LM_EM_T"):
        assert unavailable.loc[feature, "count"] == pairs
    assert "published results ship without text" in unavailable.loc["LEX", "reason"]
    frame = pd.read_csv(published_report / "tables" / "analysis_frame.csv")
    assert frame.loc[frame.target == "ar", "PHONO"].notna().mean() > 0.9  # lang2vec 'ara' has WALS phonology ('arb' none)
    excluded = ledger[ledger["kind"] == "excluded"]
    assert excluded["count"].sum() == 15  # the n=100 diagonal cells
    report = (published_report / "report.md").read_text()
    assert "| unavailable | features | LEX |" in report


def test_paper_cells_reproduced_in_the_frame(published_report):
    frame = pd.read_csv(published_report / "tables" / "analysis_frame.csv")
    row = frame[(frame.task == "tydiqa") & (frame.source == "en") & (frame.target == "bn") & (frame.n_target == 0)].iloc[0]
    assert (row["S_T"], row["S_S"], row["S_S_target"]) == (18.1, 60.8, 66.8)
    assert row["gap"] == pytest.approx(18.1 - 60.8)


def _synthetic_results(tmp_path):
    codes = ["en", "de", "fi", "sw", "ru"]
    rng = np.random.default_rng(0)
    rows = []
    for s, t in itertools.product(codes, codes):
        for seed in (0, 1):
            for n in (0, 10, 100):
                if s == t and n:
                    continue
                base = 80 if s == t else 50 + 5 * rng.uniform()
                rows.append({"task": "xnli", "model": "mt5-small", "source": s, "target": t, "n_target": n, "seed": seed,
                             "strategy": "zero_shot" if n == 0 else "sequential", "sampling": "random",
                             "metric": "accuracy", "score": min(100.0, base + 3 * np.log1p(n) + rng.normal())})
    path = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    corpus = {"en": "the cat sat on the mat", "de": "die katze sass auf der matte", "fi": "kissa istui matolla",
              "sw": "paka aliketi kwenye mkeka", "ru": "кошка сидела на коврике"}
    for code, line in corpus.items():
        text.write_text_dir(tmp_path / "text", "xnli", code, [line, line[::-1]])
    # the layout `jaxlt features model` writes (jaxlt.grid.model_features)
    (tmp_path / "model_features").mkdir()
    pd.DataFrame([{"model": "mt5-small", "task": "xnli", "language": c, "feature": f, "value": rng.uniform(), "sentences": 2}
                  for c in codes for f in ("LM_L", "LM_EM")]).to_csv(tmp_path / "model_features" / "language_features.csv", index=False)
    np.savez(tmp_path / "model_features" / "centroids.npz", **{f"mt5-small/xnli/{c}": rng.normal(size=8) for c in codes})
    return path


def test_user_supplied_text_and_model_features(tmp_path):
    results = _synthetic_results(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["analyze", "--results", str(results), "--text", str(tmp_path / "text"), "--model-features",
                     str(tmp_path / "model_features"), "--out", str(out), "--permutations", "20", "--no-models"]) == 0
    frame = pd.read_csv(out / "tables" / "analysis_frame.csv")
    centroids = np.load(tmp_path / "model_features" / "centroids.npz")
    u, v = centroids["mt5-small/xnli/en"], centroids["mt5-small/xnli/fi"]
    emb = frame[(frame.source == "en") & (frame.target == "fi")]["EMB"].iloc[0]
    assert emb == pytest.approx(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    for feature in ("LEX", "MORPH", "Vr", "SENTLEN", "EMB", "LM_EM_T", "LM_L_S"):
        assert frame[feature].notna().all(), feature
    assert (frame.groupby(["source", "target", "n_target"]).size() == 1).all()  # seeds aggregated
    ledger = pd.read_csv(out / "tables" / "ledger.csv")
    assert not set(ledger.loc[ledger.kind == "unavailable", "what"]) & {"LEX", "EMB", "LM_EM_T"}
    nshot = pd.read_csv(out / "tables" / "nshot_cv.csv")
    assert list(nshot["method"]) == ["nshot_model", "mean_alpha", "source_mean", "training_mean"]
    corr = pd.read_csv(out / "tables" / "correlations.csv")
    assert {"LEX", "EMB", "LM_EM_T", "MORPH"} <= set(corr["feature"])


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.drop(columns=["score"]), "missing required column"),
    (lambda f: f.assign(target=f["target"].where(f.index != 3, "qq")), "unknown language code"),
    (lambda f: pd.concat([f, f.iloc[[0]].assign(score=1.0)]), "duplicate cells"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, edit, message):
    results = _synthetic_results(tmp_path)
    edit(pd.read_csv(results)).to_csv(results, index=False)
    assert cli.main(["analyze", "--results", str(results), "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_nan_scores_are_counted_in_the_report(tmp_path):
    results = _synthetic_results(tmp_path)
    frame = pd.read_csv(results)
    frame.loc[[5, 9], "score"] = np.nan
    frame.to_csv(results, index=False)
    assert cli.main(["analyze", "--results", str(results), "--out", str(tmp_path / "o"), "--permutations", "10", "--no-models",
                     "--jobs", "2"]) == 0  # also covers rendering figures in forked processes
    assert len(list((tmp_path / "o" / "figures").glob("*.png"))) >= 5
    ledger = pd.read_csv(tmp_path / "o" / "tables" / "ledger.csv")
    row = ledger[ledger.reason.str.contains("NaN")]
    assert row["count"].item() == 2 and "line 7" in row["examples"].item()
