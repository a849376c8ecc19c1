"""Tests for eval.figure_qualitative: row selection by yaw, crop coordinates, shading, figure."""

from __future__ import annotations

import numpy as np

from eval import figure_qualitative as fq
from eval import figures as fg
from eval.decode import to_image_batch
from tests.tiny_data import DPI, S, assert_size, tiny_layout, tiny_maps


def test_select_by_yaw_spans_the_range():
    yaw = np.array([1.0, -3.0, 20.0, -41.0, 55.0, 70.0, -88.0, 91.0, 10.0])
    rows = fq.select_by_yaw(yaw, 4, 90.0)
    assert len(set(rows.tolist())) == 4
    assert np.all(np.diff(np.abs(yaw[rows])) >= 0)
    assert abs(yaw[rows[0]]) <= 1.0 and abs(yaw[rows[-1]]) >= 88.0
    only = fq.select_by_yaw(yaw, 3, 90.0, candidates=np.abs(yaw) < 50)
    assert set(only.tolist()) <= {0, 1, 2, 3, 8} and len(only) == 3
    assert len(fq.select_by_yaw(yaw[:2], 6)) == 2


def test_to_crop_inverts_to_image():
    t = np.array([[0.8, 0.1, -5.0], [-0.1, 0.8, 7.0], [0, 0, 1.0]])
    pts = np.random.default_rng(0).uniform(0, 100, (10, 3))
    np.testing.assert_allclose(fq.to_crop(to_image_batch(pts[None], t[None])[0], t), pts, atol=1e-9)


def test_shade_mesh_faces_the_light():
    from model.uses import uv_grid_triangles

    yy, xx = np.mgrid[0:8, 0:8].astype(np.float64)
    flat = np.stack(
        [xx.ravel() * 4 + 2, yy.ravel() * 4 + 2, np.zeros(64)], axis=1
    )  # a plane facing the viewer
    tri = uv_grid_triangles(np.ones((8, 8), bool))
    n = fq.vertex_normals(flat, tri)
    np.testing.assert_allclose(n, np.tile([0, 0, 1.0], (64, 1)), atol=1e-12)
    shade, mask = fq.shade_mesh(flat, tri, 40, 40, light=(0, 0, 1))
    assert mask[10, 10] and not mask[39, 39]
    assert np.allclose(shade[mask], 1.0)


def test_qualitative_figure(tmp_path):
    from model.uses import uv_grid_triangles

    layout = tiny_layout()
    maps = tiny_maps(3)
    crops = np.random.default_rng(0).integers(0, 255, (3, S, S, 3), dtype=np.uint8)
    lm = maps.reshape(3, -1, 3)[:, layout.kpt_uv[1].astype(np.int64) * S + layout.kpt_uv[0]]
    dense = maps.reshape(3, -1, 3)[:, layout.face_ind]
    cols = {fg.GROUND_TRUTH: (lm, dense), "PRN": (lm + 1, dense + 1), "X": (lm, None)}
    path = fq.qualitative_figure(
        crops,
        cols,
        uv_grid_triangles(layout.face_mask),
        tmp_path / "q.png",
        row_labels=["a", "b", "c"],
        nme={"PRN": np.array([0.01, np.nan, 0.03])},
        dpi=DPI,
    )
    assert_size(path, 0.55 + 3 * 2.0, 0.45 + 3 * 2.0)
    cell = fq.overlay_cell(
        crops[0], lm[0], dense[0], uv_grid_triangles(layout.face_mask), "#d62728"
    )
    assert cell.shape == (2 * S, 2 * S, 3) and cell.dtype == np.uint8
    assert not np.array_equal(cell, fq.overlay_cell(crops[0], None, None, None, "#d62728"))
