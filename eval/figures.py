"""The paper's figures and tables as images (matplotlib, Agg canvas; no pyplot global state).

Every ``*_figure`` function takes arrays or tables already in memory, writes a PNG of a fixed size
in pixels (``figsize * dpi``, no tight cropping; the tables' height grows with their rows, see
:func:`table_size`) and, with ``pdf=True``, the same figure as a vector PDF beside it (same stem);
it returns the PNG's path. :mod:`pipeline.figures` (stage ``figures``) reads the data and calls them.

Figures (PRNet, Feng et al. ECCV 2018):

* :func:`uv_space_figure` (paper Fig. 2): a crop, its UV texture map, its UV position map as RGB
  and the map's x, y, z channels with colour bars (crop pixels: x right, y down, z depth >= 0);
* :func:`weight_mask_figure` (paper Fig. 3): the loss weights 16 / 4 / 3 / 0 by region, beside the
  face mask;
* :func:`ced_figure`: CED curves of the per-image NMEs (68 points and dense vertices, 2D and 3D),
  computed by :mod:`eval.ced` from the evaluate stage's ``per_image.csv``;
* :func:`nme_table_figure`: the evaluate stage's ``nme_table.csv`` (yaw bins, balanced mean,
  published rows marked) rendered as a table image;
* :func:`qualitative_figure`: rows of test crops across the yaw range, one column per method plus
  the ground truth: the shaded dense mesh over the crop and the 68 landmarks joined along their
  contours (:func:`model.uses.draw_landmarks`);
* :func:`runtime_table` / :func:`runtime_markdown` / :func:`runtime_table_figure`: milliseconds per
  image from the predictions' ``runtime_s``, beside PRN's published 9.8 ms (GTX 1080).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import textwrap

import numpy as np
import pandas as pd

from eval.ced import ced_auc, ced_curve
from eval.report import METRIC_TITLES
from eval.tables import PUBLISHED_PRN_MS_PER_IMAGE_GTX1080
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
PUBLISHED_MARK = "\u2020"  # dagger: a published number, not measured here
PUBLISHED_RUNTIME_LABEL = "PRN (ECCV 2018)"
_MEM = "<memory>"


# ----------------------------------------------------------------------------------------------
# Common helpers


def _figure(width_in: float, height_in: float, dpi: int):
    """A Figure on an Agg canvas (no pyplot): thread-safe, no backend switching."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path, pdf: bool) -> Path:
    """Save ``fig`` as PNG at its own size and dpi (and as ``<stem>.pdf`` when ``pdf``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=fig.dpi)
    if pdf:
        fig.savefig(path.with_suffix(".pdf"), format="pdf")
    return path


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """A colour per method label: PRN red, 3DDFA blue, DeFA orange (:data:`METHOD_COLORS`), the
    ground truth green, any other label the next colour of a fixed list (same order, same colours)."""
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


def _rgb255(color: str) -> tuple[int, int, int]:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    return int(round(255 * r)), int(round(255 * g)), int(round(255 * b))


def _image_axes(ax, frame: bool = False) -> None:
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


def fill_holes(posmap: np.ndarray, mask: np.ndarray, max_iterations: int = 8) -> tuple[np.ndarray, np.ndarray]:
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


def uv_space_figure(crop: np.ndarray, posmap: np.ndarray, path: str | Path, mask: np.ndarray | None = None,
                    texture: np.ndarray | None = None, title: str | None = None, pdf: bool = True,
                    dpi: int = DPI) -> Path:
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
        raise DataError(_MEM, "posmap", f"expected crop (H, W, 3) and map (S, S, 3), got {crop.shape}, {pm.shape}")
    m = np.any(pm != 0, axis=-1) if mask is None else np.asarray(mask, dtype=bool)
    pm, m = fill_holes(pm, m)
    tex = uv_texture(crop, pm, m) if texture is None else np.asarray(texture, dtype=np.uint8)
    tex = np.where(m[..., None], tex, 255).astype(np.uint8)
    rgb = normalise_channels(pm, m)
    rgb[~m] = 1.0

    from matplotlib import colormaps
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    fig = _figure(12.0, 8.0, dpi)
    grid = fig.add_gridspec(2, 3, left=0.02, right=0.95, top=0.9 if title else 0.95, bottom=0.03,
                            wspace=0.25, hspace=0.14)

    def panel(row: int, col: int):
        """An image axes and, to its right, a colour-bar axes of the same height (hidden in the top
        row, so that all six images have the same size)."""
        ax = fig.add_subplot(grid[row, col])
        cax = make_axes_locatable(ax).append_axes("right", size="5%", pad=0.08)
        return ax, cax

    panels = [(crop, "Input crop"), (tex, "UV texture map"), (rgb, "UV position map (x, y, z as RGB)")]
    for j, (img, name) in enumerate(panels):
        ax, cax = panel(0, j)
        cax.set_axis_off()
        ax.imshow(img, interpolation="nearest" if img is not crop else "antialiased")
        ax.set_title(name, fontsize=12)
        _image_axes(ax)
    names = ("x (right)", "y (down)", "z (depth, to the viewer)")
    for c in range(3):
        ax, cax = panel(1, c)
        chan = np.where(m, pm[..., c], np.nan)
        im = ax.imshow(chan, cmap=colormaps["viridis"].with_extremes(bad="white"), interpolation="nearest")
        ax.set_title(f"Channel {names[c]}", fontsize=12)
        _image_axes(ax)
        bar = fig.colorbar(im, cax=cax)
        bar.set_label("crop pixels", fontsize=10)
        bar.ax.tick_params(labelsize=9)
    if title:
        fig.suptitle(title, fontsize=13)
    return _save(fig, path, pdf)


# ----------------------------------------------------------------------------------------------
# 2. Weight mask (paper Fig. 3)


def weight_mask_figure(weight_mask: np.ndarray, face_mask: np.ndarray, path: str | Path,
                       kpt_uv: np.ndarray | None = None, pdf: bool = True, dpi: int = DPI) -> Path:
    """The loss weights by region beside the face mask (paper Fig. 3): 10 x 5.4 in.

    ``weight_mask`` (S, S): 16 (68 key points), 4 (eyes, nose, mouth), 3 (rest of the face), 0
    (outside); blends snap to the nearest class (:func:`uvgen.masks.weight_classes`). The key
    points are single pixels, so they are also marked (from ``kpt_uv`` (2, 68), row 0 = column,
    row 1 = row, or else the weight-16 pixels). ``face_mask`` (S, S) bool: the decoded face pixels.
    The legend gives each region's weight and pixel count.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D

    from uvgen.masks import CLASS_NAMES, WEIGHT_CLASSES, weight_classes

    w = np.asarray(weight_mask, dtype=np.float64)
    face = np.asarray(face_mask, dtype=bool)
    if w.ndim != 2 or face.shape != w.shape:
        raise DataError(_MEM, "weight_mask", f"expected two (S, S) masks, got {w.shape} and {face.shape}")
    classes = weight_classes(w)
    colours = ("#f0f0f0", "#9ecae1", "#2171b5", "#e6550d")  # outside, face, region, key points
    if kpt_uv is None:
        ky, kx = np.nonzero(classes == 3)
    else:
        kx, ky = np.asarray(kpt_uv)[0], np.asarray(kpt_uv)[1]

    fig = _figure(10.0, 5.4, dpi)
    grid = fig.add_gridspec(1, 2, left=0.03, right=0.97, top=0.92, bottom=0.15, wspace=0.08)
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(classes, cmap=ListedColormap(colours), vmin=-0.5, vmax=3.5, interpolation="nearest")
    ax.scatter(kx, ky, s=9, c=colours[3], edgecolors="black", linewidths=0.3, zorder=3)
    ax.set_title("Weight mask (loss weight per UV pixel)", fontsize=12)
    _image_axes(ax, frame=True)
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(face, cmap=ListedColormap(["#f0f0f0", "#525252"]), vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(f"Face mask ({int(face.sum()):,} pixels = dense vertices)", fontsize=12)
    _image_axes(ax, frame=True)

    labels = {"keypoint": "68 key points", "region": "eyes, nose, mouth", "face": "rest of the face",
              "outside": "outside the face"}
    handles = []
    for c in (3, 2, 1, 0):
        count = int((classes == c).sum()) if c != 3 else len(np.atleast_1d(kx))
        text = f"weight {WEIGHT_CLASSES[c]:g}: {labels[CLASS_NAMES[c]]} ({count:,} px)"
        if c == 3:
            handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor=colours[3],
                                  markeredgecolor="black", markersize=6, label=text))
        else:
            handles.append(Patch(facecolor=colours[c], edgecolor="#555555", label=text))
    handles.append(Patch(facecolor="#525252", edgecolor="#555555", label="face mask"))
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=10, frameon=False,
               bbox_to_anchor=(0.5, 0.01))
    return _save(fig, path, pdf)


