"""Method ``mean_map``: a constant, the mean position map of a training file (its ``checkpoint``);
any method that learned from the images scores below it. Nothing to train."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from model.methods.registry import Method, register
from uvgen.formats.errors import DataError
from uvgen.h5store import PositionMapFile


def mean_map_maps(
    checkpoint: Path, test_file: Path, batch_size: int, device: str
) -> Iterator[np.ndarray]:
    """The mean of the position maps of the training file ``checkpoint`` (crop pixels, summed in
    float64), float32 (B, S, S, 3), the same map for every test crop, in batches of
    ``batch_size``."""
    with PositionMapFile(test_file) as f:
        n, size = len(f), f.uv_size
    with PositionMapFile(checkpoint) as f:
        if not len(f):
            raise DataError(checkpoint, "posmaps", "no samples to average")
        if f.uv_size != size:
            raise DataError(
                checkpoint,
                "uv_size",
                f"maps are {f.uv_size}x{f.uv_size}, the test file's {size}x{size}",
            )
        total = np.zeros(f.posmap(0).shape, np.float64)
        for i in range(len(f)):
            total += f.posmap(i)
        mean = (total / len(f)).astype(np.float32)
    for start in range(0, n, batch_size):
        yield np.repeat(mean[None], min(batch_size, n - start), axis=0)


register(
    Method(
        kind="mean_map",
        description="the mean training map, a constant (the floor any learned method must beat)",
        predict_maps=mean_map_maps,
    )
)
