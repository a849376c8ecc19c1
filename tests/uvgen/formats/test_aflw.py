"""AFLW2000-3D reader/writer on the 17 real samples, plus bad-input handling."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from tests.uvgen.formats.data_warnings import read_with_one_warning
from uvgen.formats.aflw import (
    AFLWSample,
    list_aflw_samples,
    read_aflw_mat,
    read_all,
    scan_aflw,
    write_aflw_mat,
    write_aflw_sample,
)
from uvgen.formats.errors import DataError, DataWarning

FIXTURE_NAMES = [
    "image00050",
    "image00081",
    "image00251",
    "image00430",
    "image00475",
    "image00514",
    "image00516",
    "image01038",
    "image01198",
    "image01322",
    "image02283",
    "image02420",
    "image02545",
    "image02616",
    "image03324",
    "image03614",
    "image04331",
]
# Yaw of Pose_Para in degrees, read from the files.
YAW_DEG = {
    "image00050": 0.94,
    "image00251": -54.69,
    "image00475": 65.62,
    "image02420": 70.90,
    "image04331": 45.45,
    "image00516": -35.71,
}
# Real files whose pt2d is (2, 23) instead of (2, 21) (the data set has three; one is a fixture).
PT2D_VARIANTS = {"image01198"}


def _raw(path: Path, **kwargs) -> dict:
    return {k: v for k, v in scipy.io.loadmat(path, **kwargs).items() if not k.startswith("__")}


@pytest.fixture(scope="module")
def samples(aflw_fixture_dir: Path) -> list[AFLWSample]:
    with pytest.warns(DataWarning) as record:
        found, rejects = scan_aflw(aflw_fixture_dir, collect_rejects=True)
    assert rejects == []
    # Exactly one warning, for image01198's (2, 23) pt2d: the sample is kept.
    warned = [
        (w.message.path.stem, w.message.field)
        for w in record
        if issubclass(w.category, DataWarning)
    ]
    assert warned == [("image01198", "pt2d")]
    assert "(2, 23)" in str(record[0].message)
    return found


def test_pt2d_variant_is_kept_as_stored(samples: list[AFLWSample]) -> None:
    s = {x.name: x for x in samples}["image01198"]
    raw = _raw(s.mat_path)
    assert s.pt2d.shape == (2, 23)
    np.testing.assert_array_equal(s.pt2d, raw["pt2d"])
    np.testing.assert_array_equal(s.pt3d_68, raw["pt3d_68"].astype(np.float64))
    assert s.visible_2d.shape == (23,)


def test_all_real_samples_parse(samples: list[AFLWSample], aflw_fixture_dir: Path) -> None:
    assert [s.name for s in samples] == FIXTURE_NAMES
    for s in samples:
        assert s.image_path == aflw_fixture_dir / f"{s.name}.jpg"
        assert (
            s.pose_para.shape == (7,) and s.shape_para.shape == (199,) and s.exp_para.shape == (29,)
        )
        assert s.pt2d.shape == ((2, 23) if s.name in PT2D_VARIANTS else (2, 21))
        assert s.pt3d_68.shape == (3, 68) and s.roi.shape == (4,)
        assert s.pt3d_68.dtype == np.float64 and s.roi.dtype == np.int64
        assert (
            s.tex_para.shape == (199,)
            and s.color_para.shape == (7,)
            and s.illum_para.shape == (10,)
        )
        raw = _raw(s.mat_path)
        np.testing.assert_array_equal(s.pt3d_68, raw["pt3d_68"].astype(np.float64))
        np.testing.assert_array_equal(s.pt2d, raw["pt2d"])
        # Invisible AFLW points have x = -1 (and y = 452 in these files); no y is -1.
        np.testing.assert_array_equal(s.visible_2d, s.pt2d[0] != -1)
        assert (s.pt2d[1, ~s.visible_2d] == 452).all() and not (s.pt2d[1] == -1).any()
        # The 68 landmarks lie around the 450x450 image (x right, y down).
        assert -100 < s.pt3d_68[0].mean() < 550 and -100 < s.pt3d_68[1].mean() < 550
    by_name = {s.name: s for s in samples}
    for name, yaw in YAW_DEG.items():
        assert by_name[name].yaw_deg == pytest.approx(yaw, abs=0.01)
    assert int((~by_name["image00251"].visible_2d).sum()) == 9
    assert by_name["image00050"].roi.tolist() == [162, 52, 1182, 1072]


def test_compactly_stored_zero_double_reads_as_float(samples: list[AFLWSample]) -> None:
    # MATLAB stored image00516's all-zero Exp_Para as uint8 data of class double.
    s = {x.name: x for x in samples}["image00516"]
    assert _raw(s.mat_path)["Exp_Para"].dtype == np.uint8
    assert s.exp_para.dtype == np.float64 and (s.exp_para == 0).all()


def test_images_load(samples: list[AFLWSample]) -> None:
    for s in samples[:3]:
        image = s.load_image()
        assert image.shape == (450, 450, 3) and image.dtype == np.uint8


def test_round_trip_all_samples(samples: list[AFLWSample], tmp_path: Path) -> None:
    # The writer writes the documented layout: the (2, 23) pt2d variant is not written back.
    samples = [s for s in samples if s.name not in PT2D_VARIANTS]
    image = samples[0].load_image()
    for s in samples:
        written = write_aflw_sample(tmp_path, s.name, image, **s.params())
        for attr, value in s.params().items():
            np.testing.assert_array_equal(getattr(written, attr), value, err_msg=f"{s.name} {attr}")
        # Same variables, MATLAB classes, shapes and values as the real file.
        real, ours = _raw(s.mat_path, mat_dtype=True), _raw(written.mat_path, mat_dtype=True)
        assert sorted(ours) == sorted(real)
        for key in real:
            assert (ours[key].shape, ours[key].dtype) == (real[key].shape, real[key].dtype), (
                s.name,
                key,
            )
            np.testing.assert_array_equal(ours[key], real[key], err_msg=f"{s.name} {key}")
    assert [p.name for p in list_aflw_samples(tmp_path)] == [
        f"{n}.mat" for n in FIXTURE_NAMES if n not in PT2D_VARIANTS
    ]


def test_written_storage_dtypes_match_real(samples: list[AFLWSample], tmp_path: Path) -> None:
    s = samples[0]  # image00050: every field stored in its own class
    written = write_aflw_sample(tmp_path, s.name, s.load_image(), **s.params())
    real, ours = _raw(s.mat_path), _raw(written.mat_path)
    layout = lambda mat: {k: (v.shape, v.dtype) for k, v in mat.items()}  # noqa: E731
    assert layout(ours) == layout(real)
    assert ours["pt3d_68"].dtype == np.float32 and ours["pt2d"].shape == (2, 21)


def test_writer_checks_point_shapes(samples: list[AFLWSample], tmp_path: Path) -> None:
    params = samples[0].params()
    with pytest.raises(ValueError, match="pt3d_68"):
        write_aflw_mat(tmp_path / "x.mat", **{**params, "pt3d_68": params["pt3d_68"].T})
    with pytest.raises(ValueError, match="pt2d"):
        write_aflw_mat(tmp_path / "x.mat", **{**params, "pt2d": np.zeros((2, 68))})
    assert not (tmp_path / "x.mat").exists()


def _copy_with(tmp_path: Path, fixture: Path, name: str, mutate=None) -> Path:
    mat = _raw(fixture / "image00050.mat")
    if mutate is not None:
        mutate(mat)
    scipy.io.savemat(tmp_path / f"{name}.mat", mat)
    shutil.copyfile(fixture / "image00050.jpg", tmp_path / f"{name}.jpg")
    return tmp_path / f"{name}.mat"


def _nan_pt3d(mat: dict) -> None:
    mat["pt3d_68"] = mat["pt3d_68"].copy()
    mat["pt3d_68"][2, 5] = np.nan


BAD = {
    "image90001": (lambda m: m.pop("pt3d_68"), "pt3d_68", "missing field"),
    "image90002": (
        lambda m: m.__setitem__("pt3d_68", m["pt3d_68"].T.copy()),
        "pt3d_68",
        "wrong shape",
    ),
    "image90003": (_nan_pt3d, "pt3d_68", "non-finite"),
    "image90005": (
        lambda m: m.__setitem__("Shape_Para", np.full((199, 1), np.nan)),
        "Shape_Para",
        "non-finite",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_fields(name: str, tmp_path: Path, aflw_fixture_dir: Path) -> None:
    mutate, field, reason = BAD[name]
    path = _copy_with(tmp_path, aflw_fixture_dir, name, mutate)
    with pytest.raises(DataError) as info:
        read_aflw_mat(path)
    assert info.value.path == path and info.value.field == field and reason in info.value.reason
    assert str(path) in str(info.value) and field in str(info.value)


# Fields the pipeline does not use: an unusual variant is a warning naming file and field, and the
# sample is read (kept as stored, or None when missing or not numeric).
UNUSED_VARIANTS = {
    "image90011": (
        lambda m: m.__setitem__("pt2d", np.zeros((2, 68))),
        "pt2d",
        "wrong shape",
        (2, 68),
    ),
    "image90012": (lambda m: m.pop("pt2d"), "pt2d", "missing field", None),
    "image90013": (
        lambda m: m.__setitem__("Tex_Para", np.full((199, 1), np.nan)),
        "Tex_Para",
        "non-finite",
        (199,),
    ),
    "image90014": (
        lambda m: m.__setitem__("roi", np.zeros((1, 5), np.int16)),
        "roi",
        "wrong shape",
        (5,),
    ),
    "image90015": (
        lambda m: m.__setitem__("Illum_Para", np.array(["text"])),
        "Illum_Para",
        "",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(UNUSED_VARIANTS))
def test_unused_field_variants_warn(name: str, tmp_path: Path, aflw_fixture_dir: Path) -> None:
    mutate, field, reason, shape = UNUSED_VARIANTS[name]
    path = _copy_with(tmp_path, aflw_fixture_dir, name, mutate)
    sample, _ = read_with_one_warning(read_aflw_mat, path, field, reason)
    value = getattr(sample, {"Tex_Para": "tex_para", "Illum_Para": "illum_para"}.get(field, field))
    assert (value is None) if shape is None else (value.shape == shape)
    # What the pipeline uses is intact.
    np.testing.assert_array_equal(sample.pt3d_68, _raw(path)["pt3d_68"].astype(np.float64))


def test_missing_jpg_truncated_mat_and_rejects(tmp_path: Path, aflw_fixture_dir: Path) -> None:
    good = _copy_with(tmp_path, aflw_fixture_dir, "image00001")
    for name, (mutate, _, _) in BAD.items():
        _copy_with(tmp_path, aflw_fixture_dir, name, mutate)
    no_jpg = _copy_with(tmp_path, aflw_fixture_dir, "image00002")
    no_jpg.with_suffix(".jpg").unlink()
    truncated = _copy_with(tmp_path, aflw_fixture_dir, "image00003")
    truncated.write_bytes(truncated.read_bytes()[:1000])
    (tmp_path / "notes.mat").write_bytes(b"")  # not an imageNNNNN name: not listed

    paths = list_aflw_samples(tmp_path)
    assert len(paths) == 3 + len(BAD)
    found, rejects = read_all(paths, collect_rejects=True)
    assert [s.mat_path for s in found] == [good]
    fields = {r.path.name: r.field for r in rejects}
    assert fields == {
        "image00002.jpg": None,
        "image00003.mat": None,
        **{f"{name}.mat": field for name, (_, field, _) in BAD.items()},
    }
    with pytest.raises(DataError, match="image00002.jpg"):
        read_all(paths)


def test_list_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        list_aflw_samples(tmp_path / "absent")
    with pytest.raises(DataError, match="no AFLW2000-3D samples"):
        list_aflw_samples(tmp_path)
