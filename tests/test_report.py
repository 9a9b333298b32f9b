"""Report helpers: Markdown tables, atomic files, heatmap content."""
import matplotlib.image as mpimg
import numpy as np
import pandas as pd

from jaxlt.report import figures, markdown


def test_markdown_table_escapes_and_formats():
    table = markdown.markdown_table(pd.DataFrame({"a": ["x|y", None], "b": [1.23456, np.nan], "c": [0.0001234, 2]}))
    lines = table.strip().splitlines()
    assert lines[0] == "| a | b | c |" and lines[1] == "|---|---|---|"
    assert lines[2] == "| x\\|y | 1.235 | 0.000123 |"
    assert lines[3] == "|  |  | 2 |"  # missing values render empty
    assert markdown.markdown_table(pd.DataFrame()) == "_(empty)_\n"


def test_atomic_writes_leave_no_temporary_files(tmp_path):
    markdown.write_csv(pd.DataFrame({"a": [1]}), tmp_path / "t" / "x.csv")
    markdown.atomic_write_text(tmp_path / "r.md", "hello")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["r.md", "x.csv"]


def test_heatmap_colours_follow_the_scores(tmp_path):
    frame = pd.DataFrame({"source": ["a", "a", "b", "b"], "target": ["b", "c", "a", "c"], "S_T": [10.0, 90.0, 50.0, 50.0]})
    path = figures.heatmaps({"observed": frame}, {"observed": "S_T"}, "t", tmp_path / "h.png")
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100
    # the colour map runs from light (low) to dark (high): the 90 cell is darker than the 10 cell
    low, high = figures.plt.get_cmap(figures.CMAP)(0.0), figures.plt.get_cmap(figures.CMAP)(1.0)
    assert sum(high[:3]) < sum(low[:3])
    # both extreme colours are present in the rendered image
    rgb = image[..., :3].reshape(-1, 3)
    for colour in (low, high):
        assert np.min(np.abs(rgb - np.array(colour[:3])).sum(axis=1)) < 0.05
