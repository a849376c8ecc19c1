"""Small external-method inputs shared by the tests of eval.external, eval.external_readers and
eval.external_params: image names, random landmarks, a names file, a 3DDFA-style basis file, and
a check that a DataError names the right file and field."""

from __future__ import annotations

import numpy as np
import pytest

from uvgen.formats.errors import DataError

N, K = 3, 20


def image_names(n: int = N, ext: str = ".jpg") -> list[str]:
    return [f"image{i:05d}{ext}" for i in range(n)]


def random_landmarks(n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 200, (n, 68, 3)).astype(np.float32)


def write_names(path, names):
    path.write_text("\n".join(names) + "\n")
    return path


def write_basis(tmp_path, n: int = 30, with_uv: bool = False, seed: int = 2):
    rng = np.random.default_rng(seed)
    arrays = dict(
        u=rng.normal(0, 1e4, (3 * n, 1)),
        w_shp=rng.normal(0, 1e3, (3 * n, 40)),
        w_exp=rng.normal(0, 1e3, (3 * n, 10)),
        param_mean=rng.normal(0, 1, 62),
        param_std=rng.uniform(0.5, 2, 62),
        kpt_ind=rng.choice(n, 68, replace=True).astype(np.int64),
    )
    if with_uv:
        arrays["uv"] = rng.uniform(0, 1, (n, 2))
        arrays["tri"] = np.array([[i, i + 1, i + 2] for i in range(n - 2)])
    np.savez(tmp_path / "basis.npz", **arrays)
    return tmp_path / "basis.npz", arrays


def assert_data_error(fn, path, field):
    with pytest.raises(DataError) as err:
        fn()
    assert err.value.path == path, err.value
    assert err.value.field == field, err.value
