"""Losses of the baselines: WPDC and VDC (3DDFA), parameter and 68-landmark losses (DeFA).

Notation: ``pred_w``, ``target_w`` (B, D) whitened parameter vectors (model.baselines.params3dmm),
``whitening`` turns them back into raw parameters; positions are in 256-crop pixels.

WPDC (weighted parameter distance cost; Zhu et al., CVPR 2016, eq. 7-8):
``E = sum_i w_i (pred_i - target_i)^2`` with ``w_i = ||V(p^d(i)) - V(p^g)|| / sum_j w_j``, where
``p^d(i)`` is the ground truth ``p^g`` with its i-th entry replaced by the prediction and ``V(p)``
the crop-space 3D positions (x, y, z) of a vertex subsample. Each entry alone enters V linearly
(V = V0 @ M.T + o with V0 linear in the coefficients), so exactly
``||V(p^d(i)) - V(p^g)|| = |p_i - p^g_i| * ||dV/dp_i||`` with the derivative at the ground truth:

* camera entry M[r, c]: ``||X[:, c]||`` (X the ground truth's model-space vertices), o[r]:
  ``sqrt(k)``;
* coefficient i with (k, 3) displacement A_i: ``||A_i @ M^T|| = sqrt(<M^T M, G_i>)``,
  ``G_i = sum_k a_k a_k^T`` (3x3, precomputed per component).

The distances use raw parameters, the squared errors whitened ones (as 3DDFA's public code does),
the weights are normalised per sample to sum to 1 (the paper's definition) and carry no gradient.

VDC (vertex distance cost): mean over the batch and the vertex subsample of the squared 3D distance
(px^2) between the vertices of the predicted and of the target parameters (before any z shift:
the target camera maps straight onto the ground truth, see params3dmm).

DeFA: :func:`parameter_loss` = mean squared whitened error; :func:`landmark_loss` = mean squared 2D
distance (px^2) of the 68 landmarks (decoded as PRN decodes a map) to the ground truth's.
"""

from __future__ import annotations

import math

import torch

from model.baselines.params3dmm import (
    AFFINE,
    ParamSpec,
    VertexBasis,
    Whitening,
    camera_from_params,
    crop_vertices_torch,
    split_params,
)


def parameter_loss(pred_w: torch.Tensor, target_w: torch.Tensor) -> torch.Tensor:
    """Mean squared error of whitened parameters (over entries and batch)."""
    return (pred_w - target_w).square().mean()


@torch.no_grad()
def wpdc_weights(
    spec: ParamSpec,
    pred_raw: torch.Tensor,
    target_raw: torch.Tensor,
    basis: VertexBasis,
    gram: torch.Tensor,
) -> torch.Tensor:
    """(B, D) WPDC weights (each row sums to 1; see the module docstring). Affine camera only.

    basis: the vertex subsample; gram: ``basis.gram()`` (S+E, 3, 3).
    """
    if spec.camera != AFFINE:
        raise ValueError("WPDC is defined here for the 3x4 affine camera (3DDFA)")
    p, t = pred_raw.double(), target_raw.double()
    cam, a, b = split_params(spec, t)
    M, _ = camera_from_params(spec, cam)
    X = basis.vertices(a, b).double()  # (B, k, 3) model space
    col = X.norm(dim=1)  # (B, 3): ||X[:, c]||
    ones = torch.full_like(col[:, :1], math.sqrt(basis.k))
    sens_cam = torch.cat([col, ones], dim=1).repeat(1, 3)  # rows r = 0, 1, 2 of [M | o]
    mtm = M.transpose(1, 2) @ M  # (B, 3, 3)
    sens_coef = torch.einsum("bij,sij->bs", mtm, gram.to(mtm)).clamp_min(0).sqrt()
    w = (p - t).abs() * torch.cat([sens_cam, sens_coef], dim=1)
    return (w / w.sum(dim=1, keepdim=True).clamp_min(1e-30)).to(pred_raw.dtype)


def wpdc_loss(
    spec: ParamSpec,
    pred_w: torch.Tensor,
    target_w: torch.Tensor,
    whitening: Whitening,
    basis: VertexBasis,
    gram: torch.Tensor,
) -> torch.Tensor:
    """Batch mean of ``sum_i w_i (pred_w - target_w)_i^2`` (WPDC, whitened errors)."""
    w = wpdc_weights(
        spec,
        whitening.unwhiten(pred_w.detach().double()),
        whitening.unwhiten(target_w.double()),
        basis,
        gram,
    )
    return (w.to(pred_w.dtype) * (pred_w - target_w).square()).sum(dim=1).mean()


def vdc_loss(
    spec: ParamSpec,
    pred_w: torch.Tensor,
    target_w: torch.Tensor,
    whitening: Whitening,
    basis: VertexBasis,
) -> torch.Tensor:
    """Mean squared 3D vertex distance (px^2) over the batch and the basis's vertices."""
    pred = crop_vertices_torch(spec, whitening.unwhiten(pred_w), basis)
    with torch.no_grad():
        target = crop_vertices_torch(spec, whitening.unwhiten(target_w.to(pred_w.dtype)), basis)
    return (pred - target).square().sum(dim=-1).mean()


def landmark_loss(pred_landmarks: torch.Tensor, gt_landmarks: torch.Tensor) -> torch.Tensor:
    """Mean squared 2D distance (px^2) between (B, 68, 2+) landmark sets (x, y used)."""
    return (
        (pred_landmarks[..., :2] - gt_landmarks[..., :2].to(pred_landmarks.dtype))
        .square()
        .sum(-1)
        .mean()
    )


__all__ = [
    "parameter_loss",
    "wpdc_weights",
    "wpdc_loss",
    "vdc_loss",
    "landmark_loss",
]
