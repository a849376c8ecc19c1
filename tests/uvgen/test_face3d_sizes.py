"""The UV ground truth at 128, 256 and 512 against face3d's own code at those sizes: its example
``8_generate_posmap_300WLP.py`` run with ``uv_h = uv_w = image_h = image_w = S`` on the real 300W-LP
fixture sample through the real-topology test model (golden written by
scripts/make_face3d_size_golden.py: coverage, and the map and crop at 2,048 fixed pixels)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uvgen.groundtruth import build_uv_layout, fit_vertices, training_pair

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "face3d_sizes.npz"


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as z:
        return dict(z)


@pytest.mark.parametrize("size", [128, 256, 512])
def test_maps_and_crops_equal_face3d_at_size(real_topology_model, lp300w_fixture_dir, golden, size):
    from uvgen.formats.lp300w import read_300wlp_mat
    from uvgen.formats.matfile import read_jpeg

    model = real_topology_model
    fit = read_300wlp_mat(lp300w_fixture_dir / "IBUG_image_008_1_0.mat")
    image = read_jpeg(lp300w_fixture_dir / "IBUG_image_008_1_0.jpg")
    layout = build_uv_layout(model, size)
    vertices = fit_vertices(model, fit.shape_para, fit.exp_para)[0]
    pose = np.asarray(fit.pose_para, dtype=np.float64).ravel()
    pair = training_pair(model, layout, image, vertices, pose, tuple(golden["draws"]))
    assert pair.image.shape == pair.posmap.shape == (size, size, 3)

    covered = np.unpackbits(golden[f"covered_{size}"])[: size * size].astype(bool)
    np.testing.assert_array_equal(layout.raster.mask.ravel(), covered)
    pixels = golden[f"pixels_{size}"]
    ours = pair.posmap.reshape(-1, 3)[pixels].astype(np.float64)
    theirs = golden[f"posmap_{size}"].astype(np.float64)
    # float16 storage keeps 1/8 px at these values; the two differ by float32 rounding only
    print(f"size {size}: max |ours - face3d| {np.abs(ours - theirs).max():.2e} px")
    assert np.abs(ours - theirs).max() < 1e-3
    assert np.ptp(theirs[:, 0]) > 0.5 * size  # a real face map, not a blank
    # the crop: face3d's skimage warp in [0, 1] x 255 vs ours rounded to uint8
    crop = pair.image.reshape(-1, 3)[pixels].astype(np.float64)
    assert np.abs(crop - golden[f"crop_{size}"]).max() <= 0.5 + 1e-3