# ----------------------------------------------------------------------------------------------
# 3. CED curves


def per_image_methods(per_image: pd.DataFrame) -> list[str]:
    """The method labels of a wide per-image table (columns ``<method>/<metric>``), in column order."""
    out: list[str] = []
    for col in per_image.columns:
        if "/" in col:
            m = col.rsplit("/", 1)[0]
            if m not in out:
                out.append(m)
    return out


def ced_axis_limit(per_image: pd.DataFrame, metrics: Sequence[str] = tuple(CED_PANELS), max_error: float = 0.10,
                   coverage: float = 0.9, cap: float = 1.0) -> float:
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
                q = np.quantile(np.where(np.isfinite(vals), vals, np.inf), coverage, method="higher")
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


def ced_figure(per_image: pd.DataFrame, path: str | Path, methods: Sequence[str] | None = None,
               panels: Mapping[str, str] = CED_PANELS, max_error: float = 0.10, x_max: float | None = None,
               pdf: bool = True, dpi: int = DPI) -> Path:
    """CED curves, one panel per metric (default four: 68 points and dense vertices, 2D and 3D),
    2 columns, each panel's legend below it. Size: :func:`ced_figure_size`.
    ``per_image``: the evaluate stage's wide table (``per_image.csv``: name, yaw, then
    ``<method>/<metric>`` fractions; NaN = no prediction, counted as a miss). Each curve is
    :func:`eval.ced.ced_curve` on [0, ``max_error``] (axis in %); the legend gives the AUC
    (:func:`eval.ced.ced_auc`, always on [0, ``max_error``]) and the mean NME over the images. A
    method without a metric is left out of that panel. ``x_max`` (fraction, default ``max_error``):
    the axis' right end; when wider (e.g. :func:`ced_axis_limit`), a dashed line marks ``max_error``.
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
    fig = _figure(width, height, dpi)
    for i, metric in enumerate(keys):
        left = (i % ncol) * _CED_COL_IN + 0.7
        top = _CED_TOP_IN + (i // ncol) * row_h + 0.35  # below the panel title
        ax = fig.add_axes((left / width, 1 - (top + _CED_AXES_IN) / height, 4.5 / width, _CED_AXES_IN / height))
        drawn = 0
        for m in methods:
            col = f"{m}/{metric}"
            if col not in per_image.columns:
                continue
            vals = per_image[col].to_numpy(dtype=np.float64)
            x, y = ced_curve(vals, max_error=x_max, n_points=1001)
            finite = vals[np.isfinite(vals)]
            mean = f"{100 * finite.mean():.2f}%" if finite.size else "-"
            ax.step(100 * x, y, where="post", color=colours[m], linewidth=1.8,
                    label=f"{m}: {auc} {ced_auc(vals, max_error):.3f}, mean {mean}")
            drawn += 1
        if wide:
            ax.axvline(100 * max_error, color="#555555", linestyle="--", linewidth=1.0)
            ax.text(100 * max_error, 0.97, f" {100 * max_error:g}% (protocol)", fontsize=8.5, color="#555555",
                    ha="left", va="top")
        ax.set_xlim(0, 100 * x_max)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("NME (%)", fontsize=10)
        ax.set_ylabel("Fraction of images", fontsize=10)
        ax.set_title(panels[metric], fontsize=12)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=9)
        if drawn:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / _CED_AXES_IN), fontsize=9, frameon=False,
                      borderaxespad=0.0, handlelength=1.6)
        else:
            ax.text(0.5, 0.5, "no method gives this metric", ha="center", va="center",
                    transform=ax.transAxes, fontsize=10, color="#777777")
    fig.suptitle(f"Cumulative error distribution on the test set ({len(per_image)} images)", fontsize=13,
                 y=1 - 0.3 / height, va="center")
    return _save(fig, path, pdf)


# ----------------------------------------------------------------------------------------------
# Tables as images


@dataclass(frozen=True)
class TableRow:
    """One row of :func:`table_figure`: its cells (strings) and its style: 'normal', 'published'
    (italic, grey: numbers from the papers, not measured here) or 'section' (a bold heading in the
    first cell, spanning the row)."""

    cells: tuple[str, ...]
    style: str = "normal"


ROW_HEIGHT_IN = 0.3
_TABLE_TOP_IN, _TABLE_BOTTOM_IN, _TABLE_MARGIN_IN = 0.75, 0.2, 0.25
_NOTE_LINE_IN = 0.2
_NOTE_CHAR_IN = 0.066  # mean width of a character at the notes' 8.5 pt


def _wrap(notes: Sequence[str], width_in: float) -> list[str]:
    """Notes broken into lines that fit ``width_in`` inches at the notes' font size."""
    chars = max(20, int((width_in - 2 * _TABLE_MARGIN_IN) / _NOTE_CHAR_IN))
    return [line for note in notes for line in (textwrap.wrap(note, chars) or [""])]


