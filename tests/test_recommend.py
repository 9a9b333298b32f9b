"""`jaxlt recommend` and SourceRecommender on the bundled data."""
import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

from jaxlt import cli
from jaxlt.features.frame import build_frame
from jaxlt.stats.ledger import Ledger
from jaxlt.stats.metaregression import loto_cross_validate
from jaxlt.stats.recommend import SourceRecommender, budget_answer
from jaxlt.stats.results import load_results


@pytest.fixture(scope="module")
def tydiqa():
    results = load_results("published:muller2022")
    data = build_frame(results[results.task == "tydiqa"], Ledger())
    return data, SourceRecommender(features=data.regression_features, n_bootstrap=50).fit(data.frame)


def test_ranking_equals_the_fitted_model_and_observed_scores(tydiqa):
    data, rec = tydiqa
    table = rec.recommend("fi")
    zero = data.frame[data.frame.n_target == 0]
    rows = zero[zero.target == "fi"].set_index("source").loc[table["source"]].reset_index()
    np.testing.assert_allclose(table["predicted"], np.clip(rec.zero_model_.predict(rows), 0, 100))
    assert list(table["predicted"]) == sorted(table["predicted"], reverse=True)
    assert list(table["rank"]) == list(range(1, 7)) and "fi" not in set(table["source"])
    np.testing.assert_allclose(table["observed"], rows["S_T"])  # the published cells
    assert table["p_best"].sum() == pytest.approx(1.0) and table["flags"].eq("").all()
    # the baseline's answer: per-source mean of the observed zero-shot scores (plus mean alpha log(n+1) for n > 0)
    means = zero.groupby("source")["S_T"].mean()
    np.testing.assert_allclose(table["baseline"], table["source"].map(means))
    assert table.attrs["baseline_best"] == means.loc[table["source"]].idxmax()


def test_interval_is_the_coverage_quantile_of_loto_residuals_clipped_to_the_metric(tydiqa):
    data, rec = tydiqa
    zero = data.frame[data.frame.n_target == 0]
    pred, _ = loto_cross_validate(zero, rec.features_)
    residuals = np.sort(np.abs(pred["observed"] - pred["meta_regression"]).to_numpy())
    width = residuals[int(np.ceil((len(residuals) + 1) * 0.9)) - 1]  # split-conformal rank
    table = rec.recommend("sw")
    inside = (table["predicted"] - width > 0) & (table["predicted"] + width < 100)
    np.testing.assert_allclose((table["upper"] - table["predicted"])[inside], width)
    assert (table["lower"] >= 0).all() and (table["upper"] <= 100).all()


def test_n_beyond_the_fitted_range_is_refused_or_flagged_and_clipped(tydiqa):
    _, rec = tydiqa
    with pytest.raises(ValueError, match="outside the fitted range"):
        rec.recommend("ru", n=1_000_000)
    table = rec.recommend("ru", n=1_000_000, extrapolate=True)
    assert (table["predicted"] <= 100).all() and table["flags"].str.contains("n beyond fitted range").all()


def test_n_shot_adds_alpha_log_n_and_answers_the_budget_question(tydiqa):
    _, rec = tydiqa
    zero, few = rec.recommend("ru").set_index("source"), rec.recommend("ru", n=50)
    rows = rec.pair_rows("ru", list(zero.index)).assign(S_T0=zero["predicted"].to_numpy())
    alpha = rec.alpha_model_.predict(rows).to_numpy()
    few = few.set_index("source").loc[zero.index]
    np.testing.assert_allclose(few["predicted"], np.clip(zero["predicted"].to_numpy() + alpha * np.log(51), 0, 100))
    np.testing.assert_allclose(few["gain_per_doubling"], alpha * (np.log(101) - np.log(51)))
    answer = budget_answer(rec.recommend("ru", n=50))
    assert answer.startswith("For ru with n = 50: ") and "per-source-mean baseline would pick" in answer
    assert "doubling n to 100 adds about" in answer


def test_tied_predictions_share_the_probability_of_being_best(tydiqa):
    _, rec = tydiqa
    table = rec.recommend("fi")
    assert table["p_best"].sum() == pytest.approx(1.0)
    if table.attrs["n_tied_at_top"] == len(table):  # every source tied in the fit: in every refit too when no source feature is used
        if not set(rec.zero_model_.selected_) & {"S_S", "SIZE_S", "SYNT", "PHONO"}:
            np.testing.assert_allclose(table["p_best"], 1 / len(table))
        assert "does not tell" in budget_answer(table)


