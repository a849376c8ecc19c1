"""uvgen.diskspace: a full disk is one error naming the path, and leaves nothing under a final name
(fault injection always; a real full tmpfs where this machine allows mounting one)."""

from __future__ import annotations

import errno
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from uvgen import diskspace
from uvgen.atomic import atomic_write_bytes
from uvgen.diskspace import (
    DiskFullError,
    disk_full_as_error,
    ensure_free_space,
    is_disk_full,
)


def test_error_is_one_line_with_errno_and_survives_pickling(tmp_path: Path):
    err = DiskFullError(tmp_path / "x.h5", "needs about 2.0 MB, 1.0 MB free")
    assert (
        str(err)
        == f"No space left on device: {tmp_path / 'x.h5'} (needs about 2.0 MB, 1.0 MB free)"
    )
    assert err.errno == errno.ENOSPC and err.filename == str(tmp_path / "x.h5")
    back = pickle.loads(pickle.dumps(err))  # as it comes back from a dask worker
    assert str(back) == str(err) and back.errno == errno.ENOSPC


def test_full_disk_is_recognised_in_its_disguises():
    h5_message = (
        "Driver write request failed (file write failed: filename = 'x.h5', errno = 28, "
        "error message = 'No space left on device')"
    )
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(OSError(None, h5_message))
    wrapped = RuntimeError("task failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert is_disk_full(wrapped)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("errno = 280, something else"))


def test_check_before_writing(tmp_path: Path, monkeypatch):
    ensure_free_space(tmp_path, 1000)  # a normal disk has room
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 5_000_000)
    with pytest.raises(
        DiskFullError, match=r"^No space left on device: .*needs about 18\.4 MB, 5\.0 MB free"
    ):
        ensure_free_space(tmp_path / "out.h5", 10_000_000)


def test_conversion_names_the_path_and_keeps_other_errors(tmp_path: Path):
    with pytest.raises(DiskFullError) as err, disk_full_as_error(tmp_path / "out.h5"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(err.value) == f"No space left on device: {tmp_path / 'out.h5'}"
    with pytest.raises(PermissionError), disk_full_as_error(tmp_path / "out.h5"):
        raise PermissionError(errno.EACCES, "denied")


def test_atomic_write_on_full_disk_leaves_nothing(tmp_path: Path, monkeypatch):
    target = tmp_path / "model.pt"
    target.write_bytes(b"previous")
    # 1. refused by the free-space check before anything is written
    monkeypatch.setattr(diskspace, "free_bytes", lambda path: 10)
    with pytest.raises(DiskFullError, match="No space left on device"):
        atomic_write_bytes(target, b"x" * 100)
    monkeypatch.undo()
    # 2. the write itself fails half-way (the disk filled up meanwhile)
    real_open = open

    class FullFile:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[:3])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("builtins.open", lambda *a, **kw: FullFile(real_open(*a, **kw)))
    with pytest.raises(DiskFullError) as err:
        atomic_write_bytes(target, b"x" * 100)
    monkeypatch.undo()
    assert str(err.value) == f"No space left on device: {target}"
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


_WRITE_SHARD = """
import sys
import numpy as np
from uvgen.diskspace import DiskFullError, disk_full_as_error
from uvgen.h5store import SampleRecord
from uvgen.h5codec import StorageOptions
from uvgen.h5write import write_shard

n = 12  # ~7 MB uncompressed: more than the 2 MB file system holds
rng = np.random.default_rng(0)
images = rng.integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
posmaps = rng.uniform(0, 250, (n, 256, 256, 3)).astype(np.float32)
records = [SampleRecord(name=f"s{k}", source="s", shape_para=np.zeros(199), exp_para=np.zeros(29),
                        pose_para=np.zeros(7), transform=np.eye(3), jitter=np.zeros(3), yaw_deg=0.0,
                        pitch_deg=0.0, roll_deg=0.0, extras={}) for k in range(n)]
try:
    with disk_full_as_error(sys.argv[1]):
        write_shard(sys.argv[1], images, posmaps, records, StorageOptions())
except DiskFullError as err:
    sys.exit(str(err))
"""


def test_hdf5_shard_write_on_a_real_full_filesystem(small_tmpfs: Path):
    """The UV writer on a full disk: an error the conversion recognises, and no crash when the
    process exits (HDF5 with a chunk cache segfaults at exit after a failed write), nothing left."""
    shard = small_tmpfs / "shard.h5"
    done = subprocess.run(
        [sys.executable, "-c", _WRITE_SHARD, str(shard)], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr[-2000:]  # 139 = segfault
    assert done.stderr.strip() == f"No space left on device: {shard}"
    assert list(small_tmpfs.iterdir()) == []
    with pytest.raises(DiskFullError):
        atomic_write_bytes(small_tmpfs / "big.bin", b"\0" * (4 << 20))
    assert list(small_tmpfs.iterdir()) == []