def table_size(n_rows: int, col_widths_in: Sequence[float], notes: Sequence[str] = ()) -> tuple[float, float]:
    """(width, height) in inches of a :func:`table_figure` with ``n_rows`` rows (the header not
    counted), these columns and ``notes`` (wrapped to the table's width)."""
    width = float(sum(col_widths_in)) + 2 * _TABLE_MARGIN_IN
    lines = len(_wrap(notes, width))
    height = _TABLE_TOP_IN + (n_rows + 1) * ROW_HEIGHT_IN + _TABLE_BOTTOM_IN + lines * _NOTE_LINE_IN
    return width, height


def table_figure(header: Sequence[str], rows: Sequence[TableRow], path: str | Path,
                 col_widths_in: Sequence[float], title: str, notes: Sequence[str] = (),
                 align: Sequence[str] | None = None, pdf: bool = False, dpi: int = DPI) -> Path:
    """A booktabs-style table drawn as text: a title, a header rule, one line per row
    (:class:`TableRow`), a bottom rule, then ``notes`` (wrapped to the width). ``align``: 'left' or
    'right' per column (default: first column left, the rest right). Size: :func:`table_size`."""
    ncol = len(header)
    if len(col_widths_in) != ncol or any(len(r.cells) != ncol and r.style != "section" for r in rows):
        raise ValueError("every row needs one cell per column, and one width per column")
    align = ["left"] + ["right"] * (ncol - 1) if align is None else list(align)
    width, height = table_size(len(rows), col_widths_in, notes)
    notes = _wrap(notes, width)
    fig = _figure(width, height, dpi)
    pad = 0.08  # inches between a cell's edge and its text

    def fx(inches: float) -> float:
        return inches / width

    def fy(inches_from_top: float) -> float:
        return 1.0 - inches_from_top / height

    edges = np.concatenate([[_TABLE_MARGIN_IN], _TABLE_MARGIN_IN + np.cumsum(col_widths_in)])
    fig.text(fx(_TABLE_MARGIN_IN), fy(0.35), title, fontsize=12, weight="bold", va="center", ha="left")

    def put(row_index: int, cells: Sequence[str], **style) -> None:
        y = fy(_TABLE_TOP_IN + (row_index + 0.5) * ROW_HEIGHT_IN)
        for j, text in enumerate(cells):
            if align[j] == "left":
                fig.text(fx(edges[j] + pad), y, text, ha="left", va="center", fontsize=10, **style)
            else:
                fig.text(fx(edges[j + 1] - pad), y, text, ha="right", va="center", fontsize=10, **style)

    def rule(inches_from_top: float, lw: float) -> None:
        fig.add_artist(_line(fx(edges[0]), fx(edges[-1]), fy(inches_from_top), lw))

    rule(_TABLE_TOP_IN, 1.2)
    put(0, header, weight="bold")
    rule(_TABLE_TOP_IN + ROW_HEIGHT_IN, 0.8)
    for i, row in enumerate(rows, start=1):
        if row.style == "section":
            if i > 1:
                rule(_TABLE_TOP_IN + i * ROW_HEIGHT_IN, 0.4)
            y = fy(_TABLE_TOP_IN + (i + 0.5) * ROW_HEIGHT_IN)
            fig.text(fx(edges[0] + pad), y, row.cells[0], ha="left", va="center", fontsize=10,
                     weight="bold", color="#333333")
        elif row.style == "published":
            put(i, row.cells, style="italic", color="#666666")
        else:
            put(i, row.cells)
    bottom = _TABLE_TOP_IN + (len(rows) + 1) * ROW_HEIGHT_IN
    rule(bottom, 1.2)
    for k, note in enumerate(notes):
        fig.text(fx(_TABLE_MARGIN_IN), fy(bottom + (k + 0.75) * _NOTE_LINE_IN), note, ha="left",
                 va="center", fontsize=8.5, color="#444444")
    return _save(fig, path, pdf)


