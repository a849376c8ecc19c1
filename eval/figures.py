"""The paper's figures as images (matplotlib, Agg canvas; no pyplot global state): shared helpers,
the UV figures and the CED curves.

Every ``*_figure`` function takes arrays or tables already in memory, writes a PNG of a fixed size
in pixels (``figsize * dpi``, no tight cropping; the tables' height grows with their rows, see
:func:`eval.figure_tables.table_size`) and, with ``pdf=True``, the same figure as a vector PDF
beside it (same stem); it returns the PNG's path. :mod:`eval.paper_figures` (stage ``figures``)
reads the data and calls them.

Figures (PRNet, Feng et al. ECCV 2018):

* :func:`uv_space_figure` (paper Fig. 2): a crop, its UV texture map, its UV position map as RGB
  and the map's x, y, z channels with colour bars (crop pixels: x right, y down, z depth >= 0);
* :func:`weight_mask_figure` (paper Fig. 3): the loss weights 16 / 4 / 3 / 0 by region, beside the
  face mask;
* :func:`ced_figure`: CED curves of the per-image NMEs (68 points and dense vertices, 2D and 3D),
  computed by :mod:`eval.ced` from the evaluate stage's ``per_image.csv``;
* :mod:`eval.figure_tables`: the NME table and the runtime table as images (and Markdown);
* :mod:`eval.figure_qualitative`: rows of test crops across the yaw range, one column per method
  plus the ground truth (shaded dense mesh and 68 landmarks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from eval.ced import ced_auc, ced_curve
from uvgen.formats.errors import DataError

DPI = 150
#: Per-image metrics drawn by :func:`ced_figure`, with their panel titles.
CED_PANELS: dict[str, str] = {
    "nme_2d_68": "68 landmarks, 2D",
    "nme_3d_68": "68 landmarks, 3D",
    "nme_2d_dense": "Dense face vertices, 2D",
    "nme_3d_dense": "Dense face vertices, 3D",
}
#: Fixed colours of the paper's methods (others and the ground truth below).
METHOD_COLORS: dict[str, str] = {"PRN": "#d62728", "3DDFA": "#1f77b4", "DeFA": "#ff7f0e"}
GROUND_TRUTH_COLOR = "#2ca02c"
_OTHER_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
GROUND_TRUTH = "Ground truth"
_MEM = "<memory>"


# ----------------------------------------------------------------------------------------------
# Common helpers


def new_figure(width_in: float, height_in: float, dpi: int):
    """A Figure on an Agg canvas (no pyplot): thread-safe, no backend switching."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: str | Path, pdf: bool) -> Path:
    """Save ``fig`` as PNG at its own size and dpi (and as ``<stem>.pdf`` when ``pdf``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=fig.dpi)
    if pdf:
        # No creation date: the same figure gives the same bytes (reproducible dvc.lock).
        fig.savefig(path.with_suffix(".pdf"), format="pdf", metadata={"CreationDate": None})
    return path


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """A colour per method label: PRN red, 3DDFA blue, DeFA orange (:data:`METHOD_COLORS`), the
    ground truth green, any other label the next colour of a fixed list (same order, same
    colours)."""
    out: dict[str, str] = {}
    k = 0
    for m in methods:
        if m in METHOD_COLORS:
            out[m] = METHOD_COLORS[m]
        elif m == GROUND_TRUTH:
            out[m] = GROUND_TRUTH_COLOR
        else:
            out[m] = _OTHER_COLORS[k % len(_OTHER_COLORS)]
            k += 1
    return out


def rgb255(color: str) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return int(round(255 * r)), int(round(255 * g)), int(round(255 * b))


def plain_axes(ax, frame: bool = False) -> None:
    """No ticks; a thin grey frame (``frame``) or none."""
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(frame)
        side.set_color("#999999")
        side.set_linewidth(0.6)


# ----------------------------------------------------------------------------------------------
# 1. UV space (paper Fig. 2)


def normalise_channels(posmap: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(S, S, 3) float32 in [0, 1]: each channel of ``posmap`` scaled by its min and max over the
    ``mask`` pixels (x -> red, y -> green, z -> blue); 0 outside the mask."""
    pm = np.asarray(posmap, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    out = np.zeros(pm.shape, dtype=np.float32)
    if not m.any():
        return out
    vals = pm[m]
    lo, hi = vals.min(axis=0), vals.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    out[m] = ((vals - lo) / span).astype(np.float32)
    return out


def fill_holes(
    posmap: np.ndarray, mask: np.ndarray, max_iterations: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """(map, mask): the pixels enclosed by ``mask`` (S, S) but not in it (e.g. single UV pixels
    that no triangle of a layout covers) set to the mean of their 8-neighbours in the mask,
    repeated up to ``max_iterations`` times; ``posmap`` (S, S, C) is not modified."""
    from scipy import ndimage

    pm = np.array(posmap, dtype=np.float64, copy=True)
    m = np.asarray(mask, dtype=bool).copy()
    holes = ndimage.binary_fill_holes(m) & ~m
    kernel = np.ones((3, 3))
    for _ in range(max_iterations):
        if not holes.any():
            break
        count = ndimage.convolve(m.astype(np.float64), kernel, mode="constant")
        fill = holes & (count > 0)
        if not fill.any():
            break
        for c in range(pm.shape[2]):
            total = ndimage.convolve(np.where(m, pm[..., c], 0.0), kernel, mode="constant")
            pm[..., c][fill] = total[fill] / count[fill]
        m |= fill
        holes &= ~fill
    return pm.astype(np.asarray(posmap).dtype, copy=False), m


def uv_space_figure(
    crop: np.ndarray,
    posmap: np.ndarray,
    path: str | Path,
    mask: np.ndarray | None = None,
    texture: np.ndarray | None = None,
    title: str | None = None,
    pdf: bool = True,
    dpi: int = DPI,
) -> Path:
    """The UV representation of one face (paper Fig. 2): 12 x 8 in.

    Top row: the input crop (S, S, 3) uint8; its UV texture map (``texture`` (S, S, 3) uint8, by
    default :func:`model.uses.uv_texture` of the crop at the map's (x, y)); the position map
    ``posmap`` (S, S, 3) in crop pixels shown as RGB (:func:`normalise_channels`). Bottom row: the
    map's x, y and z channels with colour bars in crop pixels (x right, y down, z depth, larger =
    closer). ``mask`` (S, S): the UV pixels the map holds (default: those not all 0); isolated
    pixels it leaves out inside are filled from their neighbours (:func:`fill_holes`), the rest is
    drawn white.
    """
    from model.uses import uv_texture

    crop = np.asarray(crop)
    pm = np.asarray(posmap, dtype=np.float32)
    if pm.ndim != 3 or pm.shape[2] != 3 or crop.ndim != 3 or crop.shape[2] != 3:
        raise DataError(
            _MEM,
            "posmap",
            f"expected crop (H, W, 3) and map (S, S, 3), got {crop.shape}, {pm.shape}",
        )
    m = np.any(pm != 0, axis=-1) if mask is None else np.asarray(mask, dtype=bool)
    pm, m = fill_holes(pm, m)
    tex = uv_texture(crop, pm, m) if texture is None else np.asarray(texture, dtype=np.uint8)
    tex = np.where(m[..., None], tex, 255).astype(np.uint8)
    rgb = normalise_channels(pm, m)
    rgb[~m] = 1.0

    from matplotlib import colormaps
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    fig = new_figure(12.0, 8.0, dpi)
    grid = fig.add_gridspec(
        2,
        3,
        left=0.02,
        right=0.95,
        top=0.9 if title else 0.95,
        bottom=0.03,
        wspace=0.25,
        hspace=0.14,
    )

    def panel(row: int, col: int):
        """An image axes and, to its right, a colour-bar axes of the same height (hidden in the top
        row, so that all six images have the same size)."""
        ax = fig.add_subplot(grid[row, col])
        cax = make_axes_locatable(ax).append_axes("right", size="5%", pad=0.08)
        return ax, cax

    panels = [
        (crop, "Input crop"),
        (tex, "UV texture map"),
        (rgb, "UV position map (x, y, z as RGB)"),
    ]
    for j, (img, name) in enumerate(panels):
        ax, cax = panel(0, j)
        cax.set_axis_off()
        ax.imshow(img, interpolation="nearest" if img is not crop else "antialiased")
        ax.set_title(name, fontsize=12)
        plain_axes(ax)
    names = ("x (right)", "y (down)", "z (depth, to the viewer)")
    for c in range(3):
        ax, cax = panel(1, c)
        chan = np.where(m, pm[..., c], np.nan)
        im = ax.imshow(
            chan, cmap=colormaps["viridis"].with_extremes(bad="white"), interpolation="nearest"
        )
        ax.set_title(f"Channel {names[c]}", fontsize=12)
        plain_axes(ax)
        bar = fig.colorbar(im, cax=cax)
        bar.set_label("crop pixels", fontsize=10)
        bar.ax.tick_params(labelsize=9)
    if title:
        fig.suptitle(title, fontsize=13)
    return save_figure(fig, path, pdf)


# ----------------------------------------------------------------------------------------------
# 2. Weight mask (paper Fig. 3)


def weight_mask_figure(
    weight_mask: np.ndarray,
    face_mask: np.ndarray,
    path: str | Path,
    kpt_uv: np.ndarray | None = None,
    pdf: bool = True,
    dpi: int = DPI,
) -> Path:
    """The loss weights by region beside the face mask (paper Fig. 3): 10 x 5.4 in.

    ``weight_mask`` (S, S): 16 (68 key points), 4 (eyes, nose, mouth), 3 (rest of the face), 0
    (outside); blends snap to the nearest class (uvgen.weight_classes.weight_classes). The key
    points are single pixels, so they are also marked (from ``kpt_uv`` (2, 68), row 0 = column,
    row 1 = row, or else the weight-16 pixels). ``face_mask`` (S, S) bool: the decoded face pixels.
    The legend gives each region's weight and pixel count.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from uvgen.weight_classes import CLASS_NAMES, PAPER_WEIGHTS, weight_classes

    w = np.asarray(weight_mask, dtype=np.float64)
    face = np.asarray(face_mask, dtype=bool)
    if w.ndim != 2 or face.shape != w.shape:
        raise DataError(
            _MEM, "weight_mask", f"expected two (S, S) masks, got {w.shape} and {face.shape}"
        )
    classes = weight_classes(w)
    colours = ("#f0f0f0", "#9ecae1", "#2171b5", "#e6550d")  # outside, face, region, key points
    if kpt_uv is None:
        ky, kx = np.nonzero(classes == 3)
    else:
        kx, ky = np.asarray(kpt_uv)[0], np.asarray(kpt_uv)[1]

    fig = new_figure(10.0, 5.4, dpi)
    grid = fig.add_gridspec(1, 2, left=0.03, right=0.97, top=0.92, bottom=0.15, wspace=0.08)
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(classes, cmap=ListedColormap(colours), vmin=-0.5, vmax=3.5, interpolation="nearest")
    ax.scatter(kx, ky, s=9, c=colours[3], edgecolors="black", linewidths=0.3, zorder=3)
    ax.set_title("Weight mask (loss weight per UV pixel)", fontsize=12)
    plain_axes(ax, frame=True)
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(
        face, cmap=ListedColormap(["#f0f0f0", "#525252"]), vmin=0, vmax=1, interpolation="nearest"
    )
    ax.set_title(f"Face mask ({int(face.sum()):,} pixels = dense vertices)", fontsize=12)
    plain_axes(ax, frame=True)

    labels = {
        "keypoint": "68 key points",
        "eye_nose_mouth": "eyes, nose, mouth",
        "face": "rest of the face",
        "outside": "outside the face",
    }
    handles = []
    for c in (3, 2, 1, 0):
        count = int((classes == c).sum()) if c != 3 else len(np.atleast_1d(kx))
        text = f"weight {PAPER_WEIGHTS[c]:g}: {labels[CLASS_NAMES[c]]} ({count:,} px)"
        if c == 3:
            handles.append(
                Line2D(
                    [],
                    [],
                    marker="o",
                    linestyle="",
                    markerfacecolor=colours[3],
                    markeredgecolor="black",
                    markersize=6,
                    label=text,
                )
            )
        else:
            handles.append(Patch(facecolor=colours[c], edgecolor="#555555", label=text))
    handles.append(Patch(facecolor="#525252", edgecolor="#555555", label="face mask"))
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=3,
        fontsize=10,
        frameon=False,
        bbox_to_anchor=(0.5, 0.01),
    )
    return save_figure(fig, path, pdf)


# ----------------------------------------------------------------------------------------------
# 3. CED curves


def per_image_methods(per_image: pd.DataFrame) -> list[str]:
    """The method labels of a wide per-image table (columns ``<method>/<metric>``), in column
    order."""
    out: list[str] = []
    for col in per_image.columns:
        if "/" in col:
            m = col.rsplit("/", 1)[0]
            if m not in out:
                out.append(m)
    return out


def ced_axis_limit(
    per_image: pd.DataFrame,
    metrics: Sequence[str] = tuple(CED_PANELS),
    max_error: float = 0.10,
    coverage: float = 0.9,
    cap: float = 1.0,
) -> float:
    """The right end (fraction) of the CED axis that shows the curves: ``max_error`` (the
    protocol's range) when, in every panel, the most accurate method reaches ``coverage`` of the
    images within it; else widened in steps of ``max_error / 2`` until it does (at most ``cap``).
    Undertrained models (NMEs of 20 % and more) would otherwise leave the protocol's axis empty."""
    step = max_error / 2
    need = 0.0
    for metric in metrics:
        best = np.inf
        for col in (c for c in per_image.columns if c.endswith(f"/{metric}")):
            vals = per_image[col].to_numpy(dtype=np.float64)
            if vals.size:
                q = np.quantile(
                    np.where(np.isfinite(vals), vals, np.inf), coverage, method="higher"
                )
                best = min(best, float(q))
        if np.isfinite(best):
            need = max(need, best)
    if need <= max_error:
        return max_error
    return float(min(cap, np.ceil(need / step - 1e-9) * step))


_CED_COL_IN, _CED_TOP_IN, _CED_AXES_IN = 5.4, 0.6, 3.1
_CED_ROW_IN = 0.35 + _CED_AXES_IN + 0.6 + 0.15  # title, axes, ticks and x label, gap
_CED_LEGEND_LINE_IN = 0.2


def ced_figure_size(n_panels: int, n_methods: int) -> tuple[float, float]:
    """(width, height) in inches of a :func:`ced_figure`: 5.4 in per column (2 columns, 1 for a
    single panel); per row of panels 4.2 in plus 0.2 in per method (the legend); 0.6 in on top."""
    ncol = 2 if n_panels > 1 else 1
    nrow = (n_panels + ncol - 1) // ncol
    return _CED_COL_IN * ncol, _CED_TOP_IN + nrow * (_CED_ROW_IN + _CED_LEGEND_LINE_IN * n_methods)


def ced_figure(
    per_image: pd.DataFrame,
    path: str | Path,
    methods: Sequence[str] | None = None,
    panels: Mapping[str, str] = CED_PANELS,
    max_error: float = 0.10,
    x_max: float | None = None,
    pdf: bool = True,
    dpi: int = DPI,
) -> Path:
    """CED curves, one panel per metric (default four: 68 points and dense vertices, 2D and 3D),
    2 columns, each panel's legend below it. Size: :func:`ced_figure_size`.
    ``per_image``: the evaluate stage's wide table (``per_image.csv``: name, yaw, then
    ``<method>/<metric>`` fractions; NaN = no prediction, counted as a miss). Each curve is
    :func:`eval.ced.ced_curve` on [0, ``max_error``] (axis in %); the legend gives the AUC
    (:func:`eval.ced.ced_auc`, always on [0, ``max_error``]) and the mean NME over the images. A
    method without a metric is left out of that panel. ``x_max`` (fraction, default
    ``max_error``): the axis' right end; when wider (e.g. :func:`ced_axis_limit`), a dashed line
    marks ``max_error``.
    """
    methods = per_image_methods(per_image) if methods is None else list(methods)
    colours = method_colors(methods)
    x_max = max_error if x_max is None else float(x_max)
    wide = x_max > max_error * (1 + 1e-9)
    auc = f"AUC@{100 * max_error:g}%" if wide else "AUC"
    keys = list(panels)
    ncol = 2 if len(keys) > 1 else 1
    width, height = ced_figure_size(len(keys), len(methods))
    row_h = _CED_ROW_IN + _CED_LEGEND_LINE_IN * len(methods)
    fig = new_figure(width, height, dpi)
    for i, metric in enumerate(keys):
        left = (i % ncol) * _CED_COL_IN + 0.7
        top = _CED_TOP_IN + (i // ncol) * row_h + 0.35  # below the panel title
        ax = fig.add_axes(
            (left / width, 1 - (top + _CED_AXES_IN) / height, 4.5 / width, _CED_AXES_IN / height)
        )
        drawn = 0
        for m in methods:
            col = f"{m}/{metric}"
            if col not in per_image.columns:
                continue
            vals = per_image[col].to_numpy(dtype=np.float64)
            x, y = ced_curve(vals, max_error=x_max, n_points=1001)
            finite = vals[np.isfinite(vals)]
            mean = f"{100 * finite.mean():.2f}%" if finite.size else "-"
            ax.step(
                100 * x,
                y,
                where="post",
                color=colours[m],
                linewidth=1.8,
                label=f"{m}: {auc} {ced_auc(vals, max_error):.3f}, mean {mean}",
            )
            drawn += 1
        if wide:
            ax.axvline(100 * max_error, color="#555555", linestyle="--", linewidth=1.0)
            ax.text(
                100 * max_error,
                0.97,
                f" {100 * max_error:g}% (protocol)",
                fontsize=8.5,
                color="#555555",
                ha="left",
                va="top",
            )
        ax.set_xlim(0, 100 * x_max)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("NME (%)", fontsize=10)
        ax.set_ylabel("Fraction of images", fontsize=10)
        ax.set_title(panels[metric], fontsize=12)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=9)
        if drawn:
            ax.legend(
                loc="upper center",
                bbox_to_anchor=(0.5, -0.5 / _CED_AXES_IN),
                fontsize=9,
                frameon=False,
                borderaxespad=0.0,
                handlelength=1.6,
            )
        else:
            ax.text(
                0.5,
                0.5,
                "no method gives this metric",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=10,
                color="#777777",
            )
    fig.suptitle(
        f"Cumulative error distribution on the test set ({len(per_image)} images)",
        fontsize=13,
        y=1 - 0.3 / height,
        va="center",
    )
    return save_figure(fig, path, pdf)
