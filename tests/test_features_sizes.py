"""SIZE: bundled pre-training sizes through the language table."""
import csv
import math

import pytest

from jaxlt import resources  # noqa: F401  (package data present)
from jaxlt.features import sizes
from jaxlt.stats.ledger import Ledger


def test_mc4_sizes_match_the_original_csv():
    table = sizes.pretraining_sizes()
    mc4 = table[table["corpus"] == "mc4"].set_index("language")
    assert mc4.loc["he", "tokens"] == pytest.approx(17e9)  # 'iw' in mC4
    assert mc4.loc["he", "raw_code"] == "iw"
    assert mc4.loc["en", "tokens"] == pytest.approx(2733e9)
    assert sizes.log_size("mc4")["sw"] == pytest.approx(math.log10(1e9))


def test_duplicate_languages_are_summed_and_exclusions_counted():
    ledger = Ledger()
    table = sizes.pretraining_sizes(ledger)
    cc = table[table["corpus"] == "cc100"].set_index("language")
    with open(sizes._resource("cc-100.csv")) as f:
        zh = [float(r["Tokens (M)"]) for r in csv.DictReader(f) if r["ISO code"] == "zh"]
    assert len(zh) == 2 and cc.loc["zh", "tokens"] == pytest.approx(sum(zh) * 1e6) and cc.loc["zh", "n_raw"] == 2
    excluded = {e.what: e.count for e in ledger.exclusions}
    # mc4: 6 romanised variants (ru/hi/el/ja/zh/bg-Latn) + und; cc-100: 5 romanised rows coded "-"
    assert excluded["mc4 rows"] == 7
    assert excluded["cc100 rows"] == 5


def test_corpus_for_model():
    assert sizes.corpus_for_model("mt5-base") == "mc4"
    with pytest.raises(ValueError, match="no pre-training corpus"):
        sizes.corpus_for_model("gpt")
