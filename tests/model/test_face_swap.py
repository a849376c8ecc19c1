"""model.face_swap: texture painting, colour matching and face swapping."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from model import face_swap, uses, visibility
from tests.model.face_maps import SIZE, draw_face, filled_map, pixel


def test_painting_a_faces_own_texture_back_reproduces_it(setup) -> None:
    model, layout, uv = setup
    s = draw_face(model, 3)
    _, posmap = filled_map(model, layout, uv, s)
    h, w = s.image.shape[:2]
    visible = visibility.uv_visibility(posmap, uv, h, w)
    tex = uses.uv_texture(s.image, posmap, uv.face_mask, visible)
    out = face_swap.paint_texture(s.image, posmap, tex, uv, valid=visible)
    changed = np.abs(out.astype(int) - s.image.astype(int)).max(axis=2)
    assert np.median(changed[changed > 0]) <= 12  # resampling blur only


def test_texture_edit_paints_only_where_the_edit_lands(setup) -> None:
    model, layout, uv = setup
    s = draw_face(model, 3)
    _, posmap = filled_map(model, layout, uv, s)
    tex = uses.uv_texture(s.image, posmap, uv.face_mask)
    edited = tex.copy()
    patch = np.zeros(uv.face_mask.shape, bool)
    patch[60:100, 100:160] = True  # a block of the forehead / brows
    edited[patch] = (0, 0, 255)
    out = face_swap.paint_texture(s.image, posmap, edited, uv, valid=patch, feather_px=0)
    changed = np.any(out != s.image, axis=2)
    # where the patch lands in the image: its surface points (x, y)
    pts = posmap[patch]
    where = np.zeros((SIZE, SIZE), bool)
    where[pixel(pts[:, 1]), pixel(pts[:, 0])] = True
    assert changed.any() and (changed & ~ndimage.binary_dilation(where, iterations=2)).sum() == 0
    inner = ndimage.binary_erosion(changed, iterations=2)
    assert inner.any() and np.all(out[inner] == (0, 0, 255))


def test_face_swap_changes_the_target_only_inside_its_face(setup) -> None:
    model, layout, uv = setup
    src, tgt = draw_face(model, 3), draw_face(model, 5)
    _, src_map = filled_map(model, layout, uv, src)
    _, tgt_map = filled_map(model, layout, uv, tgt)
    out = face_swap.swap_face(src.image, src_map, tgt.image, tgt_map, uv)
    assert out.shape == tgt.image.shape and out.dtype == np.uint8
    face = visibility.render_raster(uses.dense_vertices(tgt_map, uv), uv.triangles, SIZE, SIZE).mask
    changed = np.any(out != tgt.image, axis=2)
    assert not (changed & ~face).any(), "outside the target's face nothing changes"
    assert changed[face].mean() > 0.5
    # the pasted face carries the source's texture, not the target's
    tex_out = uses.uv_texture(out, tgt_map, uv.face_mask).astype(float)
    tex_src = uses.uv_texture(src.image, src_map, uv.face_mask).astype(float)
    tex_tgt = uses.uv_texture(tgt.image, tgt_map, uv.face_mask).astype(float)
    both = visibility.uv_visibility(src_map, uv, SIZE, SIZE) & visibility.uv_visibility(
        tgt_map, uv, SIZE, SIZE
    )
    both = ndimage.binary_erosion(both, iterations=8)
    src_corr = np.corrcoef(tex_out[both].ravel(), tex_src[both].ravel())[0, 1]
    tgt_corr = np.corrcoef(tex_out[both].ravel(), tex_tgt[both].ravel())[0, 1]
    assert src_corr > tgt_corr


def test_feather_alpha_is_zero_outside_and_one_inside() -> None:
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    a = face_swap.feather_alpha(mask, 4)
    assert np.all(a[~mask] == 0) and a[20, 20] == 1 and 0 < a[5, 20] < 1
