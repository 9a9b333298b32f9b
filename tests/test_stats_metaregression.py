"""Meta-regression: RFE with Lasso, LOTO CV, top-1, NDCG@3, baselines, OLS refit, each checked independently."""
import itertools

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats
from sklearn.linear_model import Lasso
from sklearn.metrics import ndcg_score

from jaxlt.stats import metaregression as mr

CODES = ["en", "de", "fi", "sw", "ar", "ru"]


def synthetic(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    size = dict(zip(CODES, [3.4, 2.5, 1.4, 0.0, 1.8, 2.9]))
    for s, t in itertools.permutations(CODES, 2):
        a, b, c, d = rng.uniform(0, 1, 4)
        rows.append({"task": "t", "model": "m", "source": s, "target": t, "n_target": 0, "A": a, "B": b, "C": c, "D": d,
                     "SIZE_S": size[s], "S_T": 30 + 20 * a - 10 * b + 2 * c + rng.normal(0, 0.5)})
    return pd.DataFrame(rows)


def manual_rfe(X: pd.DataFrame, y, keep, alpha):
    """The paper's procedure written out: scale to [0,1], fit Lasso, drop the smallest |coef|, repeat."""
    cols = list(X.columns)
    scaled = (X - X.min()) / (X.max() - X.min())
    while len(cols) > keep:
        coef = Lasso(alpha=alpha, max_iter=100_000).fit(scaled[cols], y).coef_
        cols.pop(int(np.argmin(np.abs(coef))))
    return cols, Lasso(alpha=alpha, max_iter=100_000).fit(scaled[cols], y)


def test_rfe_matches_manual_elimination():
    frame = synthetic()
    features = ["A", "B", "C", "D"]
    model = mr.TransferRegressor(features=features, n_features=2, alpha=0.01).fit(frame, frame["S_T"])
    cols, lasso = manual_rfe(frame[features], frame["S_T"], 2, 0.01)
    assert model.selected_ == sorted(cols, key=features.index) == ["A", "B"]
    np.testing.assert_allclose(model.coef_.to_numpy(), lasso.coef_, rtol=1e-6)
    scaled = (frame[cols] - frame[cols].min()) / (frame[cols].max() - frame[cols].min())
    np.testing.assert_allclose(model.predict(frame), lasso.predict(scaled), rtol=1e-6)
    assert isinstance(model.predict(frame), pd.Series)


def test_validated_lasso_is_lasso_bit_for_bit():
    """The Lasso that RFE/RFECV and the bootstrap use skips sklearn's per-fit input validation; on the inputs
    they pass (float ndarrays, column subsets, C or Fortran order) it must give exactly Lasso's fit."""
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(60, 5))
    y = X @ [8.0, -3.0, 0.5, 0.0, 2.0] + rng.normal(0, 0.3, 60)
    for columns in ([0, 1, 2, 3, 4], [0, 2], [4]):
        for alpha in (0.001, 0.05, 0.5):
            for design in (X[:, columns], np.asfortranarray(X[:, columns]), X[5:50][:, columns]):
                rows = len(design)
                ours = mr.ValidatedLasso(alpha=alpha, max_iter=100_000).fit(design, y[:rows] if rows == 60 else y[5:50])
                ref = Lasso(alpha=alpha, max_iter=100_000).fit(design, y[:rows] if rows == 60 else y[5:50])
                np.testing.assert_array_equal(ours.coef_, ref.coef_)
                assert ours.intercept_ == ref.intercept_
                np.testing.assert_array_equal(ours.predict(design), ref.predict(design))


def test_all_nan_feature_is_an_error():
    frame = synthetic().assign(E=np.nan)
    with pytest.raises(ValueError, match=r"\['E'\] have no values"):
        mr.TransferRegressor(features=["A", "E"]).fit(frame, frame["S_T"])
    with pytest.raises(KeyError, match="not in X"):
        mr.TransferRegressor(features=["Z"]).fit(frame, frame["S_T"])


def test_loto_cv_matches_a_manual_loop_and_scales_inside_folds():
    frame = synthetic(1)
    features = ["A", "B", "C", "D", "SIZE_S"]
    predictions, metrics = mr.loto_cross_validate(frame, features, estimator=mr.TransferRegressor(features=features, n_features=3, alpha=0.01))
    errors = []
    for target in CODES:
        train, test = frame[frame.target != target], frame[frame.target == target]
        cols, lasso = manual_rfe(train[features], train["S_T"], 3, 0.01)
        lo, hi = train[cols].min(), train[cols].max()  # fold-internal scaling
        predicted = lasso.predict((test[cols] - lo) / (hi - lo))
        np.testing.assert_allclose(predictions.loc[test.index, "meta_regression"], predicted, rtol=1e-6)
        errors.append(np.sqrt(np.mean((test["S_T"] - predicted) ** 2)))
        # baselines: training mean and per-source training mean
        np.testing.assert_allclose(predictions.loc[test.index, "training_mean"], train["S_T"].mean())
        per_source = train.groupby("source")["S_T"].mean()
        np.testing.assert_allclose(predictions.loc[test.index, "source_mean"], test["source"].map(per_source))
    row = metrics.set_index("method").loc["meta_regression"]
    assert row["rmse_mean_over_folds"] == pytest.approx(np.mean(errors))
    assert row["rmse_pooled"] == pytest.approx(np.sqrt(np.mean((predictions["observed"] - predictions["meta_regression"]) ** 2)))


