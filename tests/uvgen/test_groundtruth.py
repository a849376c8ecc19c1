"""The fast UV ground truth held to a plain, obviously correct implementation (a loop over
triangles) written here from docs/conventions.md, at the real 53,215-vertex scale and on the
embedded model. The reference decides coverage and barycentric weights in float32, as face3d's C++
rasteriser does (PRNet's maps came from it); everything else is float64."""

import math
from pathlib import Path

import numpy as np
import pytest

from uvgen.geometry import jitter_draws
from uvgen.groundtruth import build_uv_layout, fit_vertices, training_pair
from uvgen.synth.facemodel import sample_parameters
from uvgen.synth.poses import sample_pose


def reference_map(model, shape_para, exp_para, pose_para, image_h, draws, size=256):
    """Conventions sections 3-5 literally: float64 throughout, triangles drawn one by one."""
    v = (
        model.shape_mu.astype(np.float64)
        + model.exp_mu.astype(np.float64)
        + model.shape_pc.astype(np.float64) @ shape_para.reshape(-1, 1)
        + model.exp_pc.astype(np.float64) @ exp_para.reshape(-1, 1)
    ).reshape(-1, 3)
    pitch, yaw, roll, tx, ty, tz, s = (float(x) for x in pose_para)
    cx, sx, cy, sy, cz, sz = (
        math.cos(pitch),
        math.sin(pitch),
        math.cos(yaw),
        math.sin(yaw),
        math.cos(roll),
        math.sin(roll),
    )
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    cam = s * v @ (rx @ ry @ rz).T + np.array([tx, ty, tz])
    img = cam.copy()
    img[:, 1] = image_h - cam[:, 1] - 1
    kpt = img[model.kpt_ind, :2].astype(np.int32)
    left, right = kpt[:, 0].min(), kpt[:, 0].max()
    top, bottom = kpt[:, 1].min(), kpt[:, 1].max()
    center = np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])
    old_size = (right - left + bottom - top) / 2
    crop = int(old_size * 1.5)
    marg = old_size * 0.1
    center = center + [draws[0] * marg * 2 - marg, draws[1] * marg * 2 - marg]
    crop = crop * (draws[2] * 0.2 + 0.9)
    # The similarity of an axis-aligned square onto [0, size-1]^2 is a scale and a shift.
    k = (size - 1) / crop
    pos = np.empty_like(img)
    pos[:, 0] = (img[:, 0] - (center[0] - crop / 2)) * k
    pos[:, 1] = (img[:, 1] - (center[1] - crop / 2)) * k
    pos[:, 2] = img[:, 2] * k
    pos[:, 2] -= pos[:, 2].min()

    uv = np.stack([model.uv[:, 0] * (size - 1), (size - 1) - model.uv[:, 1] * (size - 1)], axis=1)
    f = np.float32  # face3d's C++ `float` arithmetic for coverage and weights
    uv = [(f(x), f(y)) for x, y in uv.astype(np.float32).tolist()]
    out = np.zeros((size, size, 3))
    done = np.zeros((size, size), bool)
    for a, b, c in model.full_triangles.tolist():
        (x0, y0), (x1, y1), (x2, y2) = uv[a], uv[b], uv[c]
        for y in range(
            max(math.ceil(min(y0, y1, y2)), 0), min(math.floor(max(y0, y1, y2)), size - 1) + 1
        ):
            for x in range(
                max(math.ceil(min(x0, x1, x2)), 0), min(math.floor(max(x0, x1, x2)), size - 1) + 1
            ):
                if done[y, x]:
                    continue
                v0x, v0y, v1x, v1y, v2x, v2y = (
                    x2 - x0,
                    y2 - y0,
                    x1 - x0,
                    y1 - y0,
                    f(x) - x0,
                    f(y) - y0,
                )
                d00, d01, d02 = v0x * v0x + v0y * v0y, v0x * v1x + v0y * v1y, v0x * v2x + v0y * v2y
                d11, d12 = v1x * v1x + v1y * v1y, v1x * v2x + v1y * v2y
                den = d00 * d11 - d01 * d01
                inv = f(0) if den == 0 else f(1) / den
                u = (d11 * d02 - d01 * d12) * inv
                w = (d00 * d12 - d01 * d02) * inv
                edge = (
                    x < 2 or x > size - 3 or y < 2 or y > size - 3
                )  # face3d's covered border band
                if edge or (u >= 0 and w >= 0 and u + w < 1):
                    u, w = float(u), float(w)
                    out[y, x] = (1 - u - w) * pos[a] + w * pos[b] + u * pos[c]
                    done[y, x] = True
    return out, done


