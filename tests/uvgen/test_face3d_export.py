"""``prnet export-posmaps --layout face3d`` against face3d's own script on the real 300W-LP sample.

The golden (tests/fixtures/face3d_export_golden.json, written by
scripts/make_face3d_export_golden.py) holds what face3d's ``examples/8_generate_posmap_300WLP.py``
wrote for IBUG_image_008_1_0 with the real-topology test model and the build's jitter draws:
its file names, the map's coverage, statistics and 200 pixels, and the crop's row and column
sums. The project builds the same sample (float16 storage, the default) and exports it; the
files must be face3d's (less its ``_posmap.jpg`` picture) and the values equal within the
storage precision.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from tests.conftest import PROJECT_ROOT
from uvgen.formats.bfm import save_bfm
from uvgen.formats.matfile import read_jpeg
from uvgen.geometry import jitter_draws
from uvgen.h5codec import StorageOptions
from uvgen.h5store import PositionMapFile
from uvgen.posmap_export import export_posmaps
from uvgen.uvbuild import BuildSettings, build_split

GOLDEN = json.loads((PROJECT_ROOT / "tests/fixtures/face3d_export_golden.json").read_text())


def test_export_equals_face3d_script_output(real_topology_model, lp300w_fixture_dir, tmp_path):
    sample = Path(GOLDEN["sample"])
    assert tuple(GOLDEN["draws"]) == jitter_draws(0, sample.as_posix())  # the build's draws
    root = tmp_path / "300W_LP"
    (root / sample.parent).mkdir(parents=True)
    for suffix in (".mat", ".jpg"):
        (root / sample.with_suffix(suffix)).symlink_to(
            lp300w_fixture_dir / sample.with_suffix(suffix).name
        )
    save_bfm(real_topology_model, tmp_path / "model")
    h5 = tmp_path / "train.h5"
    build_split(
        BuildSettings(
            split="train",
            model_dir=tmp_path / "model",
            source_root=root,
            out_path=h5,
            rejects_path=tmp_path / "rejects.csv",
            seed=0,
            jitter=True,
            task_size=50,
            storage=StorageOptions(),
            workers=0,
        )
    )
    out = tmp_path / "export"
    export_posmaps(h5, out)

    # Same files, in face3d's flat naming under the sample's folder (no _posmap.jpg view).
    written = sorted(p.name for p in (out / sample.parent).iterdir())
    assert written == [f for f in GOLDEN["files"] if not f.endswith("_posmap.jpg")]
    posmap = np.load(out / sample.with_suffix(".npy"))
    assert str(posmap.dtype) == GOLDEN["posmap_dtype"]
    assert list(posmap.shape) == GOLDEN["posmap_shape"]

    # Covered pixels equal; values within the float16 storage step (map - 128, half a step of
    # rounding) plus float32 arithmetic in another order (~1e-4 px).
    covered = np.any(posmap != 0, axis=-1)
    assert int(covered.sum()) == GOLDEN["covered"]
    assert hashlib.sha256(np.packbits(covered).tobytes()).hexdigest() == GOLDEN["covered_sha256"]
    pixels = np.array(GOLDEN["pixels"])
    face3d = np.array(GOLDEN["pixel_values"])
    ours = posmap[pixels[:, 0], pixels[:, 1]].astype(np.float64)
    step = np.spacing(np.abs(face3d - 128.0).astype(np.float16)).astype(np.float64)
    assert np.all(np.abs(ours - face3d) <= step / 2 + 2e-3)
    values = posmap[covered].astype(np.float64)
    np.testing.assert_allclose(values.min(axis=0), GOLDEN["channel_min"], atol=1 / 16)
    np.testing.assert_allclose(values.max(axis=0), GOLDEN["channel_max"], atol=1 / 16)
    np.testing.assert_allclose(values.mean(axis=0), GOLDEN["channel_mean"], atol=1e-3)

    # The crop: the stored uint8 crop is face3d's picture but for values that sit on a rounding
    # tie (x.5 levels, where the two warps' float64 arithmetic differs by ~1e-8: 3 of 196,608
    # values on this sample, each 1 level off); the exported JPEG decodes to it within JPEG's loss.
    with PositionMapFile(h5) as f:
        crop = f.image(0).astype(np.int64)
    assert list(crop.shape) == GOLDEN["crop_shape"]
    rows = np.abs(crop.sum(axis=1) - np.array(GOLDEN["crop_row_sums"]))
    cols = np.abs(crop.sum(axis=0) - np.array(GOLDEN["crop_col_sums"]))
    assert rows.sum() <= 8 and cols.sum() <= 8
    assert abs(crop.mean() - GOLDEN["crop_mean"]) < 1e-4
    jpeg = read_jpeg(out / sample.with_suffix(".jpg"))
    assert np.abs(jpeg.astype(np.int64) - crop).mean() < 3.0
