"""Uses of a position map, checked on synthetic faces whose ground-truth maps stand in for a
network."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from model import head_pose, uses, visibility
from model.mesh_io import write_obj, write_ply
from tests.model.face_maps import (
    SIZE,
    draw_face,
    filled_map,
    mean_pose_map,
    pixel,
    render_flat,
    rotation_error_deg,
    true_map,
)
from uvgen.groundtruth import build_uv_layout


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
    s = draw_face(model, 3)
    _, posmap = true_map(model, layout, s)
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
    s, r, t = head_pose.similarity_fit(ours, theirs)
    resid = np.linalg.norm(s * ours @ r.T + t - theirs, axis=1)
    assert np.median(resid) < 0.005 * np.ptp(theirs[:, 0])  # measured: 0.39 of 212
    assert rotation_error_deg(r, np.eye(3)) < 0.1


def test_mesh_faces_the_viewer(setup) -> None:
    """A frontal face's triangles are counter-clockwise in the camera frame (normals to +z)."""
    model, layout, uv = setup
    posmap, _ = mean_pose_map(model, layout, (0.0, 0.0, 0.0))
    cam = uses.to_camera_frame(uses.dense_vertices(posmap, uv), SIZE)
    p0, p1, p2 = (cam[uv.triangles[:, k]] for k in range(3))
    nz = np.cross(p1 - p0, p2 - p0)[:, 2]
    assert nz[nz > 0].sum() > 0.98 * np.abs(nz).sum()


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_landmarks_are_the_projected_key_vertices(setup, seed) -> None:
    model, layout, uv = setup
    s = draw_face(model, seed)
    _, posmap = true_map(model, layout, s)
    kpt = uses.landmarks(posmap, uv)
    assert kpt.shape == (68, 3)
    err = np.linalg.norm(kpt[:, :2] - s.landmarks[:, :2], axis=1)
    assert err.max() < 2.0 and err.mean() < 1.0  # UV rounding of the key pixels
    dz = kpt[:, 2] - s.landmarks[:, 2]  # the map's z is shifted so that the face's min is 0
    assert np.abs(dz - np.median(dz)).max() < 2.0
    verts = uses.dense_vertices(posmap, uv)
    assert verts.shape == (len(uv.face_ind), 3)
    assert np.array_equal(verts, uses.fill_gaps(posmap, uv).reshape(-1, 3)[uv.face_ind])


def test_texture_of_a_flat_coloured_face_is_that_colour(setup) -> None:
    model, layout, uv = setup
    s = draw_face(model, 3)
    verts, posmap = filled_map(model, layout, uv, s)
    colour = np.array([0.8, 0.4, 0.2])
    image, raster = render_flat(model, s, verts, np.tile(colour, (model.n_vertices, 1)))
    tex = uses.uv_texture(image, posmap, uv.face_mask)
    assert tex.shape == (256, 256, 3) and tex.dtype == np.uint8
    assert not tex[~uv.face_mask].any()
    # pixels whose bilinear neighbourhood lies on the rendered face read exactly the colour
    inner = ndimage.binary_erosion(raster.mask, iterations=2)
    x, y = posmap[..., 0], posmap[..., 1]
    on_face = uv.face_mask & inner[pixel(y), pixel(x)]
    assert on_face.sum() > 0.7 * uv.face_mask.sum()
    assert np.abs(tex[on_face].astype(int) - np.rint(colour * 255)).max() <= 1


def test_texture_matches_the_albedo_where_visible(setup) -> None:
    """Unshaded render of the model's albedo: the visible texture pixels are the UV albedo map."""
    model, layout, uv = setup
    s = draw_face(model, 0)  # yaw about -38 degrees: part of the far cheek is hidden
    verts, posmap = filled_map(model, layout, uv, s)
    albedo = model.colors(s.tex_para)
    image, raster = render_flat(model, s, verts, albedo)
    visible = visibility.uv_visibility(posmap, uv, SIZE, SIZE)
    assert 0.05 * uv.face_mask.sum() < (uv.face_mask & ~visible).sum() < 0.5 * uv.face_mask.sum()
    tex = uses.uv_texture(image, posmap, uv.face_mask, visible).astype(float)
    assert not tex[~visible].any()
    truth = uses.fill_gaps(layout.raster.interpolate(albedo) * 255, uv)
    assert np.median(np.abs(tex[visible] - truth[visible])) < 1
    # away from the silhouette (where bilinear reads mix in the background) it is the albedo
    inner = ndimage.binary_erosion(raster.mask, iterations=2)
    x, y = posmap[..., 0], posmap[..., 1]
    inside = visible & inner[pixel(y), pixel(x)]
    assert inside.sum() > 0.8 * visible.sum()
    a, b = tex[inside].ravel(), truth[inside].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.99 and np.percentile(np.abs(a - b), 99) < 10
    # the hidden pixels read whatever hides them: far worse
    hidden = uv.face_mask & ~visible
    raw = uses.uv_texture(image, posmap, uv.face_mask).astype(float)
    assert np.median(np.abs(raw[hidden] - truth[hidden])) > 5