def _line(x0: float, x1: float, y: float, lw: float):
    from matplotlib.lines import Line2D

    return Line2D([x0, x1], [y, y], color="black", linewidth=lw)


def _fmt(v: object, digits: int = 2) -> str:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return f"{f:.{digits}f}" if np.isfinite(f) else "-"


#: Section headings of :func:`nme_table_figure`: the evaluate report's metric titles, in its order.
TABLE_SECTIONS: dict[str, str] = dict(METRIC_TITLES)


def nme_table_figure(summary: pd.DataFrame, path: str | Path, metrics: Sequence[str] | None = None,
                     n_images: int | None = None, max_error: float = 0.10, pdf: bool = False,
                     dpi: int = DPI) -> Path:
    """The evaluate stage's NME table (``nme_table.csv``: one row per metric and method, NMEs in %)
    as an image: per metric a heading, the measured methods, then the published numbers (italic,
    grey). Columns: method, the |yaw| bins 0-30 / 30-60 / 60-90, the balanced mean (the paper's
    Mean), its std, the mean over all images, the CED AUC (up to ``max_error``, as the evaluate
    stage computed it). Width 8.9 in; height :func:`table_size`."""
    need = {"metric", "method", "source", "0-30", "30-60", "60-90", "mean", "std", "all", "auc"}
    missing = need - set(summary.columns)
    if missing:
        raise DataError(_MEM, "nme_table", f"missing column(s) {sorted(missing)}")
    metrics = [m for m in TABLE_SECTIONS if m in set(summary["metric"])] if metrics is None else list(metrics)
    rows: list[TableRow] = []
    for metric in metrics:
        part = summary[summary["metric"] == metric]
        if part.empty:
            continue
        rows.append(TableRow((TABLE_SECTIONS.get(metric, metric),), "section"))
        for _, r in part.iterrows():
            pub = r["source"] == "published"
            rows.append(TableRow((str(r["method"]) + (f" {PUBLISHED_MARK}" if pub else ""),
                                  *(_fmt(r[k]) for k in ("0-30", "30-60", "60-90", "mean", "std", "all")),
                                  _fmt(r["auc"], 3)), "published" if pub else "normal"))
    header = ("Method", "0-30°", "30-60°", "60-90°", "Mean", "Std", "All", "AUC")
    widths = (2.9, 0.8, 0.8, 0.8, 0.8, 0.7, 0.8, 0.8)
    on = f" ({n_images} images)" if n_images else ""
    notes = ("NME: mean point error / sqrt(w·h) of the ground-truth 68-point (x, y) box, in %. Bins on "
             "|yaw| (60-90° holds |yaw| > 90° too); Mean: mean of the three bin means (the paper's Mean); "
             f"Std: their standard deviation; All: mean over all images; AUC: area under the CED up to "
             f"{100 * max_error:g} % NME.",
             f"{PUBLISHED_MARK} Published on the real AFLW2000-3D (italic, grey), not measured here.")
    return table_figure(header, rows, path, widths, f"NME by yaw range on the test set{on}", notes, pdf=pdf, dpi=dpi)


