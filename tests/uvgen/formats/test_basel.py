"""Basel + 3DDFA + 3DMMasSTN files -> face3d's BFM files (uvgen.formats.basel,
pipeline.convert_bfm).

The real Basel files are licensed, so the tests write small files in their layouts: a "full"
model of N_FULL vertices, a trimIndex (in shuffled order) keeping N_TRIM of them, components of
the real width (199 / 29). The kept vertices' UV coordinates are random points plus the unit
square's corners, triangulated (Delaunay) to make ``tri``; their mean shape is a linear function
of UV, so the position map of the converted model is known at every pixel. The raw UV of
face3d's three repaired vertices is wrong on purpose; the right UV is their neighbours' mean.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from scipy.spatial import Delaunay

from pipeline.convert_bfm import main as convert_main
from uvgen.formats.basel import (
    MIN_TRIMMED_VERTICES,
    UV_FIXES_1BASED,
    convert_basel,
    fix_uv,
    interleaved_rows,
    take_rows,
    write_face3d_bfm,
)
from uvgen.formats.bfm import (
    BFM_FILE,
    BFM_INFO_FILE,
    BFM_UV_FILE,
    INNER_MOUTH_TRIANGLES_1BASED,
    MorphableModel,
    load_bfm,
)
from uvgen.formats.errors import DataError
from uvgen.groundtruth import UVLayout, build_uv_layout
from uvgen.masks import uv_rasterization

N_FULL = 11_000
N_TRIM = 10_950  # >= 10,916, the largest index face3d's repair uses
N_MOUTH = 20
Z_OF_U, Z_OF_V, EXP_Z_OF_V = 40.0, 10.0, 5.0  # mean shape z = 40 u + 10 v, expression adds 5 v
KEYS = ("basel", "info", "expression", "tri_mouth", "uv")  # the order of convert_basel's arguments


@dataclasses.dataclass
class Inputs:
    """Paths of the five input files and the arrays they were made from (0-based)."""

    basel: Path
    info: Path
    expression: Path
    tri_mouth: Path
    uv: Path
    trim: np.ndarray  # (N_TRIM,) full vertex of each kept vertex
    uv_true: np.ndarray  # (N_TRIM, 2) the kept vertices' UV after face3d's repair
    raw: dict  # the variables written, by file stem

    def args(self) -> tuple[Path, ...]:
        return self.basel, self.info, self.expression, self.tri_mouth, self.uv

    def command_line(self, out: Path, **replaced: Path) -> list[str]:
        """pipeline.convert_bfm's arguments: these files (or ``replaced`` ones, by key) -> out."""
        files = {**{key: getattr(self, key) for key in KEYS}, **replaced, "out": out}
        return [
            arg for key, path in files.items() for arg in (f"--{key.replace('_', '-')}", str(path))
        ]


def _one_hot(rng: np.random.Generator, rows: int) -> np.ndarray:
    out = np.zeros((rows, 4))
    out[np.arange(rows), rng.integers(0, 4, rows)] = 1.0
    return out


