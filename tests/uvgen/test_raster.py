"""The vectorised rasteriser against a plain loop that states face3d's rule literally."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uvgen.raster import FACE3D_BORDER, rasterize, zbuffer

UV_SIZE = 256


def reference_rasterize(points, triangles, h, w, depth=None, border=0, dtype=np.float64):
    """Slow and obvious: every triangle, every candidate pixel, a strict '>' z-buffer.

    Returns (tri_index (h, w), weights (h, w, 3)). Without depth the first triangle to cover a
    pixel keeps it. Scalars are Python floats for float64 and numpy float32 scalars for float32.
    """
    f = float if dtype == np.float64 else np.float32
    pts = [(f(x), f(y)) for x, y in np.asarray(points, dtype=dtype).tolist()]
    zs = None if depth is None else [f(z) for z in np.asarray(depth, dtype=dtype).tolist()]
    tri_index = np.full((h, w), -1, dtype=np.int64)
    weights = np.zeros((h, w, 3))
    zbuf = np.full((h, w), -np.inf)
    for i, (a, b, c) in enumerate(np.asarray(triangles).tolist()):
        (x0, y0), (x1, y1), (x2, y2) = pts[a], pts[b], pts[c]
        x_min = max(math.ceil(min(x0, x1, x2)), 0)
        x_max = min(math.floor(max(x0, x1, x2)), w - 1)
        y_min = max(math.ceil(min(y0, y1, y2)), 0)
        y_max = min(math.floor(max(y0, y1, y2)), h - 1)
        v0x, v0y = x2 - x0, y2 - y0
        v1x, v1y = x1 - x0, y1 - y0
        for y in range(y_min, y_max + 1):
            for x in range(x_min, x_max + 1):
                v2x, v2y = f(x) - x0, f(y) - y0
                dot00 = v0x * v0x + v0y * v0y
                dot01 = v0x * v1x + v0y * v1y
                dot02 = v0x * v2x + v0y * v2y
                dot11 = v1x * v1x + v1y * v1y
                dot12 = v1x * v2x + v1y * v2y
                den = dot00 * dot11 - dot01 * dot01
                inv = f(0) if den == 0 else 1 / den
                u = (dot11 * dot02 - dot01 * dot12) * inv
                v = (dot00 * dot12 - dot01 * dot02) * inv
                in_band = x < border or x > w - 1 - border or y < border or y > h - 1 - border
                if not (in_band or (u >= 0 and v >= 0 and u + v < 1)):
                    continue
                w0 = 1 - u - v
                if zs is None:
                    if tri_index[y, x] >= 0:
                        continue
                else:
                    pz = w0 * zs[a] + v * zs[b] + u * zs[c]
                    if not pz > zbuf[y, x]:
                        continue
                    zbuf[y, x] = pz
                tri_index[y, x] = i
                weights[y, x] = (w0, v, u)
    return tri_index, weights


def random_mesh(rng: np.random.Generator, h: int, w: int):
    """Points partly outside an h x w image, on integer / half-integer positions and anywhere,
    with random triangles, a grid with shared edges, duplicates and degenerate triangles."""
    n_free = 40
    free = rng.uniform([-6, -6], [w + 6, h + 6], size=(n_free, 2))
    free[:10] = np.round(free[:10])  # vertices on pixel centres: edges through pixels
    free[10:15] = np.round(free[10:15] * 2) / 2
    gx, gy = np.meshgrid(np.linspace(-2, w + 1, 6), np.linspace(1, h - 2, 5))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    grid[::3] = np.round(grid[::3])
    points = np.vstack([free, grid, [[3.0, 3.0], [6.0, 6.0], [9.0, 9.0], [2.5, 7.5]]])
    base = n_free
    quads = [
        (base + r * 6 + c, base + r * 6 + c + 1, base + (r + 1) * 6 + c)
        for r in range(4)
        for c in range(5)
    ]
    quads += [
        (base + r * 6 + c + 1, base + (r + 1) * 6 + c + 1, base + (r + 1) * 6 + c)
        for r in range(4)
        for c in range(5)
    ]
    k = len(points) - 4
    random_tris = rng.integers(0, n_free, size=(30, 3))
    special = [(k, k + 1, k + 2), (k + 3, k + 3, k + 3), (k + 3, k + 3, k + 1)]  # degenerate
    first = random_tris[0]
    duplicates = [first, first[::-1], first[[1, 2, 0]]]  # ties in depth and coverage
    triangles = np.array(quads + random_tris.tolist() + special + [list(d) for d in duplicates])
    depth = rng.normal(size=len(points))
    depth[:5] = 0.0  # equal depths
    return points, triangles, depth


def assert_same(fast, ref_index, ref_weights):
    np.testing.assert_array_equal(fast.tri_index, ref_index)
    np.testing.assert_allclose(fast.weights, ref_weights, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("use_depth", [False, True])
@pytest.mark.parametrize("border", [0, FACE3D_BORDER])
def test_matches_reference_on_random_meshes(seed, use_depth, border):
    rng = np.random.default_rng(seed)
    h, w = 23, 31  # not square: catches x/y mix-ups
    points, triangles, depth = random_mesh(rng, h, w)
    depth = depth if use_depth else None
    fast = rasterize(points, triangles, h, w, depth=depth, border=border)
    assert_same(fast, *reference_rasterize(points, triangles, h, w, depth=depth, border=border))


@pytest.mark.parametrize("use_depth", [False, True])
def test_matches_reference_in_float32(use_depth):
    rng = np.random.default_rng(11)
    points, triangles, depth = random_mesh(rng, 19, 17)
    depth = depth if use_depth else None
    fast = rasterize(points, triangles, 19, 17, depth=depth, border=2, precision="float32")
    ref = reference_rasterize(points, triangles, 19, 17, depth=depth, border=2, dtype=np.float32)
    assert_same(fast, *ref)


def test_edge_rules_on_a_right_triangle():
    # p0 = (0, 0), p1 = (0, 4), p2 = (4, 0): u runs along x, v along y; u + v < 1 is strict,
    # so the hypotenuse x + y = 4 is excluded while the two legs are included.
    points = np.array([[0.0, 0.0], [0.0, 4.0], [4.0, 0.0]])
    r = rasterize(points, np.array([[0, 1, 2]]), 6, 6)
    expected = np.array([[x + y < 4 for x in range(6)] for y in range(6)])
    np.testing.assert_array_equal(r.mask, expected)
    np.testing.assert_allclose(r.weights[1, 2], [1 - 0.5 - 0.25, 0.25, 0.5])  # (x=2, y=1)


def test_degenerate_triangle_covers_its_box_with_weight_on_p0():
    points = np.array([[1.0, 1.0], [3.0, 3.0], [5.0, 5.0]])
    r = rasterize(points, np.array([[0, 1, 2]]), 8, 8)
    assert r.mask[1:6, 1:6].all() and r.mask.sum() == 25
    np.testing.assert_array_equal(r.weights[r.mask], np.tile([1.0, 0.0, 0.0], (25, 1)))


def test_depth_picks_the_nearest_and_ties_go_to_the_earlier_triangle():
    square = np.array([[0.0, 0.0], [9.0, 0.0], [0.0, 9.0]])
    points = np.vstack([square, square])
    triangles = np.array([[0, 1, 2], [3, 4, 5]])
    far_then_near = rasterize(points, triangles, 10, 10, depth=np.array([0, 0, 0, 1, 1, 1.0]))
    assert set(np.unique(far_then_near.tri_index[far_then_near.mask])) == {1}
    tie = rasterize(points, triangles, 10, 10, depth=np.zeros(6))
    assert set(np.unique(tie.tri_index[tie.mask])) == {0}
    priority = rasterize(points, triangles[::-1], 10, 10)
    assert set(np.unique(priority.tri_index[priority.mask])) == {0}


def test_interpolation_matches_the_weights():
    rng = np.random.default_rng(3)
    points, triangles, depth = random_mesh(rng, 20, 20)
    r = rasterize(points, triangles, 20, 20, depth=depth)
    values = rng.normal(size=(len(points), 4))
    expected = np.einsum("hwk,hwkc->hwc", r.weights, values[triangles[np.maximum(r.tri_index, 0)]])
    expected[~r.mask] = 7.0
    np.testing.assert_allclose(r.interpolate(values, background=7.0), expected, atol=1e-12)
    compact = r.interpolate_compact(values.astype(np.float32))
    assert compact.dtype == np.float32
    np.testing.assert_allclose(compact, expected.reshape(-1, 4)[r.pixels], atol=1e-5)
    np.testing.assert_array_equal(r.tri_index.ravel()[r.pixels], r.tri_of_pixel)
    np.testing.assert_array_equal(r.vertex_ids, triangles[r.tri_of_pixel])


def test_empty_and_bad_input():
    r = rasterize(np.array([[-5.0, -5.0], [-4.0, -5.0], [-5.0, -4.0]]), np.array([[0, 1, 2]]), 4, 4)
    assert not r.mask.any() and r.interpolate(np.ones((3, 2))).shape == (4, 4, 2)
    with pytest.raises(ValueError):
        rasterize(np.array([[0.0, np.nan]]), np.zeros((1, 3), dtype=int), 4, 4)
    with pytest.raises(ValueError):
        rasterize(np.zeros((3, 2)), np.array([[0, 1, 3]]), 4, 4)
    with pytest.raises(ValueError):
        rasterize(np.zeros((3, 2)), np.array([[0, 1, 2]]), 4, 4, depth=np.zeros(2))


# ---------------------------------------------------------------------------------------------
# The real BFM UV layout at full scale
# ---------------------------------------------------------------------------------------------


# face3d's 7 appended inner-mouth triangles (1-based vertex rows), written out independently of
# uvgen.formats.bfm's constant so that a change there is caught.
INNER_MOUTH_1BASED = np.array(
    [6420, 6542, 6664, 6420, 6294, 6167, 6167, 6297, 6420, 6167, 6297, 6296, 6167, 6296, 6295]
    + [6167, 6295, 6039, 6168, 6295, 6039]
).reshape(7, 3)


@pytest.fixture(scope="module")
def uv_layout(bfm_topology_dir):
    """UV pixel positions (n, 2) and the mapped mesh: tri, tri_mouth, then the 7 inner-mouth
    ones."""
    from uvgen.formats.bfm import load_topology

    topo = load_topology(bfm_topology_dir)
    uv, triangles = topo.uv, topo.full_triangles.astype(np.int64)
    assert uv.shape == (53215, 2) and triangles.shape == (105840 + 114 + 7, 3)
    np.testing.assert_array_equal(triangles[-7:] + 1, INNER_MOUTH_1BASED)
    points = np.stack([uv[:, 0] * (UV_SIZE - 1), (UV_SIZE - 1) - uv[:, 1] * (UV_SIZE - 1)], axis=1)
    return points, triangles


def band_mask(border: int) -> np.ndarray:
    m = np.zeros((UV_SIZE, UV_SIZE), dtype=bool)
    m[:border] = m[-border:] = True
    m[:, :border] = m[:, -border:] = True
    return m


@pytest.mark.parametrize("border", [0, FACE3D_BORDER])
def test_real_uv_layout_matches_reference(uv_layout, border):
    points, triangles = uv_layout
    fast = rasterize(points, triangles, UV_SIZE, UV_SIZE, border=border)
    assert_same(fast, *reference_rasterize(points, triangles, UV_SIZE, UV_SIZE, border=border))


def test_real_uv_layout_coverage(uv_layout):
    points, triangles = uv_layout
    plain = rasterize(points, triangles, UV_SIZE, UV_SIZE)
    face3d = rasterize(points, triangles, UV_SIZE, UV_SIZE, border=FACE3D_BORDER)
    # The plain rule leaves 341 pixels empty, all within face3d's 2-pixel edge band; face3d's band
    # rule fills them, so every one of the 65,536 pixels is covered (docs/conventions.md section 5).
    assert plain.mask.sum() == UV_SIZE * UV_SIZE - 341
    assert not (~plain.mask & ~band_mask(FACE3D_BORDER)).any()
    assert face3d.mask.all()
    inside = ~band_mask(FACE3D_BORDER)
    np.testing.assert_array_equal(face3d.tri_index[inside], plain.tri_index[inside])


def test_real_uv_layout_float32_differs_at_one_nearly_degenerate_triangle(uv_layout):
    points, triangles = uv_layout
    f64 = rasterize(points, triangles, UV_SIZE, UV_SIZE, border=FACE3D_BORDER)
    f32 = rasterize(points, triangles, UV_SIZE, UV_SIZE, border=FACE3D_BORDER, precision="float32")
    differ = np.argwhere(f64.tri_index != f32.tri_index)
    # Mouth triangle 105917 has a zero denominator in float32 only, so there it covers its box.
    np.testing.assert_array_equal(differ, [[138, 137]])
    assert f32.tri_index[138, 137] == 105917 and f64.tri_index[138, 137] == 105919


def test_far_away_and_huge_triangles():
    points = np.array(
        [[1e18, 1e18], [2e18, 1e18], [1e18, 2e18], [-1e6, -1e6], [3e6, -1e6], [-1e6, 3e6]]
    )
    r = rasterize(points, np.array([[0, 1, 2], [3, 4, 5]]), 5, 7)
    # The far triangle has no candidates; the huge one covers the whole (small) image.
    assert r.mask.all() and (r.tri_index == 1).all()


@pytest.mark.parametrize("size", [128, 512])
def test_real_uv_layout_at_other_sizes_matches_reference_in_float32(bfm_topology_dir, size):
    """uvgen.uv_size: the real layout drawn at 128 and 512 as the build draws it (UV pixel
    ``uv * (size - 1)``, face3d's float32 arithmetic and 2-pixel border) equals the literal loop;
    it covers every pixel, as at 256."""
    from uvgen.formats.bfm import load_topology
    from uvgen.masks import uv_pixel_coords, uv_rasterization

    topo = load_topology(bfm_topology_dir)
    points = uv_pixel_coords(topo.uv, size)
    triangles = topo.full_triangles.astype(np.int64)
    fast = uv_rasterization(topo, size)
    assert fast.shape == (size, size)
    ref = reference_rasterize(points, triangles, size, size, border=FACE3D_BORDER, dtype=np.float32)
    assert_same(fast, *ref)
    assert fast.mask.all()


def _interpolated_depth(points, triangles, h, w, depth):
    """The depth image the long way: the full raster's winners, interpolated."""
    r = rasterize(points, triangles, h, w, depth=depth)
    return r.interpolate(np.asarray(depth, dtype=np.float64)[:, None])[..., 0], r.mask


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("scale", [0.15, 1.0, 4.0])
def test_zbuffer_equals_the_rasters_interpolated_depth(seed, scale):
    """zbuffer (small boxes by offsets, large ones pixel by pixel) gives the winner's depth of
    rasterize bit for bit, on meshes whose triangles cover 0-1 pixels (scale 0.15), a few, many."""
    rng = np.random.default_rng(seed)
    h, w = 23, 31
    points, triangles, depth = random_mesh(rng, h, w)
    points = (points - [w / 2, h / 2]) * scale + [w / 2, h / 2]
    z, mask = zbuffer(points, triangles, h, w, depth)
    ref, ref_mask = _interpolated_depth(points, triangles, h, w, depth)
    np.testing.assert_array_equal(mask, ref_mask)
    assert z.tobytes() == np.where(ref_mask, ref, 0.0).tobytes()
    assert mask.any()


def test_zbuffer_on_a_dense_grid_mesh_of_subpixel_triangles():
    """A 200 x 200 grid mesh (a face's UV-grid mesh) drawn at 0.37-0.9 px per cell on a dome."""
    rng = np.random.default_rng(5)
    n = 200
    gx, gy = np.meshgrid(np.arange(n), np.arange(n))
    idx = np.arange(n * n).reshape(n, n)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    triangles = np.concatenate([np.stack([a, c, b], 1), np.stack([c, d, b], 1)])
    for step in (0.37, 0.9):
        points = np.stack([gx.ravel(), gy.ravel()], 1) * step + rng.normal(0, 0.05, (n * n, 2))
        depth = 40 * np.cos((gx.ravel() - n / 2) / n * 2) + rng.normal(0, 0.5, n * n)
        size = int(n * step) + 4
        z, mask = zbuffer(points, triangles, size, size, depth)
        ref, ref_mask = _interpolated_depth(points, triangles, size, size, depth)
        np.testing.assert_array_equal(mask, ref_mask)
        assert z.tobytes() == np.where(ref_mask, ref, 0.0).tobytes()
