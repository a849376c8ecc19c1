"""From a 300W-LP / AFLW2000-3D fit and its image to a training or test pair (sections 4 to 6).

The pair is the S x S uint8 crop and the S x S UV position map (S = the layout's size, 256 by
default; the crop's side follows the map's, as face3d's ``image_h = uv_h``): at each UV pixel the
crop-space position (x right, y down in crop pixels; z depth, min 0) of the surface point that the
pixel stands for. What depends only on the model (the UV rasterisation) is a :class:`UVLayout`,
built once per model; everything per sample is a few small array operations plus one sparse product.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from uvgen.crop import warp_to_crop
from uvgen.formats.bfm import MorphableModel
from uvgen.geometry import (
    NO_JITTER,
    CropBox,
    crop_transform,
    evaluation_crop_box,
    image_vertices,
    rotation_matrix,
    training_crop_box,
)
from uvgen.masks import UV_SIZE, uv_rasterization
from uvgen.raster import Rasterization


@dataclass(frozen=True, eq=False)
class UVLayout:
    """The model's mesh drawn in UV space: which triangle and weights cover each UV pixel."""

    size: int
    raster: Rasterization

    def position_map(self, crop_vertices: np.ndarray) -> np.ndarray:
        """(size, size, 3) float32 map of the (n, 3) crop-space vertex positions; background 0."""
        return self.raster.interpolate(np.asarray(crop_vertices)).astype(np.float32, copy=False)


def build_uv_layout(model: MorphableModel, size: int = UV_SIZE) -> UVLayout:
    """Rasterise the model's full triangle list in UV space (earliest triangle wins; face3d's
    2-pixel image border counts as covered, so the real layout covers all pixels)."""
    return UVLayout(size=size, raster=uv_rasterization(model, size))


_BASES: dict[int, tuple[weakref.ref, np.ndarray]] = {}


def vertex_basis(model: MorphableModel) -> np.ndarray:
    """(1 + 199 + 29, 3n) float32 rows: the mean ``shapeMU + expMU``, then ``shapePC.T``, then
    ``expPC.T``. Built once per model object (cached while the model lives)."""
    key = id(model)
    hit = _BASES.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1]
    n3 = model.shape_mu.shape[0]
    basis = np.empty((1 + model.shape_pc.shape[1] + model.exp_pc.shape[1], n3), dtype=np.float32)
    basis[0] = (model.shape_mu.astype(np.float32) + model.exp_mu.astype(np.float32)).ravel()
    basis[1 : 1 + model.shape_pc.shape[1]] = model.shape_pc.T
    basis[1 + model.shape_pc.shape[1] :] = model.exp_pc.T
    _BASES[key] = (weakref.ref(model, lambda _ref, k=key: _BASES.pop(k, None)), basis)
    return basis


# Rows of every vertex product (see fit_vertices): samples of one product call.
PRODUCT_ROWS = 50
# Rows of the narrow product that serves a block of at most this many samples (see fit_vertices).
NARROW_ROWS = 2
_BLAS: list = []
_STACK: list[np.ndarray] = []
_NARROW: dict[int, tuple[weakref.ref, bool]] = {}


def single_thread_blas():
    """A context in which the BLAS runs one thread (the kernels a product uses depend on it)."""
    if not _BLAS:
        from threadpoolctl import ThreadpoolController

        _BLAS.append(ThreadpoolController())
    return _BLAS[0].limit(limits=1, user_api="blas")


def narrow_products_agree(model: MorphableModel) -> bool:
    """Whether this process's BLAS gives every row of a :data:`NARROW_ROWS`-row product over
    ``vertex_basis(model)`` the same bytes as in a :data:`PRODUCT_ROWS`-row one (one thread).

    Checked once per model object (0.2-0.5 s at 53,215 vertices): random coefficients in all
    PRODUCT_ROWS rows, then narrow products of the rows at the block's start, its end and its two
    ends swapped. A BLAS rounds a row the same whatever the other rows hold, so the check
    depends only on which kernels serve which rows. With OpenBLAS 0.3.31's SkylakeX sgemm
    kernels (numpy 2.4's wheel) every row count from 2 up agrees; numpy's 1-row product (a
    gemv: another summation order) does not, hence 2. Where the check fails, one sample is
    padded to PRODUCT_ROWS rows as before.
    """
    key = id(model)
    hit = _NARROW.get(key)
    if hit is not None and hit[0]() is model:
        return hit[1]
    basis = vertex_basis(model)
    coeffs = np.random.default_rng(0).standard_normal((PRODUCT_ROWS, basis.shape[0]))
    coeffs = coeffs.astype(np.float32)
    last = PRODUCT_ROWS - 1
    with single_thread_blas():
        wide = coeffs @ basis
        agree = all(
            np.array_equal(coeffs[rows] @ basis, wide[rows])
            for rows in ([0, 1], [last - 1, last], [last, 0])
        )
    _NARROW[key] = (weakref.ref(model, lambda _ref, k=key: _NARROW.pop(k, None)), agree)
    return agree