def write_inputs(d: Path, seed: int = 0) -> Inputs:
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    trim = rng.choice(N_FULL, N_TRIM, replace=False)

    # Kept vertices: UV in the unit square (corners included), repaired vertices at their
    # neighbours' mean; tri = their Delaunay triangulation.
    uv_true = rng.uniform(0.01, 0.99, (N_TRIM, 2))
    uv_true[:4] = [[0, 0], [1, 0], [0, 1], [1, 1]]
    for vertex, neighbours in UV_FIXES_1BASED:
        uv_true[vertex - 1] = uv_true[np.asarray(neighbours) - 1].mean(axis=0)
    tri = Delaunay(uv_true).simplices
    uv_full = rng.uniform(0, 1, (N_FULL, 2))
    uv_full[trim] = uv_true
    for k, (vertex, _) in enumerate(UV_FIXES_1BASED):  # STN's UV is wrong there
        uv_full[trim[vertex - 1]] = [0.97 - 0.4 * k, 0.03 + 0.4 * k]

    # Basel model: random everywhere, the kept vertices' mean shape linear in UV.
    u, v = uv_true[:, 0], uv_true[:, 1]
    shape_mu = (rng.standard_normal((3 * N_FULL, 1)) * 1e4).astype(np.float32)
    shape_mu[interleaved_rows(trim), 0] = np.stack(
        [255 * u, 255 * (1 - v), Z_OF_U * u + Z_OF_V * v], 1
    ).ravel()
    basel = {
        "shapeMU": shape_mu,
        "shapePC": rng.standard_normal((3 * N_FULL, 199), dtype=np.float32),
        "shapeEV": rng.uniform(1, 2, (199, 1)).astype(np.float32),
        "texMU": rng.uniform(0, 255, (3 * N_FULL, 1)).astype(np.float32),
        "texPC": rng.standard_normal((3 * N_FULL, 199), dtype=np.float32),
        "texEV": rng.uniform(1, 2, (199, 1)).astype(np.float32),
        "tl": rng.integers(1, N_FULL + 1, (200, 3)).astype(np.float64),
        "segbin": _one_hot(rng, N_FULL),
    }
    info = {
        "trimIndex": (trim + 1).reshape(-1, 1).astype(np.uint16),
        "keypoints": rng.choice(N_TRIM, 68, replace=False).reshape(1, 68) + 1.0,
        "tri": (tri.T + 1).astype(np.float64),  # whole-number doubles, as MATLAB often stores them
        "segbin": _one_hot(rng, N_FULL),
        "segbin_tri": _one_hot(rng, len(tri)),
        "symlist": rng.integers(1, N_TRIM + 1, (2, 300)).astype(np.float64),
        "symlist_tri": rng.integers(1, len(tri) + 1, (2, 500)).astype(np.float64),
    }
    mu_exp = np.zeros((3 * N_TRIM, 1), np.float32)
    mu_exp[2::3, 0] = EXP_Z_OF_V * v
    expression = {
        "mu_exp": mu_exp,
        "w_exp": rng.standard_normal((3 * N_TRIM, 29), dtype=np.float32),
        "sigma_exp": rng.uniform(1, 2, (29, 1)),
    }
    tri_mouth = {"tri_mouth": rng.integers(1, N_TRIM + 1, (3, N_MOUTH)).astype(np.float64)}
    stn = {"UV": uv_full}
    raw = {
        "basel": basel,
        "info": info,
        "expression": expression,
        "tri_mouth": tri_mouth,
        "uv": stn,
    }
    names = {
        "basel": "01_MorphableModel.mat",
        "info": "model_info.mat",
        "expression": "Model_Expression.mat",
        "tri_mouth": "Model_tri_mouth.mat",
        "uv": "BFM_UV.mat",
    }
    paths = {}
    for key, name in names.items():
        paths[key] = d / name
        scipy.io.savemat(paths[key], raw[key])
    return Inputs(trim=trim, uv_true=uv_true, raw=raw, **paths)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Inputs:
    return write_inputs(tmp_path_factory.mktemp("basel_inputs"))


@pytest.fixture(scope="module")
def converted(inputs: Inputs) -> MorphableModel:
    return convert_basel(*inputs.args())


