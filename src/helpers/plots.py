"""Figures for the chapters: small functions that return a matplotlib ``Figure``.

Figures are built without pyplot's global state, so a cell that ends with one shows it
exactly once, and nothing leaks between cells. The default resolution is modest on
purpose: notebooks store their figures and must stay light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

DPI = 72


def _show_figures_as_png() -> None:
    """Let IPython display a bare ``Figure`` as PNG.

    The inline backend registers that formatter only once pyplot is imported; our figures
    never touch pyplot, so we register it ourselves (no-op outside IPython).
    """
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("png")


_show_figures_as_png()


def _grid(nrows: int, ncols: int, cell: float) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(ncols * cell, nrows * cell), dpi=DPI, layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def _hide(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def image_grid(
    images: Sequence[np.ndarray] | np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 6,
    cell: float = 1.6,
) -> Figure:
    """Show images (uint8, or float in [0, 1]) in a grid with optional titles."""
    n = len(images)
    if n == 0:
        raise ValueError("image_grid needs at least one image.")
    nrows = -(-n // ncols)
    fig, axes = _grid(nrows, min(ncols, n), cell)
    for i, ax in enumerate(axes.flat):
        _hide(ax)
        if i < n:
            ax.imshow(images[i])
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    return fig


def learning_curves(history: Mapping[str, Sequence[float]], title: str = "") -> Figure:
    """Training and validation loss and accuracy per epoch, side by side.

    ``history`` is a Keras history dict; every metric with a ``val_`` twin is drawn.
    """
    metrics = [k for k in history if not k.startswith("val_") and f"val_{k}" in history]
    if not metrics:
        raise ValueError(f"No metric with a validation twin in history keys {sorted(history)}.")
    fig, axes = _grid(1, len(metrics), 3.2)
    fig.set_figheight(2.6)
    for ax, key in zip(axes.flat, metrics, strict=True):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], label="train")
        ax.plot(epochs, history[f"val_{key}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(key.replace("_", " "), fontsize=9)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _draw_counts(
    ax: Axes, cm: np.ndarray, class_names: Sequence[str], xlabel: str, ylabel: str
) -> None:
    ax.imshow(cm, cmap="Blues")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, fontsize=8)
    ax.set_yticks(ticks, class_names, fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    high = cm.max() if cm.size else 0
    for (i, j), count in np.ndenumerate(cm):
        colour = "white" if count > high / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=colour, fontsize=9)


def confusion_matrix_plot(
    cm: np.ndarray,
    class_names: Sequence[str],
    title: str = "",
    xlabel: str = "predicted",
    ylabel: str = "true",
) -> Figure:
    """A count matrix with its numbers written in the cells."""
    return confusion_matrices_plot({title: cm}, class_names, xlabel=xlabel, ylabel=ylabel)


def confusion_matrices_plot(
    matrices: Mapping[str, np.ndarray],
    class_names: Sequence[str],
    *,
    xlabel: str = "predicted",
    ylabel: str = "true",
) -> Figure:
    """Count matrices side by side, one per title, each with its numbers in the cells.

    Each matrix keeps its own colour scale: the matrices are read by their numbers, and
    a model's errors stay visible beside another model's larger diagonal.
    """
    if not matrices:
        raise ValueError("confusion_matrices_plot needs at least one matrix.")
    n = len(class_names)
    for title, cm in matrices.items():
        if np.shape(cm) != (n, n):
            raise ValueError(f"{title!r}: expected a {n}x{n} matrix, got shape {np.shape(cm)}.")
    fig = Figure(figsize=(3.2 * len(matrices), 2.8), dpi=DPI, layout="constrained")
    for ax, (title, cm) in zip(
        fig.subplots(1, len(matrices), squeeze=False)[0], matrices.items(), strict=True
    ):
        _draw_counts(ax, np.asarray(cm), class_names, xlabel, ylabel)
        if title:
            ax.set_title(title, fontsize=9)
    return fig


LABEL_SIZE = 11
RIGHT, WRONG = "#1a7f37", "#cf222e"  # green and red that also read on grey print


def cam_grid(
    images: np.ndarray | Sequence[np.ndarray],
    panels: Mapping[str, np.ndarray | Sequence[np.ndarray]],
    row_titles: Sequence[str] | None = None,
    cell: float = 1.25,
    badges: Mapping[str, Sequence[tuple[str, bool]]] | None = None,
) -> Figure:
    """The original study's figure: each row an image, then one column per named panel.

    Parameters
    ----------
    images
        Display images in [0, 1], shape (N, H, W, 3) (or a list: rows may differ in size);
        drawn in the first column.
    panels
        Column title -> RGB overlays in [0, 1], shape (N, H, W, 3) (or a list), e.g.
        ``{"regular / shallow": ..., "complementary / deep": ...}``.
    row_titles
        One label per row (e.g. the true class), written horizontally left of the row.
    badges
        Column title -> one ``(text, right)`` per row, drawn in the panel's corner in green
        (``right``) or red: e.g. each model's prediction in its first column.
    """
    n = len(images)
    cols = ["image", *panels]
    fig, axes = _grid(n, len(cols), cell)
    for j, name in enumerate(cols):
        axes[0, j].set_title(name, fontsize=LABEL_SIZE)
        for i in range(n):
            ax = axes[i, j]
            _hide(ax)
            ax.imshow(images[i] if j == 0 else panels[name][i])
            if j == 0 and row_titles is not None:
                ax.set_ylabel(
                    row_titles[i], fontsize=LABEL_SIZE, rotation=0, ha="right", va="center"
                )
            if badges is not None and name in badges:
                text, right = badges[name][i]
                ax.text(
                    0.03, 0.97, ("✓ " if right else "✗ ") + text, transform=ax.transAxes,
                    ha="left", va="top", fontsize=LABEL_SIZE - 1, color="white",
                    bbox={"facecolor": RIGHT if right else WRONG, "pad": 1.5, "lw": 0},
                )  # fmt: skip
    return fig


def band_plot(
    x_labels: Sequence[str],
    series: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    ylabel: str,
    title: str = "",
) -> Figure:
    """Means with shaded intervals against an ordered axis (e.g. layers by depth).

    ``series`` maps a legend label to ``(mean, low, high)`` arrays, one value per x label.
    """
    fig = Figure(figsize=(6.4, 2.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(x_labels))
    for label, (mean, low, high) in series.items():
        ax.plot(x, mean, marker="o", ms=3, label=label)
        ax.fill_between(x, low, high, alpha=0.2)
    ax.set_xticks(x, x_labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def difference_plot(
    layers: Sequence[str],
    series: Mapping[str, Mapping[str, Any]],
    ylabel: str = "agreement minus control",
    dpi: int = 150,
) -> Figure:
    """Per layer, a difference to a control with its interval, and the zero line it is read against.

    ``series`` maps a legend label (at most three, so the lines stay apart) to ``{layer:
    estimate}`` with ``mean``, ``low`` and ``high`` (e.g.
    :func:`helpers.model_bootstrap.difference_to_control`). Layers are labelled by their
    block number, shallow to deep; the legend sits above the axes, off the data.
    """
    _check_series(series)
    fig = Figure(figsize=(6.4, 3.0), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    _draw_differences(ax, layers, series, ylabel)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=2, fontsize=8, frameon=False)
    return fig


def panels_of_differences(
    layers: Sequence[str],
    panels: Mapping[str, Mapping[str, Mapping[str, Any]]],
    ylabel: str = "agreement minus control",
    dpi: int = 150,
) -> Figure:
    """:func:`difference_plot` in panels, one above the other on one y scale: ``panels`` maps
    a panel title to its ``series`` (the same series get the same colour in every panel). A
    panel without series says so, rather than being left out, so its absence is seen."""
    if not panels:
        raise ValueError("panels_of_differences needs at least one panel")
    for series in panels.values():
        if series:
            _check_series(series)
    labels = list(dict.fromkeys(label for series in panels.values() for label in series))
    colours = {label: f"C{i}" for i, label in enumerate(labels)}
    fig = Figure(figsize=(6.4, 0.6 + 2.4 * len(panels)), dpi=dpi, layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, sharey=True, squeeze=False)[:, 0]
    for ax, (title, series) in zip(axes, panels.items(), strict=True):
        _draw_differences(ax, layers, series, ylabel, colours)
        ax.set_title(title, fontsize=9)
        if not series:
            ax.text(0.5, 0.5, "not stored yet", transform=ax.transAxes, ha="center",
                    va="center", color="0.4")  # fmt: skip
    for ax in axes[:-1]:
        ax.set_xlabel("")
    found = {lab: h for ax in axes for h, lab in zip(*ax.get_legend_handles_labels(), strict=True)}
    fig.legend(list(found.values()), list(found), loc="outside upper center", ncol=2,
               fontsize=8, frameon=False)  # fmt: skip
    return fig


def _check_series(series: Mapping[str, Any]) -> None:
    if not 1 <= len(series) <= 3:
        raise ValueError(f"one to three series keep the figure readable, got {len(series)}")


def _draw_differences(
    ax: Axes,
    layers: Sequence[str],
    series: Mapping[str, Mapping[str, Any]],
    ylabel: str,
    colours: Mapping[str, str] | None = None,
) -> None:
    x = np.arange(len(layers))
    offsets = np.linspace(-0.12, 0.12, len(series)) if len(series) > 1 else [0.0] * len(series)
    for (label, per), dx in zip(series.items(), offsets, strict=True):
        mean, low, high = (np.array([getattr(per[la], k) for la in layers]) for k in
                           ("mean", "low", "high"))  # fmt: skip
        ax.errorbar(x + dx, mean, yerr=[mean - low, high - mean], fmt="o-", ms=4, lw=1.2,
                    capsize=2, label=label, color=(colours or {}).get(label))  # fmt: skip
    ax.axhline(0, color="black", lw=0.8, label="no difference from the control")
    blocks = [name.split("_")[0].removeprefix("block") for name in layers]
    ax.set_xticks(x, blocks)
    ax.set_xlabel("residual stage (Xception block), shallow to deep")
    ax.set_ylabel(ylabel)


def curves_plot(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    xlabel: str,
    ylabel: str,
    title: str = "",
    ax: Axes | None = None,
) -> Figure:
    """Several named (x, y) curves on one axis (deletion/insertion, randomisation)."""
    if ax is None:
        fig = Figure(figsize=(3.6, 2.6), dpi=DPI, layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.get_figure()  # type: ignore[assignment]
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


def randomization_plot(
    steps: Sequence[str],
    curves: Mapping[str, Mapping[str, np.ndarray]],
    reference: Mapping[str, float] | None = None,
) -> Figure:
    """One panel per model (``{model: {layer: correlation per step}}``), layers as lines.

    ``reference`` (``{layer: value}``) draws a dashed line per layer in the same colour: how
    far a map may fall before it says no more about the trained weights than, e.g., the map
    of a second model trained with another seed.
    """
    fig = Figure(figsize=(3.4 * len(curves) + 0.4, 2.9), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(curves), sharey=True, squeeze=False)[0]
    x = np.arange(len(steps))
    for ax, (model, per_layer) in zip(axes, curves.items(), strict=True):
        for layer, ys in per_layer.items():
            (line,) = ax.plot(x, ys, marker="o", ms=3, label=layer)
            if reference is not None and layer in reference:
                ax.axhline(
                    reference[layer], ls="--", lw=1, color=line.get_color(),
                    label=f"{layer}: reference (dashed)",
                )  # fmt: skip
        ax.set_xticks(x, steps, rotation=70, fontsize=7)
        ax.set_title(model, fontsize=LABEL_SIZE - 1)
        ax.set_xlabel("randomised down to")
    axes[0].set_ylabel("rank correlation with trained maps")
    # One legend for every line, the dashed references included, outside the data.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside right center", frameon=False)
    return fig


# What the y axis of a deletion curve shows, per ``helpers.faithfulness`` score.
SCORE_LABELS = {
    "probability": "class probability",
    "logit": "class logit",
    "relative": "probability / original's",
}


def faithfulness_plot(results: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Mean deletion curves, one panel per layer: each model's map against its random order.

    ``results`` is ``{model: {layer: helpers.faithfulness.LayerFaithfulness}}``.
    """
    layers = list(next(iter(results.values())))
    fig = Figure(figsize=(2.6 * len(layers) + 0.6, 2.7), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(layers), sharey=True, squeeze=False)[0]
    for ax, layer in zip(axes, layers, strict=True):
        for model, per_layer in results.items():
            found = per_layer[layer]
            (line,) = ax.plot(
                found.deletion.fractions, found.deletion.scores.mean(axis=0), label=model
            )
            ax.plot(
                found.random_deletion.fractions,
                found.random_deletion.scores.mean(axis=0),
                ls=":",
                color=line.get_color(),
                label=f"{model}, random order",
            )
        ax.set_title(layer, fontsize=LABEL_SIZE - 1)
        ax.set_xlabel("fraction of pixels removed")
    first = next(iter(results.values()))[layers[0]].deletion
    axes[0].set_ylabel(SCORE_LABELS.get(first.score, first.score))
    handles, labels = axes[-1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="outside right center", frameon=False)
    return fig


