"""What the baseline networks see: the crops of a UV file (ImageDataset), resized to the network's
input and augmented exactly as PRN's (the same generator draws; the affine returned applies to the
targets)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from model.augment import (
    AugmentConfig,
    color_scale,
    occlude,
    random_affine,
    random_color_factors,
    warp_images,
)
from uvgen.h5open import open_h5


def network_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """(B,3,H,W) images in [0,1] -> (B,3,size,size) in [-1,1] (bilinear, antialiased)."""
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return (x - 0.5) / 0.5


def resize_affine(src: int, dst: int) -> torch.Tensor:
    """(2,3) float64: pixel (x, y) of a ``src``-sided image -> the same point in its resize to
    ``dst`` (pixel centres at integers; ``F.interpolate(align_corners=False)``:
    x' = (x + 0.5) dst/src - 0.5)."""
    r = dst / src
    return torch.tensor([[r, 0.0, 0.5 * r - 0.5], [0.0, r, 0.5 * r - 0.5]], dtype=torch.float64)


def augment_images(
    images_uint8: torch.Tensor,
    generator: torch.Generator | None,
    config: AugmentConfig | None,
    size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,H,W,3) uint8 -> (network input (B,3,size,size) in [-1,1], (B,2,3) float64 affine A).

    ``A`` maps H x W crop pixels to augmented crop pixels, drawn as model.augment draws it for PRN
    (same generator calls, same order: affines, colour factors, occlusion), so it applies to the
    targets unchanged; the identity without augmentation. For speed the crop is first resized to
    ``size`` (bilinear, antialiased; default H) and warped there by A conjugated with the resize,
    then colour-scaled and occluded at that size (the occlusion noise cells are 4 input pixels).
    """
    b, h, w, _ = images_uint8.shape
    size = h if size is None else int(size)
    x = images_uint8.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    if config is None:
        eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64, device=x.device)
        return (x - 0.5) / 0.5, eye.expand(b, 2, 3).clone()
    A = random_affine(b, generator, config, size=(h, w), device=x.device)
    S = resize_affine(w, size).to(x.device)
    S3 = torch.cat([S, S.new_tensor([[0.0, 0.0, 1.0]])])
    A3 = torch.cat([A, A.new_tensor([0.0, 0.0, 1.0]).expand(b, 1, 3)], dim=1)
    x = warp_images(x, (S3 @ A3 @ torch.linalg.inv(S3))[:, :2])
    x = color_scale(x, random_color_factors(b, generator, config.color_range, x.device))
    if config.occlusion_prob > 0:
        x = occlude(
            x, generator, config.occlusion_prob, config.occlusion_size, config.noise_cell_px
        )
    return (x - 0.5) / 0.5, A


class ImageDataset(Dataset):
    """Crops of a UV file with their position in ``indices``: items (uint8 (H,W,3), int64 k).

    Reads only the ``images`` dataset (the targets are precomputed); opens the file lazily per
    process, like model.h5dataset.PositionMapDataset.
    """

    def __init__(self, path: Path, indices: Sequence[int] | np.ndarray):
        self.path = Path(path)
        self.indices = np.asarray(indices, dtype=np.int64)
        self._f: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._f is None or self._pid != os.getpid():
            self._f = open_h5(self.path)
            self._pid = os.getpid()
        return torch.from_numpy(self._f["images"][int(self.indices[k])]), torch.tensor(
            k, dtype=torch.int64
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "indices": self.indices, "_f": None, "_pid": None}