def test_target_outside_the_results_is_flagged(tydiqa):
    _, rec = tydiqa
    table = rec.recommend("yo")  # Yoruba: not a TyDiQA language
    assert len(table) == 7 and table["observed"].isna().all()
    assert table["flags"].str.contains("target not in the fitted data").all()
    with pytest.raises(ValueError, match="no in-language score"):
        rec.recommend("fi", sources=["de"])


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def test_cli_out_of_the_box_and_from_a_saved_model(tmp_path):
    code, out, _ = _run(["recommend", "--task", "qa", "--target", "fin", "--n", "100", "--format", "json", "--bootstrap", "20"])
    assert code == 0
    records = json.loads(out)
    assert [r["rank"] for r in records] == list(range(1, 7)) and all(r["lower"] <= r["predicted"] <= r["upper"] for r in records)
    code, out, _ = _run(["recommend", "--task", "ner", "--target", "sw", "--top", "3", "--bootstrap", "20"])
    assert code == 0 and "panx (mt5-base): sources for target sw" in out and "per-source-mean baseline would pick" in out
    import joblib

    results = load_results("published:muller2022")
    data = build_frame(results[results.task == "panx"], Ledger())
    joblib.dump(SourceRecommender(features=data.regression_features, n_bootstrap=20).fit(data.frame), tmp_path / "m.joblib")
    code, out, _ = _run(["recommend", "--fitted", str(tmp_path / "m.joblib"), "--target", "sw", "--format", "csv"])
    assert code == 0 and pd.read_csv(io.StringIO(out))["rank"].tolist() == list(range(1, 9))


@pytest.mark.parametrize("argv, message", [
    (["--task", "qa", "--target", "xx"], "unknown language code 'xx'"),
    (["--task", "nope", "--target", "fi"], "task 'nope' not in"),
    (["--target", "fi"], "--task is required"),
    (["--task", "xnli", "--target", "fi", "--n", "100"], "outside the fitted range"),
    (["--task", "qa", "--target", "fi", "--n", "1000000"], "pass --extrapolate"),
])
def test_cli_errors(argv, message):
    code, _, err = _run(["recommend", *argv, "--bootstrap", "5"])
    assert code == 2 and message in err


def _sources_equal_frame(rng, source_sd: float = 0.0, seeds: int = 3, missing: float = 0.0):
    """4 sources x 8 languages; S_T = target effect + source effect + seed noise. The source effect is
    ``source_sd`` times the standardised SIZE_S (0: all sources equal, and then no feature carries signal;
    SYNT and SIZE_T per pair never do). ``missing``: that share of the cells dropped at random (an incomplete
    design), always including 2 of the 4 on the recommendation target id, whose rows the recommender then
    rebuilds from offline features: so SYNT and SIZE_T are the real lang2vec / mC4 values there (still no signal)."""
    codes = ["en", "de", "fi", "sw", "ar", "ru", "hi", "id"]
    size = rng.uniform(0, 1, 4)
    target_effect, source_effect = rng.normal(0, 8, len(codes)), source_sd * (size - size.mean()) / size.std()
    rows = []
    for i, s in enumerate(codes[:4]):
        for j, t in enumerate(codes):
            if s != t:
                runs = 60 + source_effect[i] + target_effect[j] + rng.normal(0, 2, seeds)
                rows.append(dict(task="t", model="m", source=s, target=t, n_target=0, S_T=runs.mean(),
                                 score_std=runs.std(ddof=1), n_seeds=seeds, S_S=70 + rng.normal(0, 0.5), SIZE_S=size[i],
                                 SYNT=rng.uniform(), SIZE_T=rng.uniform()))
    frame = pd.DataFrame(rows)
    if missing:
        from jaxlt.features import sizes, typology

        frame["model"] = "mt5-base"
        frame["SYNT"] = typology.pair_features(list(zip(frame["source"], frame["target"])))["SYNT"].to_numpy()
        frame["SIZE_T"] = frame["target"].map(sizes.log_size(sizes.corpus_for_model("mt5-base")))
        drop = rng.uniform(size=len(frame)) < missing
        on_id = np.flatnonzero(frame["target"] == "id")
        drop[on_id] = False
        drop[rng.choice(on_id, size=2, replace=False)] = True  # 2 of the 4 sources have no score on id
        frame = frame[~drop].reset_index(drop=True)
    return frame


