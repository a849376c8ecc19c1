"""Write the AFLW2000-3D benchmark golden fixture: 3DDFA's own NME / yaw-bin numbers on
deterministic synthetic predictions.

Run by hand, never by CI or the README commands; it needs a checkout of cleardusk/3DDFA (not a
project dependency, and nothing of it is copied here)::

    python3 scripts/make_aflw_golden.py --3ddfa /path/to/3DDFA \\
        [--shared ../shared] [--out tests/fixtures/aflw_3ddfa_golden.json]

Inputs, all 2,000 images in 3DDFA's order (``AFLW2000-3D_crop.list``), from
``--shared``/fixtures/aflw2000_3d_3ddfa/: ``AFLW2000-3D.pts68.npy`` (2000, 3, 68),
``AFLW2000-3D-Reannotated.pts68.npy`` (2000, 2, 68) and ``AFLW2000-3D.pose.npy`` (2000,) yaw in
degrees. They must equal the checkout's ``test.configs`` copies, which 3DDFA's module loads.

Predictions, per annotation, in image pixels: ``pred = gt + default_rng(SEED).normal(0, SIGMA,
size=gt.shape)`` with a fresh generator each time (original: the (2000, 3, 68) array, so the noise
has that shape; re-annotated: the (2000, 2, 68) array). Only rows x, y are handed to 3DDFA's
``benchmark_aflw2000.calc_nme``, as its ``benchmark.py`` does (``lm[:2, :]``); a 3-row prediction
does not broadcast against its ``pts68_gt[:2, :]``.

``calc_nme`` expects 120x120 crop coordinates and maps them to the image with the module-level
``roi_boxs``; the module's ``roi_boxs`` is replaced by (0, 0, 120, 120) for every image, so that
mapping is exactly x * 1.0 + 0.0 and the predictions are scored as given, in image pixels. Its
``ana`` is then run as is (module ``yaws_list`` = the pose file); what it prints is recorded with
the colour codes removed, next to the values it returns. Modules that 3DDFA imports but the
benchmark does not use (torch) are stubbed when they are not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SEED = 20181
SIGMA = 3.0
FIXDIR = Path("fixtures") / "aflw2000_3d_3ddfa"
ANNOTATIONS = {
    # name: (file in the shared fixtures, calc_nme option)
    "original": ("AFLW2000-3D.pts68.npy", "ori"),
    "reannotated": ("AFLW2000-3D-Reannotated.pts68.npy", "re"),
}


def import_3ddfa_benchmark(ddfa: Path) -> types.ModuleType:
    """3DDFA's benchmark_aflw2000 module (it loads test.configs/ relative to the cwd)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        sys.modules["torch"] = types.ModuleType("torch")  # utils/io.py imports it, never used here
    sys.path.insert(0, str(ddfa))
    cwd = os.getcwd()
    os.chdir(ddfa)
    try:
        return importlib.import_module("benchmark_aflw2000")
    finally:
        os.chdir(cwd)


def commit_of(ddfa: Path, given: str | None) -> str:
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "-C", str(ddfa), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        raise SystemExit(f"{ddfa} is not a git checkout; pass --commit") from err
    return out.stdout.strip()


def run_annotation(bench: types.ModuleType, gt: np.ndarray, option: str) -> dict:
    noise = np.random.default_rng(SEED).normal(0.0, SIGMA, size=gt.shape)
    pred = gt + noise  # float64, image pixels
    fits = [p[:2, :].copy() for p in pred]  # calc_nme writes into its input
    nme = bench.calc_nme(fits, option=option)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        m1, m2, m3, mean, std = bench.ana(nme)
    printed = re.sub(r"\x1b\[[0-9;]*m", "", buf.getvalue()).strip().split("\n")
    yaw = np.abs(np.asarray(bench.yaws_list))
    bins = [yaw <= 30, (yaw > 30) & (yaw <= 60), yaw > 60]
    return {
        "gt_shape": list(gt.shape),
        "noise_shape": list(noise.shape),
        "nme_pct": {"0_30": float(m1), "30_60": float(m2), "60_90": float(m3)},
        "mean_pct": float(mean),
        "std_pct": float(std),
        "printed": printed,
        "bin_counts": [int(b.sum()) for b in bins],
        "all_images_mean_pct": float(np.mean(nme) * 100),
        "nme_first3": [float(x) for x in nme[:3]],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--3ddfa", dest="ddfa", type=Path, required=True, help="checkout of cleardusk/3DDFA"
    )
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO / "tests/fixtures/aflw_3ddfa_golden.json")
    ap.add_argument("--commit", help="3DDFA commit id, when --3ddfa is not a git checkout")
    args = ap.parse_args()

    ddfa = args.ddfa.resolve()
    fix = args.shared.resolve() / FIXDIR
    bench = import_3ddfa_benchmark(ddfa)
    yaw = np.load(fix / "AFLW2000-3D.pose.npy")
    if not np.array_equal(yaw, bench.yaws_list):
        raise SystemExit("shared AFLW2000-3D.pose.npy differs from the checkout's test.configs")
    n = len(bench.roi_boxs)
    bench.roi_boxs = np.tile(np.array([0, 0, 120, 120], np.float32), (n, 1))  # identity mapping

    result = {
        "what": "cleardusk/3DDFA benchmark_aflw2000.calc_nme + ana on pred = gt + N(0, sigma) "
        "(image pixels, x/y rows), identity roi_boxs; see scripts/make_aflw_golden.py",
        "3ddfa_commit": commit_of(ddfa, args.commit),
        "n_images": n,
    }
    for name, (fname, option) in ANNOTATIONS.items():
        gt = np.load(fix / fname)
        module_gt = bench.pts68_all_ori if option == "ori" else bench.pts68_all_re
        if not np.array_equal(gt, module_gt):
            raise SystemExit(f"shared {fname} differs from the checkout's test.configs")
        entry = {
            "gt_file": fname,
            "rng": "numpy.random.default_rng",
            "seed": SEED,
            "sigma_px": SIGMA,
        }
        entry.update(run_annotation(bench, gt, option))
        result[name] = entry

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
