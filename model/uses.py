"""What a predicted position map is used for (PRNet's demos), as pure numpy functions.

Given a map in original-image pixels (``model.inference.Prediction.posmap``, or
``map_to_image(map_crop, T)``) and the image, this module computes: the 68 landmarks and the dense
face vertices; a UV texture map sampled from the image; a coloured triangle mesh of the face; the
head pose (pitch, yaw, roll); a depth image; and texture editing / face swapping (a UV texture drawn
onto a face's geometry and blended into its image).

Frames:

* image: original-image pixels, x right, y down, pixel centres at integers; z towards the viewer
  (larger = closer) in the same pixel units. Every map, vertex and landmark here is in this frame.
* camera: ``(x, h - 1 - y, z)`` for an image of height h: right-handed, y up (docs/conventions.md
  section 4: ``y_img = h - y - 1``). Mesh files are written in this frame (y up, viewer looking
  down -z, as standard viewers expect), and the head pose is fitted in it.
* model: the morphable model's space (BFM units, x to the subject's left, y up, z to the viewer).
* UV: the map's pixels, column right, row down (S x S, S = 256).

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

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import ndimage

from model.inference import landmarks_from_map, vertices_from_map
from uvgen.geometry import rotation_matrix
from uvgen.groundtruth import UVLayout, build_uv_layout
from uvgen.masks import UVMasks, build_uv_masks
from uvgen.raster import Rasterization, rasterize

__all__ = [
    "FaceUV",
    "build_face_uv",
    "uv_grid_triangles",
    "canonical_vertices",
    "rigid_pixels",
    "face_pose",
    "gap_neighbours",
    "fill_gaps",
    "landmarks",
    "dense_vertices",
    "sample_bilinear",
    "uv_texture",
    "vertex_colors",
    "FaceMesh",
    "face_mesh",
    "to_camera_frame",
    "render_raster",
    "depth_image",
    "depth_to_uint8",
    "visible_vertices",
    "uv_visibility",
    "HeadPose",
    "similarity_fit",
    "rotation_angles",
    "estimate_pose",
    "feather_alpha",
    "match_colors",
    "paint_texture",
    "swap_face",
    "draw_landmarks",
]

#: Depth slack (pixels) of :func:`visible_vertices`.
VISIBILITY_TOLERANCE = 2.0
#: Width (pixels) of the alpha ramp at the edge of a pasted face.
FEATHER_PX = 6.0
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

    face_mask: np.ndarray
    kpt_uv: np.ndarray
    face_ind: np.ndarray
    triangles: np.ndarray
    canonical: np.ndarray
    rigid: np.ndarray
    gaps: np.ndarray
    gap_sources: np.ndarray
    gap_weights: np.ndarray

    @property
    def size(self) -> int:
        return int(self.face_mask.shape[0])


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
    None).

    Face pixels that no triangle of the layout covers (the real BFM layout covers every pixel; the
    embedded model's leaves a few pixel centres on its grid lines uncovered) stay in the face mask,
    so the mesh has no holes, and are filled from their neighbours (:func:`fill_gaps`) wherever
    a map is decoded, the canonical shape included."""
    if layout is None:
        layout = build_uv_layout(model)
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
    h, w, ch = img.shape
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    x = np.where(finite, x, -2.0)
    y = np.where(finite, y, -2.0)
    x0 = np.floor(x)
    y0 = np.floor(y)
    fx = (x - x0).astype(np.float32)[..., None]
    fy = (y - y0).astype(np.float32)[..., None]
    padded = np.zeros((h + 2, w + 2, ch), dtype=np.float32)
    padded[1:-1, 1:-1] = img
    flat = padded.reshape(-1, ch)
    xi0 = np.clip(x0 + 1, 0, w + 1).astype(np.intp)
    xi1 = np.clip(x0 + 2, 0, w + 1).astype(np.intp)
    yi0 = np.clip(y0 + 1, 0, h + 1).astype(np.intp)
    yi1 = np.clip(y0 + 2, 0, h + 1).astype(np.intp)
    stride = w + 2
    top = flat[yi0 * stride + xi0] * (1 - fx) + flat[yi0 * stride + xi1] * fx
    bottom = flat[yi1 * stride + xi0] * (1 - fx) + flat[yi1 * stride + xi1] * fx
    return top * (1 - fy) + bottom * fy


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
    tex = np.clip(np.rint(sample_bilinear(image, pm[..., 0], pm[..., 1])), 0, 255).astype(np.uint8)
    keep = np.ones(pm.shape[:2], dtype=bool)
    if face_mask is not None:
        keep &= np.asarray(face_mask, dtype=bool)
    if visible is not None:
        keep &= np.asarray(visible, dtype=bool)
    tex[~keep] = 0
    return tex


