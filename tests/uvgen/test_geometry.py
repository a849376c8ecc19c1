"""Pose, projection and crop geometry against docs/conventions.md section 4."""

import numpy as np
import pytest

from uvgen import geometry as g


def test_rotation_is_product_of_transposed_textbook_matrices():
    pitch, yaw, roll = 0.3, -0.7, 0.2

    def textbook_x(a):
        return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])

    def textbook_y(a):
        return np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])

    def textbook_z(a):
        return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])

    expected = textbook_x(pitch).T @ textbook_y(yaw).T @ textbook_z(roll).T
    np.testing.assert_allclose(g.rotation_matrix(pitch, yaw, roll), expected, atol=1e-15)


def test_transform_and_image_axis():
    v = np.array([[1.0, 2.0, 3.0], [-4.0, 0.5, 0.0]])
    pose = np.array([0.0, 0.0, 0.0, 10.0, 20.0, 30.0, 2.0])
    cam = g.transform_vertices(v, pose)
    np.testing.assert_allclose(cam, 2 * v + [10, 20, 30])
    img = g.to_image(cam, 450)
    np.testing.assert_allclose(img[:, 1], 450 - cam[:, 1] - 1)
    np.testing.assert_allclose(img[:, [0, 2]], cam[:, [0, 2]])


def test_training_box_truncates_and_uses_true_division():
    kpt = np.array([[10.9, 20.2], [51.7, 20.0], [30.0, 81.99]])
    box = g.training_crop_box(kpt)  # ints: left 10, right 51, top 20, bottom 81
    assert box.center == (51 - 41 / 2, 81 - 61 / 2)
    assert box.old_size == (41 + 61) / 2
    assert box.size == int(51 * 1.5)


def test_jitter_moves_centre_and_size_as_specified():
    kpt = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    box = g.training_crop_box(kpt, (0.0, 1.0, 1.0))
    assert box.center == pytest.approx((50 - 10, 50 + 10))
    assert box.size == pytest.approx(150 * 1.1)


def test_jitter_draws_reproducible_and_distinct():
    a = g.jitter_draws(7, "AFW/AFW_1_0")
    assert a == g.jitter_draws(7, "AFW/AFW_1_0")
    assert a != g.jitter_draws(8, "AFW/AFW_1_0")
    assert a != g.jitter_draws(7, "AFW_Flip/AFW_1_0")
    assert all(0.0 <= r < 1.0 for r in a)


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(10, 2))
    ang, s, t = 0.4, 1.7, np.array([3.0, -2.0])
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = s * src @ rot.T + t
    m = g.similarity_transform(src, dst)
    np.testing.assert_allclose(m[:2, :2], s * rot, atol=1e-12)
    np.testing.assert_allclose(m[:2, 2], t, atol=1e-12)


def test_crop_transform_maps_box_corners():
    box = g.CropBox(center=(200.5, 180.0), size=301.0, old_size=200.0)
    t = g.crop_transform(box, 256)
    corners = np.array([[50.0, 29.5, 1], [50.0, 330.5, 1], [351.0, 29.5, 1]])
    np.testing.assert_allclose((corners @ t.T)[:, :2], [[0, 0], [0, 255], [255, 0]], atol=1e-9)


def test_vertices_in_crop_scales_and_shifts_z():
    t = np.array([[2.0, 0, 5], [0, 2.0, -1], [0, 0, 1]])
    v = np.array([[1.0, 1.0, -3.0], [2.0, 0.0, 4.0]])
    out = g.vertices_in_crop(v, t)
    np.testing.assert_allclose(out, [[7, 1, 0], [9, -1, 14]])


def test_evaluation_box_is_untruncated_1_6():
    kpt = np.array([[10.5, 20.5], [50.5, 80.5]])
    box = g.evaluation_crop_box(kpt)
    assert box.center == (30.5, 50.5)
    assert box.size == int(1.6 * 50.0)


def test_closed_form_crop_transform_equals_umeyama_of_the_corners():
    box = g.CropBox(center=(231.37, 190.05), size=287.3, old_size=190.0)
    cx, cy, half = 231.37, 190.05, 287.3 / 2
    src = np.array([[cx - half, cy - half], [cx - half, cy + half], [cx + half, cy - half]])
    dst = np.array([[0.0, 0.0], [0.0, 255.0], [255.0, 0.0]])
    np.testing.assert_allclose(
        g.crop_transform(box, 256), g.similarity_transform(src, dst), rtol=0, atol=1e-10
    )


def test_plausibility_checks_name_the_field():
    import pytest

    g.check_pose(np.array([0.1, -3.1, 0.2, 200.0, 200.0, 0.0, 1.3e-3]))
    with pytest.raises(g.GeometryError, match="yaw 1000"):
        g.check_pose(np.array([0.0, 1000.0, 0.0, 200.0, 200.0, 0.0, 1e-3]))
    with pytest.raises(g.GeometryError, match="scale"):
        g.check_pose(np.array([0.0, 0.0, 0.0, 200.0, 200.0, 0.0, 0.0]))
    # Real AFLW2000-3D fits: angles wrap (image03123) and s < 0 (image04157) are valid fits.
    g.check_pose(np.radians([-713.7, -351.2, -972.3, 0, 0, 0, 0]) + [0, 0, 0, 200, 200, 0, 1.7e-3])
    g.check_pose(np.radians([893.7, 187.8, -950.6, 0, 0, 0, 0]) + [0, 0, 0, 200, 200, 0, -1.5e-3])
    with pytest.raises(g.GeometryError) as err:
        g.check_image((16, 16, 3))
    assert err.value.field == "image"
    pts = np.array([[100.0, 120.0], [180.0, 200.0]])
    g.check_face_box(pts, (450, 450, 3), "pt3d_68")
    for bad, words in [
        (np.zeros((68, 2)), "degenerate"),
        (pts + 1e4, "outside"),
        (pts * 1e4, "over"),
    ]:
        with pytest.raises(g.GeometryError, match=words) as err:
            g.check_face_box(bad, (450, 450, 3), "pt3d_68")
        assert err.value.field == "pt3d_68"