def test_ranking_metrics_hand_worked_and_against_sklearn():
    pred = pd.DataFrame({
        "target": ["x"] * 4 + ["y"] * 3, "n_target": 0,
        "source": ["a", "b", "c", "d", "a", "b", "c"],
        "observed": [10.0, 40.0, 30.0, 20.0, 5.0, 5.0, 1.0],
        "predicted": [4.0, 3.0, 2.0, 1.0, 0.0, 2.0, 1.0],
    })
    out = mr.ranking_metrics(pred)
    # x: predicted top is a (observed 10, not best 40) -> miss; y: predicted top b, observed best a and b tie -> hit
    assert out["top1_accuracy"] == pytest.approx(0.5)
    # NDCG@3 for x by hand: ranking a, b, c -> DCG = 10 + 40/log2(3) + 30/2; ideal b, c, d -> 40 + 30/log2(3) + 20/2
    dcg = 10 + 40 / np.log2(3) + 30 / 2
    ideal = 40 + 30 / np.log2(3) + 20 / 2
    ndcg_y = ndcg_score([[5.0, 5.0, 1.0]], [[0.0, 2.0, 1.0]], k=3)
    assert out["ndcg@3"] == pytest.approx((dcg / ideal + ndcg_y) / 2)


def test_tied_top_prediction_counts_expected_hit():
    pred = pd.DataFrame({"target": "x", "n_target": 0, "source": list("abcd"),
                         "observed": [1.0, 9.0, 3.0, 2.0], "predicted": [5.0, 5.0, 5.0, 5.0]})
    assert mr.ranking_metrics(pred)["top1_accuracy"] == pytest.approx(0.25)


def test_english_and_corpus_baselines():
    frame = synthetic(2)
    predictions, metrics = mr.loto_cross_validate(frame, ["A", "B"])
    m = metrics.set_index("method")
    best = frame.loc[frame.groupby("target")["S_T"].idxmax(), ["target", "source"]].set_index("target")["source"]
    # for target en every source ties at 0: a random pick among 5 hits with probability 1/5
    expected = [1 / 5 if t == "en" else float(b == "en") for t, b in best.items()]
    assert m.loc["always_english", "top1_accuracy"] == pytest.approx(np.mean(expected))
    largest = frame.loc[frame.groupby("target")["SIZE_S"].idxmax(), ["target", "source"]].set_index("target")["source"]
    assert m.loc["largest_corpus", "top1_accuracy"] == pytest.approx(np.mean(best == largest))
    assert np.isnan(m.loc["always_english", "rmse_pooled"])


def test_refit_ols_matches_statsmodels_formula_on_scaled_data():
    frame = synthetic(3)
    table = mr.refit_ols(frame, ["A", "B"]).set_index("term")
    scaled = frame.assign(A=(frame.A - frame.A.min()) / (frame.A.max() - frame.A.min()),
                          B=(frame.B - frame.B.min()) / (frame.B.max() - frame.B.min()))
    reference = smf.ols("S_T ~ A + B", data=scaled).fit()
    for term, ref in (("const", "Intercept"), ("A", "A"), ("B", "B")):
        assert table.loc[term, "coef"] == pytest.approx(reference.params[ref])
        assert table.loc[term, "std_err"] == pytest.approx(reference.bse[ref])
        assert table.loc[term, "p_value"] == pytest.approx(reference.pvalues[ref], rel=1e-6, abs=1e-300)
    # two-way cluster-robust errors (source, target) as statsmodels; where its two-way variance is
    # negative (NaN), the larger one-way variance; t with G - 1 = 5 degrees of freedom
    groups = [pd.factorize(frame.source)[0], pd.factorize(frame.target)[0]]
    fit = lambda g: smf.ols("S_T ~ A + B", data=scaled).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
    two = fit(np.column_stack(groups))
    for term in ("Intercept", "A", "B"):
        se = two.bse[term] if np.isfinite(two.bse[term]) else max(fit(g).bse[term] for g in groups)
        mine = table.loc["const" if term == "Intercept" else term]
        assert mine["std_err_cluster"] == pytest.approx(se)
        assert mine["p_value_cluster"] == pytest.approx(2 * stats.t.sf(abs(two.params[term] / se), 5))
    # delete-one-language jackknife: statsmodels refits without each language's pairs, t with G - 1 df
    codes = sorted(set(frame.source) | set(frame.target))
    refits = np.array([smf.ols("S_T ~ A + B", data=scaled[(scaled.source != c) & (scaled.target != c)]).fit().params
                       for c in codes])
    g = len(codes)
    jack_se = np.sqrt((g - 1) / g * ((refits - refits.mean(axis=0)) ** 2).sum(axis=0))
    for k, term in enumerate(("Intercept", "A", "B")):
        mine = table.loc["const" if term == "Intercept" else term]
        assert mine["std_err_jackknife"] == pytest.approx(jack_se[k])
        assert mine["p_value_jackknife"] == pytest.approx(2 * stats.t.sf(abs(reference.params[term] / jack_se[k]), g - 1))
        assert mine["jackknife_deletions"] == g
    eq = mr.equation(table.reset_index())
    assert eq.startswith(f"S_T(0) = {reference.params['Intercept']:.2f} + ") and " A " in eq + " "


