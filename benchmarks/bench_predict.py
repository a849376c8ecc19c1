"""CPU milliseconds per image of ``prnet predict``'s work: detection + crop + network + decoding.

    python benchmarks/bench_predict.py [--repeats 7] [--threads 0] [--detector hog|none]

The image is a rendered synthetic face (the project's embedded morphable model, 450 x 450, the
size of 300W-LP / AFLW2000-3D images) that dlib's HOG detector finds. The network is PRNet at
width 16 with random weights: the released model's architecture, so the same compute (the weights
do not change the cost). The UV layout is PRNet's uv-data from ../shared/fixtures when present
(the release's), else the embedded model's. Each stage is timed over ``--repeats`` runs after one
warm-up; the medians are printed, with the machine load (``os.getloadavg``).

Not timed: reading the JPEG and writing the output files (mesh, texture, depth image...), which
depend on the disk and on which outputs are asked for.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.api import PRN  # noqa: E402
from model.prnet import PRNet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--detector", choices=("hog", "none"), default="hog")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from uvgen.formats.bfm import save_bfm
    from uvgen.synth.dataset import draw_sample, sample_rng
    from uvgen.synth.facemodel import make_face_model

    face_model = make_face_model(n_vertices=5000, seed=0)
    image = draw_sample(face_model, 450, sample_rng(0, 0)).image
    uv_dir = ROOT.parent / "shared" / "fixtures" / "prnet_uv"
    torch.manual_seed(0)
    net = PRNet(width=16).eval()
    if uv_dir.is_dir():
        prn = PRN(net, uv_data=uv_dir, device="cpu")
        layout = "PRNet's uv-data"
    else:
        import tempfile

        tmp = Path(tempfile.mkdtemp())
        save_bfm(face_model, tmp)
        prn = PRN(net, model_dir=tmp, device="cpu")
        layout = "embedded model"

    timings: dict[str, list[float]] = {
        k: [] for k in ("detect", "crop", "network", "decode", "total")
    }
    box = None
    for k in range(args.repeats + 1):
        t0 = time.perf_counter()
        if args.detector == "hog":
            faces = prn.detect(image)
            if not faces:
                raise SystemExit("the HOG detector found no face in the benchmark image")
            box = faces[0].bbox
        else:
            box = (130.0, 330.0, 120.0, 340.0)
        t1 = time.perf_counter()
        crop, t = prn.predictor.crop(image, bbox=box)
        t2 = time.perf_counter()
        maps = prn.predictor.predict_maps(crop[None])
        t3 = time.perf_counter()
        pred = prn.predictor.decode(maps[0], t, crop)
        _ = pred.landmarks, pred.vertices
        t4 = time.perf_counter()
        if k:  # the first run warms up
            for name, dt in zip(
                ("detect", "crop", "network", "decode", "total"),
                (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0),
            ):
                timings[name].append(dt * 1e3)
    print(
        f"prnet predict, CPU, {torch.get_num_threads()} torch threads, 450x450 image, "
        "PRNet width 16, "
        f"layout: {layout}, detector: {args.detector}; median of {args.repeats} (ms):"
    )
    for name, values in timings.items():
        print(
            f"  {name:8s} {statistics.median(values):8.1f}   "
            f"(min {min(values):.1f}, max {max(values):.1f})"
        )
    print(
        f"  load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
        f"on {os.cpu_count()} CPUs; box {box}"
    )
    np.testing.assert_equal(pred.landmarks.shape, (68, 3))


if __name__ == "__main__":
    main()
