"""Uses of a position map, checked on synthetic faces whose ground-truth maps stand in for a
network."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from model import uses
from model.inference import map_to_image
from model.mesh_io import write_obj, write_ply
from uvgen.geometry import image_vertices, rotation_matrix
from uvgen.groundtruth import build_uv_layout, evaluation_pair, fit_vertices
from uvgen.synth.dataset import draw_sample
from uvgen.synth.render import render

SIZE = 256  # image size of the synthetic samples


@pytest.fixture(scope="module")
def setup(embedded_model):
    layout = build_uv_layout(embedded_model)
    return embedded_model, layout, uses.build_face_uv(embedded_model, layout=layout)


def _sample(model, seed: int):
    return draw_sample(model, SIZE, np.random.default_rng(seed))


def _truth(model, layout, s):
    """(model-space vertices, ground-truth map in image pixels) of a sample, through the crop as
    PRNet's test pairs are made (docs/conventions.md section 6) and back with map_to_image."""
    verts = fit_vertices(model, s.shape_para, s.exp_para)[0]
    pair = evaluation_pair(layout, s.image, s.landmarks, verts, s.pose_para)
    return verts, map_to_image(pair.posmap, pair.transform)


def _filled(model, layout, uv, s):
    """:func:`_truth` with the layout's gaps filled (what uv_texture is given)."""
    verts, posmap = _truth(model, layout, s)
    return verts, uses.fill_gaps(posmap, uv)


def _mean_pose_map(model, layout, angles_deg, width_px: float = 170.0):
    """Map (image pixels) of the mean face at a given pose, centred in a SIZE image, and the
    pose."""
    mean = model.vertices(np.zeros(199), np.zeros(29))
    s = width_px / np.ptp(mean[:, 0])
    pose = np.r_[np.radians(angles_deg), 0.0, 0.0, 0.0, s]
    posed = image_vertices(mean, pose, SIZE)
    shift = (SIZE - 1) / 2 - (posed[:, :2].min(axis=0) + posed[:, :2].max(axis=0)) / 2
    pose[3], pose[4] = shift[0], -shift[1]
    return layout.position_map(image_vertices(mean, pose, SIZE)), pose


def _pixel(coord: np.ndarray) -> np.ndarray:
    """Nearest pixel index of image coordinates, clipped to the image."""
    return np.clip(np.rint(coord), 0, SIZE - 1).astype(int)


def _rotation_error_deg(r1: np.ndarray, r2: np.ndarray) -> float:
    cos = (np.trace(r1.T @ r2) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


# ----------------------------------------------------------------------------------------------
# UV layout and mesh topology


def test_grid_triangles_of_a_small_mask() -> None:
    mask = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=bool)
    tri = uses.uv_grid_triangles(mask)
    # block (0,0) full -> 2 triangles; block (0,1) misses its bottom right -> 1; block (1,0) -> 1
    assert tri.shape == (4, 3)
    rows, cols = np.nonzero(mask)
    pts = np.stack([cols, -rows], axis=1).astype(float)  # y up
    p0, p1, p2 = (pts[tri[:, k]] for k in range(3))
    cross = (p1 - p0)[:, 0] * (p2 - p0)[:, 1] - (p1 - p0)[:, 1] * (p2 - p0)[:, 0]
    assert np.all(cross > 0), "counter-clockwise with y up"
    assert np.all(np.abs(p1 - p0).max(axis=1) <= 1) and np.all(np.abs(p2 - p0).max(axis=1) <= 1)
    assert len(uses.uv_grid_triangles(np.ones((4, 5), bool))) == 2 * 3 * 4