@pytest.fixture(scope="module")
def out_dir(
    inputs: Inputs, converted: MorphableModel, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    d = tmp_path_factory.mktemp("bfm_out") / "BFM"
    write_face3d_bfm(converted, d, model_info_mat=inputs.info)
    return d


# ----------------------------------------------------------------------------- small helpers


def test_interleaved_rows_and_take_rows() -> None:
    np.testing.assert_array_equal(interleaved_rows(np.array([2, 0])), [6, 7, 8, 0, 1, 2])
    a = np.asfortranarray(np.arange(24.0).reshape(8, 3))
    rows = np.array([5, 1, 1, 7])
    got = take_rows(a, rows)
    np.testing.assert_array_equal(got, a[rows])
    assert got.flags.f_contiguous
    np.testing.assert_array_equal(take_rows(np.ascontiguousarray(a), rows), a[rows])


def test_fix_uv_uses_trimmed_one_based_neighbours() -> None:
    uv = np.random.default_rng(1).random((MIN_TRIMMED_VERTICES, 2))
    fixed = fix_uv(uv)
    np.testing.assert_array_equal(fixed[10031], (uv[10032] + uv[10157]) / 2)
    np.testing.assert_allclose(fixed[10154], (uv[10533] + uv[10156] + uv[10660]) / 3, rtol=1e-15)
    np.testing.assert_array_equal(fixed[10279], (uv[10915] + uv[10285]) / 2)
    others = np.setdiff1d(np.arange(len(uv)), [10031, 10154, 10279])
    np.testing.assert_array_equal(fixed[others], uv[others])
    assert not np.shares_memory(fixed, uv)


def test_fix_uv_matches_real_face3d_uv(bfm_topology_dir: Path) -> None:
    """face3d's real BFM_UV.mat already holds the repaired values: repairing again changes
    nothing."""
    uv = scipy.io.loadmat(bfm_topology_dir / BFM_UV_FILE)["UV"]
    np.testing.assert_array_equal(fix_uv(uv), uv)


# ----------------------------------------------------------------------------- conversion


def test_shape_and_texture_are_the_trimmed_rows(inputs: Inputs, converted: MorphableModel) -> None:
    m, b = converted, inputs.raw["basel"]
    assert m.n_vertices == N_TRIM
    rows = np.stack([3 * inputs.trim, 3 * inputs.trim + 1, 3 * inputs.trim + 2], axis=1).ravel()
    for attr, name in [
        ("shape_mu", "shapeMU"),
        ("shape_pc", "shapePC"),
        ("tex_mu", "texMU"),
        ("tex_pc", "texPC"),
    ]:
        got = getattr(m, attr)
        assert got.dtype == np.float32, attr  # stored precision kept, no float64 copy
        np.testing.assert_array_equal(got, b[name][rows], err_msg=attr)
    np.testing.assert_array_equal(m.shape_ev, b["shapeEV"])
    np.testing.assert_array_equal(m.tex_ev, b["texEV"])
    e = inputs.raw["expression"]
    np.testing.assert_array_equal(m.exp_mu, e["mu_exp"])
    np.testing.assert_array_equal(m.exp_pc, e["w_exp"])
    np.testing.assert_array_equal(m.exp_ev, e["sigma_exp"])


def test_topology_fields(inputs: Inputs, converted: MorphableModel) -> None:
    m, info = converted, inputs.raw["info"]
    np.testing.assert_array_equal(m.tri, info["tri"].T - 1)
    np.testing.assert_array_equal(m.kpt_ind, info["keypoints"][0] - 1)  # trimmed vertex indices
    mouth = inputs.raw["tri_mouth"]["tri_mouth"].T - 1
    assert m.tri_mouth.shape == (N_MOUTH + 7, 3)
    np.testing.assert_array_equal(m.tri_mouth[:N_MOUTH], mouth)
    np.testing.assert_array_equal(m.tri_mouth[N_MOUTH:], INNER_MOUTH_TRIANGLES_1BASED - 1)
    # segbin: model_info's (not the Basel file's), rows of the kept vertices, transposed
    np.testing.assert_array_equal(m.segbin, info["segbin"][inputs.trim].T)
    assert m.segbin.dtype == np.uint8


def test_uv_trimmed_and_repaired(inputs: Inputs, converted: MorphableModel) -> None:
    raw_uv = inputs.raw["uv"]["UV"][inputs.trim]
    bad = [vertex - 1 for vertex, _ in UV_FIXES_1BASED]
    others = np.setdiff1d(np.arange(N_TRIM), bad)
    np.testing.assert_array_equal(converted.uv[others], raw_uv[others])
    for vertex, neighbours in UV_FIXES_1BASED:
        want = raw_uv[np.asarray(neighbours) - 1].mean(
            axis=0
        )  # neighbours in the trimmed numbering
        np.testing.assert_array_equal(converted.uv[vertex - 1], want)
        assert not np.allclose(raw_uv[vertex - 1], want)  # the raw value was wrong
    np.testing.assert_allclose(converted.uv, inputs.uv_true, rtol=0, atol=1e-15)


def test_files_on_disk_are_face3d_layout(
    inputs: Inputs, converted: MorphableModel, out_dir: Path
) -> None:
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [BFM_FILE, BFM_INFO_FILE, BFM_UV_FILE]
    )
    model = scipy.io.loadmat(out_dir / BFM_FILE)["model"][0, 0]
    n = N_TRIM
    assert model["shapePC"].shape == (3 * n, 199) and model["expPC"].shape == (3 * n, 29)
    assert model["tri"].shape == (3, len(converted.tri)) and model["kpt_ind"].shape == (1, 68)
    np.testing.assert_array_equal(model["tri"], inputs.raw["info"]["tri"])  # 1-based, as given
    np.testing.assert_array_equal(model["kpt_ind"], inputs.raw["info"]["keypoints"])
    np.testing.assert_array_equal(model["tri_mouth"][:, -7:], INNER_MOUTH_TRIANGLES_1BASED.T)
    assert model["tri"].min() == 1 and model["tri"].max() == n
    np.testing.assert_array_equal(scipy.io.loadmat(out_dir / BFM_UV_FILE)["UV"], converted.uv)

    info = scipy.io.loadmat(out_dir / BFM_INFO_FILE)["model_info"]
    names = info.dtype.names
    # face3d's field order, written out independently of uvgen.formats.basel's constant.
    assert names == ("kpt_ind", "trimIndex", "symlist", "symlist_tri") + (
        "segbin", "segbin_tri", "tri_mouth", "uv_coords"
    )
    info = info[0, 0]
    raw = inputs.raw["info"]
    np.testing.assert_array_equal(
        info["trimIndex"], raw["trimIndex"]
    )  # the real trimIndex, 1-based
    np.testing.assert_array_equal(info["symlist"], raw["symlist"])
    np.testing.assert_array_equal(info["symlist_tri"], raw["symlist_tri"])
    np.testing.assert_array_equal(info["segbin_tri"], raw["segbin_tri"].T)
    np.testing.assert_array_equal(info["segbin"], converted.segbin)
    np.testing.assert_array_equal(
        info["tri_mouth"], model["tri_mouth"]
    )  # face3d stores one list twice
    np.testing.assert_array_equal(info["kpt_ind"], model["kpt_ind"])
    np.testing.assert_array_equal(info["uv_coords"], converted.uv)


