"""Relative zero-shot transfer, target groups, drop correlations and greedy selection (vs scikit-learn / scipy)."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.feature_selection import SequentialFeatureSelector
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GroupKFold

from jaxlt.stats import transfer

IN_LANGUAGE = {"en": 90.0, "de": 80.0, "fi": 70.0}


def small_frame():
    rows = [("en", "de", 60.0), ("fi", "de", 40.0), ("de", "en", 70.0), ("fi", "en", 45.0), ("en", "fi", 50.0), ("de", "fi", 35.0)]
    return pd.DataFrame([{"task": "t", "model": "m", "source": s, "target": t, "n_target": 0, "S_T": st,
                          "S_S": IN_LANGUAGE[s], "S_S_target": IN_LANGUAGE[t]} for s, t, st in rows])


def test_relative_zero_shot_with_self_transfer_and_advantage_as_difference_of_z():
    rel = transfer.relative_zero_shot(small_frame()).set_index(["source", "target"])
    assert rel.loc[("fi", "de"), "Z"] == pytest.approx(40 / 80)
    assert rel.loc[("de", "de"), "Z"] == 1.0 and rel.loc[("de", "de"), "self_transfer"]  # self-transfer cells included
    # advantage over English: Z(fi->de) - Z(en->de), not a difference of raw points
    assert rel.loc[("fi", "de"), "advantage_over_en"] == pytest.approx(40 / 80 - 60 / 80)
    assert rel.loc[("fi", "en"), "advantage_over_en"] == pytest.approx(45 / 90 - 1.0)  # English's own Z is 1
    assert rel.loc[("en", "fi"), "advantage_over_en"] == 0.0


def test_source_ranking_by_mean_z_over_targets_and_user_groups():
    rel = transfer.relative_zero_shot(small_frame())
    groups = {"de": "Germanic", "en": "Germanic", "fi": "Finnic"}
    ranking = transfer.source_ranking(rel, groups).set_index("source")
    assert ranking.loc["en", "mean_Z"] == pytest.approx((1 + 60 / 80 + 50 / 70) / 3)
    assert ranking.loc["fi", "mean_Z"] == pytest.approx((1 + 40 / 80 + 45 / 90) / 3)
    assert ranking.loc["en", "mean_Z[Germanic]"] == pytest.approx((1 + 60 / 80) / 2)
    assert ranking.loc["de", "mean_advantage[Finnic]"] == pytest.approx(35 / 70 - 50 / 70)
    assert list(ranking.sort_values("rank").index) == ["en", "de", "fi"]


def test_preset_groups_and_parsed_groups():
    preset = transfer.preset_groups(["en", "sw", "ru", "fi"])
    assert preset == {"en": "Latin-script high-resource", "sw": "Latin-script low-resource", "ru": "other-script",
                      "fi": "Latin-script high-resource"}
    assert transfer.parse_groups("near=de,nl; far=fin,sw") == {"de": "near", "nl": "near", "fi": "far", "sw": "far"}
    with pytest.raises(ValueError, match="NAME=code"):
        transfer.parse_groups("de,nl")


def test_targets_without_in_language_score_do_not_crash():
    frame = small_frame().assign(S_S_target=np.nan, S_S=np.nan)
    ranking = transfer.source_ranking(transfer.relative_zero_shot(frame))
    assert ranking["mean_Z"].isna().all() and ranking["rank"].isna().all()


def test_drop_correlations_match_scipy():
    rng = np.random.default_rng(0)
    targets = ["de", "fi", "sw", "ru", "ar", "hi"]
    frame = pd.DataFrame({"task": "t", "model": "m", "source": "en", "target": targets, "n_target": 0, "S_S": 90.0,
                          "S_T": rng.uniform(30, 80, 6), "cos_syntax": rng.uniform(size=6), "SIZE_T": rng.uniform(8, 11, 6)})
    table = transfer.drop_correlations(frame, features=("cos_syntax", "SIZE_T")).set_index("feature")
    drop = 90.0 - frame["S_T"]
    assert table.loc["cos_syntax", "pearson_r"] == pytest.approx(sps.pearsonr(frame["cos_syntax"], drop).statistic)
    assert table.loc["SIZE_T", "spearman_p"] == pytest.approx(sps.spearmanr(frame["SIZE_T"], drop).pvalue)
    assert (table["source"] == "en").all() and (table["n_targets"] == 6).all()


def test_greedy_selection_is_sklearns_sequential_selector():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(60, 5)), columns=list("abcde"))
    frame["target"] = np.repeat(list("pqrstuvwxy"), 6)
    frame["y"] = 3 * frame["c"] - 2 * frame["a"] + 0.5 * rng.normal(size=60)
    steps = transfer.greedy_forward_selection(frame, list("abcde"), "y")
    splits = list(GroupKFold(n_splits=3).split(frame, groups=frame["target"]))
    selector = SequentialFeatureSelector(LinearRegression(), n_features_to_select="auto", tol=1e-3, direction="forward",
                                         scoring="neg_mean_absolute_error", cv=splits).fit(frame[list("abcde")], frame["y"])
    assert set(steps["features"].iloc[0].split("+")) == set(np.array(list("abcde"))[selector.get_support()]) >= {"a", "c"}
    assert steps["cv_mae"].iloc[0] < steps["mae_of_mean"].iloc[0]
