"""PRNet's weighted position-map loss.

``loss = mean over batch and pixels of  w(u, v) * || pred(u, v) - target(u, v) / scale ||^2``

* the squared error is the squared Euclidean distance over the 3 channels (x, y, z) of a pixel,
  computed on the network's [0, 1] scale (targets in crop pixels are divided by ``scale`` =
  :func:`model.prnet.map_scale` of the crop side S, S * 1.1: 256 * 1.1 for PRNet's 256 crops);
* ``w`` is the raw paper weight (key points 16, eyes/nose/mouth 4, rest of the face 3, outside 0),
  not normalised: the mean runs over all H*W pixels, including the zero-weight ones, so the value
  scales with the weights exactly as written.
"""

from __future__ import annotations

import numpy as np
import torch

from model.prnet import MAP_SCALE

PAPER_WEIGHTS: dict[str, float] = {
    "keypoint": 16.0,
    "eye_nose_mouth": 4.0,
    "face": 3.0,
    "outside": 0.0,
}


def weighted_map_loss(
    pred: torch.Tensor,
    target_map_px: torch.Tensor,
    weight_mask: torch.Tensor,
    scale: float = MAP_SCALE,
) -> torch.Tensor:
    """Weighted squared error between a predicted and a target UV position map (scalar tensor).

    pred: (B, 3, H, W) network output in [0, 1]. target_map_px: (B, 3, H, W) in crop pixels.
    weight_mask: (H, W) or (B, H, W), raw weights (16/4/3/0), same device as pred.
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


def weights_from_prnet_mask(
    mask_png: np.ndarray, face_mask: np.ndarray | None = None
) -> np.ndarray:
    """PRNet's ``uv_weight_mask.png`` grey levels -> raw paper weights, float32 (H, W).

    The png stores 255 (key points), 64 (eyes, nose, mouth) and 48 (rest, also outside the face),
    plus a few in-between levels at region borders (53, 58, 117, 122, 128). Levels map as
    value / 16 (64 -> 4, 48 -> 3, 0 -> 0) except 255 -> 16 exactly. Pass ``face_mask`` (H, W,
    nonzero = face, e.g. ``uv_face_mask.png``) to set the outside to 0 as the paper states.
    Colour pngs use channel 0.
    """
    mask = np.asarray(mask_png)
    if mask.ndim == 3:
        mask = mask[..., 0]
    weights = mask.astype(np.float32) / 16.0
    weights[mask == 255] = 16.0
    if face_mask is not None:
        face = np.asarray(face_mask)
        if face.ndim == 3:
            face = face[..., 0]
        if face.shape != weights.shape:
            raise ValueError(f"face_mask shape {face.shape} != weight mask shape {weights.shape}")
        weights[face == 0] = 0.0
    return weights
