"""Tests for uvgen.model_checksum: the digest of a model folder's three BFM files (torch-free)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from uvgen.model_checksum import MODEL_FILES, model_checksum


def _folder(tmp_path, contents=(b"bfm", b"uv", b"info")):
    for name, data in zip(MODEL_FILES, contents):
        (tmp_path / name).write_bytes(data)
    return tmp_path


def test_digest_covers_the_three_files_in_order(tmp_path):
    folder = _folder(tmp_path)
    assert model_checksum(folder) == hashlib.sha256(b"bfmuvinfo").hexdigest()
    (folder / "BFM_info.mat").write_bytes(b"other")
    assert model_checksum(folder) == hashlib.sha256(b"bfmuvother").hexdigest()


def test_a_missing_file_is_an_error(tmp_path):
    _folder(tmp_path)
    (tmp_path / "BFM_UV.mat").unlink()
    with pytest.raises(FileNotFoundError):
        model_checksum(tmp_path)


def test_importing_it_loads_no_torch():
    code = "import sys, uvgen.model_checksum; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
