"""PRNet's release in PyTorch: TensorFlow's own checkpoint and outputs (the golden, written by
scripts/make_tf_golden.py with TensorFlow 2.21.0) reproduced; wrong checkpoints refused; PRNet's
uv-data folder equal to the model's layout on the real topology."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from model.checkpoint import load_weights
from model.prnet import MAP_SCALE, PRNet, export_tf_weights
from model.release import import_tf_checkpoint, import_weights_file, load_uv_data, weights_meta
from model.tf_checkpoint import CheckpointError
from tests.model.tf_bundle_helpers import write_bundle
from uvgen.formats.errors import DataError

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "tf_golden"


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    return dict(np.load(GOLDEN / "golden.npz"))


def _run(model: PRNet, inputs: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    with torch.no_grad():
        x = torch.from_numpy(inputs).permute(0, 3, 1, 2).to(dtype)
        return model.to(dtype)(x).permute(0, 2, 3, 1).double().numpy()


def test_pytorch_equals_tensorflow_on_tensorflows_checkpoint(golden) -> None:
    """Batch norm in inference mode, 'SAME' convs and transposed convs, kernel layouts: TensorFlow's
    forward pass in float64 is reproduced to 1e-3 px (measured 3e-11 px). In float32 both
    frameworks round differently; TensorFlow's own float32 and float64 outputs differ by 0.024 px
    on this random width-2 network, and PyTorch float32 is as close (measured 0.014 px)."""
    model = import_tf_checkpoint(GOLDEN / "model", in_size=int(golden["size"]))
    assert model.width == int(golden["width"]) == 2 and not model.training
    assert str(golden["tf_version"]) == "2.21.0"
    out64 = _run(model, golden["inputs"], torch.float64)
    assert np.abs(out64 - golden["outputs64"]).max() * MAP_SCALE < 1e-3
    assert np.ptp(golden["outputs64"]) > 0.9 and golden["outputs64"].std() > 0.05  # not saturated
    out32 = _run(model, golden["inputs"], torch.float32)
    tf_noise = np.abs(golden["outputs"] - golden["outputs64"]).max()
    assert np.abs(out32 - golden["outputs"]).max() <= 2 * tf_noise
    # the inference path (batch norms folded into the convolutions, channels-last) as well
    from model.inference import Predictor

    pred = Predictor(model.float(), np.zeros((2, 68), int), np.zeros(1, int), device="cpu")
    maps = pred.predict_maps((golden["inputs"] * 255.0).astype(np.float32))
    assert np.abs(maps / model.map_scale - golden["outputs64"]).max() <= 2 * tf_noise
    # the weights really matter: another network's output is far away
    other = PRNet(width=2, in_size=int(golden["size"])).eval()
    assert (
        np.abs(_run(other, golden["inputs"], torch.float64) - golden["outputs64"]).max() * MAP_SCALE
        > 10
    )


def test_import_weights_file_round_trip(tmp_path: Path, golden) -> None:
    out = tmp_path / "release.pt"
    model = import_weights_file(GOLDEN / "model", out)
    again = load_weights(out)
    assert again.width == 2 and again.in_size == 256
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k
    assert weights_meta(out)["uv_layout"] == "prnet"


def test_another_network_lists_missing_and_unexpected(tmp_path: Path) -> None:
    tf = export_tf_weights(PRNet(width=2, in_size=64))
    tf["vgg/conv1/weights"] = np.zeros((3, 3, 3, 8), np.float32)
    del tf["resfcn256/Conv2d_transpose_16/weights"]
    tf["resfcn256/Conv2d_transpose_16/weights/Adam"] = np.zeros(3, np.float32)  # slots are fine
    write_bundle(tmp_path / "ck", tf)
    with pytest.raises(
        CheckpointError,
        match=r"1 variables missing \(resfcn256/Conv2d_transpose_16/weights\), "
        r"1 unexpected \(vgg/conv1/weights\)",
    ):
        import_tf_checkpoint(tmp_path / "ck")
    write_bundle(tmp_path / "vgg", {"vgg/conv1/weights": np.zeros((3, 3, 3, 8), np.float32)})
    with pytest.raises(CheckpointError, match=r"not a PRNet .* vgg/conv1/weights"):
        import_tf_checkpoint(tmp_path / "vgg")


def test_wrong_shape_and_dtype_name_the_variable(tmp_path: Path) -> None:
    tf = export_tf_weights(PRNet(width=2, in_size=64))
    bad = dict(tf)
    bad["resfcn256/resBlock_2/Conv/weights"] = np.zeros((1, 1, 4, 5), np.float32)
    write_bundle(tmp_path / "shape", bad)
    with pytest.raises(
        CheckpointError, match=r"resBlock_2/Conv/weights.*does not fit PRNet at width 2"
    ):
        import_tf_checkpoint(tmp_path / "shape")
    ints = dict(tf)
    ints["resfcn256/Conv/BatchNorm/beta"] = np.zeros(2, np.int32)
    write_bundle(tmp_path / "int", ints)
    with pytest.raises(CheckpointError, match=r"Conv/BatchNorm/beta.*unsupported dtype DT_INT32"):
        import_tf_checkpoint(tmp_path / "int")
    # float64 and float16 weights are read and converted
    wide = {k: v.astype(np.float64) for k, v in tf.items()}
    write_bundle(tmp_path / "f64", wide, num_shards=2)
    model = import_tf_checkpoint(tmp_path / "f64", in_size=64)
    assert np.allclose(
        export_tf_weights(model)["resfcn256/Conv/weights"], tf["resfcn256/Conv/weights"]
    )


def test_corrupt_data_stops_the_import_naming_the_variable(tmp_path: Path) -> None:
    for f in GOLDEN.glob("model.*"):
        shutil.copy(f, tmp_path / f.name)
    data = tmp_path / "model.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    from model.tf_checkpoint import Checkpoint

    e = Checkpoint(tmp_path / "model").entries["resfcn256/Conv2d_transpose_3/weights"]
    raw[e.offset + 5] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="Conv2d_transpose_3/weights'\\]: CRC32C mismatch"):
        import_tf_checkpoint(tmp_path / "model")


# ----------------------------------------------------------------------------------------------
# PRNet's uv-data folder


def test_uv_data_equals_the_models_layout_on_the_real_topology(
    prnet_uv_dir, real_topology_model
) -> None:
    """PRNet's uv-data read as a FaceUV is the layout the project builds from the real BFM topology
    with PRNet's face mask: the same key-point pixels, face pixels, mesh and rigid region, and
    the same canonical face up to a similarity (PRNet's file is in other units)."""
    from model.head_pose import similarity_fit
    from model.uses import build_face_uv
    from uvgen.masks import load_prnet_face_mask

    theirs = load_uv_data(prnet_uv_dir)
    ours = build_face_uv(
        real_topology_model, face_mask=load_prnet_face_mask(prnet_uv_dir / "uv_face_mask.png")
    )
    assert len(theirs.face_ind) == 43_867
    assert np.array_equal(theirs.kpt_uv, ours.kpt_uv)  # the model's own key-point pixels
    assert np.array_equal(theirs.face_ind, ours.face_ind)
    assert np.array_equal(theirs.face_mask, ours.face_mask)
    assert np.array_equal(theirs.triangles, ours.triangles)
    assert np.array_equal(theirs.rigid, ours.rigid)
    assert len(ours.gaps) == 0 and len(theirs.gaps) == 0
    # canonical: the real mean face through the real layout vs PRNet's canonical_vertices.npy
    from model.uses import canonical_vertices
    from uvgen.formats.bfm import load_topology
    from uvgen.groundtruth import build_uv_layout

    topo = load_topology(prnet_uv_dir.parent / "bfm_topology")
    mean = (topo.mean_shape.astype(np.float64) + topo.mean_exp).reshape(-1, 3)
    real = canonical_vertices(mean, build_uv_layout(topo), theirs.face_ind)
    s, r, t = similarity_fit(real, theirs.canonical)
    resid = np.linalg.norm(s * real @ r.T + t - theirs.canonical, axis=1)
    assert np.median(resid) < 0.005 * np.ptp(theirs.canonical[:, 0])
    assert np.allclose(r, np.eye(3), atol=2e-3)  # same axes: y up after the flip
    # decoding a map: identical landmarks and vertices
    from model.uses import dense_vertices, landmarks

    pm = np.random.default_rng(0).normal(size=(256, 256, 3))
    assert np.array_equal(landmarks(pm, theirs), landmarks(pm, ours))
    assert np.array_equal(dense_vertices(pm, theirs), dense_vertices(pm, ours))


def test_uv_data_errors_name_the_file(tmp_path: Path, prnet_uv_dir) -> None:
    for f in ("uv_kpt_ind.txt", "face_ind.txt"):
        shutil.copy(prnet_uv_dir / f, tmp_path / f)
    with pytest.raises(DataError, match="canonical_vertices.npy"):
        load_uv_data(tmp_path)
    np.save(tmp_path / "canonical_vertices.npy", np.zeros((10, 3)))
    with pytest.raises(DataError, match=r"canonical_vertices.npy: expected \(43867, 3\)"):
        load_uv_data(tmp_path)
