"""Lambertian rendering with a z-buffer, and the random scenery for synthetic images."""

from __future__ import annotations

import numpy as np
import pytest

from uvgen.synth.render import cluttered_background, random_light, render, vertex_normals

H, W = 40, 50


def square(x0, y0, size, z, tilt_deg=0.0):
    """Two triangles of a square in image space, optionally tilted about the vertical axis."""
    c = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]) * size
    t = np.deg2rad(tilt_deg)
    # Rotating about the y axis moves x and z; keep the projected width at `size`.
    xs = x0 + c[:, 0]
    zs = z + (c[:, 0] - size / 2) * np.tan(t)
    vertices = np.stack([xs, y0 + c[:, 1], zs], axis=1)
    triangles = np.array([[0, 1, 2], [0, 2, 3]])
    return vertices, triangles


def grey(n, value=0.8):
    return np.full((n, 3), value)


def test_nearer_triangle_is_visible_whatever_the_order():
    near = np.array([[5.0, 5.0, 20.0], [30.0, 5.0, 20.0], [5.0, 30.0, 20.0]])
    far = near + [5.0, 5.0, -10.0]
    colors = np.vstack([np.tile([1.0, 0.0, 0.0], (3, 1)), np.tile([0.0, 1.0, 0.0], (3, 1))])
    background = np.zeros((H, W, 3))
    for order in ([0, 1], [1, 0]):
        meshes = [near, far]
        vertices = np.vstack([meshes[i] for i in order])
        cols = np.vstack([colors[3 * i : 3 * i + 3] for i in order])
        tris = np.array([[0, 1, 2], [3, 4, 5]])
        image, raster = render(vertices, tris, cols, [0, 0, 1], 1.0, background, diffuse=0.0)
        overlap = image[15, 15]  # inside both triangles
        np.testing.assert_allclose(overlap, [1.0, 0.0, 0.0], atol=1e-6)  # the near one is red
        np.testing.assert_allclose(image[20, 20], [0.0, 1.0, 0.0], atol=1e-6)  # the far one only
        assert raster.tri_index[15, 15] == order.index(0)


def test_plane_facing_the_light_is_brighter_than_a_tilted_one():
    ambient = 0.2
    flat_v, tris = square(5, 5, 15, 10.0)
    tilted_v, _ = square(28, 5, 15, 10.0, tilt_deg=60)
    vertices = np.vstack([flat_v, tilted_v])
    triangles = np.vstack([tris, tris + 4])
    image, _ = render(vertices, triangles, grey(8), [0, 0, 1], ambient, np.zeros((H, W, 3)))
    flat, tilted = image[12, 12, 0], image[12, 35, 0]
    assert flat == pytest.approx(0.8 * (ambient + (1 - ambient) * 1.0), abs=1e-5)
    assert tilted == pytest.approx(
        0.8 * (ambient + (1 - ambient) * np.cos(np.deg2rad(60))), abs=1e-5
    )
    assert flat > tilted


def test_winding_does_not_change_the_shading():
    vertices, tris = square(5, 5, 20, 0.0, tilt_deg=30)
    light = np.array([0.5, -0.2, 1.0])
    a, ra = render(vertices, tris, grey(4), light, 0.3, np.zeros((H, W, 3)))
    b, rb = render(vertices, tris[:, ::-1], grey(4), light, 0.3, np.zeros((H, W, 3)))
    both = ra.mask & rb.mask  # edge pixels may differ: the coverage rule depends on vertex order
    assert both.sum() > 0.9 * ra.mask.sum()
    np.testing.assert_allclose(a[both], b[both], atol=1e-6)
    assert a[15, 15, 0] > 0.3 * 0.8 + 1e-3  # lit, not only ambient


def test_sphere_is_lit_on_the_side_of_the_light():
    # A closed sphere (both halves rasterised; the z-buffer keeps the front one).
    lat, lon = np.meshgrid(
        np.linspace(0.05, np.pi - 0.05, 20),
        np.linspace(0, 2 * np.pi, 40, endpoint=False),
        indexing="ij",
    )
    r = 15.0
    vertices = np.stack(
        [25 + r * np.sin(lat) * np.cos(lon), 20 + r * np.cos(lat), r * np.sin(lat) * np.sin(lon)],
        axis=-1,
    ).reshape(-1, 3)
    idx = np.arange(20 * 40).reshape(20, 40)
    a, b, c, d = idx[:-1], np.roll(idx, -1, 1)[:-1], idx[1:], np.roll(idx, -1, 1)[1:]
    tris = np.concatenate(
        [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([b, d, c], -1).reshape(-1, 3)]
    )
    image, raster = render(
        vertices, tris, grey(len(vertices)), [1.0, 0.0, 0.3], 0.1, np.zeros((H, W, 3))
    )
    lum = image.mean(axis=2)
    right, left = lum[:, 26:][raster.mask[:, 26:]].mean(), lum[:, :25][raster.mask[:, :25]].mean()
    assert right > left + 0.2
    normals = vertex_normals(vertices, tris)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-9)


def test_background_untouched_outside_the_mesh():
    rng = np.random.default_rng(0)
    background = cluttered_background(H, W, rng)
    vertices, tris = square(10, 10, 12, 5.0)
    image, raster = render(vertices, tris, grey(4), *random_light(rng), background)
    assert image.dtype == np.float32 and image.shape == (H, W, 3)
    assert image.min() >= 0.0 and image.max() <= 1.0
    np.testing.assert_array_equal(image[~raster.mask], background[~raster.mask])
    assert (
        raster.mask[10:22, 10:22].all()
        and not raster.mask[:10].any()
        and not raster.mask[23:].any()
    )
    assert not np.array_equal(image[raster.mask], background[raster.mask])


def test_random_scenery_is_deterministic_per_seed():
    a = cluttered_background(45, 45, np.random.default_rng(7))
    b = cluttered_background(45, 45, np.random.default_rng(7))
    c = cluttered_background(45, 45, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and a.shape == (45, 45, 3) and a.min() >= 0 and a.max() <= 1
    assert a.std() > 0.02  # not a flat colour
    la, lb = random_light(np.random.default_rng(3)), random_light(np.random.default_rng(3))
    np.testing.assert_array_equal(la[0], lb[0])
    assert la[1] == lb[1]
    assert np.linalg.norm(la[0]) == pytest.approx(1.0) and la[0][2] > 0  # from the viewer's side


def test_render_is_deterministic_and_leaves_its_input_alone():
    rng = np.random.default_rng(1)
    background = cluttered_background(H, W, rng)
    keep = background.copy()
    vertices, tris = square(5, 5, 20, 0.0, tilt_deg=20)
    first, _ = render(vertices, tris, grey(4), [0.2, 0.1, 1.0], 0.4, background)
    second, _ = render(vertices, tris, grey(4), [0.2, 0.1, 1.0], 0.4, background)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(background, keep)


def test_bad_input():
    vertices, tris = square(5, 5, 20, 0.0)
    with pytest.raises(ValueError):
        render(vertices, tris, grey(3), [0, 0, 1], 0.3, np.zeros((H, W, 3)))
    with pytest.raises(ValueError):
        render(vertices, tris, grey(4), [0, 0, 0], 0.3, np.zeros((H, W, 3)))
    with pytest.raises(ValueError):
        render(vertices, tris, grey(4), [0, 0, 1], 0.3, np.zeros((H, W)))
