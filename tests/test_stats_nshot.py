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
    assert metrics["rmse_alpha"].item() < 0.1 < metrics["rmse_alpha_mean_baseline"].item()
    np.testing.assert_allclose(few["fitted_curve"], few["S_T"])
    manual = np.sqrt(np.mean((few["S_T"] - (few["S_T0"] + few["alpha_predicted"] * np.log1p(few["n_target"]))) ** 2))
    assert metrics["rmse_S_T"].item() == pytest.approx(manual)