def _compare(model, shape, exp, pose, draws, size=256):
    layout = build_uv_layout(model, size)
    vertices = fit_vertices(model, shape, exp)[0]
    image = np.zeros((450, 450, 3), np.uint8)
    pair = training_pair(model, layout, image, vertices, pose.astype(np.float64), draws)
    fast = pair.posmap
    assert fast.shape == (size, size, 3) and pair.image.shape == (size, size, 3)
    ref, covered = reference_map(model, shape, exp, pose.astype(np.float64), 450, draws, size)
    np.testing.assert_array_equal(layout.raster.mask, covered)
    diff = np.abs(fast.astype(np.float64) - ref)[covered].max()
    assert diff <= 1e-3, f"fast map differs from the reference by {diff} px"
    return covered


@pytest.mark.parametrize("size", [128, 256, 512])
def test_fast_map_equals_reference_at_real_scale(real_topology_model, lp300w_fixture_dir, size):
    """Any UV size (uvgen.uv_size): face3d's rules scaled with the size, the crop as large as the
    map (image_h = uv_h): UV pixel = uv * (size - 1), crop corners at pixel centres 0, size - 1."""
    from uvgen.formats.lp300w import read_300wlp_mat

    fit = read_300wlp_mat(lp300w_fixture_dir / "IBUG_image_008_1_0.mat")
    model = real_topology_model
    assert model.n_vertices == 53215
    rng = np.random.default_rng(0)
    shape, exp, _ = sample_parameters(model, rng)
    covered = _compare(
        model, shape, exp, fit.pose_para.astype(np.float32), jitter_draws(3, "IBUG/x"), size
    )
    assert covered.all()  # the real UV layout covers every pixel


def test_fast_map_equals_reference_on_embedded_model(embedded_model):
    rng = np.random.default_rng(1)
    shape, exp, _ = sample_parameters(embedded_model, rng)
    pose = sample_pose(embedded_model.vertices(shape, exp), 450, rng)
    _compare(embedded_model, shape, exp, pose, (0.5, 0.5, 0.5))
    _compare(embedded_model, shape, exp, pose, jitter_draws(0, "AFW/AFW_synth_000001_0"))


def test_batched_vertices_match_float64(embedded_model):
    rng = np.random.default_rng(2)
    params = [sample_parameters(embedded_model, rng)[:2] for _ in range(4)]
    batch = fit_vertices(
        embedded_model, np.stack([p[0] for p in params]), np.stack([p[1] for p in params])
    )
    for (shape, exp), got in zip(params, batch):
        np.testing.assert_allclose(
            got, embedded_model.vertices(shape, exp), atol=0.5
        )  # BFM units (~1e-5 px)
        assert got.dtype == np.float32


def test_landmarks_decoded_from_map_match_projected_key_vertices(embedded_model):
    """The map at the key vertices' UV pixels holds the key vertices' crop positions (PRNet's
    decode)."""
    from uvgen.masks import keypoint_uv_pixels

    rng = np.random.default_rng(3)
    shape, exp, _ = sample_parameters(embedded_model, rng)
    pose = sample_pose(embedded_model.vertices(shape, exp), 450, rng)
    layout = build_uv_layout(embedded_model)
    pair = training_pair(
        embedded_model,
        layout,
        np.zeros((450, 450, 3), np.uint8),
        fit_vertices(embedded_model, shape, exp)[0],
        pose.astype(np.float64),
    )
    kpt_uv = keypoint_uv_pixels(embedded_model)
    decoded = pair.posmap[kpt_uv[1], kpt_uv[0]]
    truth = pair.crop_vertices[embedded_model.kpt_ind]
    # Rounding the key vertex's UV to a pixel centre moves the sample by < 1 UV px.
    assert np.median(np.linalg.norm(decoded[:, :2] - truth[:, :2], axis=1)) < 2.0


def test_build_layout_uses_face3d_float32_arithmetic(real_topology_model):
    """UV (138, 137) on the real topology: mouth triangle 105917 is nearly degenerate in UV space;
    in float32 (face3d) its barycentric denominator is exactly 0, so it covers the pixel with
    weights (1, 0, 0) and, being earlier, wins; float64 would give the pixel to triangle 105919."""
    from uvgen.masks import uv_rasterization

    raster = build_uv_layout(real_topology_model).raster
    assert raster.tri_index[138, 137] == 105917
    np.testing.assert_array_equal(raster.weights[138, 137], [1.0, 0.0, 0.0])
    exact = uv_rasterization(real_topology_model, precision="float64")
    assert exact.tri_index[138, 137] == 105919
    differ = np.argwhere(exact.tri_index != raster.tri_index)
    np.testing.assert_array_equal(differ, [[138, 137]])


