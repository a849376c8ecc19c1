"""PRNet's weighted position-map loss.

``loss = mean over batch and pixels of  w(u, v) * || pred(u, v) - target(u, v) / scale ||^2``

* the squared error is the squared Euclidean distance over the 3 channels (x, y, z) of a pixel,
  computed on the network's [0, 1] scale (targets in crop pixels are divided by ``scale`` =
  :func:`model.prnet.map_scale` of the crop side S, S * 1.1: 256 * 1.1 for PRNet's 256 crops);
* ``w`` is the raw weight of the pixel's weight class (uvgen.weight_classes), from
  ``train.loss_weights`` (:class:`LossWeights`; the paper's: key points 16, eyes/nose/mouth 4, rest
  of the face 3, outside 0), not normalised: the mean runs over all H*W pixels, including the
  zero-weight ones, so the value scales with the weights exactly as written.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from model.prnet import MAP_SCALE
from uvgen.checks import check_range
from uvgen.weight_classes import CLASS_NAMES, PAPER_WEIGHTS, class_weights


@dataclass(frozen=True)
class LossWeights:
    """The loss weight of each weight class of a UV pixel (uvgen.weight_classes), as
    ``params.yaml``'s ``train.loss_weights`` gives them (every class named); :meth:`paper` = the
    paper's 16 / 4 / 3 / 0. Each is a finite number >= 0, one at least > 0."""

    keypoint: float
    eye_nose_mouth: float
    face: float
    outside: float

    @classmethod
    def paper(cls) -> LossWeights:
        """The paper's weights (uvgen.weight_classes.PAPER_WEIGHTS)."""
        return cls(**dict(zip(CLASS_NAMES, PAPER_WEIGHTS)))

    def __post_init__(self) -> None:
        for name in CLASS_NAMES:
            check_range(name, getattr(self, name), 0)
        if not any(getattr(self, name) > 0 for name in CLASS_NAMES):
            raise ValueError("keypoint: every class's loss weight is 0 (no pixel would count)")

    def per_class(self) -> tuple[float, ...]:
        """The weights in class-code order (uvgen.weight_classes.CLASS_NAMES)."""
        return tuple(float(getattr(self, name)) for name in CLASS_NAMES)

    def weight_map(self, classes: np.ndarray) -> np.ndarray:
        """(H, W) float32 weights of (H, W) class codes."""
        return class_weights(classes, self.per_class())


def weighted_map_loss(
    pred: torch.Tensor,
    target_map_px: torch.Tensor,
    weight_mask: torch.Tensor,
    scale: float = MAP_SCALE,
) -> torch.Tensor:
    """Weighted squared error between a predicted and a target UV position map (scalar tensor).

    pred: (B, 3, H, W) network output in [0, 1]. target_map_px: (B, 3, H, W) in crop pixels.
    weight_mask: (H, W) or (B, H, W), raw weights (:meth:`LossWeights.weight_map`), same device
    as pred.
    scale: crop pixels per output unit (:func:`model.prnet.map_scale` of the crop side).
    """
    if pred.dim() != 4 or pred.shape[1] != 3:
        raise ValueError(f"pred must be (B, 3, H, W), got {tuple(pred.shape)}")
    if target_map_px.shape != pred.shape:
        raise ValueError(
            f"target shape {tuple(target_map_px.shape)} != pred shape {tuple(pred.shape)}"
        )
    if weight_mask.shape[-2:] != pred.shape[-2:] or weight_mask.dim() not in (2, 3):
        raise ValueError(
            f"weight_mask must be (H, W) or (B, H, W) matching pred, got {tuple(weight_mask.shape)}"
        )
    sq = (pred - target_map_px / scale).square().sum(dim=1)  # (B, H, W)
    return (sq * weight_mask.to(sq.dtype)).mean()
