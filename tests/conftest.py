"""Shared test fixtures: the real sample data in ../shared/fixtures (skipped when absent) and one
torch thread."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"


def _fixture_dir(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_dir():
        pytest.skip(f"real-data fixtures not available: {path} is absent (they live in ../shared)")
    return path


def _fixture_dir_fixture(fixture_name: str, folder: str, doc: str):
    """A session fixture ``fixture_name``: the folder ``FIXTURES/folder`` (skipped when absent)."""

    def fixture() -> Path:
        return _fixture_dir(folder)

    fixture.__name__ = fixture.__qualname__ = fixture_name
    fixture.__doc__ = doc
    return pytest.fixture(scope="session", name=fixture_name)(fixture)


lp300w_fixture_dir = _fixture_dir_fixture(
    "lp300w_fixture_dir", "300w_lp", "One real 300W-LP sample (IBUG_image_008_1_0.jpg + .mat)."
)
aflw_fixture_dir = _fixture_dir_fixture(
    "aflw_fixture_dir",
    "aflw2000_3d",
    "17 real AFLW2000-3D samples (imageNNNNN.jpg + .mat; image01198 has a (2, 23) pt2d).",
)
aflw_wrapped_fixture_dir = _fixture_dir_fixture(
    "aflw_wrapped_fixture_dir",
    "aflw2000_3d_wrapped",
    "9 real AFLW2000-3D samples with Euler angles outside [-pi, pi] (image04157: s < 0).",
)
aflw_3ddfa_dir = _fixture_dir_fixture(
    "aflw_3ddfa_dir",
    "aflw2000_3d_3ddfa",
    "3DDFA's AFLW2000-3D arrays for all 2,000 images (pts68, re-annotated pts68, yaw, list).",
)
bfm_topology_dir = _fixture_dir_fixture(
    "bfm_topology_dir",
    "bfm_topology",
    "The trimmed BFM's real topology: u_shp.npy, u_exp.npy, tri.mat, BFM_UV.mat, BFM_info.mat.",
)
prnet_uv_dir = _fixture_dir_fixture(
    "prnet_uv_dir",
    "prnet_uv",
    "PRNet's UV data: uv_kpt_ind.txt, face_ind.txt, uv_face_mask.png, uv_weight_mask.png.",
)


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


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 2 MB tmpfs mounted on a fresh folder (full-disk tests); skipped where mounting is not
    allowed."""
    import subprocess

    mount = tmp_path / "tmpfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here (needs root): {done.stderr.strip() or done.returncode}"
        )
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests with torch run on one thread: their tensors are tiny, so one thread is fastest and
    immune to a busy machine (subprocesses: OMP_NUM_THREADS). Tests without torch skip it."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