def test_crop_positions_column_runs_are_the_plain_column_operations():
    # crop_positions adds the offset and subtracts min z over runs of rows; the bytes must be
    # those of the plain per-column operations, for any vertex count and both precisions.
    from uvgen.geometry import crop_transform, training_crop_box
    from uvgen.groundtruth import crop_affine, crop_positions

    rng = np.random.default_rng(5)
    pose = np.array([0.3, -0.6, 0.1, 220.0, 210.0, -40.0, 1.1e-3])
    box = training_crop_box(rng.uniform(100, 300, (68, 2)), (0.2, 0.7, 0.4))
    transform = crop_transform(box)
    for n in (1, 2, 63, 64, 65, 130, 53215):
        for dtype in (np.float32, np.float64):
            vertices = (rng.standard_normal((n, 3)) * 6e4).astype(dtype)
            m, o = crop_affine(pose, 450, transform)
            plain = vertices @ m.T.astype(dtype)
            for k in range(3):
                plain[:, k] += dtype(o[k])
            plain[:, 2] -= plain[:, 2].min()
            fast = crop_positions(vertices, pose, 450, transform)
            assert fast.dtype == dtype and fast.tobytes() == plain.tobytes()


def test_one_sample_gets_the_batch_bytes_on_either_product_path(embedded_model):
    """A single sample (the narrow 2-row product where this BLAS agrees, else padded to 50 rows)
    has the bytes of its row in a batch."""
    from uvgen import groundtruth

    rng = np.random.default_rng(4)
    params = [sample_parameters(embedded_model, rng)[:2] for _ in range(5)]
    shapes, exps = np.stack([p[0] for p in params]), np.stack([p[1] for p in params])
    batch = fit_vertices(embedded_model, shapes, exps, slots=np.arange(5) + 46)
    agree = groundtruth.narrow_products_agree(embedded_model)
    key = id(embedded_model)
    saved = groundtruth._NARROW[key]
    for forced in (agree, False):
        groundtruth._NARROW[key] = (saved[0], forced)
        try:
            for i in (0, 4):
                alone = fit_vertices(embedded_model, shapes[i], exps[i], slots=[46 + i])
                assert alone.tobytes() == batch[i].tobytes()
        finally:
            groundtruth._NARROW[key] = saved


def test_inexact_single_sample_is_within_float32_rounding(embedded_model):
    rng = np.random.default_rng(5)
    shape, exp, _ = sample_parameters(embedded_model, rng)
    exact = fit_vertices(embedded_model, shape, exp)[0]
    fast = fit_vertices(embedded_model, shape, exp, exact=False)[0]
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, exact, rtol=0, atol=np.abs(exact).max() * 2e-6)


# face3d's own code at 128, 256 and 512: its example ``8_generate_posmap_300WLP.py`` run with
# ``uv_h = uv_w = image_h = image_w = S`` on the real 300W-LP fixture sample through the
# real-topology test model (golden written by scripts/make_face3d_size_golden.py: coverage, and
# the map and crop at 2,048 fixed pixels).
FACE3D_GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "face3d_sizes.npz"


@pytest.fixture(scope="module")
def face3d_golden():
    with np.load(FACE3D_GOLDEN) as z:
        return dict(z)


@pytest.mark.parametrize("size", [128, 256, 512])
def test_maps_and_crops_equal_face3d_at_size(
    real_topology_model, lp300w_fixture_dir, face3d_golden, size
):
    from uvgen.formats.lp300w import read_300wlp_mat
    from uvgen.formats.matfile import read_jpeg

    model = real_topology_model
    fit = read_300wlp_mat(lp300w_fixture_dir / "IBUG_image_008_1_0.mat")
    image = read_jpeg(lp300w_fixture_dir / "IBUG_image_008_1_0.jpg")
    layout = build_uv_layout(model, size)
    vertices = fit_vertices(model, fit.shape_para, fit.exp_para)[0]
    pose = np.asarray(fit.pose_para, dtype=np.float64).ravel()
    pair = training_pair(model, layout, image, vertices, pose, tuple(face3d_golden["draws"]))
    assert pair.image.shape == pair.posmap.shape == (size, size, 3)

    covered = np.unpackbits(face3d_golden[f"covered_{size}"])[: size * size].astype(bool)
    np.testing.assert_array_equal(layout.raster.mask.ravel(), covered)
    pixels = face3d_golden[f"pixels_{size}"]
    ours = pair.posmap.reshape(-1, 3)[pixels].astype(np.float64)
    theirs = face3d_golden[f"posmap_{size}"].astype(np.float64)
    # float16 storage keeps 1/8 px at these values; the two differ by float32 rounding only
    print(f"size {size}: max |ours - face3d| {np.abs(ours - theirs).max():.2e} px")
    assert np.abs(ours - theirs).max() < 1e-3
    assert np.ptp(theirs[:, 0]) > 0.5 * size  # a real face map, not a blank
    # the crop: face3d's skimage warp in [0, 1] x 255 vs ours rounded to uint8
    crop = pair.image.reshape(-1, 3)[pixels].astype(np.float64)
    assert np.abs(crop - face3d_golden[f"crop_{size}"]).max() <= 0.5 + 1e-3
