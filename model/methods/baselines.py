"""Methods ``3ddfa`` and ``defa``: the parameter-regression baselines (model.baselines), trained by
:func:`model.baselines.train_baseline.train_baseline` from the section ``baselines.KIND`` of
params.yaml, their parameters decoded through the morphable model into UV maps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from model.baselines.train_baseline import KINDS, BaselineConfig, train_baseline
from model.methods.registry import Method, register
from uvgen.formats.errors import DataError

# Keys a baseline section may leave out (their defaults: wpdc_fraction matters for 3ddfa only,
# landmark_weight for defa); every other field must be given, there or in ``train_common``.
OPTIONAL_KEYS = ("wpdc_fraction", "landmark_weight", "loss_vertices")

DESCRIPTIONS = {
    "3ddfa": "3DDFA-style: MobileNet-V1 regressing 62 whitened 3DMM parameters (WPDC, then VDC)",
    "defa": "DeFA-style: a small CNN regressing 236 whitened 3DMM parameters plus a landmark loss",
}


def baseline_maps(
    checkpoint: Path, test_file: Path, batch_size: int, device: str
) -> Iterator[np.ndarray]:
    """A trained baseline over the test file (model.baselines.predict.iter_predicted_maps) ->
    float32 (B, S, S, 3) crop-space maps in batches, file order."""
    from model.baselines.predict import iter_predicted_maps

    expect = 0
    for start, maps in iter_predicted_maps(checkpoint, test_file, batch_size, device=device):
        if start != expect:
            raise DataError(checkpoint, "maps", f"batch starts at row {start}, expected {expect}")
        expect += len(maps)
        yield np.asarray(maps, dtype=np.float32)


for _kind in KINDS:
    register(
        Method(
            kind=_kind,
            description=DESCRIPTIONS[_kind],
            predict_maps=baseline_maps,
            train_config=BaselineConfig,
            train=train_baseline,
            train_given={"kind": _kind},
            train_optional=OPTIONAL_KEYS,
        )
    )
