"""`jaxlt recommend` and SourceRecommender on the bundled data."""
import io
import json
import contextlib

import numpy as np
import pandas as pd
import pytest

from jaxlt import cli
from jaxlt.features.frame import build_frame
from jaxlt.stats.ledger import Ledger
from jaxlt.stats.metaregression import TransferRegressor, loto_cross_validate
from jaxlt.stats.recommend import SourceRecommender
from jaxlt.stats.results import load_results


@pytest.fixture(scope="module")
def tydiqa():
    results = load_results("published:muller2022")
    data = build_frame(results[results.task == "tydiqa"], Ledger())
    return data, SourceRecommender(features=data.regression_features).fit(data.frame)


def test_ranking_equals_the_fitted_model_and_observed_scores(tydiqa):
    data, rec = tydiqa
    table = rec.recommend("fi")
    zero = data.frame[data.frame.n_target == 0]
    model = TransferRegressor(features=data.regression_features).fit(zero, zero["S_T"])
    rows = zero[zero.target == "fi"].set_index("source").loc[table["source"]]
    np.testing.assert_allclose(table["predicted"], model.predict(rows.reset_index()))
    assert list(table["predicted"]) == sorted(table["predicted"], reverse=True)
    assert list(table["rank"]) == list(range(1, 7)) and "fi" not in set(table["source"])
    np.testing.assert_allclose(table["observed"], rows["S_T"])  # the published cells


def test_interval_is_the_coverage_quantile_of_loto_residuals(tydiqa):
    data, rec = tydiqa
    zero = data.frame[data.frame.n_target == 0]
    pred, _ = loto_cross_validate(zero, data.regression_features)
    residuals = np.sort(np.abs(pred["observed"] - pred["meta_regression"]).to_numpy())
    width = residuals[int(np.ceil((len(residuals) + 1) * 0.9)) - 1]  # split-conformal rank
    table = rec.recommend("sw")
    np.testing.assert_allclose(table["upper"] - table["predicted"], width)
    np.testing.assert_allclose(table["predicted"] - table["lower"], width)
    # the interval covers ~90% of the held-out cells by construction
    assert np.mean(np.abs(pred["observed"] - pred["meta_regression"]) <= width) >= 0.9


def test_n_shot_adds_alpha_log_n(tydiqa):
    _, rec = tydiqa
    zero, few = rec.recommend("ru").set_index("source"), rec.recommend("ru", n=100).set_index("source")
    alpha = rec.alpha_model_.predict(rec._pair_rows("ru", list(zero.index)))
    np.testing.assert_allclose(few.loc[zero.index, "predicted"], zero["predicted"].to_numpy() + alpha.to_numpy() * np.log(101))


def test_target_outside_the_results_uses_offline_features(tydiqa):
    _, rec = tydiqa
    table = rec.recommend("German")
    assert len(table) == 7 and table["observed"].isna().all()
    with pytest.raises(ValueError, match="no in-language score"):
        rec.recommend("fi", sources=["de"])


def _run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def test_cli_out_of_the_box_and_from_a_saved_model(tmp_path):
    code, out, _ = _run(["recommend", "--task", "qa", "--target", "fin", "--n", "100", "--format", "json"])
    assert code == 0
    records = json.loads(out)
    assert [r["rank"] for r in records] == list(range(1, 7)) and all(r["lower"] < r["predicted"] < r["upper"] for r in records)
    code, out, _ = _run(["recommend", "--task", "ner", "--target", "sw", "--top", "3"])
    assert code == 0 and "panx (mt5-base): sources for target sw" in out
    import joblib

    results = load_results("published:muller2022")
    data = build_frame(results[results.task == "panx"], Ledger())
    joblib.dump(SourceRecommender(features=data.regression_features).fit(data.frame), tmp_path / "m.joblib")
    code, out, _ = _run(["recommend", "--fitted", str(tmp_path / "m.joblib"), "--target", "sw", "--format", "csv"])
    assert code == 0 and pd.read_csv(io.StringIO(out))["rank"].tolist() == list(range(1, 9))


@pytest.mark.parametrize("argv, message", [
    (["--task", "qa", "--target", "xx"], "unknown language code 'xx'"),
    (["--task", "nope", "--target", "fi"], "task 'nope' not in"),
    (["--target", "fi"], "--task is required"),
    (["--task", "xnli", "--target", "fi", "--n", "100"], "no n-shot results"),
])
def test_cli_errors(argv, message):
    code, _, err = _run(["recommend", *argv])
    assert code == 2 and message in err
