"""Loading and validating the tidy results table; seed aggregation."""
import pandas as pd
import pytest

from jaxlt.stats.ledger import Ledger
from jaxlt.stats.results import ResultsError, aggregate_seeds, load_published, load_results


def _write(tmp_path, rows, name="r.csv"):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


BASE = dict(task="xnli", model="m", n_target=0, strategy="zero_shot", sampling="random", metric="accuracy")


def test_published_conversion_keeps_every_cell():
    raw = pd.read_csv("jaxlt/resources/published/muller2022_mt5_base_appendix.csv")
    tidy = load_results("published:muller2022")
    assert len(tidy) == len(raw) == 487
    assert set(tidy["task"]) == {"tydiqa", "panx", "xnli", "xnli_new"}
    row = tidy[(tidy.task == "tydiqa") & (tidy.source == "en") & (tidy.target == "bn") & (tidy.n_target == 0)]
    assert row["score"].item() == 18.1 and row["published_prediction"].item() == 37.4 and row["metric"].item() == "exact_match"
    assert tidy["seed"].isna().all()
    with pytest.raises(ResultsError, match="unknown published results 'nope'; known: muller2022"):
        load_published("nope")


def test_missing_columns_are_named(tmp_path):
    path = _write(tmp_path, [{"task": "xnli", "source": "en", "target": "de"}])
    with pytest.raises(ResultsError, match=r"missing required column\(s\) \['model', 'n_target', 'score'\]"):
        load_results(path)


def test_unknown_code_names_line_and_column(tmp_path):
    path = _write(tmp_path, [dict(BASE, source="en", target="de", score=50), dict(BASE, source="en", target="xx", score=40)])
    with pytest.raises(ResultsError, match=r"unknown language code\(s\) \['xx'\] in column 'target' at line\(s\) 3"):
        load_results(path)


def test_duplicate_cells_are_an_error(tmp_path):
    path = _write(tmp_path, [dict(BASE, source="en", target="de", seed=1, score=50),
                             dict(BASE, source="eng", target="deu", seed=1, score=51)])
    with pytest.raises(ResultsError, match="duplicate cells"):
        load_results(path)


def test_nan_scores_are_counted_not_dropped_silently(tmp_path):
    path = _write(tmp_path, [dict(BASE, source="en", target="de", score=50), dict(BASE, source="en", target="fr", score=None)])
    ledger = Ledger()
    frame = load_results(path, ledger)
    assert len(frame) == 1
    assert [(e.what, e.count) for e in ledger.exclusions] == [("rows", 1)]
    assert "line 3" in ledger.exclusions[0].examples


def test_out_of_range_scores_and_bad_n(tmp_path):
    with pytest.raises(ResultsError, match="0-100 scale"):
        load_results(_write(tmp_path, [dict(BASE, source="en", target="de", score=0.5 + 100)]))
    with pytest.raises(ResultsError, match="non-negative integer"):
        load_results(_write(tmp_path, [dict(BASE, source="en", target="de", score=5, n_target=-1)]))


def test_seed_aggregation_mean_count_std(tmp_path):
    rows = [dict(BASE, source="en", target="de", seed=s, score=v) for s, v in [(0, 50.0), (1, 54.0), (2, 58.0)]]
    rows.append(dict(BASE, source="en", target="fr", seed=0, score=40.0))
    agg = aggregate_seeds(load_results(_write(tmp_path, rows))).set_index("target")
    assert agg.loc["de", "score"] == pytest.approx(54.0)
    assert agg.loc["de", "n_seeds"] == 3
    assert agg.loc["de", "score_std"] == pytest.approx(pd.Series([50.0, 54.0, 58.0]).std())
    assert agg.loc["fr", "n_seeds"] == 1


def test_jsonl_and_parquet_inputs(tmp_path):
    frame = pd.DataFrame([dict(BASE, source="en", target="de", seed=0, score=50.0)])
    frame.to_json(tmp_path / "r.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "r.parquet")
    assert load_results(tmp_path / "r.jsonl")["score"].item() == 50.0
    assert load_results(tmp_path / "r.parquet")["target"].item() == "de"
    with pytest.raises(ResultsError, match="unsupported results format"):
        load_results(_write(tmp_path, [], name="r.txt"))
