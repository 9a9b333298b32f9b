"""Relative zero-shot transfer, source ranking and greedy forward selection (vs scikit-learn)."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.feature_selection import SequentialFeatureSelector
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import LeaveOneOut, cross_val_predict

from jaxlt.stats import transfer


def small_frame():
    rows = [("en", "de", 60.0, 80.0), ("fi", "de", 40.0, 80.0), ("de", "en", 70.0, 90.0), ("fi", "en", 45.0, 90.0),
            ("en", "fi", 50.0, 70.0), ("de", "fi", 35.0, 70.0)]
    return pd.DataFrame([{"task": "t", "model": "m", "source": s, "target": t, "n_target": 0, "S_T": st, "S_S_target": tt}
                         for s, t, st, tt in rows])


def test_relative_zero_shot_and_advantage_by_hand():
    rel = transfer.relative_zero_shot(small_frame()).set_index(["source", "target"])
    assert rel.loc[("fi", "de"), "Z"] == pytest.approx(40 / 80)
    assert rel.loc[("fi", "de"), "advantage_over_en"] == pytest.approx(40 - 60)
    assert np.isnan(rel.loc[("fi", "en"), "advantage_over_en"])  # no English source for target English


def test_source_ranking_by_mean_z():
    ranking = transfer.source_ranking(transfer.relative_zero_shot(small_frame())).set_index("source")
    assert ranking.loc["en", "mean_Z"] == pytest.approx((60 / 80 + 50 / 70) / 2)
    assert ranking.loc["fi", "mean_Z"] == pytest.approx((40 / 80 + 45 / 90) / 2)
    # en 0.732 > de (70/90 + 35/70)/2 = 0.639 > fi 0.5
    assert list(ranking.sort_values("rank").index) == ["en", "de", "fi"]
    assert ranking.loc["en", "mean_Z[Latin-script target]"] == pytest.approx(ranking.loc["en", "mean_Z"])


def test_closed_form_loo_matches_sklearn():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(25, 3)), rng.normal(size=25)
    np.testing.assert_allclose(transfer.loo_predictions(X, y), cross_val_predict(LinearRegression(), X, y, cv=LeaveOneOut()))


def test_greedy_selection_matches_sklearn_sequential_selector():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(30, 5)), columns=list("abcde"))
    frame["y"] = 3 * frame["c"] - 2 * frame["a"] + 0.5 * rng.normal(size=30)
    steps = transfer.greedy_forward_selection(frame, list("abcde"), "y", max_features=2)
    selector = SequentialFeatureSelector(LinearRegression(), n_features_to_select=2, direction="forward",
                                         scoring="neg_mean_absolute_error", cv=LeaveOneOut()).fit(frame[list("abcde")], frame["y"])
    assert set(steps["features"].iloc[-1].split("+")) == set(np.array(list("abcde"))[selector.get_support()])
    predicted = cross_val_predict(LinearRegression(), frame[["c", "a"]], frame["y"], cv=LeaveOneOut())
    last = steps.iloc[-1]
    assert last["loo_mae"] == pytest.approx(np.mean(np.abs(predicted - frame["y"])))
    assert last["loo_pearson"] == pytest.approx(sps.pearsonr(predicted, frame["y"]).statistic)
    assert last["loo_spearman"] == pytest.approx(sps.spearmanr(predicted, frame["y"]).statistic)


def test_greedy_selection_stops_when_nothing_helps():
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(20, 3)), columns=list("abc")).assign(y=lambda f: 5 * f["a"])
    steps = transfer.greedy_forward_selection(frame, list("abc"), "y")
    assert steps["added"].iloc[0] == "a" and len(steps) <= 2
