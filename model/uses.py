"""What a predicted position map is used for (PRNet's demos), as pure numpy functions.

Given a map in original-image pixels (``model.inference.Prediction.posmap``, or
``map_to_image(map_crop, T)``) and the image, this module computes: the 68 landmarks and the dense
face vertices; a UV texture map sampled from the image; a coloured triangle mesh of the face. Built
on it: the depth image and visibility (model.visibility), the head pose (pitch, yaw, roll;
model.head_pose), texture editing / face swapping (a UV texture drawn onto a face's geometry and
blended into its image; model.face_swap) and the landmark preview (model.draw).

Frames (every module above):

* image: original-image pixels, x right, y down, pixel centres at integers; z towards the viewer
  (larger = closer) in the same pixel units. Every map, vertex and landmark here is in this frame.
* camera: ``(x, h - 1 - y, z)`` for an image of height h: right-handed, y up (docs/conventions.md
  section 4: ``y_img = h - y - 1``). Mesh files are written in this frame (y up, viewer looking
  down -z, as standard viewers expect), and the head pose is fitted in it.
* model: the morphable model's space (BFM units, x to the subject's left, y up, z to the viewer).
* UV: the map's pixels, column right, row down (S x S; S = 256 for PRNet, the network's crop size).

Decoding uses a :class:`FaceUV` (:func:`build_face_uv` of the morphable model): the face mask, the
key-point pixels, the grid triangles, and the canonical (mean) face for the head pose. Face pixels
that the model's UV layout leaves uncovered are filled from their neighbours (:func:`fill_gaps`).

The mesh of a map (:func:`uv_grid_triangles`) has one vertex per face-mask pixel (in the order of
``face_ind``, i.e. row-major) and triangles between neighbouring pixels: every 2x2 block of pixels
with all four in the mask gives two triangles (split along the top-right / bottom-left diagonal),
one with exactly three in the mask gives the triangle of those three. Triangles are
counter-clockwise in the camera frame for a face seen from the front (outward normals towards the
viewer), because UV columns follow the face's x and UV rows its downward y.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from model.inference import landmarks_from_map, vertices_from_map
from uvgen import crop as crop_sampling
from uvgen.groundtruth import UVLayout, build_uv_layout
from uvgen.masks import UVMasks, build_uv_masks

__all__ = [
    "FaceUV",
    "build_face_uv",
    "uv_grid_triangles",
    "canonical_vertices",
    "rigid_pixels",
    "gap_neighbours",
    "fill_gaps",
    "landmarks",
    "dense_vertices",
    "sample_bilinear",
    "uv_texture",
    "vertex_colors",
    "texture_from_colors",
    "FaceMesh",
    "face_mesh",
    "to_camera_frame",
    "texture_coords",
]

#: iBUG-68 index of the base of the nose (the lowest row of the pose's rigid region).
NOSE_BASE = 33


# ----------------------------------------------------------------------------------------------
# The UV layout of a map


@dataclass(frozen=True, eq=False)
class FaceUV:
    """Everything a map is decoded with.

    Attributes:
        face_mask: (S, S) bool face pixels of the map.
        kpt_uv: (2, 68) int64 key-point pixels: row 0 = column, row 1 = row.
        face_ind: (K,) int64 flat indices ``row * S + column`` of the face pixels, ascending.
        triangles: (T, 3) int64 mesh triangles over the face pixels (indices into ``face_ind``
            order, i.e. into the dense vertices), counter-clockwise in the camera frame.
        canonical: (K, 3) float64 the model's mean shape at the face pixels, model space (BFM
            units); NaN where no model triangle covers the pixel.
        rigid: (K,) bool the vertices the head pose is fitted on: face pixels at or above the UV
            row of key point 33 (the base of the nose), i.e. forehead, brows, eyes, nose and upper
            cheeks, which expressions hardly move (the mouth and jaw do).
        gaps: (J,) int64 flat indices of face pixels that no model triangle covers (the ground
            truth holds 0 there, the network was not trained there); :func:`fill_gaps` replaces
            them by the mean of their covered 4-neighbours. Empty for the real BFM layout.
        gap_sources: (J, 4) int64 flat indices of those neighbours, ``gap_weights`` (J, 4) float64
            their weights (0 for a neighbour that is not a covered face pixel).
    """

    @property
    def size(self) -> int:
        """Side of the square UV map in pixels."""
        return int(self.face_mask.shape[0])

    face_mask: np.ndarray
    kpt_uv: np.ndarray
    face_ind: np.ndarray
    triangles: np.ndarray
    canonical: np.ndarray
    rigid: np.ndarray
    gaps: np.ndarray
    gap_sources: np.ndarray
    gap_weights: np.ndarray


def uv_grid_triangles(face_mask: np.ndarray) -> np.ndarray:
    """(T, 3) int64 triangles over the True pixels of ``face_mask`` (H, W).

    Vertex i is the i-th True pixel in row-major order (``np.flatnonzero(face_mask)[i]``). For a
    2x2 block with corners a (top left), b (top right), c (bottom left), d (bottom right): all four
    present -> (a, c, b) and (c, d, b); three present -> those three in the cyclic order a, c, d, b.
    That order is counter-clockwise with y up (the camera frame), so a surface whose UV grid runs
    like the image (columns right, rows down) gets normals towards the viewer. Triangles come in
    row-major order of their blocks.
    """
    mask = np.asarray(face_mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"face_mask must be 2-D, got shape {mask.shape}")
    index = np.full(mask.shape, -1, dtype=np.int64)
    index[mask] = np.arange(int(mask.sum()))
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    ha, hb, hc, hd = a >= 0, b >= 0, c >= 0, d >= 0
    forms = np.stack(
        [
            np.stack([a, c, b], axis=1),  # full block or d missing
            np.stack([c, d, b], axis=1),  # full block or a missing
            np.stack([a, d, b], axis=1),  # c missing
            np.stack([a, c, d], axis=1),  # b missing
        ],
        axis=1,
    )  # (blocks, 4, 3)
    valid = np.stack([ha & hc & hb, hc & hd & hb, ha & hd & hb & ~hc, ha & hc & hd & ~hb], axis=1)
    return forms[valid].astype(np.int64)


def gap_neighbours(
    face_mask: np.ndarray, covered: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gaps (J,), sources (J, 4), weights (J, 4)) for :class:`FaceUV`: the face pixels not
    ``covered`` and their covered face 4-neighbours (up, down, left, right), weights summing to 1
    (all 0 for a gap without such neighbours)."""
    face = np.asarray(face_mask, dtype=bool)
    good = face & np.asarray(covered, dtype=bool)
    h, w = face.shape
    ys, xs = np.nonzero(face & ~good)
    src = np.zeros((len(ys), 4), dtype=np.int64)
    wts = np.zeros((len(ys), 4), dtype=np.float64)
    for k, (dy, dx) in enumerate(((-1, 0), (1, 0), (0, -1), (0, 1))):
        ny, nx = np.clip(ys + dy, 0, h - 1), np.clip(xs + dx, 0, w - 1)
        ok = good[ny, nx] & (ny == ys + dy) & (nx == xs + dx)
        src[:, k] = ny * w + nx
        wts[:, k] = ok
    total = wts.sum(axis=1, keepdims=True)
    wts = np.divide(wts, total, out=np.zeros_like(wts), where=total > 0)
    return (ys * w + xs).astype(np.int64), src, wts