def vertex_colors(image: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """(K, 3) float32 colours in [0, 1]: the uint8 image read bilinearly at the vertices' (x, y)."""
    v = np.asarray(vertices)
    return np.clip(sample_bilinear(image, v[:, 0], v[:, 1]) / 255.0, 0.0, 1.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Mesh


@dataclass(frozen=True, eq=False)
class FaceMesh:
    """A coloured face mesh: ``vertices`` (K, 3) image pixels, ``triangles`` (T, 3) int64 0-based
    (counter-clockwise in the camera frame), ``colors`` (K, 3) float32 in [0, 1]."""

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


# ----------------------------------------------------------------------------------------------
# Rendering: depth, visibility


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
    if raster is None:
        raster = render_raster(vertices, triangles, height, width)
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


# ----------------------------------------------------------------------------------------------
# Head pose


@dataclass(frozen=True)
class HeadPose:
    """A face's pose: ``camera = scale * canonical @ rotation.T + translation`` (camera frame).

    ``pitch``, ``yaw``, ``roll`` (radians) in the angles of docs/conventions.md section 4:
    ``rotation = Rx(pitch) @ Ry(yaw) @ Rz(roll)``, each factor the transpose of the textbook
    matrix, as in 300W-LP's ``Pose_Para``. ``scale`` converts model units to pixels.
    """

    pitch: float
    yaw: float
    roll: float
    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    @property
    def degrees(self) -> tuple[float, float, float]:
        """(pitch, yaw, roll) in degrees."""
        return tuple(float(a) for a in np.degrees([self.pitch, self.yaw, self.roll]))  # type: ignore[return-value]

    @property
    def pose_para(self) -> np.ndarray:
        """(7,) [pitch, yaw, roll, tx, ty, tz, s] in 300W-LP's layout (tz: the depth origin of
        the map, arbitrary)."""
        return np.r_[self.pitch, self.yaw, self.roll, self.translation, self.scale]

    def to_dict(self) -> dict[str, Any]:
        p, y, r = self.degrees
        return {
            "pitch_deg": p,
            "yaw_deg": y,
            "roll_deg": r,
            "pitch": self.pitch,
            "yaw": self.yaw,
            "roll": self.roll,
            "scale": self.scale,
            "rotation": np.asarray(self.rotation).tolist(),
            "translation": np.asarray(self.translation).tolist(),
            "pose_para": self.pose_para.tolist(),
            "convention": "R = Rx(pitch) @ Ry(yaw) @ Rz(roll), "
            "transposed factors (300W-LP Pose_Para); "
            "camera = scale * canonical @ R.T + translation, camera frame x right, y up "
            "(y = h - 1 - y_img), z towards the viewer",
        }


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama 1991) ``dst ~ s * src @ R.T + t`` for (k, 3) point pairs;
    returns (s, R (3, 3) with det +1, t (3,))."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or len(src) < 3:
        raise ValueError(
            f"need two matching (k >= 3, 3) point sets, got {src.shape} and {dst.shape}"
        )
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    sc, dc = src - mu_s, dst - mu_d
    cov = dc.T @ sc / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (sc**2).sum() / len(src)
    scale = float((sig * d).sum() / var_s)
    return scale, rot, mu_d - scale * rot @ mu_s


def rotation_angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) radians with ``rotation == uvgen.geometry.rotation_matrix(pitch, yaw,
    roll)``: yaw in [-pi/2, pi/2], pitch and roll in (-pi, pi] (exact inverse on that domain).

    From the product: ``R[0, 2] = -sin(yaw)``, ``R[0, :2] = cos(yaw) (cos roll, sin roll)``,
    ``R[1:, 2] = cos(yaw) (sin pitch, cos pitch)``. At |yaw| = 90 degrees (gimbal lock) roll is
    set to 0 and pitch takes the whole in-plane angle.
    """
    r = np.asarray(rotation, dtype=np.float64)
    sy = float(np.clip(-r[0, 2], -1.0, 1.0))
    cy = float(np.hypot(r[0, 0], r[0, 1]))
    yaw = float(np.arctan2(sy, cy))
    if cy > 1e-9:
        pitch = float(np.arctan2(r[1, 2], r[2, 2]))
        roll = float(np.arctan2(r[0, 1], r[0, 0]))
    else:  # cos(yaw) = 0: R[1] = (sin(pitch) sin(yaw), cos(pitch), 0) with roll = 0
        pitch = float(np.arctan2(r[1, 0] * np.sign(sy), r[1, 1]))
        roll = 0.0
    return pitch, yaw, roll


def estimate_pose(
    vertices: np.ndarray, canonical: np.ndarray, image_height: int, select: np.ndarray | None = None
) -> HeadPose:
    """Head pose from dense vertices (K, 3) in image pixels and the matching ``canonical`` (K, 3)
    model-space vertices (:attr:`FaceUV.canonical`; NaN rows are skipped): the least-squares
    similarity that takes the canonical face onto the vertices in the camera frame, its rotation
    as angles. ``select`` (K,) bool: the vertices to fit on (:attr:`FaceUV.rigid` is a good
    choice; default all).

    Exact for a face of the mean shape. Otherwise identity and expression add a small rotation of
    their own: on the embedded model with random shape and expression, fitting on the rigid upper
    face the angle between fitted and true rotation averaged 0.8 degrees (90% below 1.3, max 2.7);
    on all face vertices 1.4 (90% below 2.8). Near |yaw| = 90 degrees pitch and roll trade off
    against each other (gimbal lock), so a small rotation error can move them by several degrees
    each: compare rotations there, not angles."""
    cam = to_camera_frame(vertices, image_height)
    can = np.asarray(canonical, dtype=np.float64)
    ok = np.isfinite(can).all(axis=1) & np.isfinite(cam).all(axis=1)
    if select is not None:
        ok &= np.asarray(select, dtype=bool)
    s, rot, t = similarity_fit(can[ok], cam[ok])
    pitch, yaw, roll = rotation_angles(rot)
    return HeadPose(pitch, yaw, roll, s, rotation_matrix(pitch, yaw, roll), t)


def face_pose(posmap: np.ndarray, uv: FaceUV, image_height: int) -> HeadPose:
    """:func:`estimate_pose` of a map (image pixels), fitted on the rigid upper face."""
    return estimate_pose(dense_vertices(posmap, uv), uv.canonical, image_height, select=uv.rigid)


# ----------------------------------------------------------------------------------------------
# Texture editing and face swapping


def feather_alpha(mask: np.ndarray, feather_px: float = FEATHER_PX) -> np.ndarray:
    """(h, w) float32 alpha: 0 outside ``mask``, rising linearly with the distance to the mask's
    edge to 1 at ``feather_px`` pixels inside (a simple feather in place of Poisson blending)."""
    m = np.asarray(mask, dtype=bool)
    if feather_px <= 0:
        return m.astype(np.float32)
    dist = ndimage.distance_transform_edt(m)
    return np.clip(dist / float(feather_px), 0.0, 1.0).astype(np.float32)


def match_colors(texture: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float32 copy of ``texture`` (S, S, 3) whose per-channel mean and standard deviation over
    ``mask`` equal those of ``reference`` (a simple colour transfer before pasting a face)."""
    tex = np.asarray(texture, dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    if m.sum() < 2:
        return tex.copy()
    mu_t, sd_t = tex[m].mean(axis=0), tex[m].std(axis=0)
    mu_r, sd_r = ref[m].mean(axis=0), ref[m].std(axis=0)
    gain = np.where(sd_t > 1e-6, sd_r / np.maximum(sd_t, 1e-6), 1.0)
    return (tex - mu_t) * gain + mu_r


def paint_texture(
    image: np.ndarray,
    posmap: np.ndarray,
    texture: np.ndarray,
    uv: FaceUV,
    valid: np.ndarray | None = None,
    feather_px: float = FEATHER_PX,
    raster: Rasterization | None = None,
) -> np.ndarray:
    """Draw a UV ``texture`` (S, S, 3) onto the face of ``posmap`` (image pixels) and blend it
    into ``image`` (H, W, 3) uint8; returns a new uint8 image (texture editing: edit the face's
    own :func:`uv_texture` and paint it back; face swapping: paint another face's texture).

    The face's mesh is rendered with a z-buffer (only its front surface shows); each covered pixel
    takes the texture interpolated over the triangle's UV pixels. ``valid`` (S, S) bool marks the
    texture pixels that hold colour (default: the face mask); the pasted region is where the
    interpolated validity is at least 1/2, and the alpha is :func:`feather_alpha` of that region,
    so pixels outside it are left exactly as they were.
    """
    img = np.asarray(image)
    h, w = img.shape[:2]
    verts = dense_vertices(posmap, uv)
    if raster is None:
        raster = render_raster(verts, uv.triangles, h, w)
    tex = np.asarray(texture, dtype=np.float64).reshape(-1, 3)[uv.face_ind]
    ok = uv.face_mask if valid is None else np.asarray(valid, dtype=bool) & uv.face_mask
    ok_v = ok.ravel()[uv.face_ind].astype(np.float64)
    values = raster.interpolate(np.hstack([tex * ok_v[:, None], ok_v[:, None]]))
    weight = values[..., 3]
    region = raster.mask & (weight >= 0.5)
    colour = values[..., :3] / np.maximum(weight, 1e-9)[..., None]
    alpha = feather_alpha(region, feather_px)[..., None]
    out = img.astype(np.float32) * (1 - alpha) + np.clip(colour, 0, 255) * alpha
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    out[~region] = img[~region]  # bit-exact outside the pasted region
    return out


def swap_face(
    source_image: np.ndarray,
    source_posmap: np.ndarray,
    target_image: np.ndarray,
    target_posmap: np.ndarray,
    uv: FaceUV,
    feather_px: float = FEATHER_PX,
    colour_match: bool = True,
) -> np.ndarray:
    """The source face's UV texture drawn onto the target face's geometry and blended into the
    target image (uint8, the target's size). Only texture pixels visible in the source (and read
    from face pixels only: ``solid``) are used, elsewhere the target keeps its own face. With
    ``colour_match`` the source texture first takes the target's colour statistics over the pixels
    visible in both (:func:`match_colors`)."""
    sh, sw = np.asarray(source_image).shape[:2]
    th, tw = np.asarray(target_image).shape[:2]
    source_posmap, target_posmap = fill_gaps(source_posmap, uv), fill_gaps(target_posmap, uv)
    src_vis = uv_visibility(source_posmap, uv, sh, sw, solid=True)
    src_tex = uv_texture(source_image, source_posmap, uv.face_mask, src_vis).astype(np.float32)
    target_raster = render_raster(dense_vertices(target_posmap, uv), uv.triangles, th, tw)
    if colour_match:
        tgt_vis = uv_visibility(target_posmap, uv, th, tw, raster=target_raster)
        tgt_tex = uv_texture(target_image, target_posmap, uv.face_mask, tgt_vis)
        src_tex = match_colors(src_tex, tgt_tex, src_vis & tgt_vis)
    return paint_texture(
        target_image,
        target_posmap,
        src_tex,
        uv,
        valid=src_vis,
        feather_px=feather_px,
        raster=target_raster,
    )


# ----------------------------------------------------------------------------------------------
# Preview

#: iBUG-68 contours: (first, last, closed).
LANDMARK_CONTOURS = (
    (0, 16, False),
    (17, 21, False),
    (22, 26, False),
    (27, 30, False),
    (31, 35, False),
    (36, 41, True),
    (42, 47, True),
    (48, 59, True),
    (60, 67, True),
)


def draw_landmarks(
    image: np.ndarray,
    points: np.ndarray,
    color: Sequence[int] = (0, 255, 0),
    radius: float | None = None,
    lines: bool = True,
) -> np.ndarray:
    """A uint8 copy of ``image`` (H, W, 3) with the (68, 2+) ``points`` (image pixels) drawn as
    dots, joined along the iBUG-68 contours when ``lines``. ``radius`` defaults to ~1/150 of the
    image size."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    draw = ImageDraw.Draw(img)
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    r = max(1.5, max(img.size) / 150.0) if radius is None else float(radius)
    col = tuple(int(c) for c in color)
    if lines and len(pts) == 68:
        for first, last, closed in LANDMARK_CONTOURS:
            seq = [tuple(p) for p in pts[first : last + 1]]
            if closed:
                seq.append(seq[0])
            draw.line(seq, fill=col, width=max(1, int(round(r / 2))))
    for x, y in pts:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=col)
    return np.asarray(img)
