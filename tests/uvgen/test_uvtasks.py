"""The UV tasks: the same stored bytes whatever the grouping (at the real 53,215-vertex scale),
and absurd or degenerate samples become reject rows naming the file and the reason, never an
exception, an all-black crop or an infinite map."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

from uvgen.formats.bfm import save_bfm
from uvgen.groundtruth import PRODUCT_ROWS, fit_vertices
from uvgen.h5codec import StorageOptions
from uvgen.synth.facemodel import sample_parameters
from uvgen.uvtasks import TaskSpec, run_task


@pytest.fixture(scope="module")
def real_model_dir(real_topology_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("real_model")
    save_bfm(real_topology_model, path)
    return path


def _fields(mat_path: Path) -> dict:
    return {k: v for k, v in sio.loadmat(mat_path).items() if not k.startswith("__")}


def _write_sample(
    folder: Path, name: str, fields: dict, jpg: Path | None = None, image=None
) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    sio.savemat(folder / f"{name}.mat", fields)
    if image is not None:
        Image.fromarray(image).save(folder / f"{name}.jpg", quality=95)
    else:
        os.symlink(jpg, folder / f"{name}.jpg")
    return f"{folder.name}/{name}.mat" if folder.name != "AFLW2000" else f"{name}.mat"


def _spec(model_dir, root, keys, shard, split="train", first_index=0):
    return TaskSpec(
        split=split,
        model_dir=model_dir,
        source_root=root,
        sample_keys=tuple(keys),
        shard_path=shard,
        seed=0,
        jitter=True,
        storage=StorageOptions(),
        first_index=first_index,
    )


def _stored(shard: Path) -> dict[str, tuple[bytes, bytes]]:
    with h5py.File(shard, "r") as f:
        names = list(f["names"].asstr()[...])
        return {
            n: (f["images"][j].tobytes(), f["posmaps"][j].tobytes()) for j, n in enumerate(names)
        }


def test_vertices_do_not_depend_on_the_batch_at_real_scale(real_topology_model):
    rng = np.random.default_rng(7)
    params = [sample_parameters(real_topology_model, rng)[:2] for _ in range(7)]
    shapes, exps = np.stack([p[0] for p in params]), np.stack([p[1] for p in params])
    first = PRODUCT_ROWS - 3  # the batch straddles two products
    together = fit_vertices(real_topology_model, shapes, exps, slots=first + np.arange(7))
    for i in (0, 3, 6):
        alone = fit_vertices(
            real_topology_model, shapes[i : i + 1], exps[i : i + 1], slots=[first + i]
        )
        assert alone.tobytes() == together[i].tobytes()
    pair = fit_vertices(real_topology_model, shapes[2:4], exps[2:4], slots=[first + 2, first + 3])
    assert pair.tobytes() == together[2:4].tobytes()
    reference = real_topology_model.vertices(shapes[0], exps[0])
    np.testing.assert_allclose(together[0], reference, atol=0.5)  # BFM units (~1e-5 crop px)


def test_stored_bytes_do_not_depend_on_the_task_grouping_at_real_scale(
    real_model_dir, lp300w_fixture_dir, tmp_path
):
    base_mat = lp300w_fixture_dir / "IBUG_image_008_1_0.mat"
    base = _fields(base_mat)
    rng = np.random.default_rng(3)
    root = tmp_path / "300W_LP"
    keys = []
    for i in range(6):
        fields = dict(base)
        fields["Shape_Para"] = base["Shape_Para"] * rng.uniform(
            0.6, 1.4, size=base["Shape_Para"].shape
        )
        fields["Exp_Para"] = base["Exp_Para"] * rng.uniform(0.6, 1.4, size=base["Exp_Para"].shape)
        keys.append(
            _write_sample(
                root / "IBUG", f"IBUG_image_{i:03d}_1_0", fields, base_mat.with_suffix(".jpg")
            )
        )
    keys.sort()
    run_task(_spec(real_model_dir, root, keys, tmp_path / "all.h5"))
    whole = _stored(tmp_path / "all.h5")
    assert len(whole) == 6
    # Other groupings (two tasks; every sample alone) give the same bytes for every sample.
    run_task(_spec(real_model_dir, root, keys[:2], tmp_path / "a.h5"))
    run_task(_spec(real_model_dir, root, keys[2:], tmp_path / "b.h5", first_index=2))
    regrouped = {**_stored(tmp_path / "a.h5"), **_stored(tmp_path / "b.h5")}
    for i in (0, 4):
        regrouped.update(
            _stored(
                run_task(
                    _spec(
                        real_model_dir, root, keys[i : i + 1], tmp_path / f"s{i}.h5", first_index=i
                    )
                ).shard_path
            )
        )
    assert regrouped == whole
    assert len({v[1] for v in whole.values()}) == 6  # the samples do differ


def _file_contents(path: Path) -> dict[str, bytes]:
    """Every dataset's decoded bytes and every attribute but the build's params, by name."""
    out: dict[str, bytes] = {}
    with h5py.File(path, "r") as f:

        def visit(name, obj):
            attrs = {k: repr(v) for k, v in obj.attrs.items() if k != "params"}
            out[name + "@attrs"] = repr(sorted(attrs.items())).encode()
            if isinstance(obj, h5py.Dataset):
                data = obj[...]
                out[name] = (
                    repr(data.tolist()).encode() if data.dtype.kind == "O" else data.tobytes()
                )

        visit("/", f)
        f.visititems(visit)
    return out


def test_build_bytes_do_not_depend_on_grouping_or_workers_at_real_scale(
    real_model_dir, lp300w_fixture_dir, tmp_path
):
    """Whole builds of 5 real-scale samples: one task in-process, and tasks of 2 (2, 2, 1: the
    blocks of 1 or 2 samples take the narrow vertex product) on 2 dask workers."""
    import hdf5plugin  # noqa: F401  (the file's Blosc filter)

    from uvgen.uvbuild import BuildSettings, build_split

    base_mat = lp300w_fixture_dir / "IBUG_image_008_1_0.mat"
    base = _fields(base_mat)
    rng = np.random.default_rng(11)
    root = tmp_path / "300W_LP"
    for i in range(5):
        fields = dict(base)
        for key in ("Shape_Para", "Exp_Para"):
            fields[key] = base[key] * rng.uniform(0.6, 1.4, size=base[key].shape)
        _write_sample(
            root / "IBUG", f"IBUG_image_{i:03d}_1_0", fields, base_mat.with_suffix(".jpg")
        )
    files = {}
    for task_size, workers in ((5, 0), (2, 2)):
        out = tmp_path / f"train_{task_size}_{workers}.h5"
        build_split(
            BuildSettings(
                split="train",
                model_dir=real_model_dir,
                source_root=root,
                out_path=out,
                rejects_path=out.with_suffix(".csv"),
                seed=0,
                jitter=True,
                task_size=task_size,
                storage=StorageOptions(),
                workers=workers,
            )
        )
        files[task_size] = _file_contents(out)
    assert files[5] == files[2]
    with h5py.File(tmp_path / "train_5_0.h5", "r") as f:
        assert len(f["names"]) == 5
        maps = f["posmaps"][...]
    assert len({m.tobytes() for m in maps}) == 5  # the samples do differ


def test_absurd_training_fits_are_rejected_with_the_reason(
    real_model_dir, lp300w_fixture_dir, tmp_path
):
    base_mat = lp300w_fixture_dir / "IBUG_image_008_1_0.mat"
    jpg = base_mat.with_suffix(".jpg")
    base = _fields(base_mat)
    root = tmp_path / "300W_LP"
    folder = root / "IBUG"

    def pose(k, value):
        p = base["Pose_Para"].copy()
        p[0, k] = value
        return {**base, "Pose_Para": p}

    cases = {  # name -> (fields, image or None, expected field, words in the reason)
        "a_good": (base, None, None, ""),
        "b_tx_1e9": (pose(3, 1e9), None, "Pose_Para", "outside"),
        "c_s_1e6": (pose(6, 1e6), None, "Pose_Para", "over"),
        "d_shape_1e7": ({**base, "Shape_Para": base["Shape_Para"] * 1e7}, None, "Shape_Para", ""),
        "e_yaw_1000": (pose(1, 1000.0), None, "Pose_Para", "yaw"),
        "f_s_0": (pose(6, 0.0), None, "Pose_Para", "scale"),
        "g_outside": (pose(3, -2000.0), None, "Pose_Para", "outside"),
        "h_tiny_image": (base, np.full((16, 16, 3), 128, np.uint8), "image", "16x16"),
    }
    keys = [
        _write_sample(folder, name, fields, None if image is not None else jpg, image)
        for name, (fields, image, _, _) in cases.items()
    ]
    result = run_task(_spec(real_model_dir, root, sorted(keys), tmp_path / "shard.h5"))
    assert result.n_written == 1
    by_file = {Path(r.path).stem: r for r in result.rejects}
    assert sorted(by_file) == sorted(n for n in cases if n != "a_good")
    for name, (_, _, field, words) in cases.items():
        if name == "a_good":
            continue
        assert by_file[name].field == field, by_file[name]
        assert words in by_file[name].reason, by_file[name]
    with h5py.File(tmp_path / "shard.h5", "r") as f:
        assert np.isfinite(f["posmaps"][0]).all() and f["images"][0].max() > 0


def test_degenerate_test_landmarks_and_absurd_fit_are_rejected(
    real_model_dir, aflw_fixture_dir, tmp_path
):
    base_mat = aflw_fixture_dir / "image00050.mat"
    base = _fields(base_mat)
    root = tmp_path / "AFLW2000"
    far = base["Pose_Para"].copy()
    far[0, 3] = 1e9
    keys = [
        _write_sample(root, "image00001", base, base_mat.with_suffix(".jpg")),
        _write_sample(
            root,
            "image00002",
            {**base, "pt3d_68": np.zeros_like(base["pt3d_68"])},
            base_mat.with_suffix(".jpg"),
        ),
        _write_sample(root, "image00003", {**base, "Pose_Para": far}, base_mat.with_suffix(".jpg")),
    ]
    result = run_task(_spec(real_model_dir, root, keys, tmp_path / "shard.h5", split="test"))
    assert result.n_written == 1
    by_file = {Path(r.path).stem: r for r in result.rejects}
    assert by_file["image00002"].field == "pt3d_68" and "degenerate" in by_file["image00002"].reason
    assert by_file["image00003"].field == "posmap" and "crop px" in by_file["image00003"].reason
