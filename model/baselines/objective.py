"""What the baselines are trained against: the exact crop-space fits as tensors (FitTable), the
whitening of their parameters, the loss of a batch (LossFn: WPDC / VDC for 3ddfa, parameters +
landmarks for defa, on augmented targets) and the validation NME."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

from model.augment import (
    AugmentConfig,
    random_affine,
)
from model.baselines.inputs import ImageDataset, network_input
from model.baselines.losses import landmark_loss, parameter_loss, vdc_loss, wpdc_loss
from model.baselines.params3dmm import (
    CropFits,
    VertexBasis,
    Whitening,
    augment_camera,
    augment_points,
    encode,
    encode_fits,
)
from model.data import derived_seed, make_loader
from model.nme import nme_2d
from uvgen.formats.bfm import MorphableModel

if TYPE_CHECKING:  # names used in annotations only
    from model.baselines.params3dmm import LandmarkDecoder, ParamSpec


class LossSettings(Protocol):
    """What :class:`LossFn` reads of a baseline's settings (``BaselineConfig`` has them)."""

    seed: int
    loss_vertices: int
    landmark_weight: float

    @property
    def spec(self) -> ParamSpec: ...


class FitTable:
    """The :class:`CropFits` of one split as tensors on the device, gathered per batch."""

    def __init__(self, fits: CropFits, device: torch.device):
        t = lambda a, dt=torch.float64: torch.as_tensor(np.asarray(a), dtype=dt, device=device)  # noqa: E731
        self.M, self.o, self.shape, self.exp = t(fits.M), t(fits.o), t(fits.shape), t(fits.exp)
        self.landmarks = t(fits.landmarks, torch.float32)

    def targets(
        self, spec: ParamSpec, k: torch.Tensor, A: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw target vectors (B, dim) float64 and landmarks (B, 68, 3) of positions ``k``,
        through the augmentation ``A`` if given."""
        M, o, lmk = self.M[k], self.o[k], self.landmarks[k]
        if A is not None:
            M, o = augment_camera(M, o, A.to(M.device))
            lmk = augment_points(lmk, A.to(M.device))
        return encode(spec, M, o, self.shape[k], self.exp[k]), lmk


def fit_whitening(
    spec: ParamSpec,
    fits: CropFits,
    augment: AugmentConfig | None,
    seed: int,
    draws: int = 4,
    size: int = 256,
) -> Whitening:
    """Whitening statistics of the training targets as the network sees them: with augmentation,
    over ``draws`` seeded random augmentations of every sample's camera (3DDFA computes its
    statistics over its augmented training set), else over the targets themselves."""
    if augment is None:
        return Whitening.fit(encode_fits(spec, fits))
    g = torch.Generator().manual_seed(derived_seed("whitening", seed))
    n = len(fits)
    M = torch.as_tensor(np.tile(fits.M, (draws, 1, 1)))
    o = torch.as_tensor(np.tile(fits.o, (draws, 1)))
    M, o = augment_camera(M, o, random_affine(n * draws, g, augment, size=(size, size)))
    return Whitening.fit(
        encode(
            spec,
            M.numpy(),
            o.numpy(),
            np.tile(fits.shape, (draws, 1)),
            np.tile(fits.exp, (draws, 1)),
        )
    )


class LossFn:
    """The loss of a kind and epoch on whitened predictions and raw targets (see the module doc)."""

    def __init__(
        self,
        cfg: LossSettings,
        model: MorphableModel,
        whitening: Whitening,
        landmarks: LandmarkDecoder,
        device: torch.device,
    ):
        self.cfg, self.spec, self.whitening, self.landmarks = cfg, cfg.spec, whitening, landmarks
        rng = np.random.default_rng(derived_seed("loss_vertices", cfg.seed))
        n = model.n_vertices
        ids = np.sort(rng.choice(n, size=min(cfg.loss_vertices, n), replace=False))
        self.basis = VertexBasis(model, self.spec.n_shape, self.spec.n_exp, ids, device=device)
        self.gram = self.basis.gram()

    def __call__(
        self, kind: str, pred_w: torch.Tensor, target_raw: torch.Tensor, gt_landmarks: torch.Tensor
    ) -> torch.Tensor:
        target_w = self.whitening.whiten(target_raw).to(torch.float32)
        if kind == "wpdc":
            return wpdc_loss(self.spec, pred_w, target_w, self.whitening, self.basis, self.gram)
        if kind == "vdc":
            return vdc_loss(self.spec, pred_w, target_w, self.whitening, self.basis)
        lmk = self.landmarks(self.whitening.unwhiten(pred_w))
        return parameter_loss(pred_w, target_w) + self.cfg.landmark_weight * landmark_loss(
            lmk, gt_landmarks
        )


@torch.no_grad()
def evaluate(
    net: nn.Module,
    dataset: ImageDataset,
    table: FitTable,
    loss_fn: LossFn,
    kind: str,
    *,
    device: torch.device,
    batch_size: int,
    input_size: int,
    use_amp: bool = False,
    channels_last: bool = False,
) -> dict[str, float]:
    """Mean loss (of ``kind``) and landmark NME (%) over ``dataset`` (no augmentation)."""
    was_training = net.training
    net.eval()
    loader = make_loader(dataset, batch_size=batch_size, num_workers=0)
    loss_sum, nme_sum, count = 0.0, 0.0, 0
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for images, k in loader:
        images, k = images.to(device), k.to(device)
        x = network_input(images.permute(0, 3, 1, 2).float() / 255.0, input_size).contiguous(
            memory_format=fmt
        )
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            pred_w = net(x)
        pred_w = pred_w.float()
        target_raw, gt_lmk = table.targets(loss_fn.spec, k)
        loss_sum += float(loss_fn(kind, pred_w, target_raw, gt_lmk)) * len(k)
        nme_sum += float(
            nme_2d(loss_fn.landmarks(loss_fn.whitening.unwhiten(pred_w)), gt_lmk).sum()
        )
        count += len(k)
    net.train(was_training)
    count = max(count, 1)
    return {"val_loss": loss_sum / count, "val_nme_pct": 100.0 * nme_sum / count}
