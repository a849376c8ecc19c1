"""model.head_pose: rotation angles, the similarity fit and the pose of a map."""

from __future__ import annotations

import numpy as np
import pytest

from model import head_pose
from model.uses import dense_vertices
from tests.model.face_maps import (
    SIZE,
    draw_face,
    mean_pose_map,
    rotation_error_deg,
    true_map,
)
from uvgen.geometry import rotation_matrix


def test_rotation_angles_invert_the_conventions_rotation() -> None:
    rng = np.random.default_rng(0)
    angles = np.c_[
        rng.uniform(-np.pi, np.pi, 200),
        rng.uniform(-np.pi / 2, np.pi / 2, 200) * 0.999,
        rng.uniform(-np.pi, np.pi, 200),
    ]
    for a in angles:
        back = head_pose.rotation_angles(rotation_matrix(*a))
        assert np.allclose(back, a, atol=1e-9)
    for yaw in (np.pi / 2, -np.pi / 2):  # gimbal lock: the matrix is still reproduced
        r = rotation_matrix(0.3, yaw, -0.2)
        assert np.allclose(rotation_matrix(*head_pose.rotation_angles(r)), r, atol=1e-9)


def test_similarity_fit_is_exact() -> None:
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    r = rotation_matrix(0.4, -1.1, 2.5)
    dst = 3.5 * src @ r.T + [1.0, -2.0, 7.0]
    s, rot, t = head_pose.similarity_fit(src, dst)
    assert s == pytest.approx(3.5) and np.allclose(rot, r) and np.allclose(t, [1, -2, 7])
    assert np.linalg.det(head_pose.similarity_fit(src, src * [1, 1, -1])[1]) == pytest.approx(1.0)


@pytest.mark.parametrize("angles", [(0.0, 0.0, 0.0), (12.0, -35.0, 8.0), (-20.0, 70.0, -15.0)])
def test_pose_of_the_mean_face_is_exact(setup, angles) -> None:
    model, layout, uv = setup
    posmap, pose = mean_pose_map(model, layout, angles)
    est = head_pose.face_pose(posmap, uv, SIZE)
    assert np.allclose(est.degrees, angles, atol=0.01)
    # the map's vertices handed over (prnet predict computes them once per face): the same pose;
    # other vertices: the pose of those
    given = head_pose.face_pose(posmap, uv, SIZE, vertices=dense_vertices(posmap, uv))
    assert given.degrees == est.degrees and np.array_equal(given.translation, est.translation)
    shifted = dense_vertices(posmap, uv) + np.float32([5, 0, 0])
    moved = head_pose.face_pose(posmap, uv, SIZE, vertices=shifted)
    assert moved.translation[0] == pytest.approx(est.translation[0] + 5, abs=1e-3)
    assert est.scale == pytest.approx(pose[6], rel=1e-4)
    assert np.allclose(est.translation[:2], pose[3:5], atol=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_pose_from_the_map_recovers_the_samples_pose(setup, seed) -> None:
    """Identity and expression add a small rotation of their own (see estimate_pose)."""
    model, layout, uv = setup
    s = draw_face(model, seed)
    _, posmap = true_map(model, layout, s)
    est = head_pose.face_pose(posmap, uv, SIZE)
    truth = s.pose_para.astype(np.float64)
    assert rotation_error_deg(est.rotation, rotation_matrix(*truth[:3])) < 2.5
    assert abs(est.degrees[1] - np.degrees(truth[1])) < 1.5  # yaw
    assert est.scale == pytest.approx(truth[6], rel=0.06)
    d = est.to_dict()
    assert d["yaw_deg"] == pytest.approx(est.degrees[1]) and len(d["pose_para"]) == 7