def loss_shapes(num_classes: int = 3, points: int = 200) -> Figure:
    """Each per-image complementary loss as a function of the complementary probability.

    The other ``K - 1`` classes share the remaining probability evenly; ``nn`` is a batch
    loss and has no per-image curve, so its unbiased per-image form (``free``) stands in.
    """
    import keras

    from helpers import complementary as cl

    p = np.linspace(1e-3, 1 - 1e-3, points)
    rest = np.log((1 - p) / (num_classes - 1))
    logits = np.stack([np.log(p), *[rest] * (num_classes - 1)], axis=1).astype("float32")
    ybar = np.zeros(points, dtype="int64")
    functions = {
        "article": cl.article_loss,
        "pc": cl.pc_loss,
        "forward": cl.forward_loss,
        "scl_nl": cl.scl_nl_loss,
        "scl_exp": cl.scl_exp_loss,
        "free (nn, uncorrected)": cl.free_loss,
    }
    fig = Figure(figsize=(6.4, 2.6), dpi=DPI, layout="constrained")
    left, right = fig.subplots(1, 2)
    for name, fn in functions.items():
        values = keras.ops.convert_to_numpy(fn(ybar, logits))
        target = right if name.startswith("free") or name == "pc" else left
        target.plot(p, values, label=name)
    for ax in (left, right):
        ax.set_xlabel(r"$p_{\bar y}$ (probability of the complementary class)", fontsize=8)
        ax.legend(fontsize=7)
    left.set_ylabel("loss")
    return fig


