"""Figures in the style of the paper: observed vs predicted heatmaps (Figures 3-8), learning
curves (Figure 1), coefficient plots (Figure 2) and a correlation map (Table 1)."""

from __future__ import annotations

import functools
import pathlib

import matplotlib

from jaxlt import atomic

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.font_manager import FontProperties, findfont, get_font  # noqa: E402
from matplotlib.path import Path  # noqa: E402
from matplotlib.textpath import TextToPath  # noqa: E402
from matplotlib.transforms import Affine2D  # noqa: E402


@functools.lru_cache(maxsize=None)
def _glyphs(weight: str) -> tuple:
    """(text-to-path converter, its font at the converter's scale, a glyph outline cache shared by all labels)."""
    converter = TextToPath()
    font = get_font(findfont(FontProperties(weight=weight)))
    return converter, font, {}


@functools.lru_cache(maxsize=8192)
def _label_path(text: str, weight: str) -> Path:
    """The outline of ``text`` at 1 point, centred on its ink (as ha = va = 'center')."""
    converter, font, glyph_map = _glyphs(weight)
    font.set_size(converter.FONT_SCALE, converter.DPI)  # the font object is shared with the renderer: set it each time
    placed, _, _ = converter.get_glyphs_with_font(font, text, glyph_map=glyph_map)
    if not placed:
        return Path(np.zeros((1, 2)), [Path.MOVETO])
    vertices = np.concatenate([glyph_map[g][0] + (x, y) for g, x, y, _ in placed]) / converter.FONT_SCALE
    codes = np.concatenate([glyph_map[g][1] for g, *_ in placed])
    return Path(vertices - (vertices.min(axis=0) + vertices.max(axis=0)) / 2, codes)


def cell_labels(ax, x, y, texts, colours, fontsize: float, bold=None) -> PathCollection:
    """Write ``texts`` centred at data points (x, y) as ONE artist of glyph outlines.

    A heatmap of the paper's style has hundreds of numbers; as separate ``ax.text`` artists each
    is laid out and rasterised on its own (~2 ms each, most of a figure's time). Outlines are
    built once per distinct label and drawn in a single collection (about 3x faster figures)."""
    bold = np.zeros(len(texts), bool) if bold is None else np.asarray(bold, bool)
    paths = [_label_path(t, "bold" if b else "normal") for t, b in zip(texts, bold)]
    # glyphs in points, scaled to pixels by the figure's dpi at draw time; positions in data units
    labels = PathCollection(paths, offsets=np.column_stack([x, y]), offset_transform=ax.transData,
                            transform=Affine2D().scale(fontsize / 72) + ax.figure.dpi_scale_trans,
                            facecolors=list(colours), edgecolors="none", linewidths=0)
    ax.add_collection(labels, autolim=False)
    return labels


def save(fig, path: pathlib.Path) -> pathlib.Path:
    """Write a PNG atomically and close the figure."""
    try:  # constrained layout already fits; a tight bbox would render twice. zlib level 1: ~4x faster, files ~1.3x larger
        atomic.write_with(str(path), lambda tmp: fig.savefig(tmp, dpi=100, format="png", pil_kwargs={"compress_level": 1}))
    finally:
        plt.close(fig)
    return path


def _matrix(frame: pd.DataFrame, value: str, sources, targets) -> np.ndarray:
    # what pivot_table(aggfunc="mean") computes, without its overhead (~3x faster; a figure builds 4-8)
    table = frame.groupby(["source", "target"])[value].mean().unstack()
    return table.reindex(index=sources, columns=targets).to_numpy(float)


def heatmap_panel(frame: pd.DataFrame, text: str, colour: str, title: str, label: str, cmap: str = "RdYlGn",
                  centre: bool = False) -> dict:
    """One panel for :func:`heatmaps`: numbers from column ``text`` (None: colours only), colours from
    column ``colour`` (``centre``: a diverging scale symmetric around 0)."""
    return dict(frame=frame, text=text, colour=colour, title=title, label=label, cmap=cmap, centre=centre)