def test_face_uv_of_the_model(setup) -> None:
    model, layout, uv = setup
    assert uv.face_ind.shape == (int(uv.face_mask.sum()),)
    assert np.array_equal(uv.face_ind, np.flatnonzero(uv.face_mask))
    assert np.isfinite(uv.canonical).all(), "gaps in the layout are filled"
    assert uv.triangles.min() == 0 and uv.triangles.max() < len(uv.face_ind)
    assert 1.9 * len(uv.face_ind) < len(uv.triangles) < 2.0 * len(uv.face_ind)
    # canonical = the mean face's map: the key pixels hold the key vertices (within UV rounding)
    mean = model.vertices(np.zeros(199), np.zeros(29))
    flat = uv.kpt_uv[1] * 256 + uv.kpt_uv[0]
    at_kpt = uv.canonical[np.searchsorted(uv.face_ind, flat[np.isin(flat, uv.face_ind)])]
    spacing = np.ptp(mean[:, 0]) / 256
    assert np.abs(at_kpt - mean[model.kpt_ind][np.isin(flat, uv.face_ind)]).max() < 3 * spacing
    assert uv.rigid.any() and not uv.rigid.all()


def test_gaps_in_a_layout_are_filled_from_their_neighbours(setup) -> None:
    """Face pixels that a layout leaves uncovered (map = 0 there) are filled from their covered
    neighbours when a map is decoded. The embedded layout covers every pixel, so holes are made."""
    model, layout, uv = setup
    assert len(uv.gaps) == 0
    covered = layout.raster.mask.copy()
    holes = uv.face_ind[::997]
    covered.ravel()[holes] = False
    gaps, sources, weights = uses.gap_neighbours(uv.face_mask, covered)
    assert set(gaps.tolist()) == set(holes.tolist())
    assert np.allclose(weights.sum(axis=1), 1.0)
    s = _sample(model, 3)
    _, posmap = _truth(model, layout, s)
    broken = posmap.copy()
    broken.reshape(-1, 3)[holes] = 0
    holed = dataclasses.replace(uv, gaps=gaps, gap_sources=sources, gap_weights=weights)
    filled = uses.fill_gaps(broken, holed).reshape(-1, 3)
    assert np.abs(filled[holes] - posmap.reshape(-1, 3)[holes]).max() < 2.0  # a pixel's neighbours
    others = np.setdiff1d(np.arange(256 * 256), holes)
    assert np.array_equal(filled[others], broken.reshape(-1, 3)[others])


def test_canonical_vertices_of_the_real_topology_match_prnets(
    bfm_topology_dir, prnet_uv_dir
) -> None:
    """Our canonical shape (the real mean shape through the real UV layout at PRNet's face pixels)
    is PRNet's canonical_vertices.npy up to a similarity and PRNet's y axis (its file has y
    down)."""
    from uvgen.formats.bfm import load_topology
    from uvgen.masks import load_prnet_face_ind

    topo = load_topology(bfm_topology_dir)
    layout = build_uv_layout(topo)
    face_ind = load_prnet_face_ind(prnet_uv_dir / "face_ind.txt")
    mean = (topo.mean_shape.astype(np.float64) + topo.mean_exp).reshape(-1, 3)
    ours = uses.canonical_vertices(mean, layout, face_ind)
    theirs = np.load(prnet_uv_dir / "canonical_vertices.npy")
    assert ours.shape == theirs.shape and np.isfinite(ours).all()
    ours = ours * [1.0, -1.0, 1.0]
    s, r, t = uses.similarity_fit(ours, theirs)
    resid = np.linalg.norm(s * ours @ r.T + t - theirs, axis=1)
    assert np.median(resid) < 0.005 * np.ptp(theirs[:, 0])  # measured: 0.39 of 212
    assert _rotation_error_deg(r, np.eye(3)) < 0.1


def test_mesh_faces_the_viewer(setup) -> None:
    """A frontal face's triangles are counter-clockwise in the camera frame (normals to +z)."""
    model, layout, uv = setup
    posmap, _ = _mean_pose_map(model, layout, (0.0, 0.0, 0.0))
    cam = uses.to_camera_frame(uses.dense_vertices(posmap, uv), SIZE)
    p0, p1, p2 = (cam[uv.triangles[:, k]] for k in range(3))
    nz = np.cross(p1 - p0, p2 - p0)[:, 2]
    assert nz[nz > 0].sum() > 0.98 * np.abs(nz).sum()