def test_texture_and_mesh_colours_are_one_read_of_the_image(setup) -> None:
    """The vertex colours are the texture's texels (8-bit), and the texture made from them is
    uv_texture's bytes for a float32 map, with and without visibility."""
    model, layout, uv = setup
    s = draw_face(model, 0)
    verts, posmap = filled_map(model, layout, uv, s)
    image, _ = render_flat(model, s, verts, model.colors(s.tex_para))
    posmap = posmap.astype(np.float32) + np.float32(0.37)  # off the pixel centres
    vertices = uses.dense_vertices(posmap, uv)
    colors = uses.vertex_colors(image, vertices)
    assert colors.dtype == np.uint8 and colors.shape == vertices.shape
    visible = visibility.uv_visibility(posmap, uv, SIZE, SIZE)
    for vis in (None, visible):
        expected = uses.uv_texture(image, posmap, uv.face_mask, vis)
        assert np.array_equal(uses.texture_from_colors(colors, uv, vis), expected)
    assert uses.texture_from_colors(colors, uv, visible).any()
    assert not uses.texture_from_colors(colors, uv, visible)[~visible].any()
    texels = uses.uv_texture(image, posmap, uv.face_mask).reshape(-1, 3)[uv.face_ind]
    assert np.array_equal(uses.face_mesh(image, posmap, uv).colors, texels)


def test_sample_bilinear_reads_between_pixels() -> None:
    img = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = uses.sample_bilinear(img, np.array([1.5, 0.0, -5.0]), np.array([1.0, 0.5, 0.0]))
    assert np.allclose(out[:, 0], [5.5, 2.0, 0.0])


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
    assert b"format ascii 1.0" in path.read_bytes()[:40]
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
    s = draw_face(model, 3)
    _, posmap = true_map(model, layout, s)
    mesh = uses.face_mesh(s.image, posmap, uv)
    assert mesh.vertices.shape == (len(uv.face_ind), 3) and mesh.colors.shape == mesh.vertices.shape
    assert mesh.colors.dtype == np.uint8 and mesh.colors.max() > 100
    cam = mesh.camera_vertices(SIZE)
    assert np.allclose(cam[:, 1], SIZE - 1 - mesh.vertices[:, 1])

    v, f = _parse_obj(write_obj(tmp_path / "face.obj", cam, mesh.triangles, mesh.colors))
    assert v.shape == (len(cam), 6) and f.shape == mesh.triangles.shape
    assert f.min() == 1 and f.max() == len(cam), "1-based indices"
    assert np.array_equal(f - 1, mesh.triangles), "winding kept"
    assert np.allclose(v[:, :3], cam, atol=1e-5) and np.allclose(v[:, 3:] * 255, mesh.colors)

    props, pv, pf = _parse_ply(
        write_ply(tmp_path / "face.ply", cam, mesh.triangles, mesh.colors, binary=False)
    )
    assert props == ["x", "y", "z", "red", "green", "blue"]
    assert pv.shape == (len(cam), 6) and np.allclose(pv[:, :3], cam, atol=1e-5)
    assert np.array_equal(pv[:, 3:], mesh.colors), "the same 8-bit colours as the .obj"
    assert np.all(pf[:, 0] == 3) and np.array_equal(pf[:, 1:], mesh.triangles)

    _, plain = _parse_obj(write_obj(tmp_path / "plain.obj", cam[:3], np.array([[0, 1, 2]])))
    assert plain.tolist() == [[1, 2, 3]]
    with pytest.raises(ValueError):
        write_obj(tmp_path / "bad.obj", cam[:3], np.array([[0, 1, 3]]))
    assert not (tmp_path / "bad.obj").exists()


