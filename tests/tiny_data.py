"""Tiny test data shared by tests/eval and tests/pipeline: a small test-split UV file
(:func:`write_uv_test_file`), and for the figures a test split in the real layout (a disc-shaped
face in UV, maps = a moved UV grid + a bump), predictions of two methods and their evaluation
(:func:`make_tiny_run`), and PNG size checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval.decode import decode_maps, to_image_batch
from eval.evaluate import GroundTruthFile, evaluate
from eval.figure_settings import FigureSettings
from eval.predictions import Predictions, PredictionsFile, write_predictions
from eval.report import write_report
from model.data import toy_disc, toy_uv_data
from uvgen.h5codec import StorageOptions
from uvgen.h5store import SampleRecord, UVData
from uvgen.h5write import merge_shards, write_shard

DPI = 40
S = 48  # crop and UV map side of the tiny test file
YAWS = np.array([2.0, -15.0, 33.0, -48.0, 62.0, -80.0, 95.0])


def png_size(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def assert_size(path: Path, width_in: float, height_in: float, dpi: int = DPI) -> None:
    w, h = png_size(path)
    assert abs(w - width_in * dpi) <= 1 and abs(h - height_in * dpi) <= 1, (
        w,
        h,
        width_in * dpi,
        height_in * dpi,
    )


def tiny_layout() -> UVData:
    return toy_uv_data(S)


def tiny_maps(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = (S - 1) / 2
    uu, vv, r2 = toy_disc(S)
    maps = np.empty((n, S, S, 3), np.float32)
    for k in range(n):
        ang, s = np.radians(rng.uniform(-20, 20)), rng.uniform(0.7, 0.9)
        lin = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        off = np.array([c, c]) - lin @ np.array([c, c])
        maps[k, ..., 0] = lin[0, 0] * uu + lin[0, 1] * vv + off[0]
        maps[k, ..., 1] = lin[1, 0] * uu + lin[1, 1] * vv + off[1]
        maps[k, ..., 2] = s * 0.2 * S * np.clip(1.0 - r2, 0.0, None)
    return maps


def transform(k: int) -> np.ndarray:
    """original -> crop: scale 0.5 and a shift (a 96-pixel original image around each crop)."""
    return np.array([[0.5, 0.0, -10.0 - k], [0.0, 0.5, -12.0 + k], [0.0, 0.0, 1.0]])


def write_test_file(path: Path) -> Path:
    n = len(YAWS)
    layout = tiny_layout()
    maps = tiny_maps(n)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (n, S, S, 3), dtype=np.uint8)
    t = np.stack([transform(k) for k in range(n)])
    lm_crop = maps.reshape(n, -1, 3)[:, layout.kpt_uv[1].astype(np.int64) * S + layout.kpt_uv[0]]
    lm = to_image_batch(lm_crop, t).astype(np.float32)
    recs = [
        SampleRecord(
            name=f"image{k:05d}.mat",
            source=f"test/image{k:05d}.mat",
            shape_para=np.zeros(199),
            exp_para=np.zeros(29),
            pose_para=np.zeros(7),
            transform=t[k],
            jitter=np.full(3, 0.5),
            yaw_deg=float(YAWS[k]),
            pitch_deg=0.0,
            roll_deg=0.0,
            extras={"landmarks_gt": lm[k]},
        )
        for k in range(n)
    ]
    shard = path.with_name(path.name + ".shard000.h5")
    write_shard(
        shard, images, maps, recs, StorageOptions(posmap_dtype="float32", compression="none")
    )
    merge_shards([shard], path, layout, {"model_checksum": "tiny", "params": {}, "split": "test"})
    shard.unlink()
    return path


def make_tiny_run(root: Path) -> Path:
    """Test file + predictions of two methods (ground truth + noise; 'DeFA' misses one image)
    + the evaluate stage's report files."""
    test_file = write_test_file(root / "test.h5")
    layout, n = tiny_layout(), len(YAWS)
    t = np.stack([transform(k) for k in range(n)])
    names = tuple(f"image{k:05d}.mat" for k in range(n))
    pred_dir = root / "predictions"
    entries = []
    for j, (method, noise, rows) in enumerate(
        (("PRN", 0.5, np.arange(n)), ("DeFA", 1.5, np.arange(n - 1)))
    ):
        maps = tiny_maps(n) + np.random.default_rng(10 + j).normal(0, noise, (n, S, S, 3)).astype(
            np.float32
        )
        lm, dense = decode_maps(maps[rows], t[rows], layout.kpt_uv, layout.face_ind)
        preds = Predictions(
            method,
            tuple(names[r] for r in rows),
            lm,
            dense,
            np.full(len(rows), 0.02 * (j + 1)),
            meta={"device": "cpu", "batch_size": "4"},
        )
        write_predictions(pred_dir / f"{method}.h5", preds)
        entries.append(
            {
                "name": method,
                "kind": "prn",
                "checkpoint": "-",
                "file": f"{method}.h5",
                "n_images": len(rows),
                "device": "cpu",
            }
        )
    (pred_dir / "manifest.json").write_text(
        json.dumps({"test_file": str(test_file), "methods": entries, "skipped": []})
    )
    files = [PredictionsFile(pred_dir / e["file"]) for e in entries]
    with GroundTruthFile(test_file) as gt, pytest.warns(UserWarning):
        results = evaluate(gt, files)
    for f in files:
        f.close()
    write_report(results, root / "eval", figures=False)
    return root


