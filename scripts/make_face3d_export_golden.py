"""Write tests/fixtures/face3d_export_golden.json: face3d's own posmap script on the real sample.

Runs face3d's ``examples/8_generate_posmap_300WLP.py`` (its ``run_posmap_300W_LP``, with its
``process_uv`` UV coordinates) on the real 300W-LP fixture ``IBUG_image_008_1_0`` with a model
the project can write in face3d's layout: the real BFM topology (../shared/fixtures/bfm_topology)
with the generated components of ``make_real_topology_model(seed=0)``, as the tests'
``real_topology_model``; the real BFM's components are not public. face3d's three random draws
are the build's jitter draws of the sample (``jitter_draws(0, "IBUG/IBUG_image_008_1_0.mat")``).
The script's files are written as it writes them, into a temporary folder.

Recorded (small; tests/uvgen/test_face3d_export.py compares ``prnet export-posmaps --layout
face3d`` of the project's build with it): the file names the script writes for the sample; the
map's dtype, shape, SHA-256 of its covered-pixel mask (any channel non-zero), per-channel
min / max / mean over covered pixels, and the values of 200 covered pixels drawn with a fixed
seed; the crop as the uint8 picture the script saves (``img_as_ubyte`` of its float crop:
times 255, rounded) as a SHA-256, its mean and its per-channel row and column sums.

Needs an interpreter with face3d's requirements (numpy, scipy, scikit-image, matplotlib), a
face3d checkout with its Cython rasteriser built, and this repository on PYTHONPATH:

    git --git-dir=.../YadiraF+face3d/repo/.git archive HEAD face3d \\
        examples/8_generate_posmap_300WLP.py | tar -x -C /tmp/f3d
    (cd /tmp/f3d/face3d/mesh/cython && python setup.py build_ext -i)
    PYTHONPATH=. python scripts/make_face3d_export_golden.py --face3d /tmp/f3d
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures"
SAMPLE = "IBUG/IBUG_image_008_1_0.mat"  # the sample's name in the build (folder kept)
OUT = ROOT / "tests" / "fixtures" / "face3d_export_golden.json"
N_PIXELS = 200


def covered_mask(posmap: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels with any non-zero channel (face3d's background is 0)."""
    return np.any(posmap != 0, axis=-1)


def mask_sha256(mask: np.ndarray) -> str:
    return hashlib.sha256(np.packbits(mask.astype(bool)).tobytes()).hexdigest()


def sample_pixels(mask: np.ndarray, count: int = N_PIXELS) -> np.ndarray:
    """(count, 2) (row, col) of covered pixels drawn with seed 0, sorted."""
    rows, cols = np.nonzero(mask)
    pick = np.sort(np.random.default_rng(0).choice(len(rows), size=count, replace=False))
    return np.stack([rows[pick], cols[pick]], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--face3d", type=Path, required=True, help="face3d checkout, Cython built")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scipy.io as sio
    from face3d_timer import _Files, install, prepare
    from skimage import io
    from skimage.util import img_as_ubyte

    from uvgen.formats.bfm import save_bfm
    from uvgen.geometry import jitter_draws
    from uvgen.synth.facemodel import make_real_topology_model

    stem = Path(SAMPLE).stem
    mat = FIXTURES / "300w_lp" / f"{stem}.mat"
    jpg = mat.with_suffix(".jpg")
    draws = jitter_draws(0, SAMPLE)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        save_bfm(make_real_topology_model(FIXTURES / "bfm_topology", seed=0), model_dir)
        module, bfm = prepare(args.face3d, model_dir)
        out = Path(tmp) / "posmap_300WLP"
        out.mkdir()
        files = _Files({str(jpg): io.imread(str(jpg))}, {str(mat): sio.loadmat(str(mat))}, [])
        install(module, files)
        files.draws[:] = list(draws)
        module.run_posmap_300W_LP(bfm, str(jpg), str(mat), str(out))
        for path, array in files.saved.items():  # written as the script writes them
            if path.endswith(".npy"):
                np.save(path, array)
            else:  # float pictures: img_as_ubyte, as scikit-image's imsave did (now it refuses)
                io.imsave(path, img_as_ubyte(np.clip(array, 0.0, 1.0)), check_contrast=False)
        written = sorted(p.name for p in out.iterdir())
        posmap = files.saved[str(out / f"{stem}.npy")]
        crop = files.saved[str(out / f"{stem}.jpg")]
    mask = covered_mask(posmap)
    pixels = sample_pixels(mask)
    crop_u8 = img_as_ubyte(crop)
    covered = posmap[mask].astype(np.float64)
    golden = {
        "source": "face3d examples/8_generate_posmap_300WLP.py run_posmap_300W_LP, "
        "scripts/make_face3d_export_golden.py",
        "model": "make_real_topology_model(bfm_topology, seed=0) written by save_bfm",
        "sample": SAMPLE,
        "draws": list(draws),
        "files": written,
        "posmap_dtype": str(posmap.dtype),
        "posmap_shape": list(posmap.shape),
        "covered": int(mask.sum()),
        "covered_sha256": mask_sha256(mask),
        "channel_min": covered.min(axis=0).tolist(),
        "channel_max": covered.max(axis=0).tolist(),
        "channel_mean": covered.mean(axis=0).tolist(),
        "pixels": pixels.tolist(),
        "pixel_values": posmap[pixels[:, 0], pixels[:, 1]].astype(np.float64).tolist(),
        "crop_shape": list(crop_u8.shape),
        "crop_sha256": hashlib.sha256(crop_u8.tobytes()).hexdigest(),
        "crop_mean": float(crop_u8.mean()),
        "crop_row_sums": crop_u8.sum(axis=1, dtype=np.int64).tolist(),
        "crop_col_sums": crop_u8.sum(axis=0, dtype=np.int64).tolist(),
    }
    args.out.write_text(json.dumps(golden) + "\n")
    print(f"{args.out}: {written}, {golden['covered']} covered pixels")


if __name__ == "__main__":
    main()
