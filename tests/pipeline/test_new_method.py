"""A new method is one module plus its keys in params.yaml: a toy method registered from here is
trained (stage train_baseline), predicted (stage predict) and scored (stage evaluate) with no
project file touched."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from model.methods import registry
from model.methods.registry import Method
from model.train_settings import TrainCommon
from pipeline import evaluate, predict, train_baseline
from pipeline.typed_yaml import ConfigError
from tests.tiny_data import build_tiny_uv
from uvgen.h5store import PositionMapFile

KIND = "toy_shrunk_mean"


@dataclass(frozen=True, kw_only=True)
class ToyConfig(TrainCommon):
    """The toy's training settings: the shared ones plus ``out_dir`` and its own ``shrink``."""

    out_dir: Path
    shrink: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.shrink <= 1:
            raise ValueError(f"baselines.{KIND}.shrink: must be in (0, 1], got {self.shrink}")


def train_toy(cfg: ToyConfig) -> None:
    """'Training': the mean training map, shrunk about its centre by ``shrink``."""
    with PositionMapFile(cfg.train_file) as f:
        mean = np.mean([f.posmap(i) for i in range(len(f))], axis=0, dtype=np.float64)
    centre = mean.reshape(-1, 3).mean(axis=0)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.out_dir / "model.pt", "wb") as out:
        np.savez(out, map=(centre + cfg.shrink * (mean - centre)).astype(np.float32))


def toy_maps(
    checkpoint: Path, test_file: Path, batch_size: int, device: str
) -> Iterator[np.ndarray]:
    with np.load(checkpoint) as weights:
        constant = weights["map"]
    with PositionMapFile(test_file) as f:
        n = len(f)
    for start in range(0, n, batch_size):
        yield np.repeat(constant[None], min(batch_size, n - start), axis=0)


@pytest.fixture
def toy_method() -> Iterator[str]:
    registry.register(Method(KIND, "a toy", toy_maps, ToyConfig, train_toy))
    yield KIND
    registry.unregister(KIND)


@pytest.fixture(scope="module")
def tiny_params(tmp_path_factory) -> Path:
    """Tiny synthetic data built into UV files by the uvgen stage, and params pointing at them."""
    root = tmp_path_factory.mktemp("toy")
    params, raw = build_tiny_uv(root, n_vertices=1200, n_train=8, n_test=4)
    uv = root / "uv"
    raw["train_common"].update(train_file=str(uv / "train.h5"), progress=False)
    raw["predict"].update(test_file=str(uv / "test.h5"), out_dir=str(root / "pred"), device="cpu")
    raw["evaluate"].update(
        test_file=str(uv / "test.h5"),
        data_dir=str(root / "AFLW2000"),
        model_dir=str(root / "model"),
        predictions_dir=str(root / "pred"),
        out_dir=str(root / "eval"),
    )
    params.write_text(yaml.safe_dump(raw))
    return params


def test_a_toy_method_is_trained_predicted_and_evaluated(tiny_params, toy_method, tmp_path) -> None:
    base = tiny_params
    root = base.parent
    raw = yaml.safe_load(base.read_text())
    # the one new key: the method's section (and its row in predict.methods)
    raw["baselines"] = {toy_method: {"out_dir": str(tmp_path / "toy"), "shrink": 0.8}}
    raw["predict"]["methods"] = [
        {"name": "Toy", "kind": toy_method, "checkpoint": str(tmp_path / "toy" / "model.pt")},
        {"name": "Mean-map", "kind": "mean_map", "checkpoint": raw["train_common"]["train_file"]},
    ]
    raw["predict"]["out_dir"] = raw["evaluate"]["predictions_dir"] = str(tmp_path / "pred")
    raw["evaluate"]["out_dir"] = str(tmp_path / "eval")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))

    train_baseline.main([toy_method, "--params", str(params)])
    with np.load(tmp_path / "toy" / "model.pt") as weights:
        toy_map = weights["map"]
    predict.main(["--params", str(params)])
    evaluate.main(["--params", str(params)])

    per_image = pd.read_csv(tmp_path / "eval" / "per_image.csv", dtype={"name": str})
    assert len(per_image) == 4
    toy, mean = per_image["Toy/nme_2d_68"], per_image["Mean-map/nme_2d_68"]
    assert np.isfinite(toy).all() and np.isfinite(mean).all()
    assert not np.allclose(toy, mean)  # shrink 0.8 from params.yaml reached the toy's training
    with PositionMapFile(root / "uv" / "train.h5") as f:
        mean_map = np.mean([f.posmap(i) for i in range(len(f))], axis=0)
    centre = mean_map.reshape(-1, 3).mean(axis=0)
    assert np.allclose(toy_map, centre + 0.8 * (mean_map - centre), atol=1e-3)
    assert "Toy" in (tmp_path / "eval" / "nme_table.md").read_text()

    # its own setting is checked, in one line naming the key
    raw["baselines"][toy_method]["shrink"] = 2.0
    params.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=rf"baselines\.{toy_method}\.shrink: must be in"):
        train_baseline.main([toy_method, "--params", str(params)])


def test_an_unregistered_kind_is_named(tiny_params, tmp_path) -> None:
    base = tiny_params
    raw = yaml.safe_load(base.read_text())
    raw["predict"]["methods"] = [{"name": "Toy", "kind": KIND, "checkpoint": "w.pt"}]
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    with pytest.raises(
        ConfigError, match=rf"predict.methods\[0\].kind: unknown method kind '{KIND}'"
    ):
        predict.main(["--params", str(params)])
    with pytest.raises(ConfigError, match=rf"baselines.{KIND}: unknown method kind"):
        train_baseline.main([KIND, "--params", str(params)])