def _parse_binary_ply(path: Path):
    """(properties, vertex rows (n, c) float64, faces (m, 3)) of a binary little-endian PLY whose
    vertex properties are float then uchar and whose faces are ``list uchar int``."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[1] == "format binary_little_endian 1.0"
    nv = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in header if h.startswith("element face")).split()[-1])
    props = [h.split()[1:] for h in header if h.startswith("property") and "list" not in h]
    assert "property list uchar int vertex_indices" in header
    vdt = np.dtype([(name, {"float": "<f4", "uchar": "u1"}[kind]) for kind, name in props])
    verts = np.frombuffer(data, dtype=vdt, count=nv, offset=end)
    fdt = np.dtype([("n", "u1"), ("i", "<i4", (3,))])
    faces = np.frombuffer(data, dtype=fdt, count=nf, offset=end + nv * vdt.itemsize)
    assert len(data) == end + nv * vdt.itemsize + nf * fdt.itemsize, "nothing after the faces"
    assert np.all(faces["n"] == 3)
    rows = np.stack([verts[name].astype(np.float64) for _, name in props], axis=1)
    return [name for _, name in props], rows, faces["i"].astype(np.int64)


def test_binary_ply_and_textured_obj_hold_the_text_files_geometry(setup, tmp_path) -> None:
    model, layout, uv = setup
    s = draw_face(model, 4)
    _, posmap = true_map(model, layout, s)
    mesh = uses.face_mesh(s.image, posmap, uv)
    cam = mesh.camera_vertices(SIZE)

    _, av, af = _parse_ply(
        write_ply(tmp_path / "a.ply", cam, mesh.triangles, mesh.colors, binary=False)
    )
    props, bv, bf = _parse_binary_ply(
        write_ply(tmp_path / "b.ply", cam, mesh.triangles, mesh.colors)
    )
    assert props == ["x", "y", "z", "red", "green", "blue"]
    assert np.array_equal(bf, mesh.triangles) and np.array_equal(af[:, 1:], bf)
    assert np.allclose(bv[:, :3], cam, atol=1e-4) and np.allclose(bv[:, :3], av[:, :3], atol=1e-4)
    assert np.array_equal(bv[:, 3:], av[:, 3:]), "same colours as the ASCII file"
    _, plain, _ = _parse_binary_ply(write_ply(tmp_path / "p.ply", cam[:3], np.array([[0, 1, 2]])))
    assert plain.shape == (3, 3)

    tc = uses.texture_coords(uv)
    assert tc.shape == (len(cam), 2) and tc.min() > 0 and tc.max() < 1
    tex = tmp_path / "face_texture.png"
    obj = write_obj(tmp_path / "face.obj", cam, mesh.triangles, mesh.colors, tc, texture=tex)
    lines = obj.read_text().splitlines()
    assert "mtllib face.mtl" in lines and "usemtl face" in lines
    assert "map_Kd face_texture.png" in (tmp_path / "face.mtl").read_text().splitlines()
    v = np.array([[float(x) for x in ln.split()[1:]] for ln in lines if ln.startswith("v ")])
    vt = np.array([[float(x) for x in ln.split()[1:]] for ln in lines if ln.startswith("vt ")])
    f = np.array(
        [[[int(i) for i in c.split("/")] for c in ln.split()[1:]] for ln in lines if ln[:2] == "f "]
    )
    assert np.allclose(v[:, :3], cam, atol=1e-5) and np.allclose(vt, tc, atol=1e-6)
    assert np.array_equal(f[..., 0], f[..., 1]) and np.array_equal(f[..., 0] - 1, mesh.triangles)
    # a texel centre: vertex i sits on its own UV pixel of the texture image
    rows, cols = np.divmod(uv.face_ind, uv.size)
    assert np.array_equal(np.floor(vt[:, 0] * uv.size), cols)
    assert np.array_equal(np.floor((1 - vt[:, 1]) * uv.size), rows)
    # without texture coordinates the text is savetxt's, byte for byte
    plain_obj = write_obj(tmp_path / "plain.obj", cam, mesh.triangles, mesh.colors).read_bytes()
    ref = io.StringIO()
    ref.write(f"# {len(cam)} vertices, {len(mesh.triangles)} triangles\n")
    cols6 = np.hstack([cam, mesh.colors / 255.0])
    np.savetxt(ref, cols6, fmt="v %.6f %.6f %.6f %.6f %.6f %.6f")
    np.savetxt(ref, mesh.triangles + 1, fmt="f %d %d %d")
    assert plain_obj == ref.getvalue().encode("ascii")
