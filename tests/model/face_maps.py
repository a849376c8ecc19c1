"""Synthetic faces and their maps for the tests of model.uses and the modules built on it
(visibility, head_pose, face_swap, draw)."""

from __future__ import annotations

import numpy as np

from model.inference import map_to_image
from model.uses import fill_gaps
from uvgen.geometry import image_vertices
from uvgen.groundtruth import evaluation_pair, fit_vertices
from uvgen.synth.dataset import draw_sample
from uvgen.synth.render import render

SIZE = 256  # image size of the synthetic samples


def draw_face(model, seed: int):
    return draw_sample(model, SIZE, np.random.default_rng(seed))


def true_map(model, layout, s):
    """(model-space vertices, ground-truth map in image pixels) of a sample, through the crop as
    PRNet's test pairs are made (docs/conventions.md section 6) and back with map_to_image."""
    verts = fit_vertices(model, s.shape_para, s.exp_para)[0]
    pair = evaluation_pair(layout, s.image, s.landmarks, verts, s.pose_para)
    return verts, map_to_image(pair.posmap, pair.transform)


def filled_map(model, layout, uv, s):
    """:func:`true_map` with the layout's gaps filled (what uv_texture is given)."""
    verts, posmap = true_map(model, layout, s)
    return verts, fill_gaps(posmap, uv)


def mean_pose_map(model, layout, angles_deg, width_px: float = 170.0):
    """Map (image pixels) of the mean face at a given pose, centred in a SIZE image, and the
    pose."""
    mean = model.vertices(np.zeros(199), np.zeros(29))
    s = width_px / np.ptp(mean[:, 0])
    pose = np.r_[np.radians(angles_deg), 0.0, 0.0, 0.0, s]
    posed = image_vertices(mean, pose, SIZE)
    shift = (SIZE - 1) / 2 - (posed[:, :2].min(axis=0) + posed[:, :2].max(axis=0)) / 2
    pose[3], pose[4] = shift[0], -shift[1]
    return layout.position_map(image_vertices(mean, pose, SIZE)), pose


def pixel(coord: np.ndarray) -> np.ndarray:
    """Nearest pixel index of image coordinates, clipped to the image."""
    return np.clip(np.rint(coord), 0, SIZE - 1).astype(int)


def rotation_error_deg(r1: np.ndarray, r2: np.ndarray) -> float:
    cos = (np.trace(r1.T @ r2) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def render_flat(model, s, verts, colors, background=None):
    img_verts = image_vertices(verts, s.pose_para.astype(np.float64), SIZE)
    if background is None:
        background = np.random.default_rng(7).random((SIZE, SIZE, 3), dtype=np.float32)
    image, raster = render(
        img_verts,
        model.full_triangles,
        colors,
        np.array([0.0, 0.0, 1.0]),
        1.0,
        background,
        diffuse=0.0,
    )
    return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8), raster
