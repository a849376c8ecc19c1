"""Tables as images: the evaluate stage's NME table and the runtime table (PNG, and Markdown for
the runtime), drawn with the helpers of :mod:`eval.figures`.

* :func:`nme_table_figure`: ``nme_table.csv`` (yaw bins, balanced mean, published rows marked);
* :func:`runtime_table` / :func:`runtime_markdown` / :func:`runtime_table_figure`: milliseconds per
  image from the predictions' ``runtime_s``, beside PRN's published 9.8 ms (GTX 1080).
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eval.figures import DPI, new_figure, save_figure
from eval.report import METRIC_TITLES
from eval.tables import PUBLISHED_PRN_MS_PER_IMAGE_GTX1080
from uvgen.formats.errors import DataError

PUBLISHED_MARK = "\u2020"  # dagger: a published number, not measured here
PUBLISHED_RUNTIME_LABEL = "PRN (ECCV 2018)"
_MEM = "<memory>"

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


def table_size(
    n_rows: int, col_widths_in: Sequence[float], notes: Sequence[str] = ()
) -> tuple[float, float]:
    """(width, height) in inches of a :func:`table_figure` with ``n_rows`` rows (the header not
    counted), these columns and ``notes`` (wrapped to the table's width)."""
    width = float(sum(col_widths_in)) + 2 * _TABLE_MARGIN_IN
    lines = len(_wrap(notes, width))
    height = _TABLE_TOP_IN + (n_rows + 1) * ROW_HEIGHT_IN + _TABLE_BOTTOM_IN + lines * _NOTE_LINE_IN
    return width, height


def table_figure(
    header: Sequence[str],
    rows: Sequence[TableRow],
    path: str | Path,
    col_widths_in: Sequence[float],
    title: str,
    notes: Sequence[str] = (),
    align: Sequence[str] | None = None,
    pdf: bool = False,
    dpi: int = DPI,
) -> Path:
    """A booktabs-style table drawn as text: a title, a header rule, one line per row
    (:class:`TableRow`), a bottom rule, then ``notes`` (wrapped to the width). ``align``: 'left' or
    'right' per column (default: first column left, the rest right). Size: :func:`table_size`."""
    ncol = len(header)
    if len(col_widths_in) != ncol or any(
        len(r.cells) != ncol and r.style != "section" for r in rows
    ):
        raise ValueError("every row needs one cell per column, and one width per column")
    align = ["left"] + ["right"] * (ncol - 1) if align is None else list(align)
    width, height = table_size(len(rows), col_widths_in, notes)
    notes = _wrap(notes, width)
    fig = new_figure(width, height, dpi)
    pad = 0.08  # inches between a cell's edge and its text

    def fx(inches: float) -> float:
        return inches / width

    def fy(inches_from_top: float) -> float:
        return 1.0 - inches_from_top / height

    edges = np.concatenate([[_TABLE_MARGIN_IN], _TABLE_MARGIN_IN + np.cumsum(col_widths_in)])
    fig.text(
        fx(_TABLE_MARGIN_IN), fy(0.35), title, fontsize=12, weight="bold", va="center", ha="left"
    )

    def put(row_index: int, cells: Sequence[str], **style) -> None:
        y = fy(_TABLE_TOP_IN + (row_index + 0.5) * ROW_HEIGHT_IN)
        for j, text in enumerate(cells):
            if align[j] == "left":
                fig.text(fx(edges[j] + pad), y, text, ha="left", va="center", fontsize=10, **style)
            else:
                fig.text(
                    fx(edges[j + 1] - pad), y, text, ha="right", va="center", fontsize=10, **style
                )

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
            fig.text(
                fx(edges[0] + pad),
                y,
                row.cells[0],
                ha="left",
                va="center",
                fontsize=10,
                weight="bold",
                color="#333333",
            )
        elif row.style == "published":
            put(i, row.cells, style="italic", color="#666666")
        else:
            put(i, row.cells)
    bottom = _TABLE_TOP_IN + (len(rows) + 1) * ROW_HEIGHT_IN
    rule(bottom, 1.2)
    for k, note in enumerate(notes):
        fig.text(
            fx(_TABLE_MARGIN_IN),
            fy(bottom + (k + 0.75) * _NOTE_LINE_IN),
            note,
            ha="left",
            va="center",
            fontsize=8.5,
            color="#444444",
        )
    return save_figure(fig, path, pdf)


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


def nme_table_figure(
    summary: pd.DataFrame,
    path: str | Path,
    metrics: Sequence[str] | None = None,
    n_images: int | None = None,
    max_error: float = 0.10,
    pdf: bool = False,
    dpi: int = DPI,
) -> Path:
    """The evaluate stage's NME table (``nme_table.csv``: one row per metric and method, NMEs in %)
    as an image: per metric a heading, the measured methods, then the published numbers (italic,
    grey). Columns: method, the |yaw| bins 0-30 / 30-60 / 60-90, the balanced mean (the paper's
    Mean), its std, the mean over all images, the CED AUC (up to ``max_error``, as the evaluate
    stage computed it). Width 8.9 in; height :func:`table_size`."""
    need = {"metric", "method", "source", "0-30", "30-60", "60-90", "mean", "std", "all", "auc"}
    missing = need - set(summary.columns)
    if missing:
        raise DataError(_MEM, "nme_table", f"missing column(s) {sorted(missing)}")
    metrics = (
        [m for m in TABLE_SECTIONS if m in set(summary["metric"])]
        if metrics is None
        else list(metrics)
    )
    rows: list[TableRow] = []
    for metric in metrics:
        part = summary[summary["metric"] == metric]
        if part.empty:
            continue
        rows.append(TableRow((TABLE_SECTIONS.get(metric, metric),), "section"))
        for _, r in part.iterrows():
            pub = r["source"] == "published"
            rows.append(
                TableRow(
                    (
                        str(r["method"]) + (f" {PUBLISHED_MARK}" if pub else ""),
                        *(_fmt(r[k]) for k in ("0-30", "30-60", "60-90", "mean", "std", "all")),
                        _fmt(r["auc"], 3),
                    ),
                    "published" if pub else "normal",
                )
            )
    header = ("Method", "0-30°", "30-60°", "60-90°", "Mean", "Std", "All", "AUC")
    widths = (2.9, 0.8, 0.8, 0.8, 0.8, 0.7, 0.8, 0.8)
    on = f" ({n_images} images)" if n_images else ""
    notes = (
        "NME: mean point error / sqrt(w·h) of the ground-truth 68-point (x, y) box, in %. Bins on "
        "|yaw| (60-90° holds |yaw| > 90° too); Mean: mean of the three bin means (the paper's "
        "Mean); "
        f"Std: their standard deviation; All: mean over all images; AUC: area under the CED up to "
        f"{100 * max_error:g} % NME.",
        f"{PUBLISHED_MARK} Published on the real AFLW2000-3D (italic, grey), not measured here.",
    )
    return table_figure(
        header, rows, path, widths, f"NME by yaw range on the test set{on}", notes, pdf=pdf, dpi=dpi
    )


# ----------------------------------------------------------------------------------------------
# 6. Runtime


RUNTIME_COLUMNS = ("method", "source", "device", "images", "mean_ms", "median_ms", "note")


def runtime_table(
    runtimes_s: Mapping[str, np.ndarray],
    devices: Mapping[str, str] | None = None,
    notes: Mapping[str, str] | None = None,
    published: bool = True,
) -> pd.DataFrame:
    """Milliseconds per image per method (columns :data:`RUNTIME_COLUMNS`).

    ``runtimes_s``: label -> (N,) seconds per image (the predictions' ``runtime_s``; NaN =
    unknown, left out); ``devices``: label -> where it ran. With ``published``, PRN's reported
    9.8 ms per image on a GTX 1080 is appended, marked source 'published'."""
    rows = []
    for m, rt in runtimes_s.items():
        r = np.asarray(rt, dtype=np.float64)
        ok = r[np.isfinite(r)]
        rows.append(
            {
                "method": m,
                "source": "measured",
                "device": (devices or {}).get(m, ""),
                "images": int(ok.size),
                "mean_ms": 1000 * float(ok.mean()) if ok.size else np.nan,
                "median_ms": 1000 * float(np.median(ok)) if ok.size else np.nan,
                "note": (notes or {}).get(m, ""),
            }
        )
    if published:
        rows.append(
            {
                "method": PUBLISHED_RUNTIME_LABEL,
                "source": "published",
                "device": "GTX 1080",
                "images": np.nan,
                "mean_ms": PUBLISHED_PRN_MS_PER_IMAGE_GTX1080,
                "median_ms": np.nan,
                "note": "reported in the paper",
            }
        )
    return pd.DataFrame(rows, columns=list(RUNTIME_COLUMNS))


_RUNTIME_NOTE = (
    "Measured: the predict stage's wall time per batch (crop reading, network, decoding of the "
    "map; the first batch also loads the weights) divided by the batch's images."
)


def runtime_markdown(table: pd.DataFrame) -> str:
    """The runtime table as Markdown (published rows in italics, marked)."""
    lines = [
        "# Runtime per image",
        "",
        _RUNTIME_NOTE + " The median is robust to the first batch.",
        "",
        "| method | source | device | images | mean ms/image | median ms/image | note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for _, r in table.iterrows():
        pub = r["source"] == "published"
        name = f"*{r['method']}*" if pub else f"**{r['method']}**"
        images = "-" if not np.isfinite(float(r["images"])) else str(int(r["images"]))
        lines.append(
            f"| {name} | {r['source']} | {r['device'] or '-'} | {images} | "
            f"{_fmt(r['mean_ms'], 1)} | "
            f"{_fmt(r['median_ms'], 1)} | {r['note']} |"
        )
    return "\n".join(lines) + "\n"


def runtime_table_figure(
    table: pd.DataFrame, path: str | Path, pdf: bool = False, dpi: int = DPI
) -> Path:
    """The runtime table (:func:`runtime_table`) as an image, published rows italic and grey.
    Width 8.2 in; height :func:`table_size`."""
    rows = []
    for _, r in table.iterrows():
        pub = r["source"] == "published"
        images = "-" if not np.isfinite(float(r["images"])) else f"{int(r['images']):,}"
        rows.append(
            TableRow(
                (
                    str(r["method"]) + (f" {PUBLISHED_MARK}" if pub else ""),
                    str(r["device"] or "-"),
                    images,
                    _fmt(r["mean_ms"], 1),
                    _fmt(r["median_ms"], 1),
                ),
                "published" if pub else "normal",
            )
        )
    header = ("Method", "Device", "Images", "Mean ms/image", "Median ms/image")
    widths = (2.6, 1.4, 0.9, 1.5, 1.6)
    notes = (
        _RUNTIME_NOTE,
        f"{PUBLISHED_MARK} Published: PRN's 9.8 ms per image on a GTX 1080 (Feng et al., "
        "ECCV 2018), not measured here.",
    )
    return table_figure(
        header,
        rows,
        path,
        widths,
        "Runtime per image",
        notes,
        align=("left", "left", "right", "right", "right"),
        pdf=pdf,
        dpi=dpi,
    )
