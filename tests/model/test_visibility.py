"""model.visibility: the z-buffer, depth image and visible vertices of a map's mesh."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from model import uses, visibility
from tests.model.face_maps import SIZE, draw_face, mean_pose_map, render_flat, true_map
from uvgen.geometry import image_vertices


def test_visibility_of_frontal_and_turned_faces(setup) -> None:
    model, layout, uv = setup
    front, _ = mean_pose_map(model, layout, (0.0, 0.0, 0.0))
    turned, _ = mean_pose_map(model, layout, (0.0, 70.0, 0.0))
    assert visibility.uv_visibility(front, uv, SIZE, SIZE)[uv.face_mask].mean() > 0.97
    vis = visibility.uv_visibility(turned, uv, SIZE, SIZE)
    cols = np.nonzero(uv.face_mask)[1]
    left, right = cols < 128, cols >= 128
    fl, fr = vis[uv.face_mask][left].mean(), vis[uv.face_mask][right].mean()
    assert min(fl, fr) < 0.6 and max(fl, fr) > 0.95  # one side of the face turns away


def test_depth_image_is_the_faces_z_buffer(setup) -> None:
    model, layout, uv = setup
    s = draw_face(model, 5)
    verts, posmap = true_map(model, layout, s)
    mesh_verts = uses.dense_vertices(posmap, uv)
    depth, mask = visibility.depth_image(mesh_verts, uv.triangles, SIZE, SIZE)
    assert depth.shape == mask.shape == (SIZE, SIZE)
    png = visibility.depth_to_uint8(depth, mask)
    assert np.array_equal(png > 0, mask), "non-zero exactly on the face's silhouette"
    # the silhouette is the face part of the rendered head, and the depths are the head's z-buffer
    true_img = image_vertices(verts, s.pose_para.astype(np.float64), SIZE)
    _, true_raster = render_flat(model, s, verts, np.full((model.n_vertices, 3), 0.5))
    assert (mask & true_raster.mask).sum() > 0.995 * mask.sum()
    true_z = true_raster.interpolate(true_img[:, 2:3] - true_img[:, 2].min())[..., 0]
    both = ndimage.binary_erosion(mask & true_raster.mask, iterations=2)
    diff = np.abs(depth[both] - true_z[both])
    assert np.median(diff) < 0.2 and np.percentile(diff, 99) < 1.5
    # nearer = brighter
    assert png[np.unravel_index(np.argmax(np.where(mask, depth, -1)), mask.shape)] == 255
    # drawn from a raster (the --visible-only path) or from the z-buffer alone: the same bits
    raster = visibility.render_raster(mesh_verts, uv.triangles, SIZE, SIZE)
    from_raster, raster_mask = visibility.depth_image(
        mesh_verts, uv.triangles, SIZE, SIZE, raster=raster
    )
    assert from_raster.tobytes() == depth.tobytes() and np.array_equal(raster_mask, mask)


def test_prnet_depth_convention_and_crop(setup) -> None:
    """PRNet's depth image: z / max z of the vertices x 255 (or 65535), background 0; the crop
    mode draws the same z-buffer through the crop transform at another size."""
    model, layout, uv = setup
    s = draw_face(model, 5)
    _, posmap = true_map(model, layout, s)
    verts = uses.dense_vertices(posmap, uv)
    depth, mask = visibility.depth_image(verts, uv.triangles, SIZE, SIZE)
    zmax = float(verts[:, 2].max())
    d8 = visibility.depth_to_prnet(depth, mask, zmax)
    d16 = visibility.depth_to_prnet(depth, mask, zmax, bits=16)
    assert d8.dtype == np.uint8 and d16.dtype == np.uint16
    assert np.array_equal(d8[mask], np.rint(np.clip(depth[mask] / zmax, 0, 1) * 255))
    assert not d8[~mask].any() and not d16[~mask].any()
    assert np.abs(d16.astype(np.float64) / 65535 * 255 - d8).max() <= 0.5 + 1e-9
    with pytest.raises(ValueError):
        visibility.depth_to_prnet(depth, mask, zmax, bits=12)

    # identity crop of the full size: the image's own z-buffer
    same, same_mask = visibility.crop_depth(verts, uv.triangles, np.eye(3), SIZE, in_size=SIZE)
    assert np.array_equal(same, depth) and np.array_equal(same_mask, mask)
    # a crop square (shift + scale, as the network's crop) drawn at half its size
    t = np.array([[2.0, 0, -40], [0, 2.0, -60], [0, 0, 1]])
    half, hmask = visibility.crop_depth(verts, uv.triangles, t, SIZE // 2, in_size=SIZE)
    assert half.shape == (SIZE // 2, SIZE // 2)
    # half-size pixel x is crop pixel 2x + 0.5, i.e. image pixel (2x + 0.5 + 40) / 2
    ys, xs = np.nonzero(ndimage.binary_erosion(hmask, iterations=2))
    ix = np.rint((2 * xs + 0.5 + 40) / 2).astype(int)
    iy = np.rint((2 * ys + 0.5 + 60) / 2).astype(int)
    ok = mask[iy, ix]
    assert ok.mean() > 0.99 and np.median(np.abs(half[ys, xs][ok] - depth[iy, ix][ok])) < 1.0
