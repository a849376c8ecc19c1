"""PRNet as an ONNX graph for deployment (ONNX Runtime, TensorRT, OpenVINO...): ``prnet
export-onnx WEIGHTS OUT.onnx``.

The graph is the :class:`model.inference.Predictor`'s forward pass, batch norms folded:

* input ``crops``: (B, S, S, 3) float32, the crop's RGB values 0..255 (a uint8 crop cast to
  float), S the network's input size (256 for PRNet's release);
* output ``posmap``: (B, S, S, 3) float32, the UV position map in crop pixels (x right, y down,
  z depth; PRNet's ``network output * S * 1.1``), to be mapped back to the image as
  :func:`model.inference.map_to_image` does.

B is dynamic. Exported with torch's TorchScript-based exporter (opset 17); ``onnx`` must be
installed (``pip install onnx``; ``onnxruntime`` to run it).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from model.checkpoint import load_weights
from model.inference import fold_batchnorm
from model.prnet import PRNet, map_scale
from uvgen.atomic import atomic_path
from uvgen.formats.errors import DataError
from uvgen.resumable import check_output_file

OPSET = 17


class CropsToMap(nn.Module):
    """(B, S, S, 3) crops in 0..255 -> (B, S, S, 3) maps in crop pixels (the module docstring)."""

    def __init__(self, net: PRNet):
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        y = self.net(crops.permute(0, 3, 1, 2) / 255.0)
        return (y * map_scale(self.net.in_size)).permute(0, 2, 3, 1)


def export_onnx(weights: str | Path, out: str | Path, opset: int = OPSET) -> Path:
    """Write the ONNX graph of the weights file ``weights`` to ``out`` (atomically); returns it."""
    weights, out = Path(weights), Path(out)
    check_output_file(out)
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise DataError(
            out, None, "writing ONNX needs the onnx package: pip install onnx"
        ) from None
    net = fold_batchnorm(load_weights(weights)).eval()
    module = CropsToMap(net).eval()
    example = torch.zeros(1, net.in_size, net.in_size, 3)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, torch.no_grad():
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["crops"],
            output_names=["posmap"],
            dynamic_axes={"crops": {0: "batch"}, "posmap": {0: "batch"}},
            opset_version=opset,
        )
    return out