# ----------------------------------------------------------------------------------------------
# Landmarks and vertices


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_landmarks_are_the_projected_key_vertices(setup, seed) -> None:
    model, layout, uv = setup
    s = _sample(model, seed)
    _, posmap = _truth(model, layout, s)
    kpt = uses.landmarks(posmap, uv)
    assert kpt.shape == (68, 3)
    err = np.linalg.norm(kpt[:, :2] - s.landmarks[:, :2], axis=1)
    assert err.max() < 2.0 and err.mean() < 1.0  # UV rounding of the key pixels
    dz = kpt[:, 2] - s.landmarks[:, 2]  # the map's z is shifted so that the face's min is 0
    assert np.abs(dz - np.median(dz)).max() < 2.0
    verts = uses.dense_vertices(posmap, uv)
    assert verts.shape == (len(uv.face_ind), 3)
    assert np.array_equal(verts, uses.fill_gaps(posmap, uv).reshape(-1, 3)[uv.face_ind])


# ----------------------------------------------------------------------------------------------
# Head pose


def test_rotation_angles_invert_the_conventions_rotation() -> None:
    rng = np.random.default_rng(0)
    angles = np.c_[
        rng.uniform(-np.pi, np.pi, 200),
        rng.uniform(-np.pi / 2, np.pi / 2, 200) * 0.999,
        rng.uniform(-np.pi, np.pi, 200),
    ]
    for a in angles:
        back = uses.rotation_angles(rotation_matrix(*a))
        assert np.allclose(back, a, atol=1e-9)
    for yaw in (np.pi / 2, -np.pi / 2):  # gimbal lock: the matrix is still reproduced
        r = rotation_matrix(0.3, yaw, -0.2)
        assert np.allclose(rotation_matrix(*uses.rotation_angles(r)), r, atol=1e-9)


def test_similarity_fit_is_exact() -> None:
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    r = rotation_matrix(0.4, -1.1, 2.5)
    dst = 3.5 * src @ r.T + [1.0, -2.0, 7.0]
    s, rot, t = uses.similarity_fit(src, dst)
    assert s == pytest.approx(3.5) and np.allclose(rot, r) and np.allclose(t, [1, -2, 7])
    assert np.linalg.det(uses.similarity_fit(src, src * [1, 1, -1])[1]) == pytest.approx(1.0)


