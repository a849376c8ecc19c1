"""uvgen.uv_size 128 end to end on tiny synthetic data: the uvgen stage builds 128x128 maps and
crops and records the size; training, predict and evaluate take it from the file / checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.config import EvaluateParams, PredictParams, load_params
from pipeline.evaluate import run as run_evaluate
from pipeline.predict import run as run_predict
from tests.tiny_data import build_tiny_uv
from uvgen.formats.errors import DataError
from uvgen.h5store import PositionMapFile

SIZE = 128


@pytest.fixture(scope="module")
def uv128(tmp_path_factory) -> Path:
    """Tiny synthetic model and 300W-LP / AFLW2000-3D sets, built by the uvgen stage at 128."""
    root = tmp_path_factory.mktemp("uv128")
    params, _ = build_tiny_uv(root, n_vertices=1500, n_train=20, n_test=4, uv_size=SIZE)
    assert load_params(params).uvgen.uv_size == SIZE
    return root


def test_the_build_records_its_size_and_makes_everything_at_it(uv128: Path) -> None:
    for split in ("train", "test"):
        with PositionMapFile(uv128 / "uv" / f"{split}.h5") as f:
            assert f.uv_size == SIZE == int(f.attrs["uv_size"])
            assert f.image(0).shape == f.posmap(0).shape == (SIZE, SIZE, 3)
            uv = f.uv
            assert uv.weight_mask.shape == uv.face_mask.shape == (SIZE, SIZE)
            assert uv.kpt_uv.max() < SIZE and uv.face_ind.max() < SIZE * SIZE
            assert f.params["uv_size"] == str(SIZE)
            # the face fills the crop as at 256: maps span most of the 128 pixels
            pm = f.posmap(0)[uv.face_mask]
            assert 0.5 * SIZE < np.ptp(pm[:, 0]) < 1.1 * SIZE


def test_train_predict_evaluate_at_128(uv128: Path, tmp_path: Path) -> None:
    from model.checkpoint import load_weights, save_weights
    from model.prnet import PRNet
    from model.train import TrainConfig, train

    result = train(
        TrainConfig(
            train_file=uv128 / "uv" / "train.h5",
            out_dir=tmp_path / "train",
            epochs=2,
            batch_size=4,
            width=2,
            lr=1e-3,
            net_size=64,
            template=True,
            num_workers=0,
            progress=False,
            val_fraction=0.2,
            device="cpu",
            checkpoint_every=100,
        )
    )
    assert result.model.in_size == SIZE and result.model.map_scale == pytest.approx(SIZE * 1.1)
    assert len(result.history) == 2 and np.isfinite(result.history[-1]["val_nme_pct"])
    weights = tmp_path / "train" / "model.pt"
    assert load_weights(weights).in_size == SIZE

    test_file = uv128 / "uv" / "test.h5"
    manifest = run_predict(
        PredictParams(
            test_file=test_file,
            out_dir=tmp_path / "pred",
            batch_size=2,
            device="cpu",
            methods=[
                {"name": "PRN", "kind": "prn", "checkpoint": str(weights)},
                {
                    "name": "Mean-map",
                    "kind": "mean_map",
                    "checkpoint": str(uv128 / "uv" / "train.h5"),
                },
            ],
            skip_missing=False,
        )
    )
    assert [m["name"] for m in manifest["methods"]] == ["PRN", "Mean-map"]
    files = run_evaluate(
        EvaluateParams(
            test_file=test_file,
            predictions_dir=tmp_path / "pred",
            out_dir=tmp_path / "eval",
            external=[],
            max_error=0.1,
            ced_points=11,
            chunk=2,
            recon_scale=False,
            on_unmatched="report",
            data_dir=uv128 / "AFLW2000",
            model_dir=uv128 / "model",
        )
    )
    import pandas as pd

    per_image = pd.read_csv(files.per_image_csv, dtype={"name": str}).set_index("name")
    assert len(per_image) == 4
    for method in ("PRN", "Mean-map"):
        nme = per_image[f"{method}/nme_2d_68"].to_numpy()
        assert np.isfinite(nme).all() and (nme < 1.0).all(), (method, nme)

    # A 256 network on the 128 file is named, not run.
    save_weights(tmp_path / "prn256.pt", PRNet(width=2))
    with pytest.raises(
        DataError, match=r"prn256.pt \[field 'in_size'\]: the network takes 256x256 crops"
    ):
        run_predict(
            PredictParams(
                test_file=test_file,
                out_dir=tmp_path / "pred256",
                batch_size=2,
                device="cpu",
                methods=[{"name": "PRN", "kind": "prn", "checkpoint": str(tmp_path / "prn256.pt")}],
                skip_missing=False,
            )
        )


def test_a_validation_file_of_another_size_is_named(uv128: Path, tmp_path: Path) -> None:
    from model.data import load_split, write_toy_file

    other = write_toy_file(tmp_path / "val64.h5", n=4, size=64)
    with pytest.raises(DataError) as err:
        load_split(uv128 / "uv" / "train.h5", other, 0.1, 0)
    assert err.value.path == other and err.value.field == "uv_size"
    assert "64x64, the training file's 128x128" in str(err.value)
