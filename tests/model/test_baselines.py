"""The 3DDFA / DeFA baselines: parameter targets, whitening, losses, networks, training, resume,
maps."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from model.augment import AugmentConfig, random_affine, transform_maps
from model.baselines.defa_net import DeFANet
from model.baselines.inputs import augment_images
from model.baselines.losses import vdc_loss, wpdc_loss, wpdc_weights
from model.baselines.mobilenet import MobileNetV1, count_parameters
from model.baselines.objective import FitTable, LossFn
from model.baselines.params3dmm import (
    AFFINE,
    SPEC_3DDFA,
    SPEC_DEFA,
    LandmarkDecoder,
    ParamSpec,
    VertexBasis,
    Whitening,
    augment_camera,
    augment_points,
    camera_from_params,
    crop_vertices_torch,
    decode_params_to_crop_vertices,
    encode_fits,
    position_maps,
    read_crop_fits,
)
from model.baselines.predict import BaselinePredictor, predict_maps
from model.baselines.train_baseline import (
    BaselineConfig,
    build_network,
    resolve_model_dir,
    train_baseline,
)
from model.checkpoint import load_checkpoint
from model.train import state_digest
from uvgen.formats.bfm import MorphableModel, save_bfm
from uvgen.formats.errors import DataError
from uvgen.geometry import jitter_draws
from uvgen.groundtruth import build_uv_layout, fit_vertices, training_pair
from uvgen.h5codec import StorageOptions
from uvgen.h5store import PositionMapFile, SampleRecord, UVData
from uvgen.h5write import merge_shards, write_shard
from uvgen.masks import build_uv_masks
from uvgen.model_checksum import model_checksum
from uvgen.resumable import BuildLockedError, exclusive_lock
from uvgen.synth.dataset import draw_sample
from uvgen.synth.facemodel import make_face_model

N_VERTICES = 900  # the embedded model's minimum: fast


def _write_uv_file(
    path: Path, model: MorphableModel, model_dir: Path, n: int, seed: int, truncate: bool = False
) -> list[np.ndarray]:
    """A UV file of n synthetic samples (float32 maps); returns each sample's crop vertices.

    truncate: shape coefficients beyond 40 and expression beyond 10 set to 0 (3DDFA's truncation
    is then exact).
    """
    layout = build_uv_layout(model)
    rng = np.random.default_rng(seed)
    images, maps, records, crop_verts = [], [], [], []
    for i in range(n):
        s = draw_sample(model, 128, rng)
        shape, exp = s.shape_para.copy(), s.exp_para.copy()
        if truncate:
            shape[40:], exp[10:] = 0.0, 0.0
        pose = s.pose_para.astype(np.float64)
        pair = training_pair(
            model,
            layout,
            s.image,
            fit_vertices(model, shape, exp)[0],
            pose,
            jitter_draws(seed, f"s{i}"),
        )
        images.append(pair.image)
        maps.append(pair.posmap)
        crop_verts.append(pair.crop_vertices)
        records.append(
            SampleRecord(
                name=f"s{i:03d}",
                source="test",
                shape_para=shape,
                exp_para=exp,
                pose_para=pose,
                transform=pair.transform,
                jitter=np.full(3, 0.5),
                yaw_deg=0.0,
                pitch_deg=0.0,
                roll_deg=0.0,
            )
        )
    shard = path.with_name(path.name + ".shard.h5")
    write_shard(
        shard, np.stack(images), np.stack(maps), records, StorageOptions(posmap_dtype="float32")
    )
    masks = build_uv_masks(model, layout.size, raster=layout.raster)
    uv = UVData(
        weight_class=masks.weight_class,
        face_mask=masks.face,
        kpt_uv=masks.kpt_uv,
        face_ind=masks.face_ind,
    )
    merge_shards(
        [shard],
        path,
        uv,
        {
            "model_checksum": model_checksum(model_dir),
            "params": {"model_dir": str(model_dir)},
            "split": "train",
        },
    )
    shard.unlink()
    return crop_verts


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small morphable model on disk, its layout, a 16-sample file and a truncated 4-sample
    one."""
    root = tmp_path_factory.mktemp("baselines")
    model = make_face_model(n_vertices=N_VERTICES, seed=0)
    model_dir = root / "face_model"
    save_bfm(model, model_dir)
    train = root / "train.h5"
    _write_uv_file(train, model, model_dir, 16, seed=1)
    trunc = root / "trunc.h5"
    trunc_verts = _write_uv_file(trunc, model, model_dir, 4, seed=2, truncate=True)
    return {
        "model": model,
        "model_dir": model_dir,
        "layout": build_uv_layout(model),
        "train": train,
        "trunc": trunc,
        "trunc_verts": trunc_verts,
        "root": root,
    }


