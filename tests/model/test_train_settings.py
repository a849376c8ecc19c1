"""model.train_settings: the learning-rate schedules (precision and seeding are exercised by the
training runs of tests/model/test_train.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.train import TrainConfig
from model.train_settings import lr_factor


def test_lr_schedules() -> None:
    kw = dict(steps_per_epoch=10, epochs=4, lr_step_epochs=2, lr_gamma=0.5, warmup_frac=0.1)
    step = [lr_factor(k, schedule="step", **kw) for k in range(40)]
    assert step[:20] == [1.0] * 20 and step[20:] == [0.5] * 20  # halved every 2 epochs
    one = [lr_factor(k, schedule="onecycle", **kw) for k in range(40)]
    assert one[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # warm-up over 10 % of 40 steps
    assert all(a >= b for a, b in zip(one[3:], one[4:]))  # then decreasing
    assert one[-1] < 0.01 and one[3] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        TrainConfig(train_file=Path("x.h5"), lr_schedule="cosine")
    with pytest.raises(ValueError):
        TrainConfig(train_file=Path("x.h5"), warmup_frac=1.0)


def test_prn_and_baselines_share_one_declaration_of_the_common_fields() -> None:
    """TrainCommon declares the shared fields once; TrainConfig adds its own alone, BaselineConfig
    its own plus three defaults of its own (epochs, bn_momentum, num_workers)."""
    from dataclasses import fields

    from model.baselines.train_baseline import BaselineConfig
    from model.train_settings import TrainCommon

    common = TrainCommon.common_keys()
    assert len(common) == 23 and common[0] == "train_file"
    for cls in (TrainConfig, BaselineConfig):
        assert issubclass(cls, TrainCommon)
        assert [f.name for f in fields(cls)][: len(common)] == list(common)
    assert not set(TrainConfig.__annotations__) & set(common)
    assert set(BaselineConfig.__annotations__) & set(common) == {
        "epochs",
        "bn_momentum",
        "num_workers",
    }
