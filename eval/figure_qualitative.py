"""The qualitative figure: test crops across the yaw range, one column per method plus the ground
truth, each cell the shaded dense mesh over the crop and the 68 landmarks joined along their
contours (:func:`model.draw.draw_landmarks`). Points in crop pixels (:func:`to_crop`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from eval.figures import (
    DPI,
    method_colors,
    new_figure,
    plain_axes,
    rgb255,
    save_figure,
)
from uvgen.formats.errors import DataError

_MEM = "<memory>"

# ----------------------------------------------------------------------------------------------
# 5. Qualitative results


def select_by_yaw(
    yaw_deg: np.ndarray, n: int = 6, max_yaw: float = 90.0, candidates: np.ndarray | None = None
) -> np.ndarray:
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
    :func:`eval.decode.to_image_batch`."""
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


def shade_mesh(
    vertices: np.ndarray,
    triangles: np.ndarray,
    height: int,
    width: int,
    light: Sequence[float] = (-0.3, -0.4, 1.0),
    ambient: float = 0.25,
) -> tuple[np.ndarray, np.ndarray]:
    """(shade (h, w) float32 in [0, 1], mask (h, w) bool): the mesh (vertices in image pixels)
    rendered with a z-buffer (:func:`model.visibility.render_raster`) and Lambertian shading of its
    vertex normals under a light from the upper left in front (``light`` in the image frame)."""
    from model.visibility import render_raster

    v = np.asarray(vertices, dtype=np.float64)
    light_dir = np.asarray(light, dtype=np.float64)
    light_dir = light_dir / np.linalg.norm(light_dir)
    lambert = np.clip(vertex_normals(v, triangles) @ light_dir, 0.0, 1.0)
    value = ambient + (1.0 - ambient) * lambert
    raster = render_raster(v, triangles, height, width)
    shade = raster.interpolate(value[:, None].astype(np.float64))[..., 0]
    return np.clip(shade, 0.0, 1.0).astype(np.float32), raster.mask


def overlay_cell(
    crop: np.ndarray,
    landmarks: np.ndarray | None,
    dense: np.ndarray | None,
    triangles: np.ndarray | None,
    color: str,
    alpha: float = 0.6,
    scale: int = 2,
) -> np.ndarray:
    """One cell of :func:`qualitative_figure`: the crop (H, W, 3) uint8 upsampled ``scale`` times,
    the dense mesh ``dense`` (K, 3) crop pixels shaded grey and blended with ``alpha`` over it
    (needs ``triangles`` (T, 3) over the K vertices), then the 68 ``landmarks`` (68, 3) crop pixels
    joined along their contours in ``color``. Returns (scale*H, scale*W, 3) uint8."""
    from PIL import Image

    from model.draw import draw_landmarks

    crop = np.asarray(crop, dtype=np.uint8)
    h, w = crop.shape[:2]
    big = np.asarray(
        Image.fromarray(crop).resize((w * scale, h * scale), Image.BILINEAR), dtype=np.float32
    )
    if dense is not None and triangles is not None:
        pts = np.asarray(dense, dtype=np.float64) * [scale, scale, scale]
        pts[:, :2] += (scale - 1) / 2.0  # pixel centres of the upsampled image
        shade, mask = shade_mesh(pts, triangles, h * scale, w * scale)
        grey = np.repeat((235.0 * shade)[..., None], 3, axis=2)
        big = np.where(mask[..., None], (1 - alpha) * big + alpha * grey, big)
    out = np.clip(np.rint(big), 0, 255).astype(np.uint8)
    if landmarks is not None:
        pts = np.asarray(landmarks, dtype=np.float64)[:, :2] * scale + (scale - 1) / 2.0
        out = draw_landmarks(out, pts, color=rgb255(color), radius=1.6 * scale)
    return out


def qualitative_figure(
    crops: np.ndarray,
    columns: Mapping[str, tuple[np.ndarray | None, np.ndarray | None]],
    triangles: np.ndarray,
    path: str | Path,
    row_labels: Sequence[str] | None = None,
    nme: Mapping[str, np.ndarray] | None = None,
    cell_in: float = 2.0,
    pdf: bool = False,
    dpi: int = DPI,
) -> Path:
    """A grid of R test crops (rows) x methods (columns): each cell the crop with that column's
    shaded dense mesh and 68 landmarks (:func:`overlay_cell`).

    ``crops`` (R, H, W, 3) uint8; ``columns``: label -> (landmarks (R, 68, 3) or None, dense
    (R, K, 3) or None), all in crop pixels (the ground truth first, by convention labelled
    :data:`eval.figures.GROUND_TRUTH`); ``triangles`` (T, 3) over the K dense vertices (the UV
    grid's, :func:`model.uses.uv_grid_triangles`); ``row_labels``: one per row (e.g. name and yaw);
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
    fig = new_figure(width, height, dpi)
    gap = 0.04
    for j, label in enumerate(labels):
        lms, dense = columns[label]
        x0 = (0.55 + j * cell_in) / width
        fig.text(
            x0 + cell_in / 2 / width,
            1 - 0.22 / height,
            label,
            ha="center",
            va="center",
            fontsize=12,
            weight="bold",
            color=colours[label],
        )
        for i in range(r):
            y0 = 1 - (0.45 + (i + 1) * cell_in) / height
            ax = fig.add_axes(
                (
                    x0 + gap / width,
                    y0 + gap / height,
                    (cell_in - 2 * gap) / width,
                    (cell_in - 2 * gap) / height,
                )
            )
            cell = overlay_cell(
                crops[i],
                None if lms is None else lms[i],
                None if dense is None else dense[i],
                triangles,
                colours[label],
            )
            ax.imshow(cell, interpolation="antialiased")
            plain_axes(ax)
            if nme is not None and label in nme and np.isfinite(nme[label][i]):
                ax.text(
                    0.03,
                    0.03,
                    f"NME {100 * nme[label][i]:.2f}%",
                    transform=ax.transAxes,
                    fontsize=8.5,
                    color="white",
                    ha="left",
                    va="bottom",
                    bbox={"facecolor": "black", "alpha": 0.55, "pad": 1.5, "edgecolor": "none"},
                )
    if row_labels is not None:
        for i, text in enumerate(row_labels):
            yc = 1 - (0.45 + (i + 0.5) * cell_in) / height
            fig.text(0.3 / width, yc, text, rotation=90, ha="center", va="center", fontsize=9.5)
    return save_figure(fig, path, pdf)
