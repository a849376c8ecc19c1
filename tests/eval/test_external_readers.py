"""Tests for eval.external_readers: every accepted landmark and dense file format, and bad files
(DataError naming file and field)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from eval.external_readers import read_dense, read_landmarks
from tests.external_inputs import (
    K,
    N,
    assert_data_error,
    image_names,
    random_landmarks,
    write_names,
)
from uvgen.formats.errors import DataError


def test_landmark_arrays_in_both_layouts(tmp_path):
    lm = random_landmarks()
    names = write_names(tmp_path / "names.txt", image_names())
    np.save(tmp_path / "a.npy", lm)
    np.savez(tmp_path / "b.npz", landmarks=lm.transpose(0, 2, 1), names=np.array(image_names()))
    for path, kw in ((tmp_path / "a.npy", {"names_path": names}), (tmp_path / "b.npz", {})):
        got_names, got = read_landmarks(path, **kw)
        assert got_names == image_names() and np.array_equal(got, lm)


def test_two_column_landmarks_have_nan_depth(tmp_path):
    np.save(tmp_path / "xy.npy", random_landmarks()[..., :2].transpose(0, 2, 1))  # (N, 2, 68)
    _, got = read_landmarks(tmp_path / "xy.npy", write_names(tmp_path / "n.txt", image_names()))
    assert np.array_equal(got[..., :2], random_landmarks()[..., :2]) and np.isnan(got[..., 2]).all()


def test_per_image_text_files_including_prnet_kpt_names(tmp_path):
    lm = random_landmarks(2)
    folder = tmp_path / "kpt"
    folder.mkdir()
    np.savetxt(folder / "image00000.txt", lm[0])
    np.savetxt(folder / "image00001_kpt.txt", lm[1].T)  # 3 x 68 is accepted too
    (folder / "readme.md").write_text("ignored")
    names, got = read_landmarks(folder)
    assert names == ["image00000", "image00001"] and np.allclose(got, lm, atol=1e-5)


def test_dense_arrays_and_mat_files(tmp_path):
    rng = np.random.default_rng(1)
    d = rng.uniform(0, 100, (N, K, 3)).astype(np.float32)
    np.save(tmp_path / "d.npy", d.transpose(0, 2, 1))  # (N, 3, n)
    names, got = read_dense(tmp_path / "d.npy", write_names(tmp_path / "n.txt", image_names()))
    assert np.array_equal(got, d)
    np.savez(tmp_path / "d.npz", dense=d, names=np.array(image_names()))  # (N, n, 3)
    assert np.array_equal(read_dense(tmp_path / "d.npz")[1], d)
    folder = tmp_path / "mats"
    folder.mkdir()
    scipy.io.savemat(folder / "image00000.mat", {"vertex": d[0].T.astype(np.float64)})  # (3, n)
    scipy.io.savemat(folder / "image00001.mat", {"vertex": d[1]})  # (n, 3)
    names, got = read_dense(folder)
    assert names == ["image00000", "image00001"] and np.allclose(got, d[:2])


def test_bad_files_raise_data_errors_naming_file_and_field(tmp_path):
    names = write_names(tmp_path / "n.txt", image_names())
    np.save(tmp_path / "short.npy", np.zeros((N, 67, 3)))
    assert_data_error(
        lambda: read_landmarks(tmp_path / "short.npy", names), tmp_path / "short.npy", "landmarks"
    )
    np.save(tmp_path / "count.npy", np.zeros((N + 1, 68, 3)))
    assert_data_error(
        lambda: read_landmarks(tmp_path / "count.npy", names), tmp_path / "count.npy", "landmarks"
    )
    np.save(tmp_path / "ok.npy", np.zeros((N, 68, 3)))
    assert_data_error(lambda: read_landmarks(tmp_path / "ok.npy"), tmp_path / "ok.npy", "names")
    np.savez(tmp_path / "nonames.npz", landmarks=np.zeros((N, 68, 3)))
    assert_data_error(
        lambda: read_landmarks(tmp_path / "nonames.npz"), tmp_path / "nonames.npz", "names"
    )
    bad = np.zeros((N, 68, 3))
    bad[1, 5, 0] = np.nan
    np.savez(tmp_path / "nan.npz", landmarks=bad, names=np.array(image_names()))
    with pytest.raises(DataError, match="row 1"):
        read_landmarks(tmp_path / "nan.npz")
    (tmp_path / "junk.npy").write_bytes(b"junk")
    assert_data_error(
        lambda: read_landmarks(tmp_path / "junk.npy", names), tmp_path / "junk.npy", "landmarks"
    )
    folder = tmp_path / "txt"
    folder.mkdir()
    np.savetxt(folder / "image00000.txt", np.zeros((60, 3)))
    assert_data_error(lambda: read_landmarks(folder), folder / "image00000.txt", "landmarks")
    mats = tmp_path / "mats"
    mats.mkdir()
    scipy.io.savemat(mats / "image00000.mat", {"vertices": np.zeros((3, 5))})
    assert_data_error(lambda: read_dense(mats), mats / "image00000.mat", "vertex")
    assert_data_error(
        lambda: read_landmarks(tmp_path / "absent.npy", names), tmp_path / "absent.npy", None
    )