# ----------------------------------------------------------------------------------------------
# 5. Qualitative results


def select_by_yaw(yaw_deg: np.ndarray, n: int = 6, max_yaw: float = 90.0,
                  candidates: np.ndarray | None = None) -> np.ndarray:
    """Indices of ``n`` distinct images whose |yaw| (degrees) lies nearest to ``n`` evenly spaced
    targets from 0 to ``max_yaw``, ordered by |yaw|; ``candidates`` (bool mask or indices)
    restricts the choice. Fewer when fewer images are available."""
    yaw = np.abs(np.asarray(yaw_deg, dtype=np.float64))
    pool = np.arange(len(yaw))
    if candidates is not None:
        c = np.asarray(candidates)
        pool = pool[c] if c.dtype == bool else c.astype(np.int64)
    pool = pool[np.isfinite(yaw[pool])]
    chosen: list[int] = []
    for target in np.linspace(0.0, max_yaw, max(n, 0)):
        left = np.setdiff1d(pool, chosen)
        if left.size == 0:
            break
        chosen.append(int(left[np.argmin(np.abs(yaw[left] - target))]))
    return np.array(sorted(chosen, key=lambda i: (yaw[i], i)), dtype=np.int64)


def to_crop(points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """(..., 3) original-image pixels -> crop pixels through the similarity ``transform`` (3, 3)
    (the test file's ``transform``: (x, y) by ``T``, z times ``T[0, 0]``); the inverse of
    :func:`eval.predictions.to_image_batch`."""
    p = np.asarray(points, dtype=np.float64)
    t = np.asarray(transform, dtype=np.float64)
    out = np.empty(p.shape, dtype=np.float64)
    out[..., 0] = t[0, 0] * p[..., 0] + t[0, 1] * p[..., 1] + t[0, 2]
    out[..., 1] = t[1, 0] * p[..., 0] + t[1, 1] * p[..., 1] + t[1, 2]
    out[..., 2] = p[..., 2] * t[0, 0]
    return out


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(K, 3) unit normals (image frame: x right, y down, z towards the viewer) by summing the
    area-weighted normals of each vertex's triangles, oriented so that most point to the viewer."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = np.asarray(triangles, dtype=np.int64)
    fn = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, tri[:, k], fn)
    if n[:, 2].sum() < 0:
        n = -n
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, length, out=np.zeros_like(n), where=length > 0)


