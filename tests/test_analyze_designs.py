"""`jaxlt analyze` on the designs and inputs users bring: one source, no diagonal, user-named features,
LEX alone, 0-1 scores, non-ok status rows, a user typology file for synthetic languages."""
import itertools

import numpy as np
import pandas as pd
import pytest

from jaxlt import cli

CODES = ["en", "de", "fi", "sw", "ru", "ar", "hi"]
FAST = ["--permutations", "20", "--no-models", "--n-features", "2", "--lasso-alpha", "0.05", "--no-figures"]


def results(pairs, ns=(0, 100), scale=1.0, diagonal=True, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for s, t in pairs:
        for n in ns:
            if s == t and (n or not diagonal):
                continue
            base = 80.0 if s == t else 50 + 10 * rng.uniform()
            rows.append(dict(task="xnli", model="mt5-small", source=s, target=t, n_target=n, seed=0, sampling="random",
                             strategy="zero_shot" if n == 0 else "sequential", metric="accuracy",
                             score=scale * min(100.0, base + 3 * np.log1p(n) + rng.normal())))
    return pd.DataFrame(rows)


def run(tmp_path, frame, *extra, name="r.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    code = cli.main(["analyze", "--results", str(path), "--out", str(out), *FAST, *extra])
    return code, out


def ledger(out):
    return pd.read_csv(out / "tables" / "ledger.csv")


def test_one_source_table(tmp_path):
    path = tmp_path / "r.csv"
    results([("en", t) for t in CODES]).to_csv(path, index=False)
    out = tmp_path / "out"  # the default nested CV, and figures, on the most common design in the literature
    assert cli.main(["analyze", "--results", str(path), "--out", str(out), "--permutations", "20", "--no-models"]) == 0
    assert list((out / "figures").glob("heatmap_*.png"))
    corr = pd.read_csv(out / "tables" / "correlations.csv")
    assert corr["permutation_p"].notna().any() and (corr.loc[corr["permutation_p"].notna(), "n_permutations"] == 20).all()
    report = (out / "report.md").read_text()
    assert report.index("## What the analysis found") < report.index("## Inputs")


def test_table_without_diagonal_reports_s_s_unavailable(tmp_path):
    code, out = run(tmp_path, results(itertools.product(CODES, CODES), diagonal=False))
    assert code == 0
    entries = ledger(out)
    assert "no in-language" in entries.loc[(entries.kind == "unavailable") & (entries.what == "S_S"), "reason"].item()
    corr = pd.read_csv(out / "tables" / "correlations.csv")
    assert set(corr["outcome"]) == {"S_T"} and "S_S" not in set(corr["feature"])
    assert "S_S" not in pd.read_csv(out / "tables" / "metaregression_coefficients.csv")["term"].tolist()


def test_user_pair_and_language_features_under_any_name(tmp_path):
    rng = np.random.default_rng(1)
    pd.DataFrame([dict(source=s, target=t, my_similarity=rng.uniform()) for s, t in itertools.permutations(CODES, 2)]
                 ).to_csv(tmp_path / "pairs.csv", index=False)
    pd.DataFrame([dict(language=c, wordlen=i + 0.5) for i, c in enumerate(CODES)]).to_csv(tmp_path / "langs.csv", index=False)
    code, out = run(tmp_path, results(itertools.product(CODES, CODES)), "--pair-features", str(tmp_path / "pairs.csv"),
                    "--language-features", str(tmp_path / "langs.csv"))
    assert code == 0
    frame = pd.read_csv(out / "tables" / "analysis_frame.csv")
    pairs = pd.read_csv(tmp_path / "pairs.csv").set_index(["source", "target"])["my_similarity"]
    row = frame[(frame.source == "fi") & (frame.target == "sw")].iloc[0]
    assert row["my_similarity"] == pytest.approx(pairs[("fi", "sw")])
    assert (row["wordlen_S"], row["wordlen_T"]) == (2.5, 3.5)
    assert {"my_similarity", "wordlen_S", "wordlen_T"} <= set(pd.read_csv(out / "tables" / "correlations.csv")["feature"])


def test_lex_alone(tmp_path):
    rng = np.random.default_rng(2)
    pd.DataFrame([dict(task="xnli", source=s, target=t, feature="LEX", value=rng.uniform())
                  for s, t in itertools.permutations(CODES, 2)]).to_csv(tmp_path / "lex.csv", index=False)
    code, out = run(tmp_path, results(itertools.product(CODES, CODES)), "--pair-features", str(tmp_path / "lex.csv"),
                    "--target-groups", "near=de,en;far=fi,sw,ru,ar,hi")
    assert code == 0
    assert pd.read_csv(out / "tables" / "analysis_frame.csv")["LEX"].notna().all()
    ranking = pd.read_csv(out / "tables" / "source_ranking.csv")
    assert {"mean_Z[near]", "mean_Z[far]", "mean_advantage[near]"} <= set(ranking.columns)
    unavailable = set(ledger(out).query("kind == 'unavailable'")["what"])
    assert "LEX" not in unavailable and {"Vr", "SENTLEN", "MORPH"} <= unavailable


def test_fraction_scores_are_rescaled_with_a_message(tmp_path):
    frame = results(itertools.product(CODES, CODES), scale=0.01)
    code, out = run(tmp_path, frame)
    assert code == 0
    note = ledger(out).query("kind == 'note' and stage == 'results'")
    assert "multiplied by 100" in note["what"].item() and note["count"].item() == len(frame)
    analysed = pd.read_csv(out / "tables" / "analysis_frame.csv")
    assert analysed["S_T"].max() > 1.0
    code, out = run(tmp_path, frame, "--score-scale", "percent")  # taken as written when the user says so
    assert code == 0 and pd.read_csv(out / "tables" / "analysis_frame.csv")["S_T"].max() <= 1.0


def test_rows_with_a_status_other_than_ok_are_counted_out(tmp_path, capsys):
    frame = results(itertools.product(CODES, CODES)).assign(status="ok")
    frame.loc[[3, 5, 7], "status"] = "diverged"
    code, out = run(tmp_path, frame)
    assert code == 0
    row = ledger(out).query("kind == 'excluded' and reason.str.contains('diverged')", engine="python")
    assert row["count"].item() == 3 and "line 5" in row["examples"].item()
    assert len(pd.read_csv(out / "tables" / "analysis_frame.csv")) == (frame["status"] == "ok").sum() - len(CODES)


def test_user_typology_file_for_synthetic_languages(tmp_path):
    syn = ["syn_a", "syn_b", "syn_c", "syn_d", "syn_e"]
    typology = pd.DataFrame({"language": syn, "S_SVO": [1, 1, 0, 0, 1], "S_SOV": [0, 0, 1, 1, 0],
                             "P_TONE": [0, 1, 0, 1, None], "case": [0, 1, 1, 0, 1]})
    typology.to_csv(tmp_path / "typology.csv", index=False)
    frame = results(itertools.product(syn, syn)).assign(task="lab_nli", model="lab-tiny")
    code, out = run(tmp_path, frame, "--typology", str(tmp_path / "typology.csv"))
    assert code == 0
    analysed = pd.read_csv(out / "tables" / "analysis_frame.csv")
    row = analysed[(analysed.source == "syn_a") & (analysed.target == "syn_b")].iloc[0]
    assert row["SYNT"] == 1.0  # both SVO, neither SOV: IoU 1/1
    assert row["PHONO"] == 0.0  # TONE: a lacks it, b has it -> intersection 0 over a union of 1
    row = analysed[(analysed.source == "syn_a") & (analysed.target == "syn_e")].iloc[0]
    assert np.isnan(row["PHONO"])  # TONE unknown for e: no property known for both
    row = analysed[(analysed.source == "syn_b") & (analysed.target == "syn_d")].iloc[0]
    assert row["SYNT"] == 0.0 and row["PHONO"] == 1.0 and row["TYPO"] == pytest.approx(1 / 4)
    # an unknown code without a typology file is still an error
    assert cli.main(["analyze", "--results", str(tmp_path / "r.csv"), "--out", str(tmp_path / "o2"), *FAST]) == 2


def test_features_typology_command_reads_the_typology_file(tmp_path):
    pd.DataFrame({"language": ["syn_a", "syn_b", "en"], "S_SVO": [1, 0, 1], "S_SOV": [0, 1, 0], "case": [1, 1, 0]}
                 ).to_csv(tmp_path / "t.csv", index=False)
    assert cli.main(["features", "typology", "--typology", str(tmp_path / "t.csv"), "--out", str(tmp_path / "o.csv")]) == 0
    long = pd.read_csv(tmp_path / "o.csv").set_index(["source", "target", "feature"])["value"]
    assert long[("syn_a", "syn_b", "SYNT")] == 0.0 and long[("syn_a", "en", "SYNT")] == 1.0
    assert long[("syn_a", "syn_b", "TYPO")] == pytest.approx(1 / 3)
    # the saved table goes back into `jaxlt analyze --pair-features` (its values win over the computed ones)
    syn = ["syn_a", "syn_b", "en"]
    frame = results(itertools.product(syn, syn)).assign(task="lab_nli", model="lab-tiny")
    code, out = run(tmp_path, frame, "--typology", str(tmp_path / "t.csv"), "--pair-features", str(tmp_path / "o.csv"))
    assert code == 0
