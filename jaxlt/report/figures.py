"""Figures in the style of the paper: observed vs predicted heatmaps (Figures 3-8), learning
curves (Figure 1), coefficient plots (Figure 2) and a correlation map (Table 1)."""

from __future__ import annotations

import pathlib

import matplotlib

from jaxlt import atomic

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402



def save(fig, path: pathlib.Path) -> pathlib.Path:
    """Write a PNG atomically and close the figure."""
    try:  # constrained layout already fits; a tight bbox would render twice
        atomic.write_with(str(path), lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)
    return path


def _matrix(frame: pd.DataFrame, value: str, sources, targets) -> np.ndarray:
    table = frame.pivot_table(index="source", columns="target", values=value, aggfunc="mean")
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
        for i, s in enumerate(sources):
            for j, t in enumerate(targets):
                if np.isfinite(text[i, j]):
                    ax.text(j, i, f"{text[i, j]:.1f}", ha="center", va="center", fontsize=6.5,
                            color="white" if dark[i, j] and np.isfinite(colour[i, j]) else "black",
                            fontweight="bold" if s == t else "normal")
        ax.set_xticks(range(len(targets)), targets, fontsize=8)
        ax.set_yticks(range(len(sources)), sources if k == 0 else [], fontsize=8)
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
    for ax, target in zip(axes.flat, targets):
        for k, source in enumerate(sources):
            points = observed[(observed["target"] == target) & (observed["source"] == source)].sort_values("n_target")
            fit = alphas[(alphas["target"] == target) & (alphas["source"] == source)]
            if points.empty or fit.empty:
                continue
            colour = colours(k % 10)
            ax.plot(np.log1p(points["n_target"]), points["S_T"], "o", color=colour, ms=4)
            ax.plot(grid, fit["S_T0"].iloc[0] + fit["alpha"].iloc[0] * grid, "-", color=colour, lw=1, label=source)
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
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            r, p = matrix.iat[i, j], pvals.iat[i, j]
            if not np.isnan(r):
                ax.text(j, i, f"{100 * r:.1f}{'*' if p <= 0.05 else ''}", ha="center", va="center", fontsize=7, in_layout=False)
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, fontsize=8)
    ax.set_yticks(range(matrix.shape[0]), matrix.index, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.04, label="Pearson r with S_T - S_S")
    ax.set_title("Correlation with the zero-shot transfer gap (x100, * p <= 0.05)", fontsize=9)
    return save(fig, path)


def _run(job: tuple) -> pathlib.Path:
    function, *args = job
    kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
    return function(*args, **kwargs)


def render_all(jobs: dict[str, tuple], n_jobs: int = 1) -> dict[str, pathlib.Path]:
    """Render figure jobs ``key -> (function, *args[, kwargs])``; with n_jobs > 1 in forked processes."""
    from tqdm.auto import tqdm

    keys = list(jobs)
    if n_jobs > 1 and len(keys) > 1:
        import concurrent.futures
        import multiprocessing

        # fork: children inherit the imported modules and data, so there is no start-up cost
        with concurrent.futures.ProcessPoolExecutor(n_jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            paths = list(tqdm(pool.map(_run, [jobs[k] for k in keys]), total=len(keys), desc="figures", disable=len(keys) < 8))
    else:
        paths = [_run(jobs[k]) for k in tqdm(keys, desc="figures", disable=len(keys) < 8)]
    return dict(zip(keys, paths))