def write_uv_test_file(
    folder: Path, n: int = 4, size: int = 32, seed: int = 0
) -> tuple[Path, np.ndarray, np.ndarray]:
    """A small test-split UV file ``folder/test.h5`` (float32 maps: exact; 200 face pixels; yaw 0,
    20, 40... degrees; landmarks_gt = the maps' key points in original pixels) -> (path, maps
    (n, size, size, 3), transforms (n, 3, 3))."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:size, 0:size] / (size - 1.0)
    maps = np.stack(
        [
            np.stack([20 + 200 * u + i, 10 + 210 * v, 40 * u * v + rng.uniform(0, 5)], -1)
            for i in range(n)
        ]
    ).astype(np.float32)
    transforms = np.stack(
        [
            np.array([[0.5 + 0.1 * i, 0, -30.0 * i], [0, 0.5 + 0.1 * i, -10.0], [0, 0, 1]])
            for i in range(n)
        ]
    )
    kpt = rng.choice(size * size, 68, replace=False)
    kpt_uv = np.stack([kpt % size, kpt // size]).astype(np.int32)
    face_ind = np.sort(rng.choice(size * size, 200, replace=False))
    recs = []
    for i in range(n):
        lm_crop = maps[i].reshape(-1, 3)[kpt].astype(np.float64)
        inv = np.linalg.inv(transforms[i])
        lm = np.column_stack(
            [lm_crop[:, :2] @ inv[:2, :2].T + inv[:2, 2], lm_crop[:, 2] / transforms[i, 0, 0]]
        )
        recs.append(
            SampleRecord(
                f"image{i:05d}.mat",
                "t",
                np.zeros(199),
                np.zeros(29),
                np.zeros(7),
                transforms[i],
                np.full(3, 0.5),
                float(20 * i),
                0.0,
                0.0,
                {"landmarks_gt": lm.astype(np.float32)},
            )
        )
    folder = Path(folder)
    shard = folder / "shard.h5"
    write_shard(
        shard,
        np.zeros((n, size, size, 3), np.uint8),
        maps,
        recs,
        StorageOptions(posmap_dtype="float32"),
    )
    layout = UVData(np.ones((size, size), np.uint8), np.zeros((size, size), bool), kpt_uv, face_ind)
    path = folder / "test.h5"
    merge_shards([shard], path, layout, {"model_checksum": "x", "params": {}, "split": "test"})
    return path, maps, transforms


def predict_params(folder: Path, skip_missing: bool, device: str = "cpu"):
    """Predict-stage parameters over a 3-image :func:`write_uv_test_file` in ``folder``: an
    untrained small PRN (``prn.pt``) and a 3DDFA whose checkpoint is absent; output ``pred/``."""
    from model.checkpoint import save_weights
    from model.prnet import PRNet
    from pipeline.config import PredictParams

    folder.mkdir(parents=True, exist_ok=True)
    path, _, _ = write_uv_test_file(folder, n=3)
    save_weights(folder / "prn.pt", PRNet(width=2, in_size=32))
    methods = [
        {"name": "PRN", "kind": "prn", "checkpoint": str(folder / "prn.pt")},
        {"name": "3DDFA", "kind": "3ddfa", "checkpoint": str(folder / "absent.pt")},
    ]
    return PredictParams(
        test_file=path,
        out_dir=folder / "pred",
        batch_size=2,
        device=device,
        methods=methods,
        skip_missing=skip_missing,
    )


def figure_settings(root: Path, **changes) -> FigureSettings:
    """Valid ``figures`` settings over the tiny run in ``root`` (tiny DPI, PDFs on); ``changes``
    replace fields."""
    base = dict(
        test_file=root / "test.h5",
        model_dir=None,
        predictions_dir=root / "predictions",
        eval_dir=root / "eval",
        out_dir=root / "figures",
        uv_sample=None,
        uv_sample_yaw=25.0,
        qualitative_rows=4,
        qualitative_max_yaw=90.0,
        max_error=0.1,
        ced_axis_max="auto",
        dpi=DPI,
        pdf=True,
    )
    return FigureSettings(**{**base, **changes})


def tiny_uvgen_params(root: Path, model_dir: Path) -> dict:
    """``uvgen`` parameters for the tiny sets under ``root`` (``300W_LP``, ``AFLW2000``; maps to
    ``root/uv``) and the model in ``model_dir``: in-process, small tasks."""
    return dict(
        model_dir=str(model_dir),
        train_root=str(root / "300W_LP"),
        test_root=str(root / "AFLW2000"),
        train_out=str(root / "uv" / "train.h5"),
        test_out=str(root / "uv" / "test.h5"),
        workers=0,
        task_size=10,
    )


def build_tiny_uv(
    root: Path, n_vertices: int, n_train: int, n_test: int, **uvgen: object
) -> tuple[Path, dict]:
    """A synthetic face model and 300W-LP / AFLW2000-3D sets of 256x256 photos under ``root``,
    built into ``root/uv/{train,test}.h5`` by the uvgen stage (in process, no dask) with the
    default params plus ``uvgen`` overrides; returns the params file and its contents."""
    import yaml

    from pipeline import make_uv
    from pipeline.config import DEFAULT_PARAMS
    from uvgen.formats.bfm import save_bfm
    from uvgen.synth.dataset import write_synthetic_set
    from uvgen.synth.facemodel import make_face_model

    save_bfm(make_face_model(n_vertices=n_vertices, seed=0), root / "model")
    write_synthetic_set("300wlp", root / "model", root / "300W_LP", n_train, 256, seed=1)
    write_synthetic_set("aflw2000", root / "model", root / "AFLW2000", n_test, 256, seed=2)
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    raw["uvgen"].update(tiny_uvgen_params(root, root / "model"), **uvgen)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    make_uv.main(["train", "--params", str(params)])
    make_uv.main(["test", "--params", str(params)])
    return params, raw
