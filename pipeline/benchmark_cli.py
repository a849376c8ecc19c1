"""``prnet evaluate``: score any methods on an AFLW2000-3D folder, one command.

    prnet evaluate --data AFLW2000 --method NAME=SOURCE [--method ...]
                   [--reannotated AFLW2000-3D-Reannotated.pts68.npy] [--model-dir BFM_DIR]
                   [--uv-data PRNet/Data/uv-data] [--test-file data/uv/test.h5] --out DIR

Prints the 68-point table and writes into DIR: ``nme_table.md`` / ``.csv``, ``metrics.json``,
``per_image.csv``, ``unmatched.csv``, ``pose_table.csv`` (with pose), ``ced_<metric>.csv`` and
``figures/ced_<metric>.png`` / ``.pdf``. SOURCE kinds: :mod:`eval.sources`; the protocol and its
pitfalls: docs/aflw2000_benchmark.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def evaluate_command(args: argparse.Namespace) -> int:
    """``prnet evaluate``: one run per ``--out`` folder at a time (a second stops at once)."""
    from eval.aflw_benchmark import run_benchmark
    from eval.sources import MethodSpecError, parse_method
    from uvgen.formats.errors import DataError
    from uvgen.resumable import exclusive_lock

    if args.out.exists() and not args.out.is_dir():
        raise DataError(args.out, None, "is a file; --out must be a folder")
    try:
        methods = [parse_method(m) for m in args.method]
        with exclusive_lock(args.out, "evaluation"):
            files = run_benchmark(
                args.data,
                methods,
                args.out,
                model_dir=args.model_dir,
                uv_data=args.uv_data,
                reannotated=args.reannotated,
                reannotated_names=args.reannotated_names,
                test_file=args.test_file,
                device=args.device,
                recon_scale=args.recon_scale,
            )
    except MethodSpecError as exc:
        raise SystemExit(f"prnet evaluate: {exc}") from None
    text = files.markdown.read_text(encoding="utf-8")
    first = text.split("## ")[1] if "## " in text else text
    print("## " + first.rstrip())
    print(
        f"evaluate: report -> {files.markdown.parent} (nme_table.md, metrics.json, per_image.csv)"
    )
    return 0


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` subcommand of ``prnet``."""
    p = sub.add_parser(
        "evaluate",
        help="NME tables, CED curves and head-pose error on AFLW2000-3D for any methods",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, type=Path, help="AFLW2000-3D folder (imageNNNNN.mat)")
    p.add_argument(
        "--method",
        action="append",
        required=True,
        metavar="NAME=SOURCE",
        help="a method: weights (.pt / TF checkpoint prefix), a prnet predict folder, a "
        "predictions .h5, landmark arrays/files, or key=value files (landmarks=, dense=, "
        "params=, basis=, roi_boxes=, names=, topology=); repeat for more",
    )
    p.add_argument("--out", required=True, type=Path, help="report folder")
    p.add_argument(
        "--reannotated", type=Path, default=None, help="3DDFA's AFLW2000-3D-Reannotated.pts68.npy"
    )
    p.add_argument(
        "--reannotated-names",
        type=Path,
        default=None,
        help="its image names in order (default: AFLW2000-3D_crop.list beside it, else sorted)",
    )
    p.add_argument(
        "--model-dir",
        type=Path,
        default=None,
        help="face3d-layout BFM (BFM.mat, BFM_UV.mat, BFM_info.mat): dense, reconstruction and "
        "landmark head-pose tables; also the layout of weights trained here",
    )
    p.add_argument(
        "--test-file",
        type=Path,
        default=None,
        help="a test split built by uvgen@test from --data: the dense ground truth from its maps",
    )
    p.add_argument(
        "--uv-data",
        type=Path,
        default=None,
        help="PRNet's uv-data folder: its released model's layout and the dense face region",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (methods run here)")
    p.add_argument(
        "--recon-scale", action="store_true", help="similarity instead of rigid alignment"
    )
    p.set_defaults(func=evaluate_command)
