"""Which parts of a face a camera sees: the z-buffered raster of a map's mesh, its depth image and
the visible vertices / UV pixels (frames: model.uses)."""

from __future__ import annotations

import numpy as np

from model.uses import FaceUV, dense_vertices
from uvgen.raster import Rasterization, rasterize, zbuffer

#: Depth slack (pixels) of :func:`visible_vertices`.
VISIBILITY_TOLERANCE = 2.0


def render_raster(
    vertices: np.ndarray, triangles: np.ndarray, height: int, width: int
) -> Rasterization:
    """The mesh (vertices in image pixels) rasterised into an (height, width) image with a
    z-buffer: each covered pixel shows the front-most surface (largest z)."""
    v = np.asarray(vertices, dtype=np.float64)
    return rasterize(v[:, :2], triangles, height, width, depth=v[:, 2])


def depth_image(
    vertices: np.ndarray,
    triangles: np.ndarray,
    height: int,
    width: int,
    raster: Rasterization | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(depth (h, w) float32, mask (h, w) bool): the z (image pixels, larger = closer) of the
    front-most surface at each pixel the mesh covers; 0 and False elsewhere."""
    if raster is None:  # the z-buffer alone: the same values as the raster's interpolation
        v = np.asarray(vertices, dtype=np.float64)
        depth, mask = zbuffer(v[:, :2], triangles, height, width, depth=v[:, 2])
        return depth.astype(np.float32), mask
    z = np.asarray(vertices, dtype=np.float64)[:, 2:3]
    depth = raster.interpolate(z)[..., 0].astype(np.float32)
    return depth, raster.mask


def depth_to_uint8(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 image of a depth map: background 0; on the mask ``1 + 254 * (z - zmin) / (zmax -
    zmin)`` (the nearest point 255, the farthest 1), so the face is non-zero exactly on the mask."""
    d = np.asarray(depth, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    out = np.zeros(d.shape, dtype=np.uint8)
    if m.any():
        lo, hi = d[m].min(), d[m].max()
        scaled = (d[m] - lo) / (hi - lo) if hi > lo else np.ones(int(m.sum()))
        out[m] = np.clip(np.rint(1 + 254 * scaled), 1, 255).astype(np.uint8)
    return out


def depth_to_prnet(depth: np.ndarray, mask: np.ndarray, zmax: float, bits: int = 8) -> np.ndarray:
    """(h, w) uint8 (``bits`` 8) or uint16 (16) depth image in PRNet's convention, the one the
    face anti-spoofing projects train on: ``z / zmax`` (``zmax`` the largest z of the mesh's
    vertices; PRNet's ``get_depth_image(..., isShow=True)``), clipped to [0, 1], times
    ``2**bits - 1``, rounded; background 0. Near = bright; z is PRNet's (image or crop pixels,
    the ground truth's farthest point at 0), so the scale is per face, the zero is not."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    top = (1 << bits) - 1
    out = np.zeros(np.shape(depth), dtype=np.uint8 if bits == 8 else np.uint16)
    m = np.asarray(mask, dtype=bool)
    if m.any() and zmax > 0:
        scaled = np.clip(np.asarray(depth, dtype=np.float64)[m] / zmax, 0.0, 1.0)
        out[m] = np.rint(scaled * top).astype(out.dtype)
    return out


def crop_depth(
    vertices: np.ndarray,
    triangles: np.ndarray,
    transform: np.ndarray,
    size: int,
    in_size: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """(depth (size, size) float32, mask (size, size) bool): :func:`depth_image` of the face's
    crop square (``transform`` (3, 3) image -> crop pixels of an ``in_size`` crop, the network's
    input) drawn at size x size. x, y go through the transform and the scale ``size / in_size``
    (pixel centres kept: ``(x + 0.5) * s - 0.5``); z stays as given (image pixels)."""
    v = np.asarray(vertices, dtype=np.float64)
    t = np.asarray(transform, dtype=np.float64)
    s = size / in_size
    xy = (v[:, :2] @ t[:2, :2].T + t[:2, 2] + 0.5) * s - 0.5
    depth, mask = zbuffer(xy, triangles, size, size, depth=v[:, 2])  # = depth_image's
    return depth.astype(np.float32), mask


def visible_vertices(
    vertices: np.ndarray,
    triangles: np.ndarray,
    height: int,
    width: int,
    raster: Rasterization | None = None,
    tolerance: float = VISIBILITY_TOLERANCE,
    solid: bool = False,
) -> np.ndarray:
    """(K,) bool: which vertices (image pixels) the camera sees.

    A vertex inside the image is visible when, at one of the four pixel centres around it, the
    z-buffer of the mesh is empty or at most ``tolerance`` pixels in front of the vertex's z (the
    four neighbours tolerate the slope of the surface; a self-occluded vertex has the occluder,
    tens of pixels closer, at all four). Vertices outside the image are not visible. ``solid``:
    also require the mesh to cover all four pixels (a bilinear read there holds no background).
    """
    v = np.asarray(vertices, dtype=np.float64)
    depth, mask = depth_image(v, triangles, height, width, raster)
    zbuf = np.where(mask, depth.astype(np.float64), -np.inf)
    x0 = np.floor(v[:, 0]).astype(np.int64)
    y0 = np.floor(v[:, 1]).astype(np.int64)
    inside = (v[:, 0] >= 0) & (v[:, 0] <= width - 1) & (v[:, 1] >= 0) & (v[:, 1] <= height - 1)
    front = np.full(len(v), np.inf)
    covered = np.ones(len(v), dtype=bool)
    for dx in (0, 1):
        for dy in (0, 1):
            xs = np.clip(x0 + dx, 0, width - 1)
            ys = np.clip(y0 + dy, 0, height - 1)
            front = np.minimum(front, zbuf[ys, xs])
            covered &= mask[ys, xs]
    out = inside & (v[:, 2] >= front - tolerance)
    return out & covered if solid else out


def uv_visibility(
    posmap: np.ndarray,
    uv: FaceUV,
    height: int,
    width: int,
    raster: Rasterization | None = None,
    solid: bool = False,
) -> np.ndarray:
    """(S, S) bool: the face pixels of ``posmap`` (image pixels) whose surface point is visible in
    an (height, width) image (:func:`visible_vertices` on the map's mesh)."""
    vis = visible_vertices(
        dense_vertices(posmap, uv), uv.triangles, height, width, raster, solid=solid
    )
    out = np.zeros(uv.face_mask.size, dtype=bool)
    out[uv.face_ind] = vis
    return out.reshape(uv.face_mask.shape)
