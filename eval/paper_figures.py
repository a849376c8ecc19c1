"""The figures stage's data: which test images each figure shows and what each panel gets, read
from the test file and the outputs of the predict and evaluate stages (drawing: eval/figures.py,
eval/figure_tables.py, eval/figure_qualitative.py).

:func:`write_paper_figures` writes into ``out_dir``:

* ``uv_space.png`` / ``.pdf``: a test crop, its UV texture map, its position map and the map's
  x, y, z channels (paper Fig. 2), for the image named ``uv_sample`` or else the one whose |yaw|
  is nearest ``uv_sample_yaw``;
* ``weight_mask.png`` / ``.pdf``: the loss weights by region beside the face mask (paper Fig. 3);
* ``ced.png`` / ``.pdf``: CED curves, 68 points and dense vertices, 2D and 3D, every method of the
  evaluate stage's ``per_image.csv``;
* ``nme_table.png``: the evaluate stage's ``nme_table.csv`` as an image (its Markdown is
  ``<eval_dir>/nme_table.md``);
* ``qualitative.png``: ``qualitative_rows`` test crops across |yaw| 0..``qualitative_max_yaw``, the
  ground truth and each method of the predict stage's manifest (shaded dense mesh + 68 landmarks);
* ``runtime.md`` / ``runtime.png``: milliseconds per image per method (predictions' ``runtime_s``)
  beside PRN's published 9.8 ms on a GTX 1080.

Everything is drawn in the test file's crop pixels (predictions are taken there from
original-image pixels through each test record's ``transform``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from eval import figure_qualitative as fq
from eval import figure_tables as ft
from eval import figures as fg
from eval.evaluate import match_names
from eval.figure_settings import FigureSettings
from eval.methods import read_manifest
from eval.predictions import PredictionsFile, name_key
from eval.tables import read_per_image
from uvgen.formats.errors import DataError
from uvgen.h5store import PositionMapFile, UVData


def gap_filler(model_dir: Path | None, layout: UVData) -> Callable[[np.ndarray], np.ndarray]:
    """A function (S, S, 3) map -> map with the face pixels that the model's UV layout leaves
    uncovered filled from their neighbours (:func:`model.uses.fill_gaps`); the identity when
    ``model_dir`` is None or absent."""
    if model_dir is None or not Path(model_dir).is_dir():
        return lambda posmap: posmap
    from model.uses import build_face_uv, fill_gaps
    from uvgen.formats.bfm import load_bfm

    face_uv = build_face_uv(load_bfm(model_dir), face_mask=layout.face_mask, kpt_uv=layout.kpt_uv)
    return lambda posmap: fill_gaps(posmap, face_uv)


def dense_filler(
    fill: Callable[[np.ndarray], np.ndarray], layout: UVData
) -> Callable[[np.ndarray], np.ndarray]:
    """The same filling for dense vertices (K, 3) in ``layout.face_ind`` order (a method's values at
    the uncovered pixels are untrained: drawn as they are they would tear the mesh)."""
    size = layout.face_mask.shape

    def run(dense: np.ndarray) -> np.ndarray:
        full = np.zeros((size[0] * size[1], 3), dtype=np.float64)
        full[layout.face_ind] = dense
        return fill(full.reshape(*size, 3)).reshape(-1, 3)[layout.face_ind]

    return run


def yaw_label(yaw_deg: float) -> str:
    """'yaw +47°', 'yaw -12°', 'yaw 0°' (rounded to whole degrees)."""
    v = int(round(float(yaw_deg)))
    return f"yaw {v:+d}°" if v else "yaw 0°"


def device_label(meta: dict) -> str:
    """'cuda, batch 16' from a predictions file's metadata (what is known of it)."""
    parts = [meta.get("device", "") or "?"]
    if meta.get("batch_size"):
        parts.append(f"batch {meta['batch_size']}")
    return ", ".join(parts)


def pick_sample(names: list[str], yaw_deg: np.ndarray, name: str | None, target_yaw: float) -> int:
    """Row of the test image named ``name`` (any folder or extension), else the one whose |yaw| is
    nearest ``target_yaw`` degrees (the first such)."""
    if name is not None:
        keys = [name_key(n) for n in names]
        if name_key(str(name)) not in keys:
            raise DataError("params.yaml", "figures.uv_sample", f"no test image named {name!r}")
        return keys.index(name_key(str(name)))
    return int(np.argmin(np.abs(np.abs(np.asarray(yaw_deg, dtype=np.float64)) - target_yaw)))


def uv_figures(p: FigureSettings, out: Path) -> list[Path]:
    """``uv_space`` and ``weight_mask`` from the test file (and its model, for the gaps)."""
    with PositionMapFile(p.test_file) as f:
        layout = f.uv
        yaw = np.array([r.yaw_deg for r in f.records()], dtype=np.float64)
        i = pick_sample(f.names, yaw, p.uv_sample, p.uv_sample_yaw)
        crop, posmap, name = f.image(i), f.posmap(i), f.names[i]
    posmap = gap_filler(p.model_dir, layout)(posmap)
    title = f"UV position map of test image {name_key(name)} ({yaw_label(yaw[i])}), crop pixels"
    return [
        fg.uv_space_figure(crop, posmap, out / "uv_space.png", title=title, pdf=p.pdf, dpi=p.dpi),
        fg.weight_mask_figure(
            layout.weight_mask,
            layout.face_mask,
            out / "weight_mask.png",
            layout.kpt_uv,
            pdf=p.pdf,
            dpi=p.dpi,
        ),
    ]