@pytest.mark.parametrize("angles", [(0.0, 0.0, 0.0), (12.0, -35.0, 8.0), (-20.0, 70.0, -15.0)])
def test_pose_of_the_mean_face_is_exact(setup, angles) -> None:
    model, layout, uv = setup
    posmap, pose = _mean_pose_map(model, layout, angles)
    est = uses.face_pose(posmap, uv, SIZE)
    assert np.allclose(est.degrees, angles, atol=0.01)
    assert est.scale == pytest.approx(pose[6], rel=1e-4)
    assert np.allclose(est.translation[:2], pose[3:5], atol=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_pose_from_the_map_recovers_the_samples_pose(setup, seed) -> None:
    """Identity and expression add a small rotation of their own (see estimate_pose)."""
    model, layout, uv = setup
    s = _sample(model, seed)
    _, posmap = _truth(model, layout, s)
    est = uses.face_pose(posmap, uv, SIZE)
    truth = s.pose_para.astype(np.float64)
    assert _rotation_error_deg(est.rotation, rotation_matrix(*truth[:3])) < 2.5
    assert abs(est.degrees[1] - np.degrees(truth[1])) < 1.5  # yaw
    assert est.scale == pytest.approx(truth[6], rel=0.06)
    d = est.to_dict()
    assert d["yaw_deg"] == pytest.approx(est.degrees[1]) and len(d["pose_para"]) == 7


# ----------------------------------------------------------------------------------------------
# Texture, colours and visibility


def _render_flat(model, s, verts, colors, background=None):
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


def test_texture_of_a_flat_coloured_face_is_that_colour(setup) -> None:
    model, layout, uv = setup
    s = _sample(model, 3)
    verts, posmap = _filled(model, layout, uv, s)
    colour = np.array([0.8, 0.4, 0.2])
    image, raster = _render_flat(model, s, verts, np.tile(colour, (model.n_vertices, 1)))
    tex = uses.uv_texture(image, posmap, uv.face_mask)
    assert tex.shape == (256, 256, 3) and tex.dtype == np.uint8
    assert not tex[~uv.face_mask].any()
    # pixels whose bilinear neighbourhood lies on the rendered face read exactly the colour
    inner = ndimage.binary_erosion(raster.mask, iterations=2)
    x, y = posmap[..., 0], posmap[..., 1]
    on_face = uv.face_mask & inner[_pixel(y), _pixel(x)]
    assert on_face.sum() > 0.7 * uv.face_mask.sum()
    assert np.abs(tex[on_face].astype(int) - np.rint(colour * 255)).max() <= 1


def test_texture_matches_the_albedo_where_visible(setup) -> None:
    """Unshaded render of the model's albedo: the visible texture pixels are the UV albedo map."""
    model, layout, uv = setup
    s = _sample(model, 0)  # yaw about -38 degrees: part of the far cheek is hidden
    verts, posmap = _filled(model, layout, uv, s)
    albedo = model.colors(s.tex_para)
    image, raster = _render_flat(model, s, verts, albedo)
    visible = uses.uv_visibility(posmap, uv, SIZE, SIZE)
    assert 0.05 * uv.face_mask.sum() < (uv.face_mask & ~visible).sum() < 0.5 * uv.face_mask.sum()
    tex = uses.uv_texture(image, posmap, uv.face_mask, visible).astype(float)
    assert not tex[~visible].any()
    truth = uses.fill_gaps(layout.raster.interpolate(albedo) * 255, uv)
    assert np.median(np.abs(tex[visible] - truth[visible])) < 1
    # away from the silhouette (where bilinear reads mix in the background) it is the albedo
    inner = ndimage.binary_erosion(raster.mask, iterations=2)
    x, y = posmap[..., 0], posmap[..., 1]
    inside = visible & inner[_pixel(y), _pixel(x)]
    assert inside.sum() > 0.8 * visible.sum()
    a, b = tex[inside].ravel(), truth[inside].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.99 and np.percentile(np.abs(a - b), 99) < 10
    # the hidden pixels read whatever hides them: far worse
    hidden = uv.face_mask & ~visible
    raw = uses.uv_texture(image, posmap, uv.face_mask).astype(float)
    assert np.median(np.abs(raw[hidden] - truth[hidden])) > 5


def test_visibility_of_frontal_and_turned_faces(setup) -> None:
    model, layout, uv = setup
    front, _ = _mean_pose_map(model, layout, (0.0, 0.0, 0.0))
    turned, _ = _mean_pose_map(model, layout, (0.0, 70.0, 0.0))
    assert uses.uv_visibility(front, uv, SIZE, SIZE)[uv.face_mask].mean() > 0.97
    vis = uses.uv_visibility(turned, uv, SIZE, SIZE)
    cols = np.nonzero(uv.face_mask)[1]
    left, right = cols < 128, cols >= 128
    fl, fr = vis[uv.face_mask][left].mean(), vis[uv.face_mask][right].mean()
    assert min(fl, fr) < 0.6 and max(fl, fr) > 0.95  # one side of the face turns away


def test_sample_bilinear_reads_between_pixels() -> None:
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = uses.sample_bilinear(img, np.array([1.5, 0.0, -5.0]), np.array([1.0, 0.5, 0.0]))
    assert np.allclose(out[:, 0], [5.5, 2.0, 0.0])


# ----------------------------------------------------------------------------------------------
# Depth


def test_depth_image_is_the_faces_z_buffer(setup) -> None:
    model, layout, uv = setup
    s = _sample(model, 5)
    verts, posmap = _truth(model, layout, s)
    mesh_verts = uses.dense_vertices(posmap, uv)
    depth, mask = uses.depth_image(mesh_verts, uv.triangles, SIZE, SIZE)
    assert depth.shape == mask.shape == (SIZE, SIZE)
    png = uses.depth_to_uint8(depth, mask)
    assert np.array_equal(png > 0, mask), "non-zero exactly on the face's silhouette"
    # the silhouette is the face part of the rendered head, and the depths are the head's z-buffer
    true_img = image_vertices(verts, s.pose_para.astype(np.float64), SIZE)
    _, true_raster = _render_flat(model, s, verts, np.full((model.n_vertices, 3), 0.5))
    assert (mask & true_raster.mask).sum() > 0.995 * mask.sum()
    true_z = true_raster.interpolate(true_img[:, 2:3] - true_img[:, 2].min())[..., 0]
    both = ndimage.binary_erosion(mask & true_raster.mask, iterations=2)
    diff = np.abs(depth[both] - true_z[both])
    assert np.median(diff) < 0.2 and np.percentile(diff, 99) < 1.5
    # nearer = brighter
    assert png[np.unravel_index(np.argmax(np.where(mask, depth, -1)), mask.shape)] == 255


# ----------------------------------------------------------------------------------------------
# Mesh files


def _parse_obj(path: Path):
    v, f = [], []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "v":
            v.append([float(x) for x in parts[1:]])
        elif parts and parts[0] == "f":
            f.append([int(x) for x in parts[1:]])
    return np.array(v), np.array(f)


def _parse_ply(path: Path):
    lines = path.read_text().splitlines()
    end = lines.index("end_header")
    header = lines[:end]
    nv = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in header if h.startswith("element face")).split()[-1])
    props = [h.split()[-1] for h in header if h.startswith("property") and "list" not in h]
    body = lines[end + 1 :]
    assert len(body) == nv + nf
    v = np.array([[float(x) for x in line.split()] for line in body[:nv]])
    f = np.array([[int(x) for x in line.split()] for line in body[nv:]])
    return props, v, f