def test_output_loads_as_bfm_and_generates_maps(converted: MorphableModel, out_dir: Path) -> None:
    loaded = load_bfm(out_dir)
    for field in dataclasses.fields(MorphableModel):
        a, b = getattr(converted, field.name), getattr(loaded, field.name)
        np.testing.assert_array_equal(np.asarray(a), b, err_msg=field.name)

    # Exact arithmetic here: the vertices are linear in UV, so exact barycentric weights give the
    # plane exactly. (face3d's float32 weights, the build's default, lose up to ~0.1 px on this
    # synthetic layout's thin triangles; tests/uvgen/test_groundtruth.py holds that path to face3d.)
    layout = UVLayout(size=256, raster=uv_rasterization(loaded, 256, precision="float64"))
    assert build_uv_layout(loaded).raster.mask.all()
    vertices = loaded.vertices(np.zeros(199), np.zeros(29))  # mean shape + mean expression
    posmap = layout.position_map(vertices)
    assert posmap.shape == (256, 256, 3) and np.isfinite(posmap).all()
    assert layout.raster.mask.all()  # the UV square is fully triangulated: every pixel covered
    # The vertices are linear in UV, so the map is known at every pixel (x right, y down).
    y, x = np.mgrid[0:256, 0:256].astype(np.float64)
    u, v = x / 255, 1 - y / 255
    want = np.stack([x, y, Z_OF_U * u + (Z_OF_V + EXP_Z_OF_V) * v], axis=-1)
    np.testing.assert_allclose(posmap, want, atol=2e-3)


