"""Writers for coloured triangle meshes: Wavefront ``.obj`` (vertex colours) and ASCII ``.ply``.

Vertices are written as given (3D points, any frame; :mod:`model.uses` hands over the camera
frame: x right, y up, z towards the viewer). Triangles are 0-based (T, 3) rows in memory and keep
their winding, which viewers read as counter-clockwise = front face; the ``.obj`` file stores them
1-based (``f i j k``), the ``.ply`` 0-based (``3 i j k``). Colours are RGB, floats in [0, 1] or
uint8; ``.obj`` gets ``v x y z r g b`` with floats in [0, 1] (the extension MeshLab, Blender and
Open3D read), ``.ply`` gets ``red green blue`` uchar properties. Files appear atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from uvgen.formats.matfile import atomic_output
from uvgen.raster import finite_points


def _check(
    vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    v = finite_points(vertices, 3, "vertices")
    t = np.asarray(triangles)
    if t.size == 0:
        t = t.reshape(0, 3).astype(np.int64)
    if t.ndim != 2 or t.shape[1] != 3 or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"triangles must be an (m, 3) integer array, got {t.dtype} {t.shape}")
    t = t.astype(np.int64)
    if t.size and (t.min() < 0 or t.max() >= len(v)):
        raise ValueError(f"triangle indices must lie in [0, {len(v)})")
    c = None
    if colors is not None:
        c = np.asarray(colors)
        if c.shape != v.shape:
            raise ValueError(f"colors must be {v.shape}, got {c.shape}")
        c = (
            c.astype(np.float64) / 255.0
            if c.dtype == np.uint8
            else np.clip(c.astype(np.float64), 0.0, 1.0)
        )
    return v, t, c


def _table(rows: np.ndarray, fmt: str) -> bytes:
    buf = io.StringIO()
    if len(rows):
        np.savetxt(buf, rows, fmt=fmt)
    return buf.getvalue().encode("ascii")


def write_obj(
    path: str | Path, vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None
) -> Path:
    """Write ``v x y z [r g b]`` lines then ``f i j k`` lines (1-based indices); returns the
    path."""
    v, t, c = _check(vertices, triangles, colors)
    path = Path(path)
    if c is None:
        vert = _table(v, "v %.6f %.6f %.6f")
    else:
        vert = _table(np.hstack([v, c]), "v %.6f %.6f %.6f %.6f %.6f %.6f")
    with atomic_output(path) as fh:
        fh.write(f"# {len(v)} vertices, {len(t)} triangles\n".encode("ascii"))
        fh.write(vert)
        fh.write(_table(t + 1, "f %d %d %d"))
    return path


def write_ply(
    path: str | Path, vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None = None
) -> Path:
    """Write an ASCII PLY: ``vertex`` elements (float x y z [, uchar red green blue]) and ``face``
    elements (``vertex_indices``, 3 per face, 0-based); returns the path."""
    v, t, c = _check(vertices, triangles, colors)
    path = Path(path)
    header = [
        "ply",
        "format ascii 1.0",
        f"element vertex {len(v)}",
        "property float x",
        "property float y",
        "property float z",
    ]
    if c is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(t)}", "property list uchar int vertex_indices", "end_header"]
    if c is None:
        vert = _table(v, "%.6f %.6f %.6f")
    else:
        rgb = np.clip(np.rint(c * 255.0), 0, 255)
        vert = _table(np.hstack([v, rgb]), "%.6f %.6f %.6f %d %d %d")
    with atomic_output(path) as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert)
        fh.write(_table(t, "3 %d %d %d"))
    return path
