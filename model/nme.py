"""NME on torch tensors, for validation during training: the same quantity as
:func:`eval.metrics.nme_2d_batch` (the reference, numpy, with input checks), on the device.

Points are rows: (B, K, D) with columns x, y[, z] in pixels; only x, y enter.
"""

from __future__ import annotations

import torch


def nme_2d(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """(B,) 2D NME as a fraction: the mean (x, y) point distance over the K points divided by
    ``sqrt(w * h)`` of the ground truth's (x, y) box (docs/conventions.md section 6).

    pred, gt: (B, K, D >= 2), same points in the same order, pixels. A degenerate box counts as
    1e-6 px (no division by zero; such an image gets a huge NME rather than NaN)."""
    p, g = pred[..., :2], gt[..., :2]
    err = (p - g).norm(dim=-1).mean(dim=-1)
    size = g.amax(dim=-2) - g.amin(dim=-2)  # (B, 2) = (w, h)
    return err / torch.sqrt(size[..., 0] * size[..., 1]).clamp_min(1e-6)
