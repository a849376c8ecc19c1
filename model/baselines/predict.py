"""Baseline inference: S x S crops -> parameters -> crop-space vertices -> UV position maps.

The maps are what PRN outputs (float32 (N, S, S, 3), S the file's UV size (256 by default); crop
pixels: x right, y down, z depth with min 0 over the mesh), drawn from the decoded vertices with
the morphable model's UV layout (params3dmm.position_maps), so the evaluation decodes all three
methods identically: landmarks = ``map[kpt_uv[1], kpt_uv[0]]``, dense =
``map.reshape(-1, 3)[face_ind]``.

:func:`predict_maps` / :func:`iter_predicted_maps` run a trained baseline (``model.pt`` or a
training checkpoint) over a UV HDF5 file (the test file); the morphable model comes from the
weights' ``model_dir`` (or the argument) and must be the one the file was made with
(``model_checksum``), else DataError.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model.baselines.inputs import network_input
from model.baselines.params3dmm import (
    ParamSpec,
    VertexBasis,
    Whitening,
    crop_vertices_torch,
    position_maps,
)
from model.baselines.train_baseline import build_network, resolve_model_dir
from model.checkpoint import read_torch_file
from uvgen.formats.bfm import MorphableModel, load_bfm
from uvgen.formats.errors import DataError
from uvgen.groundtruth import UVLayout, build_uv_layout
from uvgen.h5store import PositionMapFile


@dataclass
class LoadedBaseline:
    """A trained baseline: network (eval mode) and what decoding its output needs."""

    net: nn.Module
    kind: str
    spec: ParamSpec
    whitening: Whitening
    input_size: int
    model_dir: Path
    model_checksum: str
    meta: dict


def load_baseline(path: Path, map_location: torch.device | str = "cpu") -> LoadedBaseline:
    """From ``model.pt`` or ``checkpoints/last.pt`` written by model.baselines.train_baseline."""
    blob = read_torch_file(path, map_location)
    meta = blob.get("meta")
    if not isinstance(meta, dict) or "kind" not in meta:
        raise DataError(path, None, "not a baseline's weights file or training checkpoint")
    net = build_network(meta["kind"], meta["width"], int(meta["input_size"]))
    net.load_state_dict(blob["model"])
    net.to(map_location).eval()
    return LoadedBaseline(
        net,
        meta["kind"],
        ParamSpec.from_json(meta["spec"]),
        Whitening.from_state(meta["whitening"]),
        int(meta["input_size"]),
        Path(meta["model_dir"]),
        str(meta["model_checksum"]),
        meta,
    )


class BaselinePredictor:
    """Batched baseline inference on one device (float32; channels-last).

    ``model_dir`` overrides the weights' recorded one (e.g. when run from another directory);
    ``uv_size`` is the side of the maps drawn (the test file's UV size).
    """

    def __init__(
        self,
        weights: Path,
        model_dir: Path | None = None,
        device: str = "auto",
        uv_size: int = 256,
    ):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.loaded = load_baseline(weights, self.device)
        self.net = self.loaded.net.to(memory_format=torch.channels_last)
        self.model_dir = Path(model_dir) if model_dir is not None else self.loaded.model_dir
        self.model: MorphableModel = load_bfm(self.model_dir)
        self.layout: UVLayout = build_uv_layout(self.model, uv_size)
        self.basis = VertexBasis(
            self.model, self.loaded.spec.n_shape, self.loaded.spec.n_exp, device=self.device
        )

    @torch.inference_mode()
    def predict_params(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """(B, 256, 256, 3) uint8 crops -> (B, dim) raw (unwhitened) parameters, float64."""
        x = torch.as_tensor(crops).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        x = network_input(x, self.loaded.input_size).contiguous(memory_format=torch.channels_last)
        return self.loaded.whitening.unwhiten(self.net(x).double()).cpu().numpy()

    @torch.inference_mode()
    def crop_vertices(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """(B, 256, 256, 3) uint8 crops -> (B, n, 3) float32 crop-space vertices (min z = 0)."""
        p = torch.as_tensor(self.predict_params(crops), dtype=torch.float32, device=self.device)
        return crop_vertices_torch(self.loaded.spec, p, self.basis, shift_z=True).cpu().numpy()

    def predict_maps(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """(B, 256, 256, 3) uint8 crops -> (B, 256, 256, 3) float32 UV position maps, crop
        pixels."""
        return position_maps(self.layout, self.crop_vertices(crops))


def iter_predicted_maps(
    weights: Path,
    uv_file: Path,
    batch_size: int = 32,
    device: str = "auto",
    model_dir: Path | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, maps (B, S, S, 3) float32)`` over the samples of ``uv_file`` in order (S:
    the file's UV size)."""
    with PositionMapFile(Path(uv_file)) as f:
        size = f.uv_size
    predictor = BaselinePredictor(weights, model_dir, device, uv_size=size)
    resolve_model_dir(predictor.model_dir, uv_file)  # the file must come from this model
    with PositionMapFile(Path(uv_file)) as f:
        n = len(f)
        for start in range(0, n, batch_size):
            crops = np.stack([f.image(i) for i in range(start, min(n, start + batch_size))])
            yield start, predictor.predict_maps(crops)


def predict_maps(weights: Path, uv_file: Path, **options: Any) -> np.ndarray:
    """(N, 256, 256, 3) float32 predicted maps of all samples of ``uv_file`` (0.79 MB each);
    ``options``: ``batch_size``, ``device``, ``model_dir`` of :func:`iter_predicted_maps`."""
    with PositionMapFile(Path(uv_file)) as f:
        n = len(f)
    out = np.zeros((n, 256, 256, 3), np.float32)
    for start, maps in iter_predicted_maps(weights, uv_file, **options):
        if out.shape[1:] != maps.shape[1:]:
            out = np.zeros((n, *maps.shape[1:]), np.float32)
        out[start : start + len(maps)] = maps
    return out


__all__ = [
    "LoadedBaseline",
    "load_baseline",
    "BaselinePredictor",
    "iter_predicted_maps",
    "predict_maps",
]