# ---------------------------------------------------------------------------- fallbacks and layouts


def _variant(inputs: Inputs, d: Path, key: str, **changes) -> tuple[Path, ...]:
    """The inputs' paths with file ``key`` rewritten with ``changes`` (None deletes a variable)."""
    d.mkdir(exist_ok=True)
    variables = {k: v for k, v in {**inputs.raw[key], **changes}.items() if v is not None}
    path = d / getattr(inputs, key).name
    scipy.io.savemat(path, variables)
    return tuple(path if k == key else getattr(inputs, k) for k in KEYS)


def test_segbin_falls_back_to_basel(inputs: Inputs, tmp_path: Path) -> None:
    args = _variant(
        inputs, tmp_path, "info", segbin=None, segbin_tri=None, symlist=None, symlist_tri=None
    )
    model = convert_basel(*args)
    np.testing.assert_array_equal(model.segbin, inputs.raw["basel"]["segbin"][inputs.trim].T)
    write_face3d_bfm(model, tmp_path / "out", model_info_mat=args[1])
    names = scipy.io.loadmat(tmp_path / "out" / BFM_INFO_FILE)["model_info"].dtype.names
    assert "symlist" not in names and "trimIndex" in names
    load_bfm(tmp_path / "out")


# ----------------------------------------------------------------------------- bad input


def _check_error(exc: pytest.ExceptionInfo, path: Path, field: str | None) -> None:
    assert exc.value.path == path
    assert exc.value.field == field
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("key", KEYS)
def test_missing_or_corrupt_file(inputs: Inputs, tmp_path: Path, key: str) -> None:
    args = list(inputs.args())
    index = KEYS.index(key)
    args[index] = tmp_path / "absent.mat"
    with pytest.raises(DataError, match="missing file") as exc:
        convert_basel(*args)
    _check_error(exc, args[index], None)
    args[index] = tmp_path / "corrupt.mat"
    args[index].write_bytes(b"MATLAB 5.0 MAT-file" + b"\x00" * 100 + b"garbage")
    with pytest.raises(DataError) as exc:
        convert_basel(*args)
    _check_error(exc, args[index], None)


N3 = 3 * N_TRIM
SMALL_BASEL = {  # a tiny Basel file (N = 20): its own checks come before the cross-checks
    "shapeMU": np.zeros((60, 1), np.float32),
    "shapePC": np.zeros((60, 199), np.float32),
    "shapeEV": np.ones((199, 1), np.float32),
    "texMU": np.zeros((60, 1), np.float32),
    "texPC": np.zeros((60, 199), np.float32),
    "texEV": np.ones((199, 1), np.float32),
}


