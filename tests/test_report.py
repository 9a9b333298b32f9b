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


def test_heatmap_colours_follow_the_gap_and_the_error(tmp_path):
    frame = pd.DataFrame({"source": ["a", "a", "b", "b"], "target": ["b", "c", "a", "c"], "S_T": [10.0, 90.0, 50.0, 50.0],
                          "gap": [-60.0, 0.0, -30.0, -20.0]})
    panel = figures.heatmap_panel(frame, "S_T", "gap", "observed", "gap", cmap="RdYlGn")
    pred = frame.assign(abs_error=[0.0, 5.0, 1.0, 2.0])
    error = figures.heatmap_panel(pred, "S_T", "abs_error", "predicted", "|error|", cmap="Reds")
    path = figures.heatmaps([panel, error], "t", tmp_path / "h.png")
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100
    rgb = image[..., :3].reshape(-1, 3)
    # the colours of the extremes of both scales are present: largest negative gap (cmap 0), gap 0 (cmap 1),
    # no error (Reds 0) and the largest error (Reds 1); the raw score 90 does not decide any colour
    for cmap, position in (("RdYlGn", 0.0), ("RdYlGn", 1.0), ("Reds", 0.0), ("Reds", 1.0)):
        colour = np.array(figures.plt.get_cmap(cmap)(position)[:3])
        assert np.min(np.abs(rgb - colour).sum(axis=1)) < 0.05, (cmap, position)


def _touch(path):
    path.write_text("x")
    return path


def test_progress_is_plain_lines_in_a_log_and_a_bar_on_a_terminal(tmp_path, capsys, monkeypatch):
    """The analysis stage's progress (figures here; the per-task regressions and text statistics use the
    same console.Progress): in a log file (stderr not a terminal) plain lines, no carriage returns."""
    from jaxlt import console

    jobs = {f"f{k}": (_touch, tmp_path / f"{k}.txt") for k in range(9)}
    paths = figures.render_all(jobs, n_jobs=1)
    assert sorted(p.name for p in paths.values()) == sorted(f"{k}.txt" for k in range(9))
    err = capsys.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].endswith("figures: 9/9 figures (0.0 min)"), lines
    monkeypatch.setattr(console, "is_terminal", lambda stream=None: True)  # a terminal: tqdm's bar
    figures.render_all(jobs, n_jobs=1)
    assert "\r" in capsys.readouterr().err