def fill_gaps(posmap: np.ndarray, uv: FaceUV) -> np.ndarray:
    """``posmap`` (S, S, C) with the face pixels the UV layout leaves uncovered (``uv.gaps``) set
    to the mean of their covered neighbours; the input itself when there are none."""
    if len(uv.gaps) == 0:
        return posmap
    out = np.array(posmap, copy=True)
    flat = out.reshape(-1, out.shape[-1])
    filled = np.einsum("jk,jkc->jc", uv.gap_weights, flat[uv.gap_sources].astype(np.float64))
    has = uv.gap_weights.sum(axis=1) > 0
    flat[uv.gaps[has]] = filled[has]
    return out


def canonical_vertices(
    mean_vertices: np.ndarray, layout: UVLayout, face_ind: np.ndarray
) -> np.ndarray:
    """(K, 3) float64: the model-space mean shape (n, 3) drawn through the UV ``layout`` (the map
    of the mean face, as the ground truth is drawn) at the pixels ``face_ind``; NaN where no
    triangle covers a pixel. Stands in for PRNet's ``canonical_vertices.npy``."""
    m = layout.raster.interpolate(np.asarray(mean_vertices, dtype=np.float64)).reshape(-1, 3)
    covered = layout.raster.mask.ravel()
    out = m[np.asarray(face_ind, dtype=np.int64)].copy()
    out[~covered[face_ind]] = np.nan
    return out