def heatmaps(panels: list[dict], title: str, path: pathlib.Path) -> pathlib.Path:
    """Side-by-side source x target matrices in the paper's style (Figures 3-8): each panel writes
    one value in its cells and colours them by another, with its own colour bar; e.g. observed S_T
    coloured by the gap S_T - S_S, predicted S_T coloured by the absolute error, residuals centred
    on 0. Rows and columns are the union over panels; bold cells are the diagonal (S_S)."""
    panels = [p for p in panels if p["frame"] is not None and len(p["frame"])]
    sources = sorted(set().union(*(set(p["frame"]["source"]) for p in panels)))
    targets = sorted(set().union(*(set(p["frame"]["target"]) for p in panels)))
    # fixed geometry in inches (no constrained layout: it re-draws every cell label several times)
    cell_w, cell_h, left, gap, bar, bottom, top = 0.5, 0.38, 0.6, 1.25, 0.12, 0.75, 0.7
    panel_w, panel_h = cell_w * len(targets), cell_h * len(sources)
    width = left + len(panels) * (panel_w + gap)
    height = bottom + panel_h + top
    fig = plt.figure(figsize=(width, height))
    for k, (panel, letter) in enumerate(zip(panels, "abcdefgh")):
        x0 = left + k * (panel_w + gap)
        ax = fig.add_axes((x0 / width, bottom / height, panel_w / width, panel_h / height))
        cax = fig.add_axes(((x0 + panel_w + 0.08) / width, bottom / height, bar / width, panel_h / height))
        colour = _matrix(panel["frame"], panel["colour"], sources, targets)
        text = _matrix(panel["frame"], panel["text"], sources, targets) if panel["text"] else np.full_like(colour, np.nan)
        finite = colour[np.isfinite(colour)]
        if panel["centre"]:
            bound = float(np.max(np.abs(finite))) if finite.size else 1.0
            vmin, vmax = -bound, bound
        else:
            vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        image = ax.imshow(colour, cmap=panel["cmap"], vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-9, aspect="auto")
        rgba = image.cmap(image.norm(np.nan_to_num(colour, nan=vmin)))
        dark = (0.299 * rgba[..., 0] + 0.587 * rgba[..., 1] + 0.114 * rgba[..., 2]) < 0.45
        i, j = np.nonzero(np.isfinite(text))
        cell_labels(ax, j, i, [f"{v:.1f}" for v in text[i, j]],
                    np.where(dark[i, j] & np.isfinite(colour[i, j]), "white", "black"), fontsize=6.5,
                    bold=np.array(sources)[i] == np.array(targets)[j])
        ax.set_xticks(range(len(targets)), targets, fontsize=8)
        if k == 0:  # later panels share the rows: no y ticks (each tick is several artists)
            ax.set_yticks(range(len(sources)), sources, fontsize=8)
        else:
            ax.set_yticks([])
        ax.set_xlabel("target", fontsize=8)
        if k == 0:
            ax.set_ylabel("source", fontsize=8)
        ax.set_title(f"({letter}) {panel['title']}", fontsize=8)
        colorbar = fig.colorbar(image, cax=cax)
        colorbar.set_label(panel["label"], fontsize=7)
        colorbar.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def learning_curves(observed: pd.DataFrame, alphas: pd.DataFrame, title: str, path: pathlib.Path, max_targets: int = 9) -> pathlib.Path:
    """Per target: S_T against n (log(n+1) axis) for each source, with the fitted S_T(0) + alpha log(n+1)."""
    targets = sorted(set(alphas["target"]))[:max_targets]
    cols = min(3, len(targets))
    rows = int(np.ceil(len(targets) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 1.2, 3.0 * rows + 0.4), squeeze=False, sharex=True, sharey=True)
    fig.subplots_adjust(left=0.07, right=0.86, bottom=0.12 / rows + 0.03, top=1 - 0.12 / rows - 0.02, wspace=0.08, hspace=0.35)
    n_max = max(int(observed["n_target"].max()), 1)
    grid = np.linspace(0, np.log1p(n_max), 50)
    colours = plt.get_cmap("tab10")
    sources = sorted(set(alphas["source"]))
    # only the plotted columns: sorting each pair's slice of the whole analysis frame copied every column
    points = observed[["target", "source", "n_target", "S_T"]].sort_values("n_target", kind="stable")
    points_by_pair = {key: g for key, g in points.groupby(["target", "source"], sort=False)}
    fit_by_pair = {(t, s): (s0, a) for t, s, s0, a in zip(alphas["target"], alphas["source"], alphas["S_T0"], alphas["alpha"])}
    for ax, target in zip(axes.flat, targets):
        for k, source in enumerate(sources):
            points, fit = points_by_pair.get((target, source)), fit_by_pair.get((target, source))
            if points is None or fit is None:
                continue
            colour = colours(k % 10)
            ax.plot(np.log1p(points["n_target"]), points["S_T"], "o", color=colour, ms=4)
            ax.plot(grid, fit[0] + fit[1] * grid, "-", color=colour, lw=1, label=source)
        ticks = [n for n in (0, 10, 100, 1000, 10000) if n <= n_max]
        ax.set_xticks(np.log1p(ticks), [str(t) for t in ticks])
        ax.set_title(f"target {target}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(targets):]:
        ax.axis("off")
    fig.supylabel("S_T", fontsize=9)
    fig.supxlabel("n target examples (log(n+1) scale)", fontsize=9)
    legend = {}
    for ax in axes.flat:  # a source may be missing from any one panel (it is never its own target)
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    labels = sorted(legend)
    handles = [legend[label] for label in labels]
    fig.legend(handles, labels, title="source", loc="center right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def coefficients(table: pd.DataFrame, title: str, path: pathlib.Path) -> pathlib.Path:
    """Refit coefficients (features scaled to [0, 1]) with 95% intervals; filled when p <= 0.05."""
    terms = table[table["term"] != "const"].iloc[::-1]
    fig, ax = plt.subplots(figsize=(5.5, 0.45 * len(terms) + 1.2), layout="constrained")
    y = np.arange(len(terms))
    significant = terms["p_value"] <= 0.05
    ax.errorbar(terms["coef"], y, xerr=[terms["coef"] - terms["ci_low"], terms["ci_high"] - terms["coef"]],
                fmt="none", ecolor="grey", capsize=3)
    ax.scatter(terms["coef"][significant], y[significant.to_numpy()], color="tab:blue", zorder=3, label="p <= 0.05")
    ax.scatter(terms["coef"][~significant], y[~significant.to_numpy()], facecolor="white", edgecolor="tab:blue", zorder=3, label="p > 0.05")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, terms["term"])
    ax.set_xlabel("coefficient (points per unit of min-max scaled feature)")
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)