# ----------------------------------------------------------------------------------------------
# Targets and decoding


def test_3ddfa_vector_round_trip_is_exact_without_higher_components(world) -> None:
    fits = read_crop_fits(world["trunc"], world["model"], world["layout"])
    p = encode_fits(SPEC_3DDFA, fits)
    assert p.shape == (4, 62)
    decoded = decode_params_to_crop_vertices(p, SPEC_3DDFA, world["model"])
    for got, want in zip(decoded, world["trunc_verts"]):
        np.testing.assert_allclose(got, want, atol=2e-3)  # float32 maps and fits: ~1e-4 px
    # the camera block is [M | o] row-major; with shift_z=False the camera alone already gives
    # min z = 0
    raw = decode_params_to_crop_vertices(p[0], SPEC_3DDFA, world["model"], shift_z=False)
    assert abs(raw[:, 2].min()) < 2e-3
    np.testing.assert_array_equal(p[:, [3, 7, 11]], fits.o)


def test_defa_vector_round_trip_and_maps_equal_ground_truth(world) -> None:
    fits = read_crop_fits(world["train"], world["model"], world["layout"], indices=[0, 5, 7])
    p = encode_fits(SPEC_DEFA, fits)
    assert p.shape == (3, 8 + 199 + 29)
    # the weak-perspective depth row is the true third row of the camera
    M, _ = camera_from_params(SPEC_DEFA, p[:, :8])
    np.testing.assert_allclose(M, fits.M, rtol=1e-9, atol=1e-12)
    maps = position_maps(
        world["layout"], decode_params_to_crop_vertices(p, SPEC_DEFA, world["model"])
    )
    with PositionMapFile(world["train"]) as f:
        gt = np.stack([f.posmap(i) for i in (0, 5, 7)])
        kpt = f.uv.kpt_uv
    np.testing.assert_allclose(maps, gt, atol=2e-3)
    # the landmark decoder reads the maps' key-point pixels without drawing the maps
    dec = LandmarkDecoder(SPEC_DEFA, world["model"], world["layout"], kpt, dtype=torch.float64)
    lmk = dec(torch.as_tensor(p)).numpy()
    np.testing.assert_allclose(lmk[..., :2], gt[:, kpt[1], kpt[0], :2], atol=2e-3)
    np.testing.assert_allclose(fits.landmarks, gt[:, kpt[1], kpt[0]], atol=1e-6)


def test_read_crop_fits_rejects_another_model(world, tmp_path) -> None:
    other = make_face_model(n_vertices=N_VERTICES, seed=5)
    with pytest.raises(DataError, match="posmaps"):
        read_crop_fits(world["train"], other, build_uv_layout(other), indices=[0])
    save_bfm(other, tmp_path / "other")
    with pytest.raises(DataError, match="model_checksum"):
        resolve_model_dir(tmp_path / "other", world["train"])
    assert resolve_model_dir(None, world["train"]) == world["model_dir"]


def test_camera_augmentation_moves_vertices_like_the_map(world) -> None:
    fits = read_crop_fits(world["train"], world["model"], world["layout"], indices=[1, 2])
    A = random_affine(2, torch.Generator().manual_seed(4), AugmentConfig())
    M, o = augment_camera(torch.as_tensor(fits.M), torch.as_tensor(fits.o), A)
    aug = fits.__class__(M.numpy(), o.numpy(), fits.shape, fits.exp, fits.landmarks)
    maps = position_maps(
        world["layout"],
        decode_params_to_crop_vertices(encode_fits(SPEC_DEFA, aug), SPEC_DEFA, world["model"]),
    )
    with PositionMapFile(world["train"]) as f:
        gt = torch.as_tensor(np.stack([f.posmap(1), f.posmap(2)])).permute(0, 3, 1, 2)
        kpt = f.uv.kpt_uv
    covered = world["layout"].raster.mask
    want = transform_maps(gt.double(), A).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(maps[:, covered], want[:, covered], atol=2e-3)
    lmk = augment_points(torch.as_tensor(fits.landmarks).double(), A).numpy()
    np.testing.assert_allclose(lmk, want[:, kpt[1], kpt[0]], atol=2e-3)


