"""Speed of ``prnet evaluate`` (eval.aflw_benchmark) over 2,000 AFLW2000-3D images, 3 methods.

    python benchmarks/bench_aflw_benchmark.py                        # synthetic 2,000 .mat files
    python benchmarks/bench_aflw_benchmark.py --data AFLW2000        # the real folder
    python benchmarks/bench_aflw_benchmark.py --model-dir BFM_DIR    # dense tables too

Without ``--data`` it writes, once, under ``build/bench_aflw/``, 2,000 AFLW2000-3D-format files:
the 26 real fixtures' ``.mat`` fields (../shared/fixtures; linked images) repeated under new names
with their landmarks jittered, or synthetic fits of the embedded model when ../shared is absent.
Without ``--model-dir`` and with ../shared present, the dense run uses the real-topology test model
(53,215 vertices, generated components), written once under build/bench_aflw/model.

Methods: three landmark arrays (ground truth + noise of 2, 3 and 5 px, one with 2 images missing)
and, with a model, a fourth with dense points (a predictions file written once). Printed: the wall
time of the 68-point run (tables, CSVs, CED figures; target <= 5 s on 2 cores) and of the run with
the model (+ dense ground truth from the fits, dense, reconstruction and head-pose tables; target
<= 20 s), each the best of ``--repeat`` runs, interleaved.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.io as sio

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fixtures"
N_IMAGES = 2000


def _fixture_mats() -> list[Path]:
    return sorted(SHARED.glob("aflw2000_3d*/image*.mat"))


def make_folder(root: Path, n: int) -> Path:
    """``n`` AFLW2000-3D files under ``root/AFLW2000`` (made once)."""
    folder = root / "AFLW2000"
    if folder.is_dir() and len(list(folder.glob("*.mat"))) == n:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    sources = _fixture_mats()
    if not sources:
        from uvgen.formats.bfm import save_bfm
        from uvgen.synth.dataset import write_synthetic_set
        from uvgen.synth.facemodel import make_face_model

        save_bfm(make_face_model(n_vertices=5000, seed=0), root / "embedded_model")
        write_synthetic_set("aflw2000", root / "embedded_model", folder, n, 450, seed=2)
        return folder
    for i in range(n):
        src = sources[i % len(sources)]
        mat = sio.loadmat(src)
        mat["pt3d_68"] = mat["pt3d_68"] + rng.normal(0, 1.0, mat["pt3d_68"].shape).astype("f4")
        name = f"image{i:05d}"
        sio.savemat(folder / f"{name}.mat", {k: v for k, v in mat.items() if not k.startswith("_")})
        (folder / f"{name}.jpg").symlink_to(src.with_suffix(".jpg"))
    return folder


def make_methods(folder: Path, out: Path) -> list[tuple[str, str]]:
    """Three landmark-array methods: ground truth + 2, 3, 5 px noise (the last misses 2 images)."""
    paths = sorted(folder.glob("*.mat"))
    names = np.array([p.stem for p in paths])
    gt = np.array([sio.loadmat(p, variable_names=["pt3d_68"])["pt3d_68"].T for p in paths])
    rng = np.random.default_rng(1)
    methods = []
    for label, sigma, keep in (("A", 2.0, None), ("B", 3.0, None), ("C", 5.0, slice(2, None))):
        pred = gt + rng.normal(0, sigma, gt.shape)
        sel = slice(None) if keep is None else keep
        np.savez(out / f"{label}.npz", landmarks=pred[sel], names=names[sel])
        methods.append((label, str(out / f"{label}.npz")))
    return methods


def make_dense_method(folder: Path, model_dir: Path, root: Path) -> tuple[str, str]:
    """A fourth method with dense points (the fits' dense ground truth + 1 px noise) as a
    predictions file (eval.predictions), written once: the dense tables' workload."""
    from eval.aflw_truth import read_aflw_truth
    from eval.predictions import PredictionsWriter

    path = root / f"dense_{len(list(folder.glob('*.mat')))}.h5"
    if not path.is_file():
        truth = read_aflw_truth(folder, model_dir=model_dir)
        rng = np.random.default_rng(2)
        with PredictionsWriter(path, "D", truth.names, truth.dense_count) as w:
            for start in range(0, len(truth), 64):
                rows = slice(start, min(len(truth), start + 64))
                dense = np.nan_to_num(truth.dense_rows(rows))
                lm = truth.landmarks[rows]
                w.write(
                    start,
                    landmarks=(lm + rng.normal(0, 2.0, lm.shape)).astype(np.float32),
                    dense=(dense + rng.normal(0, 1.0, dense.shape)).astype(np.float32),
                    runtime_s=0.0,
                )
    return "D", str(path)


def model_dir_for(root: Path) -> Path | None:
    if not (SHARED / "bfm_topology").is_dir():
        return None
    target = root / "model"
    if not (target / "BFM.mat").is_file():
        from uvgen.formats.bfm import save_bfm
        from uvgen.synth.facemodel import make_real_topology_model

        save_bfm(make_real_topology_model(SHARED / "bfm_topology", seed=0), target)
    return target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--n", type=int, default=N_IMAGES)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    from eval.aflw_benchmark import run_benchmark

    work = ROOT / "build" / "bench_aflw"
    work.mkdir(parents=True, exist_ok=True)
    folder = args.data or make_folder(work, args.n)
    model_dir = args.model_dir or model_dir_for(work)
    tmp = Path(tempfile.mkdtemp())
    try:
        methods = make_methods(folder, tmp)
        runs = {"68-point (3 methods)": (None, methods)}
        if model_dir is not None:
            dense = make_dense_method(Path(folder), model_dir, work)
            runs["with a model (3 + 1 dense)"] = (model_dir, [*methods, dense])
        best = {k: float("inf") for k in runs}
        for _ in range(args.repeat):
            for label, (mdir, these) in runs.items():
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    run_benchmark(folder, these, tmp / "out", model_dir=mdir)
                best[label] = min(best[label], time.perf_counter() - t0)
        n = len(list(Path(folder).glob("*.mat")))
        print(f"prnet evaluate on {n} images ({folder}), best of {args.repeat}:")
        for label, seconds in best.items():
            if np.isfinite(seconds):
                print(f"  {label:28s} {seconds:6.2f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
