"""DataError / DataWarning name the file and the field; read_whole_file turns read failures into
a DataError naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uvgen.formats.errors import DataError, DataWarning, read_whole_file, warn_data


def test_messages_name_file_and_field(tmp_path: Path) -> None:
    err = DataError(tmp_path / "a.mat", "Pose_Para", "expected shape (1, 7)")
    assert str(err) == f"{tmp_path / 'a.mat'} [field 'Pose_Para']: expected shape (1, 7)"
    assert isinstance(err, ValueError) and err.field == "Pose_Para"
    assert str(DataError("b.npy", None, "missing file")) == "b.npy: missing file"
    with pytest.warns(DataWarning, match=r"c.mat \[field 'pt2d'\]: shape \(2, 23\)"):
        warn_data("c.mat", "pt2d", "shape (2, 23)")


def test_read_whole_file(tmp_path: Path) -> None:
    good = tmp_path / "good.npy"
    np.save(good, np.arange(3))
    np.testing.assert_array_equal(read_whole_file(good, np.load, ".npy file"), np.arange(3))
    with pytest.raises(DataError, match="absent.npy: missing file"):
        read_whole_file(tmp_path / "absent.npy", np.load, ".npy file")
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not an array")
    with pytest.raises(DataError, match=r"bad.npy: cannot read .npy file \(\w+Error: ") as info:
        read_whole_file(bad, np.load, ".npy file")
    assert info.value.path == bad and info.value.field is None
    # Only the listed exception types are translated; others (a bug in the reader) pass through.
    with pytest.raises(ZeroDivisionError):
        read_whole_file(good, lambda p: 1 / 0, "x", errors=ValueError)
