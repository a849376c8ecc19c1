"""Method ``prn``: PRNet (model.prnet), trained by :func:`model.train.train` from the ``train``
section of params.yaml, predicting through :class:`model.inference.Predictor`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from model.methods.registry import Method, register
from model.train import TrainConfig, train
from uvgen.h5store import PositionMapFile


def prn_maps(
    checkpoint: Path, test_file: Path, batch_size: int, device: str
) -> Iterator[np.ndarray]:
    """The test crops through ``Predictor`` in batches of ``batch_size`` -> float32 (B, S, S, 3)
    crop-space maps, file order."""
    from model.inference import Predictor

    predictor = Predictor.from_files(checkpoint, test_file, device=device, batch_size=batch_size)
    with PositionMapFile(test_file) as f:
        for start in range(0, len(f), batch_size):
            crops = np.stack([f.image(i) for i in range(start, min(len(f), start + batch_size))])
            yield predictor.predict_maps(crops)


register(
    Method(
        kind="prn",
        description="PRNet: the UV position map regressed by an encoder-decoder",
        predict_maps=prn_maps,
        train_config=TrainConfig,
        train=train,
    )
)