def rigid_pixels(face_ind: np.ndarray, kpt_uv: np.ndarray, size: int) -> np.ndarray:
    """(K,) bool: the face pixels at or above the UV row of key point 33 (base of the nose)."""
    return np.asarray(face_ind) // size <= int(np.asarray(kpt_uv)[1, NOSE_BASE])


def build_face_uv(
    model: Any,
    masks: UVMasks | None = None,
    layout: UVLayout | None = None,
    face_mask: np.ndarray | None = None,
    kpt_uv: np.ndarray | None = None,
) -> FaceUV:
    """The :class:`FaceUV` of a morphable model (``MorphableModel``; its mean = ``shape_mu +
    exp_mu``). The face mask and key points come from ``face_mask``/``kpt_uv`` when given (e.g.
    those a UV file was trained with), else from ``masks``, else :func:`uvgen.masks.build_uv_masks`
    of the model. ``layout``: :func:`uvgen.groundtruth.build_uv_layout` of the model (built if
    None, at the size of ``face_mask`` or ``masks``; 256 without them).

    Face pixels that no triangle of the layout covers (the real BFM layout covers every pixel; the
    embedded model's leaves a few pixel centres on its grid lines uncovered) stay in the face mask,
    so the mesh has no holes, and are filled from their neighbours (:func:`fill_gaps`) wherever
    a map is decoded, the canonical shape included."""
    if layout is None:  # at the size of the masks given (256 when none)
        size = np.shape(face_mask)[0] if face_mask is not None else None
        size = masks.size if size is None and masks is not None else size
        layout = build_uv_layout(model) if size is None else build_uv_layout(model, size)
    if face_mask is None or kpt_uv is None:
        if masks is None:
            masks = build_uv_masks(model, layout.size, raster=layout.raster)
        face_mask = masks.face if face_mask is None else face_mask
        kpt_uv = masks.kpt_uv if kpt_uv is None else kpt_uv
    face_mask = np.asarray(face_mask, dtype=bool)
    if face_mask.shape != (layout.size, layout.size):
        raise ValueError(
            f"face mask is {face_mask.shape}, the layout is {layout.size}x{layout.size}"
        )
    face_ind = np.flatnonzero(face_mask).astype(np.int64)
    kpt_uv = np.asarray(kpt_uv, dtype=np.int64)
    gaps, sources, weights = gap_neighbours(face_mask, layout.raster.mask)
    uv = FaceUV(
        face_mask=face_mask,
        kpt_uv=kpt_uv,
        face_ind=face_ind,
        triangles=uv_grid_triangles(face_mask),
        canonical=np.zeros((len(face_ind), 3)),
        rigid=rigid_pixels(face_ind, kpt_uv, layout.size),
        gaps=gaps,
        gap_sources=sources,
        gap_weights=weights,
    )
    mean = (np.asarray(model.shape_mu, np.float64) + np.asarray(model.exp_mu, np.float64)).reshape(
        -1, 3
    )
    mean_map = fill_gaps(layout.raster.interpolate(mean), uv).reshape(-1, 3)  # float64
    canonical = mean_map[face_ind]
    still = np.zeros(layout.size * layout.size, dtype=bool)
    still[gaps[uv.gap_weights.sum(axis=1) == 0]] = True
    canonical[still[face_ind]] = np.nan
    return replace(uv, canonical=canonical)


# ----------------------------------------------------------------------------------------------
# Landmarks, vertices, colours, texture


def landmarks(posmap: np.ndarray, uv: FaceUV) -> np.ndarray:
    """(68, 3) landmarks in the map's frame (image pixels): ``posmap[kv, ku]`` (gaps filled)."""
    return landmarks_from_map(fill_gaps(posmap, uv), uv.kpt_uv)


def dense_vertices(posmap: np.ndarray, uv: FaceUV) -> np.ndarray:
    """(K, 3) dense face vertices in the map's frame (image pixels), in ``face_ind`` order
    (``posmap.reshape(-1, 3)[face_ind]``, gaps filled)."""
    return vertices_from_map(fill_gaps(posmap, uv), uv.face_ind)


