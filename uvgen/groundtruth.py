"""From a 300W-LP / AFLW2000-3D fit and its image to a training or test pair (sections 4 to 6).

The pair is the 256x256 uint8 crop and the UV position map: at each UV pixel the crop-space
position (x right, y down in crop pixels; z depth, min 0) of the surface point that the pixel
stands for. What depends only on the model (the UV rasterisation) is a :class:`UVLayout`, built
once per model; everything per sample is a few small array operations plus one sparse product.
"""
from __future__ import annotations

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
    training_crop_box,
    vertices_in_crop,
)
from uvgen.masks import UV_SIZE, uv_rasterization
from uvgen.raster import Rasterization

CROP_SIZE = 256


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


def fit_vertices(model: MorphableModel, shape_params: np.ndarray, exp_params: np.ndarray) -> np.ndarray:
    """(B, n, 3) float64 model-space vertices of B fits, with one matrix product for the batch.

    The components are applied in float32 (their stored precision; the error is far below
    1e-3 px after projection), the means are added in float64.
    """
    a = np.atleast_2d(np.asarray(shape_params, dtype=np.float32))
    b = np.atleast_2d(np.asarray(exp_params, dtype=np.float32))
    base = (model.shape_mu.astype(np.float64) + model.exp_mu.astype(np.float64)).ravel()
    delta = model.shape_pc.astype(np.float32, copy=False) @ a.T
    delta += model.exp_pc.astype(np.float32, copy=False) @ b.T
    v = base[None, :] + delta.T.astype(np.float64)
    return v.reshape(len(a), -1, 3)


@dataclass(frozen=True)
class CropPair:
    """One ground-truth pair: the crop and the map, and how they were made.

    ``transform`` (3, 3) maps original-image pixels to crop pixels; ``box`` is the crop box in
    original-image pixels; ``crop_vertices`` (n, 3) are the vertices in crop space.
    """

    image: np.ndarray  # (256, 256, 3) uint8
    posmap: np.ndarray  # (256, 256, 3) float32, crop pixels
    transform: np.ndarray
    box: CropBox
    crop_vertices: np.ndarray


def make_pair(
    layout: UVLayout,
    image: np.ndarray,
    verts_img: np.ndarray,
    box: CropBox,
    crop_size: int = CROP_SIZE,
) -> CropPair:
    """Crop ``image`` to ``box`` and draw the map of the image-space vertices (n, 3)."""
    transform = crop_transform(box, crop_size)
    crop = warp_to_crop(image, transform, crop_size)
    pos = vertices_in_crop(verts_img, transform)
    return CropPair(crop, layout.position_map(pos), transform, box, pos)


def training_pair(
    model: MorphableModel,
    layout: UVLayout,
    image: np.ndarray,
    vertices: np.ndarray,
    pose_para: np.ndarray,
    draws: tuple[float, float, float] = NO_JITTER,
) -> CropPair:
    """A 300W-LP training pair: key-vertex box, 1.5x, jittered by ``draws`` (section 4)."""
    verts_img = image_vertices(vertices, pose_para, image.shape[0])
    box = training_crop_box(verts_img[model.kpt_ind], draws)
    return make_pair(layout, image, verts_img, box)


def evaluation_pair(
    layout: UVLayout,
    image: np.ndarray,
    landmarks_gt: np.ndarray,
    verts_img: np.ndarray,
) -> CropPair:
    """An AFLW2000-3D test pair: box of the ground-truth 68 points, 1.6x, no jitter (section 6)."""
    box = evaluation_crop_box(landmarks_gt)
    return make_pair(layout, image, verts_img, box)

