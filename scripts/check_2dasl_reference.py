"""Score 2DASL's shipped AFLW2000-3D parameters with ``prnet evaluate`` and with 3DDFA's own
benchmark code, side by side (the real-data check of docs/aflw2000_benchmark.md).

Run by hand; it needs checkouts of XgTu/2DASL and cleardusk/3DDFA (not project dependencies;
nothing of them is copied here) and the 2,000 AFLW2000-3D files::

    python scripts/check_2dasl_reference.py --2dasl 2DASL --3ddfa 3DDFA \\
        --aflw 2DASL/test_codes/test.data/AFLW-2000-3D --out build/2dasl_check

Inputs:
- 2DASL's ``test_codes/results/params_aflw2000_xgtu.npy``: (1998, 62) 3DDFA-style parameters,
  named by ``test.data/AFLW1998-3D_crop.list``; 2DASL has none for two images.
- 3DDFA's ``test.configs/AFLW2000-3D_crop.roi_box.npy``: the crop boxes of the 2,000 images.
- Its ``train.configs`` (``u_shp``, ``u_exp``, ``keypoints_sim``, ``param_whitening.pkl``) and
  ``c++/weights/w_{shp,exp}_base.txt``: the 68-point basis. The ``.txt`` files hold 6 decimals;
  the full-precision ``w_*_sim.npy`` are not in every copy, and the two change the NME by less
  than 1e-5 %.

Written to ``--out``: the basis as ``eval.external_params`` reads it (``basis68.npz``), the crop
boxes of the 1,998 images, and the report of ``prnet evaluate``. Printed: each bin, the mean and the
std from ``prnet evaluate`` (over the 2,000 .mat files; the two images without a prediction are
failures, left out of the means), and from 3DDFA's ``calc_nme`` + ``ana`` on the same points in
image pixels, restricted to the 1,998 images as 2DASL's own benchmark does.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_basis(ddfa: Path, out: Path) -> Path:
    configs = ddfa / "train.configs"
    kpt = np.load(configs / "keypoints_sim.npy")
    u = np.load(configs / "u_shp.npy") + np.load(configs / "u_exp.npy")
    with open(configs / "param_whitening.pkl", "rb") as f:
        whitening = pickle.load(f)
    weights = ddfa / "c++" / "weights"
    path = out / "basis68.npz"
    np.savez(
        path,
        u=u[kpt].ravel(),
        w_shp=np.loadtxt(weights / "w_shp_base.txt", dtype=np.float32).reshape(204, 40),
        w_exp=np.loadtxt(weights / "w_exp_base.txt", dtype=np.float32).reshape(204, 10),
        param_mean=np.asarray(whitening["param_mean"]).ravel(),
        param_std=np.asarray(whitening["param_std"]).ravel(),
        kpt_ind=np.arange(68),
        crop_size=120.0,
        flip_y=True,
    )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--2dasl", dest="dasl", type=Path, required=True)
    ap.add_argument("--3ddfa", dest="ddfa", type=Path, required=True)
    ap.add_argument("--aflw", type=Path, required=True, help="the 2,000 imageNNNNN.jpg + .mat")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "2dasl_check")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    tests = args.dasl / "test_codes"
    all_names = [s[:-4] for s in (tests / "test.data/AFLW2000-3D_crop.list").read_text().split()]
    names = [s[:-4] for s in (tests / "test.data/AFLW1998-3D_crop.list").read_text().split()]
    rows = np.array([all_names.index(n) for n in names])
    roi = np.load(args.ddfa / "test.configs/AFLW2000-3D_crop.roi_box.npy")[rows, :4]
    np.save(args.out / "roi_1998.npy", roi)
    (args.out / "names_1998.txt").write_text("\n".join(names) + "\n")
    basis = write_basis(args.ddfa, args.out)
    params = tests / "results/params_aflw2000_xgtu.npy"
    source = (
        f"params={params},names={args.out / 'names_1998.txt'},basis={basis},"
        f"roi_boxes={args.out / 'roi_1998.npy'}"
    )
    reannotated = args.ddfa / "test.configs/AFLW2000-3D-Reannotated.pts68.npy"

    from eval.aflw_benchmark import run_benchmark
    from eval.external import ExternalSpec, load_external

    files = run_benchmark(
        args.aflw, [("2DASL", source)], args.out / "report", reannotated=reannotated
    )
    ours = json.loads(files.metrics_json.read_text())

    # 3DDFA's own functions on the same image-pixel points (identity crop boxes), 1,998 images
    sys.path.insert(0, str(REPO / "scripts"))
    from make_aflw_golden import import_3ddfa_benchmark

    pts = load_external(
        ExternalSpec(
            "2DASL",
            params=params,
            names=args.out / "names_1998.txt",
            basis=basis,
            roi_boxes=args.out / "roi_1998.npy",
        ),
        face_count=-1,
    ).landmarks
    bench = import_3ddfa_benchmark(args.ddfa.resolve())
    keep = np.zeros(len(all_names), bool)
    keep[rows] = True
    order = np.argsort(rows)  # 3DDFA's globals are in the 2,000-list order
    bench.roi_boxs = np.tile([0.0, 0.0, 120.0, 120.0], (int(keep.sum()), 1))
    bench.yaws_list = np.asarray(bench.yaws_list)[keep]
    for attr in ("pts68_all_ori", "pts68_all_re"):
        setattr(bench, attr, [p for p, k in zip(getattr(bench, attr), keep) if k])
    print("bin      prnet evaluate   3DDFA's code")
    for option, key in (("ori", "nme_2d_68"), ("re", "nme_2d_68_re")):
        fits = [np.ascontiguousarray(p[:, :2].T, dtype=np.float64) for p in pts[order]]
        m1, m2, m3, mean, std = bench.ana(bench.calc_nme(fits, option=option))
        for stat, theirs in zip(("0-30", "30-60", "60-90", "mean", "std"), (m1, m2, m3, mean, std)):
            print(
                f"{option:3s} {stat:5s} {ours[f'2DASL/{key}/{stat}']:14.6f} {float(theirs):14.6f}"
            )


if __name__ == "__main__":
    main()