def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """float32 (*x.shape, C): ``image`` (H, W, C) or (H, W) read bilinearly at pixel positions
    (x right, y down, centres at integers); neighbours outside the image count as 0 (as the crop
    warp's border), so a point more than one pixel outside reads 0."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = img[..., None]
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    return crop_sampling.sample_bilinear(img, np.where(finite, x, -2.0), np.where(finite, y, -2.0))


def _texel_values(samples: np.ndarray) -> np.ndarray:
    """uint8 texture values of float32 image samples: rounded, clipped to 0..255."""
    return np.clip(np.rint(samples), 0, 255).astype(np.uint8)


def uv_texture(
    image: np.ndarray,
    posmap: np.ndarray,
    face_mask: np.ndarray | None = None,
    visible: np.ndarray | None = None,
) -> np.ndarray:
    """(S, S, 3) uint8 UV texture map: at each map pixel, the image (H, W, 3) read bilinearly at
    the pixel's (x, y) in image pixels (``posmap`` (S, S, 3) in image pixels; pass it through
    :func:`fill_gaps` first where the layout has gaps). Pixels outside ``face_mask`` (S, S) and,
    when given, outside ``visible`` (S, S) are 0."""
    pm = np.asarray(posmap)
    keep = np.ones(pm.shape[:2], dtype=bool)
    if face_mask is not None:
        keep &= np.asarray(face_mask, dtype=bool)
    if visible is not None:
        keep &= np.asarray(visible, dtype=bool)
    channels = np.asarray(image).shape[2] if np.ndim(image) == 3 else 1
    tex = np.zeros((*pm.shape[:2], channels), dtype=np.uint8)
    at = pm[keep]  # only the kept pixels are read (each pixel's value does not depend on others)
    tex[keep] = _texel_values(sample_bilinear(image, at[:, 0], at[:, 1]))
    return tex


def vertex_colors(image: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """(K, C) uint8: the image (H, W, C) read bilinearly at the vertices' (x, y), rounded to 8
    bits: each vertex's texel value in :func:`uv_texture` (the colour both mesh files store)."""
    v = np.asarray(vertices)
    return _texel_values(sample_bilinear(image, v[:, 0], v[:, 1]))


def texture_from_colors(
    colors: np.ndarray, uv: FaceUV, visible: np.ndarray | None = None
) -> np.ndarray:
    """(S, S, C) uint8 UV texture from the :func:`vertex_colors` (K, C) of the dense vertices
    (``uv.face_ind`` order): :func:`uv_texture` with ``uv.face_mask``, the same bytes for a
    float32 map (its face pixels are those vertices), without reading the image again."""
    keep = np.ones(len(uv.face_ind), dtype=bool)
    if visible is not None:
        keep = np.asarray(visible, dtype=bool).ravel()[uv.face_ind]
    tex = np.zeros((uv.face_mask.size, colors.shape[1]), dtype=np.uint8)
    tex[uv.face_ind[keep]] = colors[keep]
    return tex.reshape(*uv.face_mask.shape, colors.shape[1])


# ----------------------------------------------------------------------------------------------
# Mesh


@dataclass(frozen=True, eq=False)
class FaceMesh:
    """A coloured face mesh: ``vertices`` (K, 3) image pixels, ``triangles`` (T, 3) int64 0-based
    (counter-clockwise in the camera frame), ``colors`` (K, 3) uint8 (:func:`vertex_colors`: the
    texture's values at the vertices)."""

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray

    def camera_vertices(self, image_height: int) -> np.ndarray:
        """The vertices in the camera frame ``(x, h-1-y, z)`` (what mesh files hold)."""
        return to_camera_frame(self.vertices, image_height)


def to_camera_frame(points: np.ndarray, image_height: int) -> np.ndarray:
    """(..., 3) image-pixel points -> camera frame ``(x, h - 1 - y, z)`` (y up, right-handed)."""
    p = np.array(points, dtype=np.float64, copy=True)
    p[..., 1] = image_height - 1 - p[..., 1]
    return p


def face_mesh(image: np.ndarray, posmap: np.ndarray, uv: FaceUV) -> FaceMesh:
    """The dense face vertices of ``posmap`` (image pixels), the UV-grid triangles, and each
    vertex's colour read from ``image``."""
    verts = dense_vertices(posmap, uv).astype(np.float32)
    return FaceMesh(verts, uv.triangles, vertex_colors(image, verts))


def texture_coords(uv: FaceUV) -> np.ndarray:
    """(K, 2) float64 OBJ texture coordinates of the dense vertices in the UV texture image
    (:func:`uv_texture`): u = (column + 0.5) / S right, v = 1 - (row + 0.5) / S up (each vertex at
    its texel's centre; PRNet's writer uses column / (S - 1), half a texel off at the edges)."""
    rows, cols = np.divmod(np.asarray(uv.face_ind, dtype=np.int64), uv.size)
    return np.stack([(cols + 0.5) / uv.size, 1.0 - (rows + 0.5) / uv.size], axis=1)