def fit_vertices(
    model: MorphableModel,
    shape_params: np.ndarray,
    exp_params: np.ndarray,
    slots: np.ndarray | None = None,
    reuse_buffer: bool = False,
    exact: bool = True,
) -> np.ndarray:
    """(B, n, 3) float32 model-space vertices of B fits: ``[1, shape_para, exp_para] @
    vertex_basis(model)`` in float32 (the components' stored precision: ~1e-2 BFM units of
    rounding on values of 1e5, i.e. ~1e-5 crop pixels).

    Same bytes whatever the batch: a BLAS matrix product's rounding depends on the product's
    shape, the thread count and the row a sample occupies (its kernels tile the rows), though not
    on the other rows' values. So every product here has exactly :data:`PRODUCT_ROWS` rows
    (unused rows are zero), runs on one BLAS thread, and sample ``i`` sits in row ``slots[i]``
    (in [0, PRODUCT_ROWS); default ``i % PRODUCT_ROWS``). The UV build passes each sample's index
    in the sorted sample list, so its vertices are the same whatever ``task_size`` and ``workers``;
    tasks whose size is a multiple of PRODUCT_ROWS (50, 100, ...) waste no rows.

    One sample at a time (a block of at most :data:`NARROW_ROWS` samples) is served by a
    NARROW_ROWS-row product instead, ~1/25 of the work, where :func:`narrow_products_agree`
    finds that this BLAS gives it the same bytes; elsewhere it is padded like the rest.

    ``exact=False`` (for maps made on the fly, never for a build): a sample alone in its block
    takes numpy's 1-row product (a gemv, about half the narrow product's time), whose summation
    order differs: its vertices differ from the build's by float32 rounding (up to ~0.15 BFM
    units, ~2e-4 crop px in the map), so a stored float16 map value can differ by one storage
    step (how often: docs/uv_speed.md).

    ``reuse_buffer``: write into a per-process buffer kept for the next call (which overwrites
    the result; for the build's tasks, which spares ~0.1 ms a sample of fresh-memory page faults).
    """
    a = np.atleast_2d(np.asarray(shape_params, dtype=np.float32))
    b = np.atleast_2d(np.asarray(exp_params, dtype=np.float32))
    batch = len(a)
    slots = (
        np.arange(batch) % PRODUCT_ROWS
        if slots is None
        else np.asarray(slots, dtype=np.int64) % PRODUCT_ROWS
    )
    if slots.shape != (batch,):
        raise ValueError(f"slots must be ({batch},), got {slots.shape}")
    basis = vertex_basis(model)
    # Row of sample i in a stack of products (product k = rows 50k..50k+49); consecutive slots
    # (the usual case) give consecutive rows, so the result is a view without a copy.
    rows = np.empty(batch, dtype=np.int64)
    used: list[set[int]] = []
    for i, slot in enumerate(slots.tolist()):
        k = next((k for k, taken in enumerate(used) if slot not in taken), len(used))
        if k == len(used):
            used.append(set())
        used[k].add(slot)
        rows[i] = k * PRODUCT_ROWS + slot
    coeffs = np.zeros((len(used) * PRODUCT_ROWS, basis.shape[0]), dtype=np.float32)
    coeffs[rows, 0] = 1.0
    coeffs[rows, 1 : 1 + a.shape[1]] = a
    coeffs[rows, 1 + a.shape[1] :] = b
    if reuse_buffer:
        if _STACK and _STACK[0].shape[0] >= len(coeffs) and _STACK[0].shape[1] == basis.shape[1]:
            stack = _STACK[0][: len(coeffs)]
        else:
            _STACK[:] = [np.empty((len(coeffs), basis.shape[1]), dtype=np.float32)]
            stack = _STACK[0]
    else:
        stack = np.empty((len(coeffs), basis.shape[1]), dtype=np.float32)
    lone = not exact
    narrow = any(
        len(taken) <= NARROW_ROWS and not (lone and len(taken) == 1) for taken in used
    ) and narrow_products_agree(model)
    with single_thread_blas():
        for k, taken in enumerate(used):
            if lone and len(taken) == 1:
                row = k * PRODUCT_ROWS + next(iter(taken))
                np.matmul(coeffs[row], basis, out=stack[row])
                continue
            if narrow and len(taken) <= NARROW_ROWS:
                picked = k * PRODUCT_ROWS + np.array(sorted(taken))
                padded = np.zeros((NARROW_ROWS, basis.shape[0]), dtype=np.float32)
                padded[: len(picked)] = coeffs[picked]
                stack[picked] = (padded @ basis)[: len(picked)]
                continue
            block = slice(k * PRODUCT_ROWS, (k + 1) * PRODUCT_ROWS)
            np.matmul(coeffs[block], basis, out=stack[block])
    if batch and np.array_equal(rows, rows[0] + np.arange(batch)):
        out = stack[rows[0] : rows[0] + batch]
    else:
        out = stack[rows]
    return out.reshape(batch, -1, 3)


