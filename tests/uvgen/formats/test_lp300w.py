"""300W-LP reader/writer on the real sample, plus bad-input handling and scanning."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from tests.uvgen.formats.data_warnings import read_with_one_warning
from uvgen.formats import lp300w
from uvgen.formats.errors import DataError
from uvgen.formats.lp300w import (
    Fit300WLP,
    list_300wlp_samples,
    read_300wlp_mat,
    read_all,
    scan_300wlp,
    write_300wlp_mat,
    write_300wlp_sample,
)
from uvgen.formats.matfile import read_jpeg

NAME = "IBUG_image_008_1_0"


@pytest.fixture(scope="module")
def real_fit(lp300w_fixture_dir: Path) -> Fit300WLP:
    return read_300wlp_mat(lp300w_fixture_dir / f"{NAME}.mat")


def _raw(lp300w_fixture_dir: Path) -> dict:
    mat = scipy.io.loadmat(lp300w_fixture_dir / f"{NAME}.mat")
    return {k: v for k, v in mat.items() if not k.startswith("__")}


def test_real_sample_shapes_and_values(real_fit: Fit300WLP, lp300w_fixture_dir: Path) -> None:
    fit = real_fit
    assert fit.name == NAME
    assert (
        fit.folder == lp300w_fixture_dir.name
        and fit.sample_id == f"{lp300w_fixture_dir.name}/{NAME}"
    )
    assert fit.image_path == lp300w_fixture_dir / f"{NAME}.jpg"
    expected = {
        "pose_para": (7,),
        "shape_para": (199,),
        "exp_para": (29,),
        "pt2d": (2, 68),
        "roi": (4,),
        "tex_para": (199,),
        "color_para": (7,),
        "illum_para": (10,),
    }
    for attr, shape in expected.items():
        value = getattr(fit, attr)
        assert value.shape == shape, attr
        assert value.dtype == (np.int64 if attr == "roi" else np.float64), attr
        assert not value.flags.writeable, attr
    # Values read from the file (Pose_Para is float32 on disk).
    assert fit.pitch == pytest.approx(-0.13235892, abs=1e-7)
    assert fit.yaw == pytest.approx(-0.76809585, abs=1e-7)
    assert fit.roll == pytest.approx(0.05598382, abs=1e-7)
    assert fit.yaw_deg == pytest.approx(-44.00865, abs=1e-4)
    np.testing.assert_allclose(fit.pose_degrees, np.degrees(fit.pose_para[:3]))
    np.testing.assert_allclose(fit.translation, [183.57535, 189.5233, -81.74758], rtol=1e-6)
    assert fit.scale == pytest.approx(1.3001428e-03, rel=1e-6)
    np.testing.assert_array_equal(fit.roi, [53, -166, 638, 419])
    np.testing.assert_allclose(fit.pt2d[:, 0], [136.7025093, 240.11450708])
    np.testing.assert_allclose(fit.illum_para[-1], 20.0)
    raw = _raw(lp300w_fixture_dir)
    np.testing.assert_array_equal(fit.shape_para, raw["Shape_Para"][:, 0])
    np.testing.assert_array_equal(fit.exp_para, raw["Exp_Para"][:, 0])
    np.testing.assert_array_equal(fit.pose_para, raw["Pose_Para"][0].astype(np.float64))


def test_real_image(real_fit: Fit300WLP) -> None:
    image = real_fit.load_image()
    assert image.shape == (450, 450, 3) and image.dtype == np.uint8


def test_write_read_round_trip_matches_real_layout(
    real_fit: Fit300WLP, tmp_path: Path, lp300w_fixture_dir: Path
) -> None:
    image = real_fit.load_image()
    written = write_300wlp_sample(tmp_path, NAME, image, **real_fit.params())
    assert (
        written.mat_path == tmp_path / f"{NAME}.mat"
        and written.image_path == tmp_path / f"{NAME}.jpg"
    )
    for attr, value in real_fit.params().items():
        np.testing.assert_array_equal(getattr(written, attr), value, err_msg=attr)
        assert getattr(written, attr).dtype == value.dtype
    # Same variables, stored shapes, dtypes and values as the real file, as scipy sees them.
    real, ours = _raw(lp300w_fixture_dir), scipy.io.loadmat(written.mat_path)
    ours = {k: v for k, v in ours.items() if not k.startswith("__")}
    assert sorted(ours) == sorted(real)
    for key in real:
        assert ours[key].shape == real[key].shape, key
        assert ours[key].dtype == real[key].dtype, key
        np.testing.assert_array_equal(ours[key], real[key], err_msg=key)
    decoded = written.load_image()
    assert decoded.shape == image.shape
    assert np.abs(decoded.astype(int) - image.astype(int)).mean() < 3.0  # JPEG quality 95
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{NAME}.jpg", f"{NAME}.mat"]


def test_writer_defaults_and_float32_rounding(tmp_path: Path) -> None:
    pose = np.array([0.1, -0.3, 0.05, 200.0, 210.0, -50.0, 1.234567891e-3])
    path = tmp_path / "x.mat"
    (tmp_path / "x.jpg").write_bytes(b"")  # existence is all the reader checks by default
    write_300wlp_mat(
        path,
        pose_para=pose,
        shape_para=np.ones((199, 1)),
        exp_para=np.zeros(29),
        pt2d=np.zeros((2, 68)),
        roi=[1, -2, 3, 4],
    )
    fit = read_300wlp_mat(path)
    np.testing.assert_array_equal(fit.pose_para, pose.astype(np.float32).astype(np.float64))
    np.testing.assert_array_equal(fit.tex_para, np.zeros(199))
    np.testing.assert_array_equal(fit.color_para, lp300w.DEFAULT_COLOR_PARA)
    np.testing.assert_array_equal(fit.illum_para, lp300w.DEFAULT_ILLUM_PARA)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(shape_para=np.ones(198)), "shape_para"),
        (dict(pt2d=np.zeros((68, 2))), "pt2d"),
        (dict(exp_para=np.full(29, np.nan)), "non-finite"),
        (dict(roi=[0, 0, 40000, 1]), "roi"),
        (dict(roi=[0.5, 0, 1, 1]), "roi"),
    ],
)
def test_writer_rejects_bad_values(tmp_path: Path, change: dict, message: str) -> None:
    params = dict(
        pose_para=np.zeros(7),
        shape_para=np.zeros(199),
        exp_para=np.zeros(29),
        pt2d=np.zeros((2, 68)),
        roi=[0, 0, 1, 1],
    )
    params.update(change)
    with pytest.raises(ValueError, match=message):
        write_300wlp_mat(tmp_path / "x.mat", **params)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_keeps_old_file_and_leaves_no_partial(
    real_fit: Fit300WLP, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "s.mat"
    write_300wlp_mat(target, **real_fit.params())
    before = target.read_bytes()

    def broken_savemat(handle, *args, **kwargs):
        handle.write(b"MATLAB 5.0 MAT-file, half")
        raise KeyboardInterrupt  # interrupted half-way

    monkeypatch.setattr("uvgen.formats.matfile.scipy.io.savemat", broken_savemat)
    with pytest.raises(KeyboardInterrupt):
        write_300wlp_mat(target, **real_fit.params())
    assert target.read_bytes() == before
    with pytest.raises(KeyboardInterrupt):
        write_300wlp_mat(tmp_path / "new.mat", **real_fit.params())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mat"]


# ----------------------------------------------------------------------------- bad input


def _bad_sample(
    root: Path, name: str, fixture_dir: Path, mutate=None, jpg: bytes | None = None
) -> Path:
    """A copy of the real sample under root/IBUG/ with its .mat dict changed by ``mutate``."""
    folder = root / "IBUG"
    folder.mkdir(parents=True, exist_ok=True)
    mat = _raw(fixture_dir)
    if mutate is not None:
        mutate(mat)
    scipy.io.savemat(folder / f"{name}.mat", mat)
    if jpg is None:
        shutil.copyfile(fixture_dir / f"{NAME}.jpg", folder / f"{name}.jpg")
    elif jpg != b"<none>":
        (folder / f"{name}.jpg").write_bytes(jpg)
    return folder / f"{name}.mat"


def _set(key, value):
    return lambda mat: mat.__setitem__(key, value)


def _nan_shape(mat: dict) -> None:
    mat["Shape_Para"] = mat["Shape_Para"].copy()
    mat["Shape_Para"][17, 0] = np.nan


BAD_MATS = {
    "missing_field": (lambda mat: mat.pop("Exp_Para"), "Exp_Para", "missing field"),
    "wrong_shape": (_set("Shape_Para", np.zeros((1, 199))), "Shape_Para", "wrong shape"),
    "wrong_pose_shape": (
        _set("Pose_Para", np.zeros((7, 1), np.float32)),
        "Pose_Para",
        "wrong shape",
    ),
    "nan_shape": (_nan_shape, "Shape_Para", "non-finite"),
}

# Fields the build does not use (pt2d, roi, appearance): a warning naming file and field, sample
# kept.
UNUSED_VARIANTS = {
    "inf_pt2d": (_set("pt2d", np.full((2, 68), np.inf)), "pt2d", "non-finite", (2, 68)),
    "short_pt2d": (_set("pt2d", np.zeros((2, 23))), "pt2d", "wrong shape", (2, 23)),
    "no_pt2d": (lambda mat: mat.pop("pt2d"), "pt2d", "missing field", None),
    "text_roi": (_set("roi", "abcd"), "roi", "", None),
    "no_color": (lambda mat: mat.pop("Color_Para"), "Color_Para", "missing field", None),
}


@pytest.mark.parametrize("case", sorted(UNUSED_VARIANTS))
def test_unused_field_variants_warn(case: str, tmp_path: Path, lp300w_fixture_dir: Path) -> None:
    mutate, field, reason, shape = UNUSED_VARIANTS[case]
    path = _bad_sample(tmp_path, case, lp300w_fixture_dir, mutate)
    fit, warning = read_with_one_warning(read_300wlp_mat, path, field, reason)
    assert str(path) in str(warning)
    value = getattr(fit, {"Color_Para": "color_para"}.get(field, field))
    assert (value is None) if shape is None else (value.shape == shape)
    np.testing.assert_array_equal(fit.shape_para, _raw(lp300w_fixture_dir)["Shape_Para"].ravel())


@pytest.mark.parametrize("case", sorted(BAD_MATS))
def test_bad_field_names_file_and_field(
    case: str, tmp_path: Path, lp300w_fixture_dir: Path
) -> None:
    mutate, field, reason = BAD_MATS[case]
    path = _bad_sample(tmp_path, case, lp300w_fixture_dir, mutate)
    with pytest.raises(DataError) as info:
        read_300wlp_mat(path)
    error = info.value
    assert error.path == path and error.field == field
    assert str(path) in str(error) and f"'{field}'" in str(error)
    if reason:
        assert reason in error.reason


def test_missing_and_corrupt_mat(tmp_path: Path, lp300w_fixture_dir: Path) -> None:
    missing = tmp_path / "IBUG" / "nothing.mat"
    with pytest.raises(DataError, match="missing file") as info:
        read_300wlp_mat(missing)
    assert info.value.path == missing and info.value.field is None
    data = (lp300w_fixture_dir / f"{NAME}.mat").read_bytes()
    for cut in (100, len(data) // 2, len(data) - 10):
        truncated = _bad_sample(tmp_path, f"trunc{cut}", lp300w_fixture_dir)
        truncated.write_bytes(data[:cut])
        with pytest.raises(DataError, match="cannot read MATLAB file") as info:
            read_300wlp_mat(truncated)
        assert info.value.path == truncated and str(truncated) in str(info.value)
    garbage = _bad_sample(tmp_path, "garbage", lp300w_fixture_dir)
    garbage.write_bytes(np.random.default_rng(0).bytes(4000))
    with pytest.raises(DataError) as info:
        read_300wlp_mat(garbage)
    assert info.value.path == garbage


def test_missing_and_corrupt_jpg(tmp_path: Path, lp300w_fixture_dir: Path) -> None:
    no_jpg = _bad_sample(tmp_path, "nojpg", lp300w_fixture_dir, jpg=b"<none>")
    with pytest.raises(DataError, match="missing image") as info:
        read_300wlp_mat(no_jpg)
    assert info.value.path == no_jpg.with_suffix(".jpg") and info.value.field is None

    good = (lp300w_fixture_dir / f"{NAME}.jpg").read_bytes()
    for case, data in {"junk": b"not a jpeg at all", "cut": good[: len(good) // 2]}.items():
        path = _bad_sample(tmp_path, case, lp300w_fixture_dir, jpg=data)
        read_300wlp_mat(path)  # only existence is checked by default (cheap)
        with pytest.raises(DataError) as info:
            read_300wlp_mat(path, check_image=True)
        assert info.value.path == path.with_suffix(".jpg") and info.value.field == "image"
        with pytest.raises(DataError):
            read_jpeg(path.with_suffix(".jpg"))


def test_read_jpeg_promotes_grayscale(tmp_path: Path) -> None:
    gray = (np.arange(40 * 30) % 256).astype(np.uint8).reshape(40, 30)
    Image.fromarray(gray).save(tmp_path / "g.jpg", quality=95)
    image = read_jpeg(tmp_path / "g.jpg")
    assert image.shape == (40, 30, 3) and image.dtype == np.uint8
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()


def test_read_all_collects_rejects_and_continues(tmp_path: Path, lp300w_fixture_dir: Path) -> None:
    good = [_bad_sample(tmp_path, f"good{i}", lp300w_fixture_dir) for i in range(2)]
    bad = {
        _bad_sample(tmp_path, case, lp300w_fixture_dir, BAD_MATS[case][0]): BAD_MATS[case][1]
        for case in ("missing_field", "nan_shape")
    }
    bad[_bad_sample(tmp_path, "nojpg", lp300w_fixture_dir, jpg=b"<none>").with_suffix(".jpg")] = (
        None
    )
    paths = list_300wlp_samples(tmp_path)
    assert len(paths) == 5
    fits, rejects = read_all(paths, collect_rejects=True)
    assert sorted(f.name for f in fits) == ["good0", "good1"]
    assert {r.path: r.field for r in rejects} == bad
    assert all(r.reason for r in rejects)
    with pytest.raises(DataError):
        read_all(paths, collect_rejects=False)
    fits2, rejects2 = scan_300wlp(tmp_path, collect_rejects=True)
    assert [f.mat_path for f in fits2] == [f.mat_path for f in fits] and len(rejects2) == 3
    assert [f.mat_path for f in fits] == good


def test_list_samples_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        list_300wlp_samples(tmp_path)
    assert info.value.path == tmp_path
    for rel in (
        "HELEN_Flip/b.mat",
        "AFW/z.mat",
        "AFW/a.mat",
        "AFW/a.jpg",
        "AFW/.a.mat.1-ab.tmp",
        "AFW/.hidden.mat",
        "landmarks/AFW/x.mat",
        "landmarks/y.mat",
        "Other/o.mat",
    ):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    assert list_300wlp_samples(tmp_path) == [
        tmp_path / "AFW/a.mat",
        tmp_path / "AFW/z.mat",
        tmp_path / "HELEN_Flip/b.mat",
    ]
    originals = ("AFW", "HELEN", "IBUG", "LFPW")
    assert (*originals, *(f"{name}_Flip" for name in originals)) == lp300w.LP300W_FOLDERS


def test_writer_refuses_unknown_and_missing_fields(tmp_path: Path) -> None:
    """The keyword writers check their fields: a typo is an error, not a silently dropped value."""
    fields = dict(
        pose_para=np.zeros(7),
        shape_para=np.zeros(199),
        exp_para=np.zeros(29),
        pt2d=np.zeros((2, 68)),
        roi=np.zeros(4),
    )
    assert write_300wlp_mat(tmp_path / "ok.mat", **fields).is_file()
    with pytest.raises(ValueError, match=r"unknown fields \['shape_parra'\] for typo.mat"):
        write_300wlp_mat(tmp_path / "typo.mat", **fields, shape_parra=np.zeros(199))
    with pytest.raises(ValueError, match="missing value for roi"):
        write_300wlp_mat(tmp_path / "short.mat", **{k: v for k, v in fields.items() if k != "roi"})
    assert not (tmp_path / "typo.mat").exists() and not (tmp_path / "short.mat").exists()