MODEL_NAMES = {"regular": "regular", "complementary": "complementary"}
GRID_DPI = (
    120  # map grids are saved wider than other figures: >= 900 px, maps >= 150 px on the page
)


def _explorer_rows(
    data: Any, indices: Sequence[int], layers: Sequence[str], choice: str, scale: str
) -> tuple[np.ndarray, dict[str, list[list[np.ndarray]]], list[str], dict[str, list[Any]]]:
    """Images, each model's overlays per row (one per layer), true classes and predictions."""
    from helpers.gradcam import overlay

    size = int(data.images.shape[1])
    images = data.images[list(indices)].astype(np.float32) / 255.0
    overlays: dict[str, list[list[np.ndarray]]] = {m: [] for m in MODEL_NAMES}
    badges: dict[str, list[Any]] = {}
    names = data.class_names
    for row, i in enumerate(indices):
        for model in MODEL_NAMES:
            overlays[model].append(
                [
                    overlay(images[row], data.cams(i, layer, choice, scale, size)[model])
                    for layer in layers
                ]
            )
    for model in MODEL_NAMES:
        predicted = data.predicted(model)
        badges[model] = [(names[predicted[i]], predicted[i] == data.labels[i]) for i in indices]
    return images, overlays, [names[data.labels[i]] for i in indices], badges


