"""uvgen.formats.registry: data set formats by name; a new format is one registration, and the UV
build reads, crops and records a split by its format."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from uvgen.formats import registry
from uvgen.formats.aflw import list_aflw_samples, read_aflw_mat
from uvgen.formats.bfm import save_bfm
from uvgen.formats.registry import DataSetFormat, format_of_split, get_format, register
from uvgen.h5codec import StorageOptions
from uvgen.synth.dataset import write_synthetic_set
from uvgen.synth.facemodel import make_face_model
from uvgen.uvbuild import BuildSettings, build_split


def test_the_built_in_formats_and_their_crops() -> None:
    assert {"300w_lp", "aflw2000_3d"} <= set(registry.format_names())
    assert get_format("300w_lp").crop == "training"
    assert get_format("aflw2000_3d").crop == "evaluation"
    assert format_of_split("train").name == "300w_lp"
    assert format_of_split("test").name == "aflw2000_3d"
    assert format_of_split("test", "300w_lp").name == "300w_lp"
    with pytest.raises(KeyError, match="unknown data set format 'nope' .known: .*300w_lp"):
        get_format("nope")
    with pytest.raises(ValueError, match="crop must be one of"):
        DataSetFormat("x", "", list_aflw_samples, read_aflw_mat, crop="tight")
    with pytest.raises(ValueError, match="already registered"):
        register(DataSetFormat("300w_lp", "another", list_aflw_samples, read_aflw_mat, "training"))


def _build(root, out, split, data_format=""):
    return build_split(
        BuildSettings(
            split=split,
            model_dir=root / "model",
            source_root=root / "AFLW2000",
            out_path=out,
            rejects_path=out.with_name(out.stem + "_rejects.csv"),
            seed=0,
            jitter=True,
            task_size=10,
            storage=StorageOptions(),
            workers=0,
            data_format=data_format,
        )
    )


def test_a_new_format_is_one_registration(tmp_path, monkeypatch) -> None:
    """A toy format (AFLW2000-3D's folder, read as training samples: the key vertices' crop with
    jitter) registered from here builds a split with no project file touched."""
    save_bfm(make_face_model(n_vertices=1500, seed=0), tmp_path / "model")
    write_synthetic_set("aflw2000", tmp_path / "model", tmp_path / "AFLW2000", 4, 450, seed=2)
    toy = DataSetFormat(
        name="toy_aflw_as_training",
        description="AFLW2000-3D's files cropped as training samples",
        list_samples=list_aflw_samples,
        read_sample=read_aflw_mat,
        crop="training",
    )
    monkeypatch.setitem(registry.FORMATS._items, toy.name, toy)  # gone after the test
    as_toy = _build(tmp_path, tmp_path / "toy.h5", "train", toy.name)
    as_test = _build(tmp_path, tmp_path / "test.h5", "test")
    assert as_toy.written == as_test.written == 4
    with h5py.File(tmp_path / "toy.h5") as a, h5py.File(tmp_path / "test.h5") as b:
        assert a.attrs["data_format"] == toy.name and b.attrs["data_format"] == "aflw2000_3d"
        assert list(a["names"].asstr()[...]) == list(b["names"].asstr()[...])
        assert "landmarks_gt" not in a.get("extras", {}) and "landmarks_gt" in b["extras"]
        assert np.all(a["jitter"][...] != 0.5)  # training crops: jittered
        assert np.all(b["jitter"][...] == 0.5)  # evaluation crops: none
        assert not np.allclose(a["transform"][...], b["transform"][...])
