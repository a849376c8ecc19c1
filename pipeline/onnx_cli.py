"""``prnet export-onnx WEIGHTS OUT.onnx``: the network as an ONNX graph (model/onnx_export.py)."""

from __future__ import annotations

import argparse
from pathlib import Path


def export_onnx_command(args: argparse.Namespace) -> int:
    from model.onnx_export import export_onnx
    from uvgen.formats.errors import DataError

    if not args.weights.is_file():
        raise DataError(args.weights, None, "missing weights file")
    out = export_onnx(args.weights, args.out)
    print(
        f"{args.weights} -> {out}: input crops (B, S, S, 3) float32 0..255, output posmap "
        "(B, S, S, 3) crop pixels"
    )
    return 0


def add_export_onnx_parser(sub: argparse._SubParsersAction) -> None:
    """The ``export-onnx`` subcommand of ``prnet``."""
    p = sub.add_parser(
        "export-onnx",
        help="the network as an ONNX graph (ONNX Runtime, TensorRT, OpenVINO)",
        description=__doc__ + "\n\n" + "Graph inputs and outputs: model/onnx_export.py.",
    )
    p.add_argument("weights", type=Path, help="weights (model.pt, or prnet import-weights output)")
    p.add_argument("out", type=Path, help="the .onnx file to write")
    p.set_defaults(func=export_onnx_command)