def correlation_map(table: pd.DataFrame, path: pathlib.Path, value: str = "pearson_r", p_column: str = "pearson_p") -> pathlib.Path:
    """Feature x task map of correlations with the transfer gap; '*' marks p <= 0.05 (Table 1)."""
    table = table.assign(group=table["task"] + "\n" + table["model"])
    matrix = table.pivot_table(index="feature", columns="group", values=value, aggfunc="first")
    pvals = table.pivot_table(index="feature", columns="group", values=p_column, aggfunc="first").reindex_like(matrix)
    order = list(dict.fromkeys(table["feature"]))
    matrix, pvals = matrix.reindex(order), pvals.reindex(order)
    fig, ax = plt.subplots(figsize=(1.3 * matrix.shape[1] + 2.5, 0.35 * matrix.shape[0] + 1.5), layout="constrained")
    image = ax.imshow(matrix.to_numpy(float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    r, p = matrix.to_numpy(float), pvals.to_numpy(float)
    i, j = np.nonzero(~np.isnan(r))
    cell_labels(ax, j, i, [f"{100 * v:.1f}{'*' if q <= 0.05 else ''}" for v, q in zip(r[i, j], p[i, j])], ["black"] * len(i), fontsize=7)
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, fontsize=8)
    ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.04, label="Pearson r with S_T - S_S")
    ax.set_title("Correlation with the zero-shot transfer gap (x100, * p <= 0.05)", fontsize=9)
    return save(fig, path)


def _run(job: tuple) -> pathlib.Path:
    function, *args = job
    kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
    return function(*args, **kwargs)


def render_all(jobs: dict[str, tuple], n_jobs: int = 1, meanwhile=None) -> dict[str, pathlib.Path]:
    """Render figure jobs ``key -> (function, *args[, kwargs])``; with n_jobs > 1 in forked processes.

    ``meanwhile``: a callable run in this process while the workers draw (with n_jobs = 1, first), so
    that serial work (writing tables) overlaps with rendering."""
    from jaxlt.console import Progress

    keys = list(jobs)
    # a bar on a terminal; in a log file plain lines (every 30 s and at the end), never carriage returns
    progress = Progress(len(keys), "figures", enabled=len(keys) >= 8, every_cells=len(keys), every_s=30, unit="figures")
    if n_jobs > 1 and len(keys) > 1:
        import concurrent.futures
        import multiprocessing

        # fork: children inherit the imported modules and data, so there is no start-up cost
        with concurrent.futures.ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            pending = pool.map(_run, [jobs[k] for k in keys])  # submits every job now
            if meanwhile is not None:
                meanwhile()
            paths = list(progress.track(pending))
    else:
        if meanwhile is not None:
            meanwhile()
        paths = [_run(jobs[k]) for k in progress.track(keys)]
    return dict(zip(keys, paths))
