"""Shared test fixtures: the real sample data in ../shared/fixtures (skipped when absent), one torch
thread, and a small test-split UV file."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"


def _fixture_dir(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_dir():
        pytest.skip(f"real-data fixtures not available: {path} is absent (they live in ../shared)")
    return path


@pytest.fixture(scope="session")
def lp300w_fixture_dir() -> Path:
    """One real 300W-LP sample (IBUG_image_008_1_0.jpg + .mat)."""
    return _fixture_dir("300w_lp")


@pytest.fixture(scope="session")
def aflw_fixture_dir() -> Path:
    """16 real AFLW2000-3D samples (imageNNNNN.jpg + .mat)."""
    return _fixture_dir("aflw2000_3d")


@pytest.fixture(scope="session")
def bfm_topology_dir() -> Path:
    """The trimmed BFM's real topology: u_shp.npy, u_exp.npy, tri.mat, BFM_UV.mat, BFM_info.mat."""
    return _fixture_dir("bfm_topology")


@pytest.fixture(scope="session")
def prnet_uv_dir() -> Path:
    """PRNet's UV data: uv_kpt_ind.txt, face_ind.txt, uv_face_mask.png, uv_weight_mask.png."""
    return _fixture_dir("prnet_uv")


@pytest.fixture(scope="session")
def real_topology_model(bfm_topology_dir):
    """A 53,215-vertex test model: the real BFM topology + generated components (built once)."""
    from uvgen.synth.facemodel import make_real_topology_model

    return make_real_topology_model(bfm_topology_dir, seed=0)


@pytest.fixture(scope="session")
def embedded_model():
    """The embedded procedural model at its default size."""
    from uvgen.synth.facemodel import make_face_model

    return make_face_model(n_vertices=5000, seed=0)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests with torch run on one thread: their tensors are tiny, so one thread is fastest and
    immune to a busy machine (subprocesses: OMP_NUM_THREADS). Tests that never import torch skip it."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_uv_test_file(folder: Path, n: int = 4, size: int = 32, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """A small test-split UV file ``folder/test.h5`` (float32 maps: exact; 200 face pixels; yaw 0,
    20, 40... degrees; landmarks_gt = the maps' key points in original pixels) -> (path, maps
    (n, size, size, 3), transforms (n, 3, 3))."""
    from uvgen.h5store import SampleRecord, StorageOptions, UVData, merge_shards, write_shard

    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:size, 0:size] / (size - 1.0)
    maps = np.stack([np.stack([20 + 200 * u + i, 10 + 210 * v, 40 * u * v + rng.uniform(0, 5)], -1)
                     for i in range(n)]).astype(np.float32)
    transforms = np.stack([np.array([[0.5 + 0.1 * i, 0, -30.0 * i], [0, 0.5 + 0.1 * i, -10.0], [0, 0, 1]])
                           for i in range(n)])
    kpt = rng.choice(size * size, 68, replace=False)
    kpt_uv = np.stack([kpt % size, kpt // size]).astype(np.int32)
    face_ind = np.sort(rng.choice(size * size, 200, replace=False))
    recs = []
    for i in range(n):
        lm_crop = maps[i].reshape(-1, 3)[kpt].astype(np.float64)
        inv = np.linalg.inv(transforms[i])
        lm = np.column_stack([lm_crop[:, :2] @ inv[:2, :2].T + inv[:2, 2], lm_crop[:, 2] / transforms[i, 0, 0]])
        recs.append(SampleRecord(f"image{i:05d}.mat", "t", np.zeros(199), np.zeros(29), np.zeros(7), transforms[i],
                                 np.full(3, 0.5), float(20 * i), 0.0, 0.0, {"landmarks_gt": lm.astype(np.float32)}))
    folder = Path(folder)
    shard = folder / "shard.h5"
    write_shard(shard, np.zeros((n, size, size, 3), np.uint8), maps, recs, StorageOptions(posmap_dtype="float32"))
    layout = UVData(np.ones((size, size), np.float32), np.zeros((size, size), bool), kpt_uv, face_ind)
    path = folder / "test.h5"
    merge_shards([shard], path, layout, {"model_checksum": "x", "params": {}, "split": "test"})
    return path, maps, transforms


@pytest.fixture
def uv_test_file():
    """:func:`write_uv_test_file` as a fixture (call it with the folder and options)."""
    return write_uv_test_file
