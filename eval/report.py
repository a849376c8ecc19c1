"""Report files of an evaluation: tables, DVC metrics, CED data and figures.

From the :class:`eval.evaluate.MethodResult` of each method, :func:`write_report` writes into one
folder (NME values in %, fractions of images in [0, 1]):

* ``nme_table.md``: one Markdown table per metric (68-point 2D NME first, the paper's table): the
  measured methods, then the published numbers of docs/conventions.md section 7, marked
  ``published``;
* ``nme_table.csv``: the same rows as one long table (columns :data:`TABLE_COLUMNS`);
* ``metrics.json``: flat keys ``<method>/<metric>/<stat>`` (stat: 0-30, 30-60, 60-90, mean =
  balanced mean of the bin means, std, all = mean over all images, auc = CED area to
  ``max_error``) and ``<method>/n_images``, ``n_missing``, ``n_extra``, ``ms_per_image``: what
  ``dvc metrics show`` lists; undefined values are null;
* ``per_image.csv``: name, yaw, then ``<method>/<metric>`` per image (fractions, not %);
* ``unmatched.csv``: method, name, status ('missing': a test image without a prediction,
  'extra': a prediction for an image not in the test set);
* ``ced_<metric>.csv``: WIDE CED data: column ``nme`` (threshold, %) and one column per method
  (fraction of images with NME <= nme); DVC draws one line per column when the plot names the
  columns as y (dvc.yaml top-level ``plots``, ``template: simple``);
* ``figures/ced_<metric>.png`` (:func:`eval.ced.plot_ced`) and ``.pdf`` (the same figure).

``dvc plots show`` renders these offline with the page template of :mod:`eval.plots_template`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eval.ced import ced_auc, ced_curve, plot_ced
from eval.evaluate import MethodResult, combined_per_image
from eval.metrics import YAW_BIN_LABELS
from eval.pose import POSE_METRICS, PROTOCOL_MAX_DEG, pose_mae
from eval.tables import (
    METRICS,
    PUBLISHED_NME_68,
    PUBLISHED_PRN_MS_PER_IMAGE_GTX1080,
    PUBLISHED_RECON_NME,
    summarise,
    write_per_image,
)

MEASURED, PUBLISHED = "measured", "published"
STATS = (*YAW_BIN_LABELS, "mean", "std", "all")
TABLE_COLUMNS = (
    "metric",
    "method",
    "source",
    *STATS,
    "auc",
    "n_images",
    "n_missing",
    "n_extra",
    "ms_per_image",
    "note",
)
CED_METRICS = ("nme_2d_68", "nme_3d_68", "recon_3d_dense")
METRIC_TITLES = {
    "nme_2d_68": "68 landmarks, 2D NME (%)",
    "nme_3d_68": "68 landmarks, 3D NME (%)",
    "nme_2d_68_re": "68 landmarks, re-annotated (3DDFA), 2D NME (%)",
    "nme_2d_dense": "Dense face vertices, 2D NME (%)",
    "nme_3d_dense": "Dense face vertices, 3D NME (%)",
    "recon_3d_dense": "3D face reconstruction, NME after rigid alignment (%)",
}
METRIC_PROTOCOL = {
    "nme_2d_68": "normaliser sqrt(w*h) of the ground-truth 68 points' (x, y) box; (x, y) error",
    "nme_3d_68": "normaliser as 2D; (x, y, z) error, each point set shifted to min z = 0",
    "nme_2d_68_re": "3DDFA's re-annotated 2D landmarks; normaliser sqrt(w*h) of THEIR box",
    "nme_2d_dense": "the common face pixels (face_ind); normaliser the 68 ground-truth points' box",
    "nme_3d_dense": "as dense 2D, (x, y, z) error, each set shifted to min z = 0",
    "recon_3d_dense": "dense (x, y, z) error after rigid alignment (Kabsch; similarity with "
    "recon_scale); normaliser the 68 ground-truth points' box",
}
"""Per metric: its normaliser and points (printed under each table)."""
_MEAN_KINDS = (
    "*mean* = balanced mean of the three |yaw| bin means (the papers' Mean), *std* = population "
    "std of the bin means, *all* = mean over all images"
)
_PRN_PUBLISHED = "PRN (ECCV 2018)"


# ----------------------------------------------------------------------------------------------
# Tables


def summary_table(results: Sequence[MethodResult], max_error: float = 0.10) -> pd.DataFrame:
    """Long table, one row per (metric, method): measured rows, then the published ones.

    Columns :data:`TABLE_COLUMNS`; NMEs in %, ``auc`` the CED area on [0, max_error] (failed or
    missing images count as misses), ``ms_per_image`` the mean prediction time per image.
    """
    rows = []
    for metric in METRICS:
        for r in results:
            if metric not in r.metrics:
                continue
            # missing images: reported in n_missing and unmatched.csv
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = summarise(r.per_image, [metric], percent=True).loc[metric]
            vals = r.per_image[metric].to_numpy(dtype=np.float64)
            rows.append(
                {
                    "metric": metric,
                    "method": r.method,
                    "source": MEASURED,
                    **{k: float(s[k]) for k in STATS},
                    "auc": ced_auc(vals, max_error),
                    "n_images": int(np.isfinite(vals).sum()),
                    "n_missing": len(r.matching.missing),
                    "n_extra": len(r.matching.extra),
                    "ms_per_image": 1000.0 * r.runtime_s,
                    "note": _measured_note(r),
                }
            )
        rows += _published_rows(metric)
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def _measured_note(r: MethodResult) -> str:
    """Where the time was measured: 'device cpu', 'external file(s)'..."""
    if "device" in r.meta:
        return f"device {r.meta['device']}"
    return r.meta.get("source", "")


def _published_rows(metric: str) -> list[dict]:
    empty = {"auc": math.nan, "n_images": math.nan, "n_missing": math.nan, "n_extra": math.nan}
    out = []
    if metric == "nme_2d_68":
        for name, vals in PUBLISHED_NME_68.items():
            ms = PUBLISHED_PRN_MS_PER_IMAGE_GTX1080 if name == _PRN_PUBLISHED else math.nan
            out.append(
                {
                    "metric": metric,
                    "method": name,
                    "source": PUBLISHED,
                    **{k: vals.get(k, math.nan) for k in STATS},
                    **empty,
                    "ms_per_image": ms,
                    "note": "AFLW2000-3D, paper" + (", GTX 1080" if name == _PRN_PUBLISHED else ""),
                }
            )
    elif metric == "recon_3d_dense":
        for name, mean in PUBLISHED_RECON_NME.items():
            out.append(
                {
                    "metric": metric,
                    "method": name,
                    "source": PUBLISHED,
                    **{k: math.nan for k in STATS},
                    "mean": mean,
                    **empty,
                    "ms_per_image": math.nan,
                    "note": "AFLW2000-3D, as reported in the PRN paper",
                }
            )
    return out


def _fmt(v: object, digits: int = 2) -> str:
    if isinstance(v, (float, np.floating)):
        return "-" if not np.isfinite(v) else f"{v:.{digits}f}"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return str(v)


def pose_summary(results: Sequence[MethodResult], pose_deg: np.ndarray | None) -> pd.DataFrame:
    """Head-pose MAE (degrees) per method over the protocol images (:func:`eval.pose.pose_mae`):
    columns method, pitch, yaw, roll, mean, n, n_protocol; empty without ground-truth angles."""
    cols = ["method", "pitch", "yaw", "roll", "mean", "n", "n_protocol"]
    rows = []
    if pose_deg is not None:
        for r in results:
            if POSE_METRICS[0] in r.metrics:
                err = r.per_image[list(POSE_METRICS)].to_numpy(dtype=np.float64)
                rows.append({"method": r.method, **pose_mae(err, pose_deg)})
    return pd.DataFrame(rows, columns=cols)


def _pose_lines(pose: pd.DataFrame) -> list[str]:
    if pose.empty:
        return []
    lines = [
        "## Head pose, mean absolute error (degrees)",
        "",
        f"Over the images whose ground-truth pitch, yaw and roll all lie within +-"
        f"{PROTOCOL_MAX_DEG:g} degrees as stored ({int(pose['n_protocol'].iloc[0])} here; 1,969 "
        "of the real 2,000); *mean* = mean of the three angles' MAE; the closer of a rotation's "
        "two Euler triples is compared (eval/pose.py).",
        "",
        "| method | pitch | yaw | roll | mean | images |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for _, row in pose.iterrows():
        cells = [_fmt(row[k]) for k in ("pitch", "yaw", "roll", "mean")]
        lines.append(f"| **{row['method']}** | " + " | ".join(cells) + f" | {int(row['n'])} |")
    return [*lines, ""]


def markdown_report(
    summary: pd.DataFrame,
    results: Sequence[MethodResult],
    test_file: str = "",
    max_error: float = 0.10,
    notes: Sequence[str] = (),
    pose: pd.DataFrame | None = None,
) -> str:
    """Markdown: one table per metric (measured rows, then published rows marked as such),
    then the images without predictions and the extra ones, then ``notes`` (one bullet each)."""
    lines = ["# Evaluation on the test set" + (f" (`{test_file}`)" if test_file else ""), ""]
    lines += [
        "NME = mean point error / sqrt(w*h) of a ground-truth (x, y) box, in % (each table names "
        "its normaliser; 3D: each point set shifted to min z = 0; reconstruction: after rigid "
        "alignment). "
        "Bins on |yaw| in degrees: [0,30], (30,60], (60,inf); *mean* = mean of the three bin means "
        "(the paper's Mean), *std* = their std, *all* = mean over all images; "
        f"*AUC* = area under the CED up to {100 * max_error:g}% (normalised to 1). "
        "Rows marked **published** are the numbers reported on the real AFLW2000-3D "
        "(docs/conventions.md section 7), "
        "not measured here.",
        "",
    ]
    head = ["method", "source", *STATS, "AUC", "images", "missing", "ms/image"]
    for metric in METRICS:
        part = summary[summary["metric"] == metric]
        if part.empty:
            continue
        lines += [
            f"## {METRIC_TITLES[metric]}",
            "",
            f"{METRIC_PROTOCOL[metric]}; {_MEAN_KINDS}.",
            "",
            "| " + " | ".join(head) + " |",
            "|"
            + "|".join(["---"] + ["---:" if h not in ("source",) else "---" for h in head[1:]])
            + "|",
        ]
        for _, row in part.iterrows():
            pub = row["source"] == PUBLISHED
            name = f"*{row['method']}*" if pub else f"**{row['method']}**"
            cells = [
                name,
                "published" if pub else "measured",
                *[_fmt(row[k]) for k in STATS],
                _fmt(row["auc"], 3),
                _fmt(row["n_images"] if not pub else math.nan, 0),
                _fmt(row["n_missing"] if not pub else math.nan, 0),
                _fmt(row["ms_per_image"], 1),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += _pose_lines(pose if pose is not None else pd.DataFrame())
    if (summary["source"] == PUBLISHED).any():
        lines += [
            "Published rows: the papers' numbers on the real AFLW2000-3D "
            "(docs/conventions.md section 7); the 3D "
            "reconstruction numbers as reported in the PRN paper; "
            "PRN's 9.8 ms per image on a GTX 1080.",
            "",
        ]
    lines += [
        "## Coverage and timing",
        "",
        "| method | predictions | images | missing | extra | ms/image | timed on |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.method} | `{r.source}` | {r.matching.n_matched} | {len(r.matching.missing)} | "
            f"{len(r.matching.extra)} | {_fmt(1000.0 * r.runtime_s, 1)} | "
            f"{_measured_note(r) or '-'} |"
        )
    lines.append("")
    for r in results:
        for label, names in (
            ("missing (no prediction)", r.matching.missing),
            ("extra (not in the test set)", r.matching.extra),
        ):
            if names:
                shown = ", ".join(f"`{n}`" for n in names[:20]) + (
                    ", ..." if len(names) > 20 else ""
                )
                lines += [f"- {r.method}: {len(names)} {label}: {shown} (all in unmatched.csv)"]
    if notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines).rstrip() + "\n"


def metrics_json(summary: pd.DataFrame) -> dict[str, float | int | None]:
    """Flat ``<method>/<metric>/<stat>`` keys of the measured rows (+ per-method counts, time)."""
    out: dict[str, float | int | None] = {}
    measured = summary[summary["source"] == MEASURED]
    for _, row in measured.iterrows():
        for stat in (*STATS, "auc"):
            out[f"{row['method']}/{row['metric']}/{stat}"] = _json_num(row[stat])
    for method, part in measured.groupby("method", sort=False):
        first = part.iloc[0]
        out[f"{method}/n_images"] = int(part["n_images"].max())
        out[f"{method}/n_missing"] = int(first["n_missing"])
        out[f"{method}/n_extra"] = int(first["n_extra"])
        out[f"{method}/ms_per_image"] = _json_num(first["ms_per_image"])
    return out


def _json_num(v: object) -> float | None:
    f = float(v)  # type: ignore[arg-type]
    return round(f, 6) if math.isfinite(f) else None


def unmatched_table(results: Sequence[MethodResult]) -> pd.DataFrame:
    """method, name, status ('missing' | 'extra') for every unmatched image of every method."""
    rows = [(r.method, n, "missing") for r in results for n in r.matching.missing]
    rows += [(r.method, n, "extra") for r in results for n in r.matching.extra]
    return pd.DataFrame(rows, columns=["method", "name", "status"])


# ----------------------------------------------------------------------------------------------
# CED


def ced_table(
    results: Sequence[MethodResult],
    metric: str = "nme_2d_68",
    max_error: float = 0.10,
    n_points: int = 101,
    columns: Sequence[str] = (),
) -> pd.DataFrame:
    """WIDE CED data: ``nme`` (threshold in %, 0 .. 100*max_error) and one column per method
    that has ``metric`` (fraction of test images with NME <= threshold; missing = miss).

    ``columns``: method columns that must exist (in this order, first) even without results,
    left empty (NaN), so that a plot naming them still renders when a method was left out."""
    x = np.linspace(0.0, max_error, n_points)
    data = {"nme": np.round(100.0 * x, 6)}
    for name in columns:
        data[name] = np.full(n_points, np.nan)
    for r in results:
        if metric in r.metrics:
            _, y = ced_curve(r.per_image[metric].to_numpy(dtype=np.float64), max_error, n_points)
            data[r.method] = np.round(y, 6)
    return pd.DataFrame(data)


def write_ced_figures(
    results: Sequence[MethodResult],
    metric: str,
    png: Path,
    pdf: Path | None = None,
    max_error: float = 0.10,
) -> list[Path]:
    """PNG (eval.ced.plot_ced) and, if ``pdf``, the same figure as a one-page PDF."""
    curves = {
        r.method: r.per_image[metric].to_numpy(dtype=np.float64)
        for r in results
        if metric in r.metrics
    }
    if not curves:
        return []
    title = f"CED: {METRIC_TITLES[metric].replace(' (%)', '')}"
    out = [plot_ced(curves, png, title=title, max_error=max_error)]
    if pdf is not None:
        out.append(plot_ced(curves, pdf, title=title, max_error=max_error))  # vector PDF
    return out


# ----------------------------------------------------------------------------------------------
# Everything


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    table_csv: Path
    metrics_json: Path
    per_image_csv: Path
    unmatched_csv: Path
    ced_csv: dict[str, Path]
    figures: list[Path]


def write_report(
    results: Sequence[MethodResult],
    out_dir: str | Path,
    test_file: str = "",
    max_error: float = 0.10,
    ced_metrics: Sequence[str] = CED_METRICS,
    n_points: int = 101,
    figures: bool = True,
    notes: Sequence[str] = (),
    ced_columns: Sequence[str] = (),
    pose_deg: np.ndarray | None = None,
) -> ReportFiles:
    """Write every report file of the module docstring into ``out_dir``; returns their paths.
    ``notes``: extra lines for the Markdown report (e.g. methods left out); ``ced_columns``: method
    columns every CED CSV has even when empty (see :func:`ced_table`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summary_table(results, max_error)
    pose = pose_summary(results, pose_deg)
    md = out / "nme_table.md"
    md.write_text(
        markdown_report(summary, results, test_file, max_error, notes, pose), encoding="utf-8"
    )
    csv = out / "nme_table.csv"
    summary.to_csv(csv, index=False, float_format="%.6g")
    if not pose.empty:
        pose.to_csv(out / "pose_table.csv", index=False, float_format="%.6g")
    js = out / "metrics.json"
    metrics = metrics_json(summary)
    for _, row in pose.iterrows():
        for k in ("pitch", "yaw", "roll", "mean"):
            metrics[f"{row['method']}/pose_mae/{k}"] = _json_num(row[k])
    js.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    per_image = write_per_image(combined_per_image(results), out / "per_image.csv")
    unmatched = out / "unmatched.csv"
    unmatched_table(results).to_csv(unmatched, index=False)
    ced_files, figs = {}, []
    for metric in ced_metrics:
        path = out / f"ced_{metric}.csv"
        ced_table(results, metric, max_error, n_points, ced_columns).to_csv(
            path, index=False, float_format="%.6g"
        )
        ced_files[metric] = path
        if figures:
            figs += write_ced_figures(
                results,
                metric,
                out / "figures" / f"ced_{metric}.png",
                out / "figures" / f"ced_{metric}.pdf",
                max_error,
            )
    return ReportFiles(md, csv, js, per_image, unmatched, ced_files, figs)