def test_mesh_files_parse_back(setup, tmp_path) -> None:
    model, layout, uv = setup
    s = _sample(model, 3)
    _, posmap = _truth(model, layout, s)
    mesh = uses.face_mesh(s.image, posmap, uv)
    assert mesh.vertices.shape == (len(uv.face_ind), 3) and mesh.colors.shape == mesh.vertices.shape
    assert mesh.colors.min() >= 0 and mesh.colors.max() <= 1
    cam = mesh.camera_vertices(SIZE)
    assert np.allclose(cam[:, 1], SIZE - 1 - mesh.vertices[:, 1])

    v, f = _parse_obj(write_obj(tmp_path / "face.obj", cam, mesh.triangles, mesh.colors))
    assert v.shape == (len(cam), 6) and f.shape == mesh.triangles.shape
    assert f.min() == 1 and f.max() == len(cam), "1-based indices"
    assert np.array_equal(f - 1, mesh.triangles), "winding kept"
    assert np.allclose(v[:, :3], cam, atol=1e-5) and np.allclose(v[:, 3:], mesh.colors, atol=1e-5)

    props, pv, pf = _parse_ply(write_ply(tmp_path / "face.ply", cam, mesh.triangles, mesh.colors))
    assert props == ["x", "y", "z", "red", "green", "blue"]
    assert pv.shape == (len(cam), 6) and np.allclose(pv[:, :3], cam, atol=1e-5)
    assert (
        np.abs(pv[:, 3:] - np.rint(mesh.colors.astype(np.float64) * 255)).max() <= 1
    )  # rounding at .5
    assert np.all(pf[:, 0] == 3) and np.array_equal(pf[:, 1:], mesh.triangles)

    _, plain = _parse_obj(write_obj(tmp_path / "plain.obj", cam[:3], np.array([[0, 1, 2]])))
    assert plain.tolist() == [[1, 2, 3]]
    with pytest.raises(ValueError):
        write_obj(tmp_path / "bad.obj", cam[:3], np.array([[0, 1, 3]]))
    assert not (tmp_path / "bad.obj").exists()