def ced_x_max(p: FigureSettings, per_image: pd.DataFrame) -> float:
    """The CED axis' right end: ``ced_axis_max`` ('auto': :func:`eval.figures.ced_axis_limit`)."""
    if p.ced_axis_max == "auto":
        return fg.ced_axis_limit(per_image, max_error=p.max_error)
    return float(p.ced_axis_max)


def table_figures(p: FigureSettings, out: Path, per_image: pd.DataFrame) -> list[Path]:
    """``ced`` from the evaluate stage's per-image table and ``nme_table`` from its summary CSV."""
    table_csv = Path(p.eval_dir) / "nme_table.csv"
    if not table_csv.is_file():
        raise DataError(table_csv, None, "not found: run the evaluate stage first")
    summary = pd.read_csv(table_csv)
    return [
        fg.ced_figure(
            per_image,
            out / "ced.png",
            max_error=p.max_error,
            x_max=ced_x_max(p, per_image),
            pdf=p.pdf,
            dpi=p.dpi,
        ),
        ft.nme_table_figure(
            summary,
            out / "nme_table.png",
            n_images=len(per_image),
            max_error=p.max_error,
            dpi=p.dpi,
        ),
    ]


def prediction_figures(p: FigureSettings, out: Path, per_image: pd.DataFrame) -> list[Path]:
    """``qualitative`` and ``runtime`` from the predict stage's files (methods in manifest
    order)."""
    from model.uses import uv_grid_triangles

    manifest = read_manifest(p.predictions_dir)
    files = [PredictionsFile(Path(p.predictions_dir) / e["file"]) for e in manifest["methods"]]
    try:
        with PositionMapFile(p.test_file) as f:
            names = f.names
            recs = f.records()
            layout = f.uv
            transforms = np.array([r.transform for r in recs], dtype=np.float64).reshape(-1, 3, 3)
            yaw = np.array([r.yaw_deg for r in recs], dtype=np.float64)
            matches = [match_names(names, pf.names, pf.source).index for pf in files]
            have_all = (
                np.all([m >= 0 for m in matches], axis=0) if matches else np.ones(len(names), bool)
            )
            rows = fq.select_by_yaw(
                yaw, p.qualitative_rows, p.qualitative_max_yaw, candidates=have_all
            )
            if rows.size == 0:
                raise DataError(
                    p.predictions_dir, "names", "no test image has a prediction from every method"
                )
            fill = gap_filler(p.model_dir, layout)
            fill_dense = dense_filler(fill, layout)
            crops = np.stack([f.image(int(i)) for i in rows])
            gt_dense = np.stack(
                [fill(f.posmap(int(i))).reshape(-1, 3)[layout.face_ind] for i in rows]
            )
        t = transforms[rows]
        gt_lm = np.stack(
            [fq.to_crop(recs[int(i)].extras["landmarks_gt"], t[k]) for k, i in enumerate(rows)]
        )
        columns: dict = {fg.GROUND_TRUTH: (gt_lm, gt_dense)}
        for pf, m in zip(files, matches):
            idx = m[rows]
            lm = pf.landmarks_rows(idx) if pf.has_landmarks else None
            dense = pf.dense_rows(idx) if pf.dense_count == layout.face_ind.size else None
            columns[pf.method] = (
                None
                if lm is None
                else np.stack([fq.to_crop(lm[k], t[k]) for k in range(len(rows))]),
                None
                if dense is None
                else np.stack([fq.to_crop(fill_dense(d), tk) for d, tk in zip(dense, t)]),
            )
        runtimes = {pf.method: pf.runtime_s for pf in files}
        devices = {pf.method: device_label(pf.meta) for pf in files}
    finally:
        for pf in files:
            pf.close()

    by_name = per_image.assign(_key=[name_key(n) for n in per_image["name"]]).set_index("_key")
    keys = [name_key(names[int(i)]) for i in rows]
    nme = {
        m: by_name[f"{m}/nme_2d_68"].reindex(keys).to_numpy(dtype=np.float64)
        for m in columns
        if f"{m}/nme_2d_68" in by_name.columns
    }
    labels = [f"{k}, {yaw_label(yaw[int(i)])}" for k, i in zip(keys, rows)]
    written = [
        fq.qualitative_figure(
            crops,
            columns,
            uv_grid_triangles(layout.face_mask),
            out / "qualitative.png",
            row_labels=labels,
            nme=nme,
            dpi=p.dpi,
        )
    ]
    table = ft.runtime_table(runtimes, devices)
    md = out / "runtime.md"
    md.write_text(ft.runtime_markdown(table), encoding="utf-8")
    written += [md, ft.runtime_table_figure(table, out / "runtime.png", dpi=p.dpi)]
    return written


def write_paper_figures(p: FigureSettings) -> list[Path]:
    """Every figure of the stage into ``p.out_dir``; returns every file written (PDFs included)."""
    out = Path(p.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    per_image_csv = Path(p.eval_dir) / "per_image.csv"
    if not per_image_csv.is_file():
        raise DataError(per_image_csv, None, "not found: run the evaluate stage first")
    per_image = read_per_image(per_image_csv)
    written = (
        uv_figures(p, out)
        + table_figures(p, out, per_image)
        + prediction_figures(p, out, per_image)
    )
    pdfs = [
        w.with_suffix(".pdf")
        for w in written
        if p.pdf and w.suffix == ".png" and w.with_suffix(".pdf").is_file()
    ]
    return written + pdfs
