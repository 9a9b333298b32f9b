"""Analyses of related studies on the same table: relative zero-shot ability and advantage over
English with averages over target groups, correlations of the zero-shot drop from one source with
lang2vec similarities and pre-training size, and greedy forward feature selection (scikit-learn)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from jaxlt import languages
from jaxlt.features import sizes

# Preset target groups: script from jaxlt.languages, resource level from mC4 tokens (mT5's corpus).
LOW_RESOURCE_TOKENS = 1e10
PRESET = "script_resource"


def _script(code: str) -> str | None:
    return languages.get(code).script if languages.is_known(code) else None


def preset_groups(codes, threshold: float = LOW_RESOURCE_TOKENS) -> dict[str, str]:
    """Target -> group: Latin-script high-resource (>= threshold mC4 tokens), Latin-script
    low-resource, other-script; languages jaxlt does not know (synthetic) are 'unknown script'."""
    tokens = sizes.pretraining_sizes()
    mc4 = tokens[tokens["corpus"] == "mc4"].set_index("language")["tokens"]
    out = {}
    for code in codes:
        script = _script(code)
        if script is None:
            out[code] = "unknown script"
        elif script != "Latn":
            out[code] = "other-script"
        else:
            level = "high" if mc4.get(code, 0.0) >= threshold else "low"
            out[code] = f"Latin-script {level}-resource"
    return out


def parse_groups(spec: str) -> dict[str, str]:
    """'NAME=code,code;NAME2=code' -> {code: NAME}; codes normalised."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        if "=" not in part:
            raise ValueError(f"target groups: expected NAME=code,code;NAME=code, got {part!r}")
        name, codes = part.split("=", 1)
        for code in filter(None, (c.strip() for c in codes.split(","))):
            out[languages.normalize(code) if languages.is_known(code) else code] = name.strip()
    return out


def relative_zero_shot(frame: pd.DataFrame) -> pd.DataFrame:
    """Z(S->T) = E(M_S, T) / E(M_T, T): the zero-shot score over the target's in-language score,
    self-transfer included (Z(T->T) = 1, as the definition), and the advantage of S over English
    A(S->T) = Z(S->T) - Z(en->T). Z is NaN where the target has no in-language score."""
    zero = frame[frame["n_target"] == 0]
    cols = ["task", "model", "source", "target", "S_T", "S_S_target"]
    cross = zero[cols]
    own = zero.drop_duplicates(["task", "model", "target"])[["task", "model", "target", "S_S_target"]].dropna()
    diagonal = own.assign(source=own["target"], S_T=own["S_S_target"])[cols]
    # sources with an in-language score that never appear as a target still have a self-transfer cell
    src = zero.drop_duplicates(["task", "model", "source"])[["task", "model", "source", "S_S"]].dropna()
    src = src[~src.set_index(["task", "model", "source"]).index.isin(diagonal.set_index(["task", "model", "source"]).index)]
    diagonal = pd.concat([diagonal, src.assign(target=src["source"], S_T=src["S_S"], S_S_target=src["S_S"])[cols]])
    rel = pd.concat([cross, diagonal], ignore_index=True)
    rel["Z"] = rel["S_T"] / rel["S_S_target"]
    english = rel[rel["source"] == "en"].set_index(["task", "model", "target"])["Z"].rename("Z_en")
    rel = rel.join(english, on=["task", "model", "target"])
    rel["advantage_over_en"] = rel["Z"] - rel["Z_en"]
    rel["self_transfer"] = rel["source"] == rel["target"]
    return rel.sort_values(["task", "model", "source", "target"]).reset_index(drop=True)


def source_ranking(relative: pd.DataFrame, groups: dict[str, str] | None = None) -> pd.DataFrame:
    """Mean Z and mean advantage over English per source, over all targets (self-transfer included)
    and per target group (``groups``: target -> group name; default the preset); ranked by mean Z.
    Targets without an in-language score have no Z and are counted."""
    groups = groups if groups is not None else preset_groups(sorted(set(relative["target"])))
    rel = relative.assign(group=relative["target"].map(groups).fillna("other targets"))
    overall = rel.groupby(["task", "model", "source"]).agg(
        mean_Z=("Z", "mean"), mean_advantage_over_en=("advantage_over_en", "mean"), n_targets=("Z", "count"),
        n_targets_without_in_language_score=("Z", lambda z: int(z.isna().sum())))
    by_group = rel.pivot_table(index=["task", "model", "source"], columns="group", values=["Z", "advantage_over_en"], aggfunc="mean")
    by_group.columns = [f"mean_{'Z' if v == 'Z' else 'advantage'}[{g}]" for v, g in by_group.columns]
    table = overall.join(by_group).reset_index()
    table["rank"] = table.groupby(["task", "model"])["mean_Z"].rank(ascending=False, method="min").astype("Int64")
    return table.sort_values(["task", "model", "rank"], na_position="last").reset_index(drop=True)


