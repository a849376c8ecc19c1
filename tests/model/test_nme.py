"""model.nme: the training's NME on tensors equals eval.metrics' reference, and a known value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval.metrics import nme_2d_batch
from model.nme import nme_2d
from model.train import landmark_nme


def test_known_value() -> None:
    gt = torch.zeros(1, 68, 2)
    gt[0, :, 0] = torch.linspace(0, 40, 68)
    gt[0, :, 1] = torch.linspace(0, 10, 68)
    pred = gt + torch.tensor([3.0, 4.0])
    assert float(nme_2d(pred, gt)[0]) == pytest.approx(5.0 / 20.0)


def test_equals_the_reference_on_random_faces() -> None:
    rng = np.random.default_rng(0)
    gt = rng.uniform(20, 230, (16, 68, 3))
    pred = gt + rng.normal(0, 4, gt.shape)
    got = nme_2d(torch.from_numpy(pred), torch.from_numpy(gt)).numpy()
    np.testing.assert_allclose(got, nme_2d_batch(pred, gt), rtol=1e-12)


def test_training_landmark_nme_reads_the_key_points_of_the_maps() -> None:
    """The maps' key-point pixels (kpt_uv: row 0 column, row 1 row) give the reference's NME."""
    rng = np.random.default_rng(1)
    maps = rng.uniform(0, 255, (2, 2, 3, 32, 32)).astype(np.float32)  # (pred|target, B, 3, H, W)
    kpt_uv = np.stack([rng.integers(0, 32, 68), rng.integers(0, 32, 68)])
    pts = maps[:, :, :, kpt_uv[1], kpt_uv[0]].transpose(0, 1, 3, 2)  # (2, B, 68, 3)
    got = landmark_nme(
        torch.from_numpy(maps[0]), torch.from_numpy(maps[1]), torch.from_numpy(kpt_uv)
    )
    np.testing.assert_allclose(got.numpy(), nme_2d_batch(pts[0], pts[1]), rtol=1e-5)
