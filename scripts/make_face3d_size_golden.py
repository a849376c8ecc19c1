"""Write tests/fixtures/face3d_sizes.npz: face3d's own position map and crop of the real 300W-LP
fixture sample at UV sizes 128, 256 and 512, for tests/uvgen/test_groundtruth.py.

face3d's ``examples/8_generate_posmap_300WLP.py`` is run as it is (its ``process_uv`` and
``run_posmap_300W_LP`` with ``uv_h = uv_w = image_h = image_w = S``) on the project's real-topology
test model (``make_real_topology_model(fixtures/bfm_topology, seed=0)``, saved as face3d's BFM.mat),
with two changes made from outside: its three ``np.random.rand()`` draws are the project's
jitter draws of the sample, and its ``io.imsave`` / ``np.save`` calls are captured instead of
written (the crop before JPEG, the map as saved). Coverage is face3d's rasteriser drawing ones.

Kept small: per size the coverage (packed bits) and the map and crop at 2,048 fixed pixels.

Run in a scratch venv OUTSIDE the project with face3d's Cython rasteriser built (``python setup.py
build_ext --inplace`` in ``face3d/mesh/cython``; numpy 2 works unchanged), scikit-image and
matplotlib installed, and the project importable::

    PYTHONPATH=/path/to/project:/path/to/face3d python scripts/make_face3d_size_golden.py \\
        --face3d /path/to/face3d --fixtures ../shared/fixtures --out tests/fixtures/face3d_sizes.npz
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
from pathlib import Path

import numpy as np

SIZES = (128, 256, 512)
N_PIXELS = 2048
SAMPLE = "IBUG_image_008_1_0"
JITTER = (3, "IBUG/x")  # (seed, name) of uvgen.geometry.jitter_draws, as the test uses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--face3d", type=Path, required=True, help="face3d's checkout (has examples/)")
    ap.add_argument("--fixtures", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    from face3d import mesh
    from face3d.morphable_model import MorphabelModel
    from face3d.morphable_model.load import load_uv_coords

    from uvgen.formats.bfm import save_bfm
    from uvgen.geometry import jitter_draws
    from uvgen.synth.facemodel import make_real_topology_model

    spec = importlib.util.spec_from_file_location(
        "face3d_example_8", args.face3d / "examples" / "8_generate_posmap_300WLP.py"
    )
    ex8 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex8)

    saved: dict[str, np.ndarray] = {}

    class CapturedIO:
        @staticmethod
        def imread(path):
            from skimage import io

            return io.imread(path)

        @staticmethod
        def imsave(path, image):
            saved[Path(path).name] = np.array(image)

    ex8.io = CapturedIO
    ex8.np.save = lambda path, arr: saved.__setitem__(Path(path).name, np.array(arr))
    draws = jitter_draws(*JITTER)

    model = make_real_topology_model(args.fixtures / "bfm_topology", seed=0)
    out: dict[str, np.ndarray] = {"draws": np.array(draws)}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        save_bfm(model, Path(tmp))
        bfm = MorphabelModel(str(Path(tmp) / "BFM.mat"))
        for size in SIZES:
            ex8.uv_coords = ex8.process_uv(
                load_uv_coords(str(Path(tmp) / "BFM_UV.mat")), size, size
            )
            pending = list(draws)
            ex8.np.random.rand = lambda q=pending: q.pop(0)  # the example calls rand()
            saved.clear()
            folder = args.fixtures / "300w_lp"
            ex8.run_posmap_300W_LP(
                bfm, str(folder / f"{SAMPLE}.jpg"), str(folder / f"{SAMPLE}.mat"), tmp,
                size, size, size, size,
            )  # fmt: skip
            assert not pending, "face3d's example drew a different number of random numbers"
            posmap = saved[f"{SAMPLE}.npy"]
            crop = saved[f"{SAMPLE}.jpg"]
            ones = np.ones((model.n_vertices, 3), np.float32)
            covered = (
                mesh.render.render_colors(ex8.uv_coords, bfm.full_triangles, ones, size, size, c=3)[
                    ..., 0
                ]
                > 0.5
            )  # weights sum to 1 up to float32 rounding
            pixels = np.sort(rng.choice(size * size, N_PIXELS, replace=False))
            out[f"covered_{size}"] = np.packbits(covered.ravel())
            out[f"pixels_{size}"] = pixels
            out[f"posmap_{size}"] = posmap.reshape(-1, 3)[pixels].astype(np.float32)
            out[f"crop_{size}"] = (crop.reshape(-1, 3)[pixels] * 255.0).astype(np.float32)
            print(f"size {size}: {covered.sum()} of {size * size} pixels covered")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
