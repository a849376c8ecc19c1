"""Time face3d's own 300W-LP position-map generation per sample (a helper of bench_uvgen.py).

Runs under an interpreter that has face3d's requirements (numpy, scipy, scikit-image,
matplotlib) and a face3d checkout whose Cython rasteriser is built (``face3d/mesh/cython``:
``python setup.py build_ext -i``); never imported by the project. It loads
``examples/8_generate_posmap_300WLP.py`` from the checkout and calls its ``run_posmap_300W_LP``
on samples already in memory: file reading and writing are replaced by dictionary look-ups and
no-ops, and its three random draws by the sample's given draws, so what is timed is face3d's
compute (vertices, transform, crop box, skimage warp, UV rendering).

    python face3d_timer.py FACE3D_DIR MODEL_DIR SAMPLES.json

SAMPLES.json: ``{"samples": [{"jpg": ..., "mat": ..., "draws": [a, b, c]}, ...]}``. Then each
line ``N`` on stdin times N passes over the samples and answers one line: ms per sample.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import types
from pathlib import Path

import numpy as np


def load_script(face3d_dir: Path) -> types.ModuleType:
    sys.path.insert(0, str(face3d_dir))
    path = face3d_dir / "examples" / "8_generate_posmap_300WLP.py"
    spec = importlib.util.spec_from_file_location("face3d_posmap_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Files:
    """In-memory stand-ins of the script's skimage.io, scipy.io and numpy (save and rand)."""

    def __init__(self, images: dict, mats: dict, draws: list):
        self.images, self.mats, self.draws = images, mats, draws
        self.saved: dict[str, np.ndarray] = {}

    def imread(self, path):
        return self.images[path]

    def imsave(self, path, array, **_):
        self.saved[str(path)] = array

    def loadmat(self, path):
        return self.mats[path]

    def save(self, path, array, **_):
        self.saved[str(path)] = array

    def rand(self, *_):
        return self.draws.pop(0)


def install(module: types.ModuleType, files: _Files) -> None:
    """Point the script's io, sio and np.save / np.random.rand at ``files``."""
    module.io = types.SimpleNamespace(imread=files.imread, imsave=files.imsave)
    module.sio = types.SimpleNamespace(loadmat=files.loadmat)
    numpy_proxy = types.ModuleType("numpy_proxy")
    numpy_proxy.__dict__.update(np.__dict__)
    numpy_proxy.save = files.save
    numpy_proxy.random = types.SimpleNamespace(rand=files.rand)
    module.np = numpy_proxy


def prepare(face3d_dir: Path, model_dir: Path):
    """(script module, face3d's model) with the script's global ``uv_coords`` set as its main."""
    module = load_script(face3d_dir)
    import face3d

    uv = face3d.morphable_model.load.load_uv_coords(str(model_dir / "BFM_UV.mat"))
    module.uv_coords = module.process_uv(uv, 256, 256)
    bfm = module.MorphabelModel(str(model_dir / "BFM.mat"))
    return module, bfm


def main() -> None:
    face3d_dir, model_dir, samples_json = (Path(a) for a in sys.argv[1:4])
    import scipy.io as sio
    from skimage import io

    module, bfm = prepare(face3d_dir, model_dir)
    samples = json.loads(samples_json.read_text())["samples"]
    images = {s["jpg"]: io.imread(s["jpg"]) for s in samples}
    mats = {s["mat"]: sio.loadmat(s["mat"]) for s in samples}
    files = _Files(images, mats, [])
    install(module, files)
    print("ready", flush=True)
    for line in sys.stdin:
        passes = int(line)
        total, count = 0.0, 0
        for _ in range(passes):
            for s in samples:
                files.draws[:] = list(s["draws"])
                tic = time.perf_counter()
                module.run_posmap_300W_LP(bfm, s["jpg"], s["mat"], "out")
                total += time.perf_counter() - tic
                count += 1
        files.saved.clear()
        print(f"{1000 * total / count:.3f}", flush=True)


if __name__ == "__main__":
    main()
