"""model.checkpoint on a full disk: one error naming the file ("No space left on device: PATH"),
the previous checkpoint intact, no temporary left (torch itself says "enforce fail ...
unexpected pos")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.checkpoint import atomic_torch_save
from uvgen import diskspace
from uvgen.diskspace import DiskFullError


def test_save_is_byte_identical_to_torch_save(tmp_path: Path):
    obj = {"model": {"w": torch.arange(12.0).reshape(3, 4)}, "meta": {"width": 6}}
    atomic_torch_save(obj, tmp_path / "a.pt")
    with open(tmp_path / "b.pt", "wb") as fh:
        torch.save(obj, fh)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert torch.equal(
        torch.load(tmp_path / "a.pt", weights_only=True)["model"]["w"], obj["model"]["w"]
    )


def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    atomic_torch_save({"step": 1}, path)
    before = path.read_bytes()
    monkeypatch.setattr(diskspace, "free_bytes", lambda p: 100)
    with pytest.raises(DiskFullError) as err:
        atomic_torch_save({"step": 2, "w": torch.zeros(1000)}, path)
    assert str(err.value).startswith(f"No space left on device: {path.parent}")
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]


def test_real_full_filesystem(small_tmpfs: Path):
    path = small_tmpfs / "model.pt"
    atomic_torch_save({"w": torch.zeros(1000)}, path)
    before = path.read_bytes()
    with pytest.raises(DiskFullError, match="No space left on device"):
        atomic_torch_save({"w": torch.zeros(1_000_000)}, path)  # 4 MB on a 2 MB file system
    assert path.read_bytes() == before
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["model.pt"]
