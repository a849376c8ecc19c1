"""face3d BFM files: the real topology pieces, and save/load of a small model."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from uvgen.formats.bfm import (
    BFM_FILE,
    BFM_INFO_FILE,
    BFM_UV_FILE,
    INNER_MOUTH_TRIANGLES_1BASED,
    MorphableModel,
    Topology,
    _index_dtype,
    load_bfm,
    load_topology,
    save_bfm,
)
from uvgen.formats.errors import DataError, DataWarning

N_REAL = 53215


@pytest.fixture(scope="module")
def topology(bfm_topology_dir: Path) -> Topology:
    return load_topology(bfm_topology_dir)


def test_real_topology_shapes(topology: Topology, bfm_topology_dir: Path) -> None:
    t = topology
    assert t.n_vertices == N_REAL
    assert t.mean_shape.shape == (3 * N_REAL, 1) and t.mean_exp.shape == (3 * N_REAL, 1)
    assert t.tri.shape == (105840, 3) and t.tri.dtype == np.int32
    assert t.tri.min() == 0 and t.tri.max() == N_REAL - 1
    assert t.tri_mouth.shape == (121, 3) and t.tri_mouth.dtype == np.int32
    np.testing.assert_array_equal(t.tri_mouth[-7:], INNER_MOUTH_TRIANGLES_1BASED - 1)
    info = scipy.io.loadmat(bfm_topology_dir / BFM_INFO_FILE)["model_info"][0, 0]
    np.testing.assert_array_equal(t.tri_mouth[:114], info["tri_mouth"].T.astype(np.int64) - 1)
    raw_tri = scipy.io.loadmat(bfm_topology_dir / "tri.mat")["tri"]
    np.testing.assert_array_equal(t.tri, raw_tri.T.astype(np.int64) - 1)
    assert t.full_triangles.shape == (105840 + 121, 3)
    assert t.kpt_ind.shape == (68,) and t.kpt_ind.dtype == np.int32
    assert t.kpt_ind.min() >= 0 and t.kpt_ind.max() < N_REAL and len(set(t.kpt_ind)) == 68
    assert t.segbin.shape == (4, N_REAL) and t.segbin.dtype == np.uint8
    assert (t.segbin.sum(axis=0) == 1).all()  # one-hot: nose, eyes, mouth, rest
    assert t.segbin[3].sum() > t.segbin[:3].sum()  # the rest of the face is the largest part
    assert t.uv.shape == (N_REAL, 2) and t.uv.dtype == np.float64
    assert t.uv.min() >= 0.0 and t.uv.max() <= 1.0


def test_key_vertex_uv_pixels_match_prnet(topology: Topology, prnet_uv_dir: Path) -> None:
    uv = topology.uv[topology.kpt_ind]
    u_px = np.round(uv[:, 0] * 255)
    v_px = np.round(255 - uv[:, 1] * 255)
    expected = np.loadtxt(prnet_uv_dir / "uv_kpt_ind.txt")
    assert expected.shape == (2, 68)
    np.testing.assert_array_equal(u_px, expected[0])  # row 0 = column
    np.testing.assert_array_equal(v_px, expected[1])  # row 1 = row


def test_topology_without_appended_mouth(bfm_topology_dir: Path) -> None:
    t = load_topology(bfm_topology_dir, append_inner_mouth=False)
    assert t.tri_mouth.shape == (114, 3)


def _linked_topology(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        os.symlink(f, dst / f.name)
    return dst


def test_topology_errors(bfm_topology_dir: Path, tmp_path: Path) -> None:
    d = _linked_topology(bfm_topology_dir, tmp_path / "t")
    (d / "u_exp.npy").unlink()
    with pytest.raises(DataError) as info:
        load_topology(d)
    assert info.value.path == d / "u_exp.npy"
    np.save(d / "u_exp.npy", np.zeros((3 * N_REAL - 3, 1), np.float32))
    with pytest.raises(DataError, match="wrong shape"):
        load_topology(d)
    (d / "u_exp.npy").unlink()
    os.symlink(bfm_topology_dir / "u_exp.npy", d / "u_exp.npy")
    (d / "tri.mat").unlink()
    (d / "tri.mat").write_bytes((bfm_topology_dir / "tri.mat").read_bytes()[:5000])
    with pytest.raises(DataError) as info:
        load_topology(d)
    assert info.value.path == d / "tri.mat"


# ----------------------------------------------------------------------------- save / load


def small_model(
    n: int = 500, m: int = 900, k: int = 20, seed: int = 0, float_dtype=np.float32
) -> MorphableModel:
    rng = np.random.default_rng(seed)
    f = lambda *shape: rng.standard_normal(shape).astype(float_dtype)  # noqa: E731
    segbin = np.zeros((4, n), np.uint8)
    segbin[rng.integers(0, 4, n), np.arange(n)] = 1
    return MorphableModel(
        shape_mu=f(3 * n, 1) * 1e4,
        shape_pc=f(3 * n, 199),
        shape_ev=np.abs(f(199, 1)),
        exp_mu=f(3 * n, 1),
        exp_pc=f(3 * n, 29),
        exp_ev=np.abs(f(29, 1)),
        tex_mu=f(3 * n, 1) + 128,
        tex_pc=f(3 * n, 199),
        tex_ev=np.abs(f(199, 1)),
        tri=rng.integers(0, n, (m, 3)).astype(np.int32),
        tri_mouth=rng.integers(0, n, (k, 3)).astype(np.int32),
        kpt_ind=rng.choice(n, 68, replace=False).astype(np.int32),
        uv=rng.random((n, 2)),
        segbin=segbin,
    )


@pytest.mark.parametrize("float_dtype", [np.float32, np.float64])
def test_save_load_round_trip_exact(tmp_path: Path, float_dtype) -> None:
    model = small_model(float_dtype=float_dtype)
    save_bfm(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [BFM_FILE, BFM_UV_FILE, BFM_INFO_FILE]
    )
    loaded = load_bfm(tmp_path)
    for field in dataclasses.fields(MorphableModel):
        a, b = getattr(model, field.name), getattr(loaded, field.name)
        assert a.shape == b.shape and a.dtype == b.dtype, field.name
        np.testing.assert_array_equal(a, b, err_msg=field.name)


def test_saved_layout_is_face3d(tmp_path: Path) -> None:
    model = small_model()
    save_bfm(model, tmp_path)
    raw = scipy.io.loadmat(tmp_path / BFM_FILE)["model"][0, 0]
    n = model.n_vertices
    shapes = {
        "shapeMU": (3 * n, 1),
        "shapePC": (3 * n, 199),
        "shapeEV": (199, 1),
        "expMU": (3 * n, 1),
        "expPC": (3 * n, 29),
        "expEV": (29, 1),
        "texMU": (3 * n, 1),
        "texPC": (3 * n, 199),
        "texEV": (199, 1),
        "tri": (3, 900),
        "tri_mouth": (3, 20),
        "kpt_ind": (1, 68),
    }
    assert {name: raw[name].shape for name in raw.dtype.names} == shapes
    assert raw["shapePC"].dtype == np.float32 and raw["tri"].dtype == np.uint16
    np.testing.assert_array_equal(raw["tri"], model.tri.T + 1)  # 1-based
    np.testing.assert_array_equal(raw["kpt_ind"][0], model.kpt_ind + 1)
    assert scipy.io.loadmat(tmp_path / BFM_UV_FILE)["UV"].shape == (n, 2)
    info = scipy.io.loadmat(tmp_path / BFM_INFO_FILE)["model_info"][0, 0]
    np.testing.assert_array_equal(info["tri_mouth"], model.tri_mouth[:-7].T + 1)
    np.testing.assert_array_equal(info["trimIndex"][:, 0], np.arange(1, n + 1))
    assert info["segbin"].shape == (4, n) and info["segbin"].dtype == np.uint8
    np.testing.assert_array_equal(info["uv_coords"], model.uv)
    assert _index_dtype(65535) == np.uint16 and _index_dtype(65536) == np.int32


def _rewrite(path: Path, struct: str, change) -> None:
    mat = scipy.io.loadmat(path)
    record = mat[struct][0, 0]
    fields = {name: record[name] for name in record.dtype.names}
    change(fields)
    scipy.io.savemat(path, {struct: fields})


@pytest.mark.parametrize(
    "filename, struct, change, field",
    [
        (BFM_FILE, "model", lambda f: f.pop("shapePC"), "model.shapePC"),
        (BFM_FILE, "model", lambda f: f.__setitem__("expPC", f["expPC"][:, :28]), "model.expPC"),
        (
            BFM_FILE,
            "model",
            lambda f: f.__setitem__("kpt_ind", f["kpt_ind"] * 0 + 501),
            "model.kpt_ind",
        ),
        (BFM_FILE, "model", lambda f: f.__setitem__("tri", f["tri"] * 0), "model.tri"),
        (
            BFM_INFO_FILE,
            "model_info",
            lambda f: f.__setitem__("segbin", f["segbin"] * 0),
            "model_info.segbin",
        ),
        (
            BFM_INFO_FILE,
            "model_info",
            lambda f: f.__setitem__("kpt_ind", f["kpt_ind"][:, ::-1]),
            "model_info.kpt_ind",
        ),
        (
            BFM_INFO_FILE,
            "model_info",
            lambda f: f.__setitem__("tri_mouth", f["tri_mouth"][:, 1:]),
            "model_info.tri_mouth",
        ),
    ],
)
def test_load_bfm_bad_fields(
    tmp_path: Path, filename: str, struct: str, change, field: str
) -> None:
    save_bfm(small_model(), tmp_path)
    _rewrite(tmp_path / filename, struct, change)
    with pytest.raises(DataError) as info:
        load_bfm(tmp_path)
    assert info.value.path == tmp_path / filename and info.value.field == field
    assert str(tmp_path / filename) in str(info.value) and field in str(info.value)


@pytest.mark.parametrize(
    "filename, struct, change, field",
    [
        (BFM_FILE, "model", lambda f: f.__setitem__("texMU", f["texMU"] * np.nan), "model.texMU"),
        (BFM_FILE, "model", lambda f: f.pop("texPC"), "model.texPC"),
        (
            BFM_FILE,
            "model",
            lambda f: f.__setitem__("shapeEV", f["shapeEV"][:100]),
            "model.shapeEV",
        ),
        (
            BFM_INFO_FILE,
            "model_info",
            lambda f: f.__setitem__("uv_coords", f["uv_coords"] * 0.5),
            "model_info.uv_coords",
        ),
    ],
)
def test_load_bfm_unused_field_variants_warn(
    tmp_path: Path, filename: str, struct: str, change, field: str
) -> None:
    """Fields the UV build does not use: a warning naming file and field; the model loads."""
    model = small_model()
    save_bfm(model, tmp_path)
    _rewrite(tmp_path / filename, struct, change)
    with pytest.warns(DataWarning) as record:
        loaded = load_bfm(tmp_path)
    (warning,) = [w.message for w in record if issubclass(w.category, DataWarning)]
    assert warning.path == tmp_path / filename and warning.field == field
    np.testing.assert_array_equal(loaded.shape_pc, model.shape_pc)
    np.testing.assert_array_equal(loaded.uv, model.uv)


def test_load_bfm_missing_files(tmp_path: Path) -> None:
    save_bfm(small_model(), tmp_path)
    scipy.io.savemat(tmp_path / BFM_UV_FILE, {"UV": np.zeros((499, 2))})
    with pytest.raises(DataError, match="wrong shape") as info:
        load_bfm(tmp_path)
    assert info.value.field == "UV"
    (tmp_path / BFM_FILE).unlink()
    with pytest.raises(DataError, match="missing file") as info:
        load_bfm(tmp_path)
    assert info.value.path == tmp_path / BFM_FILE


def test_save_bfm_rejects_inconsistent_model(tmp_path: Path) -> None:
    model = small_model()
    with pytest.raises(ValueError, match="kpt_ind"):
        save_bfm(dataclasses.replace(model, kpt_ind=model.kpt_ind + 500), tmp_path)
    with pytest.raises(ValueError, match="tri_mouth"):
        save_bfm(dataclasses.replace(model, tri_mouth=model.tri_mouth[:5]), tmp_path)
    assert list(tmp_path.iterdir()) == []