# ----------------------------------------------------------------------------------------------
# Texture editing and face swapping


def test_painting_a_faces_own_texture_back_reproduces_it(setup) -> None:
    model, layout, uv = setup
    s = _sample(model, 3)
    _, posmap = _filled(model, layout, uv, s)
    h, w = s.image.shape[:2]
    visible = uses.uv_visibility(posmap, uv, h, w)
    tex = uses.uv_texture(s.image, posmap, uv.face_mask, visible)
    out = uses.paint_texture(s.image, posmap, tex, uv, valid=visible)
    changed = np.abs(out.astype(int) - s.image.astype(int)).max(axis=2)
    assert np.median(changed[changed > 0]) <= 12  # resampling blur only


def test_texture_edit_paints_only_where_the_edit_lands(setup) -> None:
    model, layout, uv = setup
    s = _sample(model, 3)
    _, posmap = _filled(model, layout, uv, s)
    tex = uses.uv_texture(s.image, posmap, uv.face_mask)
    edited = tex.copy()
    patch = np.zeros(uv.face_mask.shape, bool)
    patch[60:100, 100:160] = True  # a block of the forehead / brows
    edited[patch] = (0, 0, 255)
    out = uses.paint_texture(s.image, posmap, edited, uv, valid=patch, feather_px=0)
    changed = np.any(out != s.image, axis=2)
    # where the patch lands in the image: its surface points (x, y)
    pts = posmap[patch]
    where = np.zeros((SIZE, SIZE), bool)
    where[_pixel(pts[:, 1]), _pixel(pts[:, 0])] = True
    assert changed.any() and (changed & ~ndimage.binary_dilation(where, iterations=2)).sum() == 0
    inner = ndimage.binary_erosion(changed, iterations=2)
    assert inner.any() and np.all(out[inner] == (0, 0, 255))


def test_face_swap_changes_the_target_only_inside_its_face(setup) -> None:
    model, layout, uv = setup
    src, tgt = _sample(model, 3), _sample(model, 5)
    _, src_map = _filled(model, layout, uv, src)
    _, tgt_map = _filled(model, layout, uv, tgt)
    out = uses.swap_face(src.image, src_map, tgt.image, tgt_map, uv)
    assert out.shape == tgt.image.shape and out.dtype == np.uint8
    face = uses.render_raster(uses.dense_vertices(tgt_map, uv), uv.triangles, SIZE, SIZE).mask
    changed = np.any(out != tgt.image, axis=2)
    assert not (changed & ~face).any(), "outside the target's face nothing changes"
    assert changed[face].mean() > 0.5
    # the pasted face carries the source's texture, not the target's
    tex_out = uses.uv_texture(out, tgt_map, uv.face_mask).astype(float)
    tex_src = uses.uv_texture(src.image, src_map, uv.face_mask).astype(float)
    tex_tgt = uses.uv_texture(tgt.image, tgt_map, uv.face_mask).astype(float)
    both = uses.uv_visibility(src_map, uv, SIZE, SIZE) & uses.uv_visibility(tgt_map, uv, SIZE, SIZE)
    both = ndimage.binary_erosion(both, iterations=8)
    src_corr = np.corrcoef(tex_out[both].ravel(), tex_src[both].ravel())[0, 1]
    tgt_corr = np.corrcoef(tex_out[both].ravel(), tex_tgt[both].ravel())[0, 1]
    assert src_corr > tgt_corr


def test_feather_alpha_is_zero_outside_and_one_inside() -> None:
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    a = uses.feather_alpha(mask, 4)
    assert np.all(a[~mask] == 0) and a[20, 20] == 1 and 0 < a[5, 20] < 1


def test_draw_landmarks(setup) -> None:
    model, layout, uv = setup
    s = _sample(model, 3)
    out = uses.draw_landmarks(s.image, s.landmarks)
    assert out.shape == s.image.shape and out.dtype == np.uint8
    x, y = np.rint(s.landmarks[30, :2]).astype(int)
    assert tuple(out[y, x]) == (0, 255, 0)