def synthetic_sparse(seed=0):
    """S_T depends on A and B only; C, D, E are noise. Eight targets."""
    rng = np.random.default_rng(seed)
    codes = ["en", "de", "fi", "sw", "ar", "ru", "hi", "id"]
    rows = []
    for s, t in itertools.permutations(codes, 2):
        a, b, c, d, e = rng.uniform(0, 1, 5)
        rows.append({"task": "t", "model": "m", "source": s, "target": t, "n_target": 0, "A": a, "B": b, "C": c, "D": d,
                     "E": e, "S_T": 30 + 20 * a - 12 * b + rng.normal(0, 1.0)})
    return pd.DataFrame(rows)


def test_nested_cv_selects_the_informative_features_in_every_fold():
    frame = synthetic_sparse()
    features = ["A", "B", "C", "D", "E"]
    _, metrics = mr.loto_cross_validate(frame, features)
    folds = metrics.attrs["folds"]
    assert len(folds) == 8 and set(folds["fold"]) == set(frame["target"])
    for selected in folds["selected"]:
        assert {"A", "B"} <= set(selected.split("+")), selected
    assert np.mean([len(s.split("+")) for s in folds["selected"]]) < 4  # noise features mostly eliminated
    row = metrics.set_index("method").loc["meta_regression"]
    assert row["rmse_mean_over_folds"] < 2.0 and row["loses_to"] == ""


def test_cv_choices_match_sklearn_run_by_hand():
    """Penalty: LassoCV over GroupKFold(3) on targets; features: RFECV with that penalty, both on the
    training data imputed and scaled to [0, 1]."""
    from sklearn.feature_selection import RFECV
    from sklearn.linear_model import LassoCV
    from sklearn.model_selection import GroupKFold

    frame = synthetic_sparse(1)
    features = ["A", "B", "C", "D", "E"]
    model = mr.TransferRegressor(features=features).fit(frame, frame["S_T"])
    X = frame[features]
    scaled = ((X - X.min()) / (X.max() - X.min())).to_numpy()
    splits = list(GroupKFold(n_splits=3).split(scaled, groups=frame["target"]))
    alpha = LassoCV(alphas=20, cv=splits, max_iter=100_000).fit(scaled, frame["S_T"]).alpha_
    assert model.alpha_ == pytest.approx(alpha)
    rfe = RFECV(Lasso(alpha=alpha, max_iter=100_000), cv=splits, scoring="neg_root_mean_squared_error").fit(scaled, frame["S_T"])
    assert model.selected_ == [f for f, keep in zip(features, rfe.support_) if keep]
    assert model.cv_scores_.idxmax() == rfe.n_features_
    np.testing.assert_allclose(model.cv_scores_.to_numpy(), rfe.cv_results_["mean_test_score"], rtol=1e-12)


def test_model_row_is_flagged_when_a_baseline_beats_it():
    metrics = pd.DataFrame({"method": ["meta_regression", "training_mean", "source_mean", "always_english"],
                            "rmse_mean_over_folds": [5.0, 6.0, 4.0, np.nan], "top1_accuracy": [0.5, 0.2, 0.4, 0.6],
                            "ndcg@3": [0.9, 0.8, 0.95, 0.7]})
    flagged = mr.flag_losses(metrics).set_index("method")
    assert flagged.loc["meta_regression", "loses_to"] == "source_mean (RMSE, ndcg@3); always_english (top1)"
    assert flagged.loc["training_mean", "loses_to"] == ""