@pytest.mark.parametrize(
    ("key", "field", "changes", "match"),
    [
        ("info", "trimIndex", {"trimIndex": None}, "missing field"),
        ("info", "trimIndex", {"trimIndex": np.arange(1, 101).reshape(-1, 1)}, "at least 10916"),
        ("info", "trimIndex", {"trimIndex": np.ones((N_TRIM, 1))}, "repeated"),
        (
            "info",
            "trimIndex",
            {"trimIndex": np.arange(1, N_TRIM + 1).reshape(1, -1)},
            "wrong shape",
        ),
        (
            "info",
            "trimIndex",
            {"trimIndex": np.arange(N_FULL - N_TRIM + 2, N_FULL + 2).reshape(-1, 1)},
            "beyond the 11000 vertices",
        ),
        ("info", "keypoints", {"keypoints": None}, "missing field"),
        ("info", "keypoints", {"keypoints": np.arange(1, 68).reshape(1, 67)}, "wrong shape"),
        ("info", "keypoints", {"keypoints": np.full((1, 68), N_TRIM + 1.0)}, "out of range"),
        ("info", "tri", {"tri": None}, "missing field"),
        ("info", "tri", {"tri": np.ones((4, 10))}, "wrong shape"),
        ("info", "tri", {"tri": np.full((3, 10), 1.5)}, "whole numbers"),
        ("info", "segbin", {"segbin": np.zeros((N_FULL, 4))}, "not one-hot"),
        (
            "info",
            "segbin",
            {"segbin": np.eye(4)[np.zeros(N_FULL - 1, int)]},
            "rows, expected one per Basel",
        ),
        ("info", "symlist", {"symlist": np.ones((3, 5))}, "wrong shape"),
        ("expression", "mu_exp", {"mu_exp": None}, "missing field"),
        ("expression", "w_exp", {"w_exp": np.zeros((N3 - 3, 29))}, "wrong shape"),
        ("expression", "w_exp", {"w_exp": np.full((N3, 29), np.nan)}, "non-finite"),
        ("expression", "sigma_exp", {"sigma_exp": np.ones((40, 1))}, "wrong shape"),
        ("tri_mouth", "tri_mouth", {"tri_mouth": None}, "missing field"),
        ("tri_mouth", "tri_mouth", {"tri_mouth": np.zeros((3, 4))}, "out of range"),
        ("uv", "UV", {"UV": None}, "missing field"),
        ("uv", "UV", {"UV": np.zeros((N_FULL, 3))}, "wrong shape"),
        ("uv", "UV", {"UV": np.zeros((N_FULL - 1, 2))}, "rows, expected one per Basel"),
        ("uv", "UV", {"UV": np.full((N_FULL, 2), 1.5)}, "outside"),
        ("basel", "shapePC", {**SMALL_BASEL, "shapePC": None}, "missing field"),
        (
            "basel",
            "shapePC",
            {**SMALL_BASEL, "shapePC": np.zeros((60, 40), np.float32)},
            "wrong shape",
        ),
        ("basel", "texMU", {**SMALL_BASEL, "texMU": np.zeros((63, 1), np.float32)}, "wrong shape"),
        (
            "basel",
            "shapeMU",
            {**SMALL_BASEL, "shapeMU": np.zeros((61, 1), np.float32)},
            "multiple of 3",
        ),
        ("basel", "texEV", {**SMALL_BASEL, "texEV": None}, "missing field"),
    ],
)
def test_bad_field(
    inputs: Inputs, tmp_path: Path, key: str, field: str, changes: dict, match: str
) -> None:
    if key == "basel":  # small file: replace every variable
        changes = {**{k: None for k in inputs.raw["basel"]}, **changes}
    args = _variant(inputs, tmp_path, key, **changes)
    with pytest.raises(DataError, match=match) as exc:
        convert_basel(*args)
    _check_error(exc, args[KEYS.index(key)], field)


def test_segbin_missing_everywhere(inputs: Inputs, tmp_path: Path) -> None:
    info = _variant(inputs, tmp_path / "i", "info", segbin=None)[1]
    basel = _variant(inputs, tmp_path / "b", "basel", segbin=None)[0]
    with pytest.raises(DataError, match="no segbin") as exc:
        convert_basel(basel, info, inputs.expression, inputs.tri_mouth, inputs.uv)
    _check_error(exc, info, "segbin")


# ----------------------------------------------------------------------------- command line


def test_command_line_end_to_end(
    inputs: Inputs, converted: MorphableModel, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "cli" / "BFM"
    convert_main(inputs.command_line(out))
    assert f"{N_TRIM} vertices" in capsys.readouterr().out
    loaded = load_bfm(out)
    np.testing.assert_array_equal(loaded.shape_pc, converted.shape_pc)
    np.testing.assert_array_equal(loaded.uv, converted.uv)
    np.testing.assert_array_equal(loaded.tri_mouth, converted.tri_mouth)


def test_command_line_reports_bad_input(inputs: Inputs, tmp_path: Path) -> None:
    absent = tmp_path / "Model_Expression.mat"
    with pytest.raises(SystemExit) as exc:
        convert_main(inputs.command_line(tmp_path / "o", expression=absent))
    assert str(absent) in str(exc.value.code) and "missing file" in str(exc.value.code)
    assert not (tmp_path / "o").exists()