def shade_mesh(vertices: np.ndarray, triangles: np.ndarray, height: int, width: int,
               light: Sequence[float] = (-0.3, -0.4, 1.0), ambient: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """(shade (h, w) float32 in [0, 1], mask (h, w) bool): the mesh (vertices in image pixels)
    rendered with a z-buffer (:func:`model.uses.render_raster`) and Lambertian shading of its
    vertex normals under a light from the upper left in front (``light`` in the image frame)."""
    from model.uses import render_raster

    v = np.asarray(vertices, dtype=np.float64)
    light_dir = np.asarray(light, dtype=np.float64)
    light_dir = light_dir / np.linalg.norm(light_dir)
    lambert = np.clip(vertex_normals(v, triangles) @ light_dir, 0.0, 1.0)
    value = ambient + (1.0 - ambient) * lambert
    raster = render_raster(v, triangles, height, width)
    shade = raster.interpolate(value[:, None].astype(np.float64))[..., 0]
    return np.clip(shade, 0.0, 1.0).astype(np.float32), raster.mask


def overlay_cell(crop: np.ndarray, landmarks: np.ndarray | None, dense: np.ndarray | None,
                 triangles: np.ndarray | None, color: str, alpha: float = 0.6, scale: int = 2) -> np.ndarray:
    """One cell of :func:`qualitative_figure`: the crop (H, W, 3) uint8 upsampled ``scale`` times,
    the dense mesh ``dense`` (K, 3) crop pixels shaded grey and blended with ``alpha`` over it
    (needs ``triangles`` (T, 3) over the K vertices), then the 68 ``landmarks`` (68, 3) crop pixels
    joined along their contours in ``color``. Returns (scale*H, scale*W, 3) uint8."""
    from PIL import Image

    from model.uses import draw_landmarks

    crop = np.asarray(crop, dtype=np.uint8)
    h, w = crop.shape[:2]
    big = np.asarray(Image.fromarray(crop).resize((w * scale, h * scale), Image.BILINEAR), dtype=np.float32)
    if dense is not None and triangles is not None:
        pts = np.asarray(dense, dtype=np.float64) * [scale, scale, scale]
        pts[:, :2] += (scale - 1) / 2.0  # pixel centres of the upsampled image
        shade, mask = shade_mesh(pts, triangles, h * scale, w * scale)
        grey = np.repeat((235.0 * shade)[..., None], 3, axis=2)
        big = np.where(mask[..., None], (1 - alpha) * big + alpha * grey, big)
    out = np.clip(np.rint(big), 0, 255).astype(np.uint8)
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float64)[:, :2] * scale + (scale - 1) / 2.0
        out = draw_landmarks(out, pts, color=_rgb255(color), radius=1.6 * scale)
    return out