DROP_FEATURES = ("cos_syntax", "cos_phonology", "cos_inventory", "cos_family", "cos_geography", "SIZE_T")


def drop_correlations(frame: pd.DataFrame, source: str | None = None, features=DROP_FEATURES) -> pd.DataFrame:
    """Pearson and Spearman of the zero-shot drop S_S - S_T from one source (default English, else
    the source with most targets) with lang2vec similarities and the target's pre-training size.
    One source, so each target appears once and the plain p-values apply."""
    rows = []
    zero = frame[(frame["n_target"] == 0) & frame["S_S"].notna()]
    for (task, model), group in zero.groupby(["task", "model"], sort=True):
        chosen = source if source else ("en" if (group["source"] == "en").any() else group["source"].value_counts().idxmax())
        sub = group[group["source"] == chosen]
        drop = sub["S_S"] - sub["S_T"]
        for feature in features:
            if feature not in sub.columns:
                continue
            ok = sub[feature].notna() & drop.notna()
            row = dict(task=task, model=model, source=chosen, feature=feature, n_targets=int(ok.sum()))
            if ok.sum() >= 3 and sub.loc[ok, feature].nunique() > 1:
                pr, sr = sps.pearsonr(sub.loc[ok, feature], drop[ok]), sps.spearmanr(sub.loc[ok, feature], drop[ok])
                row.update(pearson_r=float(pr.statistic), pearson_p=float(pr.pvalue),
                           spearman_rho=float(sr.statistic), spearman_p=float(sr.pvalue))
            else:
                row.update(pearson_r=np.nan, pearson_p=np.nan, spearman_rho=np.nan, spearman_p=np.nan)
            rows.append(row)
    return pd.DataFrame(rows)


def greedy_forward_selection(frame: pd.DataFrame, features: list[str], y: str, groups: str = "target",
                             tol: float = 1e-3) -> pd.DataFrame:
    """scikit-learn's SequentialFeatureSelector (forward, linear regression, mean absolute error
    under 3-fold CV over ``groups``) with 'auto' stopping once MAE improves by less than ``tol``;
    one row with the chosen features and their leave-one-``groups``-out MAE, Pearson and Spearman."""
    from sklearn.feature_selection import SequentialFeatureSelector
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, cross_val_predict

    columns = ["features", "n_features", "cv_mae", "cv_pearson", "cv_spearman", "mae_of_mean", "n"]
    data = frame.dropna(subset=[y]).reset_index(drop=True)
    usable = [f for f in features if f in data.columns and data[f].notna().any() and data[f].nunique() > 1]
    if len(usable) < 2 or data[groups].nunique() < 3:
        return pd.DataFrame(columns=columns)
    X = data[usable].fillna(data[usable].mean())
    target = data[y].to_numpy(float)
    splits = list(LeaveOneGroupOut().split(X, groups=data[groups]))
    inner = list(GroupKFold(n_splits=min(3, data[groups].nunique())).split(X, groups=data[groups]))
    selector = SequentialFeatureSelector(LinearRegression(), n_features_to_select="auto", tol=tol, direction="forward",
                                         scoring="neg_mean_absolute_error", cv=inner).fit(X, target)
    chosen = [f for f, keep in zip(usable, selector.get_support()) if keep]
    predicted = cross_val_predict(LinearRegression(), X[chosen], target, cv=splits)
    mean_only = np.concatenate([np.full(len(test), target[train].mean()) for train, test in splits])
    order = np.concatenate([test for _, test in splits])
    return pd.DataFrame([{
        "features": "+".join(chosen), "n_features": len(chosen), "cv_mae": float(np.mean(np.abs(predicted - target))),
        "cv_pearson": float(sps.pearsonr(predicted, target).statistic),
        "cv_spearman": float(sps.spearmanr(predicted, target).statistic),
        "mae_of_mean": float(np.mean(np.abs(mean_only - target[order]))), "n": len(target)}], columns=columns)
