"""n-shot model S_T = S_T(0) + alpha log(n+1): alpha per pair against numpy least squares."""
import itertools

import numpy as np
import pandas as pd
import pytest

from jaxlt.stats import nshot

CODES = ["en", "de", "fi", "sw"]


def frame_with_curves(noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s, t in itertools.permutations(CODES, 2):
        f = rng.uniform()
        alpha, s0 = 2 + 3 * f, 40 + 10 * rng.uniform()
        for n in (0, 10, 100, 1000):
            rows.append({"task": "t", "model": "m", "source": s, "target": t, "n_target": n, "F": f,
                         "S_T": s0 + alpha * np.log(n + 1) + (noise * rng.normal() if n else 0.0), "true_alpha": alpha})
    return pd.DataFrame(rows)


def test_alpha_recovers_exact_curves():
    frame = frame_with_curves()
    alphas = nshot.fit_alpha(frame)
    truth = frame.groupby(["source", "target"])["true_alpha"].first()
    np.testing.assert_allclose(alphas.set_index(["source", "target"])["alpha"].loc[truth.index], truth)
    assert (alphas["n_points"] == 3).all()


def test_alpha_is_least_squares_through_the_zero_shot_score():
    frame = frame_with_curves(noise=2.0, seed=1)
    alphas = nshot.fit_alpha(frame).set_index(["source", "target"])
    for (s, t), group in frame.groupby(["source", "target"]):
        s0 = group.loc[group.n_target == 0, "S_T"].item()
        few = group[group.n_target > 0]
        x = np.log1p(few["n_target"].to_numpy(float))[:, None]
        expected = np.linalg.lstsq(x, few["S_T"].to_numpy() - s0, rcond=None)[0][0]
        assert alphas.loc[(s, t), "alpha"] == pytest.approx(expected)


def test_pairs_without_zero_shot_are_counted():
    frame = frame_with_curves()
    frame = frame[~((frame.source == "en") & (frame.target == "de") & (frame.n_target == 0))]
    alphas = nshot.fit_alpha(frame)
    assert alphas.attrs["excluded"]["n-shot rows without a zero-shot score for their pair"] == 3
    assert len(alphas) == 11


def test_alpha_regression_cv_recovers_a_linear_alpha():
    frame = frame_with_curves()
    alphas = nshot.fit_alpha(frame)
    few, metrics = nshot.loto_alpha(frame, alphas, ["F"])
    m = metrics.set_index("method")
    assert m.loc["nshot_model", "rmse_alpha"] < 0.1 < m.loc["mean_alpha", "rmse_alpha"]
    np.testing.assert_allclose(few["fitted_curve"], few["S_T"])
    manual = np.sqrt(np.mean((few["S_T"] - (few["S_T0"] + few["alpha_predicted"] * np.log1p(few["n_target"]))) ** 2))
    assert m.loc["nshot_model", "rmse_S_T"] == pytest.approx(manual)


def test_zero_shot_score_is_a_predictor_of_alpha_and_baselines_are_out_of_sample():
    # alpha falls with the zero-shot score (less to gain when transfer is already good); no other feature carries it
    rng = np.random.default_rng(3)
    rows = []
    for s, t in itertools.permutations(["en", "de", "fi", "sw", "ar", "ru"], 2):
        s0 = rng.uniform(20, 70)
        for n in (0, 10, 100, 1000):
            rows.append({"task": "t", "model": "m", "source": s, "target": t, "n_target": n, "F": rng.uniform(),
                         "S_T": s0 + (12 - 0.15 * s0) * np.log1p(n)})
    frame = pd.DataFrame(rows)
    few, metrics = nshot.loto_alpha(frame, nshot.fit_alpha(frame), ["F"])
    m = metrics.set_index("method")
    assert "S_T0" in metrics.attrs["features"]
    assert m.loc["nshot_model", "rmse_alpha"] < 0.2 * m.loc["mean_alpha", "rmse_alpha"]
    assert m.loc["nshot_model", "loses_to"] == ""
    # baselines by hand for one held-out target: training mean of S_T at the same n, and per source
    held = few[few.target == "fi"]
    train = frame[(frame.target != "fi") & (frame.n_target > 0)]
    np.testing.assert_allclose(held["training_mean"], held["n_target"].map(train.groupby("n_target")["S_T"].mean()))
    per_source = train.groupby(["source", "n_target"])["S_T"].mean()
    np.testing.assert_allclose(held["source_mean"], [per_source[(s, n)] for s, n in zip(held.source, held.n_target)])