def _depth_title(layer: str) -> str:
    from helpers.gradcam import DEEP, MIDDLE, SHALLOW

    depth = {SHALLOW: "shallow", MIDDLE: "middle", DEEP: "deep"}.get(layer)
    return f"{depth}\n{layer}" if depth else layer


def explorer_grid(
    data: Any,
    indices: Sequence[int],
    layers: Sequence[str],
    *,
    choice: str = "predicted",
    scale: str = "per_map",
    cell: float = 1.9,
) -> Figure:
    """The original study's figure from precomputed maps (:class:`helpers.explorer.ExplorerData`).

    Each image gets two rows, the regular model's overlays at ``layers`` and the
    complementary model's below them, with the image itself to their left, labelled with its
    true class. Each model's prediction sits beside its row, outside the maps, green when right
    and red when wrong; a colour bar under the grid says what the colours mean. Saved by
    :func:`as_jpeg` at :data:`GRID_DPI`, a grid of three layers is about 1,000 px wide, so that
    each map stays at least 150 px wide at the book's content width.

    ``data`` may also map a row label to maps of the *same* test images at another input
    size (``{"96 px": ..., "299 px": ...}``): each image then gets one pair of rows per size,
    labelled with the size, and each overlay keeps its own size's pixels.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    grids = data if isinstance(data, Mapping) else {"": data}
    if not grids:
        raise ValueError(
            "explorer_grid got no maps: no size has both models trained yet. Train them "
            "first, or draw the figure only when there are maps (`if grids: ...`)."
        )
    parts = {key: _explorer_rows(d, indices, layers, choice, scale) for key, d in grids.items()}
    groups = [(row, key) for row in range(len(indices)) for key in parts]
    models = list(MODEL_NAMES)
    n_rows = len(groups) * len(models)
    ratios = [1.0, 0.62, *([1.0] * len(layers))]
    fig = Figure(
        figsize=(cell * sum(ratios) + 0.9, cell * n_rows + 0.9), dpi=GRID_DPI, layout="constrained"
    )
    spec = fig.add_gridspec(
        n_rows + 1, len(ratios), width_ratios=ratios, height_ratios=[*([1.0] * n_rows), 0.12]
    )
    for g, (row, key) in enumerate(groups):
        images, overlays, truth, badges = parts[key]
        top = g * len(models)
        ax = fig.add_subplot(spec[top : top + len(models), 0])
        _hide(ax)
        ax.imshow(images[row])
        ax.set_ylabel(
            f"{truth[row]}\n{key}" if key else truth[row],
            fontsize=LABEL_SIZE,
            rotation=0,
            ha="right",
            va="center",
        )
        for m, model in enumerate(models):
            label = fig.add_subplot(spec[top + m, 1])
            label.axis("off")
            text, right = badges[model][row]
            label.text(
                0.5, 0.5, f"{MODEL_NAMES[model]}\n{'✓' if right else '✗'} {text}", transform=label.transAxes,
                ha="center", va="center", fontsize=LABEL_SIZE - 1, color="white",
                bbox={"facecolor": RIGHT if right else WRONG, "pad": 2.5, "lw": 0},
            )  # fmt: skip
            for j, layer in enumerate(layers):
                ax = fig.add_subplot(spec[top + m, 2 + j])
                _hide(ax)
                ax.imshow(overlays[model][row][j])
                if g == 0 and m == 0:
                    ax.set_title(_depth_title(layer), fontsize=LABEL_SIZE)
    bar = fig.add_subplot(spec[n_rows, 2:])
    what = (
        "each map divided by its own maximum"
        if scale == "per_map"
        else "one scale for all maps of an image"
    )
    fig.colorbar(
        ScalarMappable(Normalize(0, 1), colormaps["jet"]), cax=bar, orientation="horizontal",
        label=f"Grad-CAM, 0 (blue) to 1 (red): {what}",
    )  # fmt: skip
    bar.xaxis.label.set_fontsize(LABEL_SIZE)
    return fig


def save_headline(fig: Figure, profile: str, path: str = "_static/headline.png") -> bool:
    """Save ``fig`` as the book's headline figure (``path`` is relative to ``book/``).

    Only a real run writes it: at the ``smoke`` profile (the tests) nothing is saved, so
    running the test suite never replaces the committed figure. Returns whether it saved.
    """
    if profile == "smoke":
        return False
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return True


def as_jpeg(fig: Figure, quality: int = 80) -> Any:
    """``fig`` as an IPython JPEG image: photo-heavy grids stay small in stored notebooks.

    PNG keeps every pixel of the photographs exactly and weighs ~0.5 MB per grid; a JPEG at
    quality 80 looks the same at this size and weighs a fifth of that. Saved at the figure's
    own resolution (:data:`GRID_DPI` for the map grids, :data:`DPI` for the rest).
    """
    import io

    from IPython.display import Image
    from PIL import Image as PILImage

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=fig.get_dpi(), bbox_inches="tight")
    png.seek(0)
    out = io.BytesIO()
    PILImage.open(png).convert("RGB").save(out, format="JPEG", quality=quality, optimize=True)
    return Image(data=out.getvalue(), format="jpeg")
