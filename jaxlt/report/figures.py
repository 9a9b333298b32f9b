"""Figures in the style of the paper: observed vs predicted heatmaps (Figures 3-8), learning
curves (Figure 1), coefficient plots (Figure 2) and a correlation map (Table 1)."""

from __future__ import annotations

import os
import pathlib
import tempfile

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

CMAP = "YlGnBu"


def save(fig, path: pathlib.Path) -> pathlib.Path:
    """Write a PNG atomically and close the figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=100)  # constrained layout already fits; a tight bbox would render twice
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _matrix(frame: pd.DataFrame, value: str, sources, targets, diagonal: pd.Series | None) -> np.ndarray:
    table = frame.pivot_table(index="source", columns="target", values=value, aggfunc="mean")
    table = table.reindex(index=sources, columns=targets)
    if diagonal is not None:
        for code, score in diagonal.items():
            if code in table.index and code in table.columns:
                table.loc[code, code] = score
    return table.to_numpy(float)


def heatmaps(panels: dict[str, pd.DataFrame | None], values: dict[str, str], title: str, path: pathlib.Path,
             diagonal: pd.Series | None = None) -> pathlib.Path:
    """Side-by-side source x target matrices sharing one colour scale, values written in cells.

    ``panels`` maps a panel title to a frame with source, target and the column named in
    ``values``; ``diagonal`` (in-language scores S_S) is drawn on the first panel only, as
    in the paper where the predicted panel leaves the diagonal empty.
    """
    frames = {k: v for k, v in panels.items() if v is not None and len(v)}
    first = next(iter(frames.values()))
    sources = sorted(set(first["source"]) | (set(diagonal.index) & set(first["source"]) if diagonal is not None else set()))
    targets = sorted(set(first["target"]) | set(first["source"]) & set(first["target"]))
    matrices = [_matrix(f, values[k], sources, targets, diagonal if i == 0 else None) for i, (k, f) in enumerate(frames.items())]
    vmin = np.nanmin([np.nanmin(m) for m in matrices])
    vmax = np.nanmax([np.nanmax(m) for m in matrices])
    fig, axes = plt.subplots(1, len(matrices), figsize=(0.62 * len(targets) * len(matrices) + 2, 0.55 * len(sources) + 1.6),
                             squeeze=False)
    fig.subplots_adjust(left=0.4 / fig.get_figwidth() * 2, right=0.9, bottom=0.7 / fig.get_figheight() + 0.02,
                        top=1 - 0.75 / fig.get_figheight(), wspace=0.15)
    for ax, (name, matrix), letter in zip(axes[0], zip(frames, matrices), "abcdef"):
        image = ax.imshow(matrix, cmap=CMAP, vmin=vmin, vmax=vmax, aspect="auto")
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                if not np.isnan(matrix[i, j]):
                    dark = (matrix[i, j] - vmin) / max(vmax - vmin, 1e-9) > 0.6
                    ax.text(j, i, f"{matrix[i, j]:.1f}", ha="center", va="center", fontsize=7,
                            color="white" if dark else "black", fontweight="bold" if i == j else "normal",
                            in_layout=False)  # cell labels sit inside the axes; keep them out of layout passes
        ax.set_xticks(range(len(targets)), targets)
        ax.set_yticks(range(len(sources)), sources)
        ax.set_xlabel("target")
        ax.set_ylabel("source")
        ax.set_title(f"({letter}) {name}", fontsize=9)
    fig.colorbar(image, cax=fig.add_axes((0.915, 0.7 / fig.get_figheight() + 0.02, 0.012,
                                          1 - 0.75 / fig.get_figheight() - 0.7 / fig.get_figheight() - 0.02)), label="score")
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