def test_whitening_round_trip() -> None:
    rng = np.random.default_rng(0)
    t = rng.normal(size=(50, 5)) * [1e-3, 1.0, 5e5, 0.0, 0.0] + [0.0, 128.0, 0.0, 7.0, 0.0]
    w = Whitening.fit(t)
    z = w.whiten(t)
    np.testing.assert_allclose(z[:, :3].mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(z[:, :3].std(0), 1, atol=1e-9)
    np.testing.assert_array_equal(w.std[3:], [7.0, 1.0])  # constant entries: |mean| or 1, never 0
    np.testing.assert_allclose(w.unwhiten(z), t, rtol=1e-12, atol=1e-12)
    back = Whitening.from_state(w.to_state())
    np.testing.assert_array_equal(back.mean, w.mean)
    np.testing.assert_allclose(
        back.unwhiten(w.whiten(torch.as_tensor(t))).numpy(), t, rtol=1e-12, atol=1e-12
    )


# ----------------------------------------------------------------------------------------------
# Losses


def _tiny_model(mean: np.ndarray, shape_pc: np.ndarray, exp_pc: np.ndarray) -> MorphableModel:
    n = len(mean) // 3
    z = np.zeros((3 * n, 1))
    return MorphableModel(
        shape_mu=mean.reshape(-1, 1),
        shape_pc=shape_pc,
        shape_ev=np.ones((shape_pc.shape[1], 1)),
        exp_mu=z,
        exp_pc=exp_pc,
        exp_ev=np.ones((exp_pc.shape[1], 1)),
        tex_mu=z,
        tex_pc=np.zeros((3 * n, 1)),
        tex_ev=np.ones((1, 1)),
        tri=np.zeros((0, 3), np.int32),
        tri_mouth=np.zeros((0, 3), np.int32),
        kpt_ind=np.zeros(68, np.int32),
        uv=np.zeros((n, 2)),
        segbin=np.zeros((4, n), np.uint8),
    )


SPEC_TINY = ParamSpec("tiny", AFFINE, 1, 1)


def _gt_vector(M=np.eye(3), o=np.zeros(3), a=0.0, b=0.0) -> torch.Tensor:
    return torch.as_tensor(np.r_[np.c_[M, o].ravel(), a, b], dtype=torch.float64)[None]


def test_wpdc_by_hand() -> None:
    # two vertices (1,0,0) and (0,2,0); the shape component lifts vertex 0 in z by 1 per unit
    model = _tiny_model(
        np.array([1.0, 0, 0, 0, 2, 0]),
        np.array([[0.0], [0], [1], [0], [0], [0]]),
        np.array([[1.0], [0], [0], [1], [0], [0]]),
    )
    basis = VertexBasis(model, 1, 1, dtype=torch.float64)
    ident = Whitening(np.zeros(14), np.ones(14))
    gt = _gt_vector()
    d, e, al = 0.2, -0.3, 0.5  # errors in M[0,0], o[1] and the shape coefficient
    pred = gt.clone()
    pred[0, 0] += d
    pred[0, 7] += e
    pred[0, 12] += al
    w = wpdc_weights(SPEC_TINY, pred, gt, basis, basis.gram())[0]
    raw = torch.tensor(
        [abs(d) * 1.0, abs(e) * math.sqrt(2), abs(al) * 1.0], dtype=torch.float64
    )  # ||X[:,0]||, sqrt(k), ||M A||
    np.testing.assert_allclose(w[[0, 7, 12]].numpy(), (raw / raw.sum()).numpy(), rtol=1e-12)
    assert float(w.sum()) == pytest.approx(1.0) and float(w[[1, 2, 3, 13]].abs().sum()) == 0.0
    loss = wpdc_loss(SPEC_TINY, pred.float(), gt.float(), ident, basis, basis.gram())
    want = float((raw * torch.tensor([d, e, al], dtype=torch.float64) ** 2).sum() / raw.sum())
    assert float(loss) == pytest.approx(want, rel=1e-5)


def test_wpdc_weights_equal_the_published_definition() -> None:
    """w_i = ||V(p^d(i)) - V(p^g)||, p^d(i) = ground truth with entry i predicted, normalised."""
    rng = np.random.default_rng(3)
    k = 7
    model = _tiny_model(
        rng.normal(size=3 * k) * 1e4, rng.normal(size=(3 * k, 3)), rng.normal(size=(3 * k, 2))
    )
    spec = ParamSpec("t", AFFINE, 3, 2)
    basis = VertexBasis(model, 3, 2, dtype=torch.float64)
    gt = torch.as_tensor(
        np.r_[
            (rng.normal(size=(3, 4)) * [1e-3, 1e-3, 1e-3, 100]).ravel(),
            rng.normal(size=3) * 1e3,
            rng.normal(size=2),
        ]
    )[None]
    pred = gt + torch.as_tensor(rng.normal(size=gt.shape)) * gt.abs().clamp_min(1e-3) * 0.3
    w = wpdc_weights(spec, pred, gt, basis, basis.gram())[0]
    v_gt = crop_vertices_torch(spec, gt, basis)
    brute = []
    for i in range(spec.dim):
        pd = gt.clone()
        pd[0, i] = pred[0, i]
        brute.append(float((crop_vertices_torch(spec, pd, basis) - v_gt).norm()))
    brute = np.array(brute)
    np.testing.assert_allclose(w.numpy(), brute / brute.sum(), rtol=1e-9, atol=1e-15)


def test_vdc_by_hand() -> None:
    model = _tiny_model(np.array([1.0, 0, 0, 0, 2, 0]), np.zeros((6, 1)), np.zeros((6, 1)))
    basis = VertexBasis(model, 1, 1, dtype=torch.float64)
    ident = Whitening(np.zeros(14), np.ones(14))
    gt = _gt_vector()
    pred = _gt_vector(o=np.array([3.0, 4.0, 0.0]))
    assert float(vdc_loss(SPEC_TINY, pred, gt, ident, basis)) == pytest.approx(
        25.0
    )  # every vertex 5 px off
    pred = _gt_vector(M=np.diag([2.0, 1.0, 1.0]))  # vertex 0 moves 1 px, vertex 1 stays
    assert float(vdc_loss(SPEC_TINY, pred, gt, ident, basis)) == pytest.approx(0.5)


def test_mobilenet_shapes_and_parameter_count() -> None:
    net = MobileNetV1(62, alpha=1.0)
    assert (
        count_parameters(net) == 3_270_526
    )  # 62 outputs; the ImageNet net (1000 classes) has 4.2 M:
    assert count_parameters(MobileNetV1(1000, alpha=1.0)) == 4_231_976
    out = net.eval()(torch.rand(2, 3, 120, 120))
    assert out.shape == (2, 62) and torch.all(
        out == 0
    )  # zero-initialised head: the mean parameters
    small = MobileNetV1(62, alpha=0.25)
    assert small.features[-1][1][0].out_channels == 256 and small(
        torch.rand(1, 3, 120, 120)
    ).shape == (1, 62)


def test_defa_net_shapes() -> None:
    net = DeFANet(236, width=8, in_size=128)
    assert net(torch.rand(2, 3, 128, 128)).shape == (2, 236)
    assert 3.4e6 < count_parameters(DeFANet(236, width=32)) < 3.5e6
    with pytest.raises(ValueError):
        DeFANet(236, width=8, in_size=100)


# ----------------------------------------------------------------------------------------------
# Training, resume, prediction


def _cfg(world, tmp_path: Path, kind: str, **over) -> BaselineConfig:
    base = dict(
        kind=kind,
        train_file=world["train"],
        out_dir=tmp_path / kind,
        epochs=2,
        batch_size=4,
        lr=1e-3,
        lr_step_epochs=1,
        width=0.25 if kind == "3ddfa" else 4,
        val_fraction=0.2,
        seed=3,
        device="cpu",
        num_workers=0,
        checkpoint_every=0,
        progress=False,
        loss_vertices=200,
    )
    return BaselineConfig(**{**base, **over})


@pytest.mark.parametrize(
    "kind,loss_kind", [("3ddfa", "wpdc"), ("3ddfa", "vdc"), ("defa", "param+lmk")]
)
def test_a_few_steps_lower_the_loss(world, tmp_path, kind, loss_kind) -> None:
    cfg = _cfg(world, tmp_path, kind)
    model, layout = world["model"], world["layout"]
    fits = read_crop_fits(world["train"], model, layout, indices=range(8))
    whitening = Whitening.fit(encode_fits(cfg.spec, fits))
    with PositionMapFile(world["train"]) as f:
        images = torch.as_tensor(np.stack([f.image(i) for i in range(8)]))
        kpt = f.uv.kpt_uv
    torch.manual_seed(0)
    net = build_network(kind, cfg.width, cfg.input_size)
    loss_fn = LossFn(
        cfg, model, whitening, LandmarkDecoder(cfg.spec, model, layout, kpt), torch.device("cpu")
    )
    table = FitTable(fits, torch.device("cpu"))
    x, _ = augment_images(images, None, None, cfg.input_size)
    target, lmk = table.targets(cfg.spec, torch.arange(8))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = loss_fn(loss_kind, net(x), target, lmk)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_train_resume_metrics_and_prediction(world, tmp_path) -> None:
    cfg = _cfg(world, tmp_path, "3ddfa", augment=True, wpdc_fraction=0.5)
    straight = train_baseline(cfg)
    assert [r["loss_kind"] for r in straight.history] == ["wpdc", "vdc"]
    assert (cfg.out_dir / "loss.csv").read_text().count("\n") == 3
    assert all(np.isfinite(r["val_nme_pct"]) for r in straight.history)
    # the same run in two parts (stopped after epoch 1, then resumed) ends with identical weights
    split = _cfg(world, tmp_path / "b", "3ddfa", augment=True, wpdc_fraction=0.5, epochs=1)
    train_baseline(split)
    resumed = train_baseline(_cfg(world, tmp_path / "b", "3ddfa", augment=True, wpdc_fraction=0.5))
    assert resumed.resumed_from is not None and resumed.resumed_from.epoch == 1
    assert state_digest(resumed.model) == state_digest(straight.model)
    # settings that change the numbers start afresh
    other = train_baseline(
        _cfg(world, tmp_path / "b", "3ddfa", augment=True, wpdc_fraction=0.5, lr=2e-3)
    )
    assert other.resumed_from is None

    maps = predict_maps(cfg.out_dir / "model.pt", world["trunc"], batch_size=4)
    assert maps.shape == (4, 256, 256, 3) and maps.dtype == np.float32 and np.isfinite(maps).all()
    pred = BaselinePredictor(cfg.out_dir / "model.pt", device="cpu")
    with PositionMapFile(world["trunc"]) as f:
        crops = np.stack([f.image(i) for i in range(2)])
    verts = pred.crop_vertices(crops)
    np.testing.assert_allclose(maps[:2], position_maps(world["layout"], verts), atol=1e-3)
    assert verts[..., 2].min(axis=1) == pytest.approx(0.0, abs=1e-3)


def test_defa_training_runs(world, tmp_path) -> None:
    result = train_baseline(_cfg(world, tmp_path, "defa", epochs=1))
    assert result.history[0]["loss_kind"] == "param+lmk" and np.isfinite(
        result.history[0]["train_loss"]
    )
    maps = predict_maps(tmp_path / "defa" / "model.pt", world["trunc"], batch_size=4)
    assert maps.shape == (4, 256, 256, 3) and np.isfinite(maps).all()


def test_unreadable_checkpoint_starts_afresh(world, tmp_path, capsys) -> None:
    """Like PRN's: a damaged checkpoint is noted in one line and the run starts from scratch."""
    cfg = _cfg(world, tmp_path, "defa", epochs=1)
    ckpt = cfg.out_dir / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not a checkpoint")
    result = train_baseline(cfg)
    assert result.resumed_from is None and len(result.history) == 1
    assert "cannot be read" in capsys.readouterr().out
    assert load_checkpoint(ckpt)["progress"]["epoch"] == 1  # replaced by a good one


def test_a_second_training_into_the_same_folder_stops_at_once(world, tmp_path) -> None:
    cfg = _cfg(world, tmp_path, "defa", epochs=1)
    with exclusive_lock(cfg.out_dir, "training"), pytest.raises(BuildLockedError) as err:
        train_baseline(cfg)
    assert str(err.value) == f"another training of {cfg.out_dir} is running (pid {os.getpid()})"
    assert not cfg.out_dir.exists()