def _confident_rate(sims: int, source_sd: float, seed: int, n_bootstrap: int = 25, missing: float = 0.0) -> float:
    from jaxlt.stats.metaregression import TransferRegressor

    rng = np.random.default_rng(seed)
    features = ["S_S", "SIZE_S", "SYNT", "SIZE_T"]
    confident = []
    for k in range(sims):
        frame = _sources_equal_frame(rng, source_sd, missing=missing)
        model = TransferRegressor(features=features, n_features=4, alpha=0.01).fit(frame, frame["S_T"])  # fixed: fast
        # intervals are not under test: in-sample predictions stand in for the LOTO ones (saves 8 refits a draw)
        cv = frame.assign(observed=frame["S_T"], meta_regression=model.predict(frame).to_numpy())
        rec = SourceRecommender(features=features, n_features=4, alpha=0.01, n_bootstrap=n_bootstrap, seed=k).fit(
            frame, zero_cv=cv, zero_model=model)
        confident.append(rec.recommend("id")["p_best"].max() >= 0.95)
    return float(np.mean(confident))


def test_p_best_is_rarely_confident_when_all_sources_are_equal():
    """Under the null (no source is better; features carry no signal) a 'confident' recommendation
    (P(best) >= 0.95) should come at about the nominal 5% or less; when sources truly differ (sd 10
    points, through a feature the model sees) it should come much more often (the check can fail)."""
    null = _confident_rate(40, source_sd=0.0, seed=51)
    different = _confident_rate(8, source_sd=10.0, seed=52)
    print(f"confident recommendations: {null:.3f} under the null, {different:.3f} when sources differ")
    assert null <= 0.125  # at most 5 of 40 draws: at a true rate of 0.05, 6 or more come with probability 0.05
    assert different >= 0.5


def test_p_best_is_rarely_confident_when_all_sources_are_equal_in_an_incomplete_design():
    """The same null check with 30% of the cells missing at random, and 2 of the 4 sources without a score on
    the target asked about (their pair features rebuilt offline, as for any pair outside the results)."""
    null = _confident_rate(40, source_sd=0.0, seed=53, missing=0.3)
    different = _confident_rate(8, source_sd=10.0, seed=54, missing=0.3)
    print(f"incomplete design: confident recommendations {null:.3f} under the null, {different:.3f} when sources differ")
    assert null <= 0.125  # at most 5 of 40 draws (as above); measured 0 of 40
    # less power than the complete design (fewer cells; measured 3 of 8): where two sources' sizes are close the
    # probability is rightly split between them. The check that a confident pick can happen at all:
    assert different >= 0.25


def test_one_source_design_p_best_is_one_by_construction_and_said_so(capsys):
    """One source (English only, the most common design): there is nothing to compare, so P(best) is exactly 1
    for the single candidate, and the answer says it holds by construction instead of quoting the bootstrap;
    asking for the source itself as the target is refused with a clear message."""
    from jaxlt.stats.pipeline import recommendation_table

    rng = np.random.default_rng(55)
    features = ["S_S", "SIZE_S", "SYNT", "SIZE_T"]
    for _ in range(3):
        frame = _sources_equal_frame(rng)
        one = frame[frame["source"] == "en"].reset_index(drop=True).assign(S_S=70.0)  # one in-language score
        rec = SourceRecommender(features=features, n_bootstrap=20).fit(one)
        assert "S_S" not in rec.features_ and "SIZE_S" not in rec.features_  # one value each: nothing to learn
        for target in ("id", "sw"):
            table = rec.recommend(target)
            assert list(table["source"]) == ["en"] and table["p_best"].tolist() == [1.0]
            assert table.attrs["n_candidates"] == 1
            answer = budget_answer(table)
            assert "only candidate source" in answer and "by construction" in answer and "bootstrap" not in answer
        with pytest.raises(ValueError, match="no candidate source for target 'en'"):
            rec.recommend("en")
    shown = recommendation_table("t/m", rec, ["en", "id"])
    assert shown.set_index("target").loc["id", "recommended"].endswith("P(best) 1 (only candidate)")
    assert "no candidate source" in shown.set_index("target").loc["en", "recommended"]
    # a model with several sources asked about one candidate says the same
    several = SourceRecommender(features=features, n_bootstrap=20).fit(frame)
    table = several.recommend("id", sources=["de"])
    assert table["p_best"].tolist() == [1.0] and "only candidate source" in budget_answer(table)