def qualitative_figure(crops: np.ndarray, columns: Mapping[str, tuple[np.ndarray | None, np.ndarray | None]],
                       triangles: np.ndarray, path: str | Path, row_labels: Sequence[str] | None = None,
                       nme: Mapping[str, np.ndarray] | None = None, cell_in: float = 2.0, pdf: bool = False,
                       dpi: int = DPI) -> Path:
    """A grid of R test crops (rows) x methods (columns): each cell the crop with that column's
    shaded dense mesh and 68 landmarks (:func:`overlay_cell`).

    ``crops`` (R, H, W, 3) uint8; ``columns``: label -> (landmarks (R, 68, 3) or None, dense
    (R, K, 3) or None), all in crop pixels (the ground truth first, by convention labelled
    :data:`GROUND_TRUTH`); ``triangles`` (T, 3) over the K dense vertices (the UV grid's,
    :func:`model.uses.uv_grid_triangles`); ``row_labels``: one per row (e.g. name and yaw);
    ``nme``: label -> (R,) per-image 2D 68-point NME (fractions) written in each cell.
    Size: (0.55 + C * ``cell_in``) x (0.45 + R * ``cell_in``) in.
    """
    crops = np.asarray(crops)
    r, c = len(crops), len(columns)
    if r == 0 or c == 0:
        raise DataError(_MEM, "crops", "nothing to draw")
    labels = list(columns)
    colours = method_colors(labels)
    width, height = 0.55 + c * cell_in, 0.45 + r * cell_in
    fig = _figure(width, height, dpi)
    gap = 0.04
    for j, label in enumerate(labels):
        lms, dense = columns[label]
        x0 = (0.55 + j * cell_in) / width
        fig.text(x0 + cell_in / 2 / width, 1 - 0.22 / height, label, ha="center", va="center",
                 fontsize=12, weight="bold", color=colours[label])
        for i in range(r):
            y0 = 1 - (0.45 + (i + 1) * cell_in) / height
            ax = fig.add_axes((x0 + gap / width, y0 + gap / height, (cell_in - 2 * gap) / width,
                               (cell_in - 2 * gap) / height))
            cell = overlay_cell(crops[i], None if lms is None else lms[i], None if dense is None else dense[i],
                                triangles, colours[label])
            ax.imshow(cell, interpolation="antialiased")
            _image_axes(ax)
            if nme is not None and label in nme and np.isfinite(nme[label][i]):
                ax.text(0.03, 0.03, f"NME {100 * nme[label][i]:.2f}%", transform=ax.transAxes, fontsize=8.5,
                        color="white", ha="left", va="bottom",
                        bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.5, "edgecolor": "none"})
    if row_labels is not None:
        for i, text in enumerate(row_labels):
            yc = 1 - (0.45 + (i + 0.5) * cell_in) / height
            fig.text(0.3 / width, yc, text, rotation=90, ha="center", va="center", fontsize=9.5)
    return _save(fig, path, pdf)