@dataclass(frozen=True)
class CropPair:
    """One ground-truth pair: the crop and the map, and how they were made.

    ``transform`` (3, 3) maps original-image pixels to crop pixels; ``box`` is the crop box in
    original-image pixels; ``crop_vertices`` (n, 3) are the vertices in crop space.
    """

    image: np.ndarray  # (S, S, 3) uint8
    posmap: np.ndarray  # (S, S, 3) float32, crop pixels
    transform: np.ndarray
    box: CropBox
    crop_vertices: np.ndarray


def crop_affine(
    pose_para: np.ndarray, image_height: int, transform: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(M (3, 3), o (3,)) with ``crop = V @ M.T + o`` before the z shift, for model-space V.

    Composes the pose (``s R v + t``), the image axis (``y_img = h - y - 1``) and the crop
    (``T`` on x, y; ``z * T[0,0]``) into one affine map, so a sample costs one pass over n vertices.
    """
    p = np.asarray(pose_para, dtype=np.float64).ravel()
    flip = np.diag([1.0, -1.0, 1.0])
    to_img = np.array([0.0, image_height - 1.0, 0.0])
    t = np.asarray(transform, dtype=np.float64)
    crop = np.array([[t[0, 0], t[0, 1], 0.0], [t[1, 0], t[1, 1], 0.0], [0.0, 0.0, t[0, 0]]])
    m = p[6] * crop @ flip @ rotation_matrix(p[0], p[1], p[2])
    o = crop @ (flip @ p[3:6] + to_img) + np.array([t[0, 2], t[1, 2], 0.0])
    return m, o


def crop_positions(
    vertices: np.ndarray, pose_para: np.ndarray, image_height: int, transform: np.ndarray
) -> np.ndarray:
    """(n, 3) crop-space positions of model-space vertices (section 4), min z = 0.

    Computed in the vertices' precision (float32 in, float32 out; else float64)."""
    m, o = crop_affine(pose_para, image_height, transform)
    v = np.asarray(vertices)
    dtype = np.float32 if v.dtype == np.float32 else np.float64
    pos = v @ m.T.astype(dtype)
    _per_column(np.add, pos, o.astype(dtype))
    # x - 0 is x (signed zeros included): subtracting (0, 0, min z) touches only z.
    _per_column(np.subtract, pos, np.array([0, 0, pos[:, 2].min()], dtype))
    return pos


_TILE = 64  # rows per broadcast run of _per_column


def _per_column(op: np.ufunc, a: np.ndarray, row: np.ndarray) -> None:
    """``a[:, k] = op(a[:, k], row[k])`` in place for a C-contiguous (n, c) array: the same
    element-wise operations as numpy's broadcast of ``row``, whose inner loop would run over c
    values only, done over runs of ``_TILE`` rows at a time."""
    flat = a.view()
    flat.shape = (-1,)  # raises rather than copy
    tile = np.tile(row, _TILE)
    body = len(flat) - len(flat) % len(tile)
    block = flat[:body].reshape(-1, len(tile))
    op(block, tile, out=block)
    rest = flat[body:]
    op(rest, tile[: len(rest)], out=rest)


def make_pair(
    layout: UVLayout,
    image: np.ndarray,
    vertices: np.ndarray,
    pose_para: np.ndarray,
    box: CropBox,
    crop_size: int | None = None,
    lap: Callable[[str], None] | None = None,
) -> CropPair:
    """Crop ``image`` to ``box`` and draw the map of the fit's model-space vertices (n, 3).

    ``crop_size`` (default: ``layout.size``, face3d's ``image_h = uv_h``) is the crop's side;
    the box's corners go to pixel centres 0 and ``crop_size - 1``.
    ``lap(step)``, when given, is called after each step (for the benchmark's breakdown)."""
    lap = lap or _no_lap
    crop_size = layout.size if crop_size is None else int(crop_size)
    transform = crop_transform(box, crop_size)
    lap("pose + crop box")
    crop = warp_to_crop(image, transform, crop_size)
    lap("crop warp")
    pos = crop_positions(vertices, pose_para, image.shape[0], transform)
    lap("crop positions")
    posmap = layout.position_map(pos)
    lap("UV map")
    return CropPair(crop, posmap, transform, box, pos)


def _no_lap(step: str) -> None:
    return None


def training_pair(
    model: MorphableModel,
    layout: UVLayout,
    image: np.ndarray,
    vertices: np.ndarray,
    pose_para: np.ndarray,
    draws: tuple[float, float, float] = NO_JITTER,
) -> CropPair:
    """A 300W-LP training pair: key-vertex box, 1.5x, jittered by ``draws`` (section 4)."""
    key_img = image_vertices(vertices[model.kpt_ind], pose_para, image.shape[0])
    box = training_crop_box(key_img, draws)
    return make_pair(layout, image, vertices, pose_para, box)


def evaluation_pair(
    layout: UVLayout,
    image: np.ndarray,
    landmarks_gt: np.ndarray,
    vertices: np.ndarray,
    pose_para: np.ndarray,
) -> CropPair:
    """An AFLW2000-3D test pair: box of the ground-truth 68 points, 1.6x, no jitter (section 6);
    the map is the dense ground truth of the fit (model-space ``vertices``, ``pose_para``)."""
    box = evaluation_crop_box(landmarks_gt)
    return make_pair(layout, image, vertices, pose_para, box)