# ----------------------------------------------------------------------------------------------
# 6. Runtime


RUNTIME_COLUMNS = ("method", "source", "device", "images", "mean_ms", "median_ms", "note")


def runtime_table(runtimes_s: Mapping[str, np.ndarray], devices: Mapping[str, str] | None = None,
                  notes: Mapping[str, str] | None = None, published: bool = True) -> pd.DataFrame:
    """Milliseconds per image per method (columns :data:`RUNTIME_COLUMNS`).

    ``runtimes_s``: label -> (N,) seconds per image (the predictions' ``runtime_s``; NaN =
    unknown, left out); ``devices``: label -> where it ran. With ``published``, PRN's reported
    9.8 ms per image on a GTX 1080 is appended, marked source 'published'."""
    rows = []
    for m, rt in runtimes_s.items():
        r = np.asarray(rt, dtype=np.float64)
        ok = r[np.isfinite(r)]
        rows.append({"method": m, "source": "measured", "device": (devices or {}).get(m, ""),
                     "images": int(ok.size),
                     "mean_ms": 1000 * float(ok.mean()) if ok.size else np.nan,
                     "median_ms": 1000 * float(np.median(ok)) if ok.size else np.nan,
                     "note": (notes or {}).get(m, "")})
    if published:
        rows.append({"method": PUBLISHED_RUNTIME_LABEL, "source": "published", "device": "GTX 1080",
                     "images": np.nan, "mean_ms": PUBLISHED_PRN_MS_PER_IMAGE_GTX1080, "median_ms": np.nan,
                     "note": "reported in the paper"})
    return pd.DataFrame(rows, columns=list(RUNTIME_COLUMNS))


_RUNTIME_NOTE = ("Measured: the predict stage's wall time per batch (crop reading, network, decoding of the "
                 "map; the first batch also loads the weights) divided by the batch's images.")


def runtime_markdown(table: pd.DataFrame) -> str:
    """The runtime table as Markdown (published rows in italics, marked)."""
    lines = ["# Runtime per image", "", _RUNTIME_NOTE + " The median is robust to the first batch.", "",
             "| method | source | device | images | mean ms/image | median ms/image | note |",
             "|---|---|---|---:|---:|---:|---|"]
    for _, r in table.iterrows():
        pub = r["source"] == "published"
        name = f"*{r['method']}*" if pub else f"**{r['method']}**"
        images = "-" if not np.isfinite(float(r["images"])) else str(int(r["images"]))
        lines.append(f"| {name} | {r['source']} | {r['device'] or '-'} | {images} | {_fmt(r['mean_ms'], 1)} | "
                     f"{_fmt(r['median_ms'], 1)} | {r['note']} |")
    return "\n".join(lines) + "\n"


def runtime_table_figure(table: pd.DataFrame, path: str | Path, pdf: bool = False, dpi: int = DPI) -> Path:
    """The runtime table (:func:`runtime_table`) as an image, published rows italic and grey.
    Width 8.2 in; height :func:`table_size`."""
    rows = []
    for _, r in table.iterrows():
        pub = r["source"] == "published"
        images = "-" if not np.isfinite(float(r["images"])) else f"{int(r['images']):,}"
        rows.append(TableRow((str(r["method"]) + (f" {PUBLISHED_MARK}" if pub else ""), str(r["device"] or "-"),
                              images, _fmt(r["mean_ms"], 1), _fmt(r["median_ms"], 1)),
                             "published" if pub else "normal"))
    header = ("Method", "Device", "Images", "Mean ms/image", "Median ms/image")
    widths = (2.6, 1.4, 0.9, 1.5, 1.6)
    notes = (_RUNTIME_NOTE, f"{PUBLISHED_MARK} Published: PRN's 9.8 ms per image on a GTX 1080 (Feng et al., "
             "ECCV 2018), not measured here.")
    return table_figure(header, rows, path, widths, "Runtime per image", notes,
                        align=("left", "left", "right", "right", "right"), pdf=pdf, dpi=dpi)
