"""uvgen.resumable: the output lock (one build at a time, released when its holder dies, however it
dies) and work folders that are cleared only when the project made them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from uvgen.resumable import (
    MANIFEST,
    BuildLockedError,
    ForeignDirectoryError,
    exclusive_lock,
    lock_path_for,
    prepare_resumable_dir,
    remove_resumable_dir,
    unique_tmp_name,
)


def test_second_lock_is_refused_naming_output_and_holder(tmp_path: Path):
    out = tmp_path / "train.h5"
    with exclusive_lock(out):
        assert lock_path_for(out).read_text().strip() == str(os.getpid())
        with pytest.raises(BuildLockedError) as err, exclusive_lock(out):
            pass
        assert str(err.value) == f"another build of {out} is running (pid {os.getpid()})"
    assert not lock_path_for(out).exists()  # released and removed
    with exclusive_lock(out):  # free again
        pass


def test_lock_of_a_killed_holder_is_free(tmp_path: Path):
    out = tmp_path / "train.h5"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from uvgen.resumable import exclusive_lock\n"
            "with exclusive_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(60)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BuildLockedError, match=f"pid {holder.pid}"), exclusive_lock(out):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path_for(out).exists()  # left behind by the kill, but not held
    with exclusive_lock(out):
        assert lock_path_for(out).read_text().strip() == str(os.getpid())


def test_unique_temporary_names(tmp_path: Path):
    names = {unique_tmp_name(tmp_path / "x.h5") for _ in range(50)}
    assert len(names) == 50
    assert all(
        n.parent == tmp_path and n.name.startswith(".x.h5.") and n.name.endswith(".tmp")
        for n in names
    )


def test_foreign_folder_is_never_cleared(tmp_path: Path):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "thesis.tex").write_text("years of work")
    with pytest.raises(ForeignDirectoryError) as err:
        prepare_resumable_dir(own, {"count": 3})
    assert str(own) in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in own.iterdir()) == ["thesis.tex"]
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(ForeignDirectoryError):
        prepare_resumable_dir(not_a_dir, {"count": 3})


def test_project_folder_resumes_or_is_cleared(tmp_path: Path):
    out = tmp_path / "set"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_resumable_dir(empty, {"count": 3}) is False  # an empty folder may be taken
    assert prepare_resumable_dir(out, {"count": 3}) is False
    (out / "AFW").mkdir()
    (out / "AFW" / "a.mat").write_text("sample")
    assert prepare_resumable_dir(out, {"count": 3}) is True
    assert (out / "AFW" / "a.mat").exists()
    assert prepare_resumable_dir(out, {"count": 4}) is False  # other settings: cleared
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST]


def test_interrupted_clear_leaves_a_folder_still_marked(tmp_path: Path, monkeypatch):
    out = tmp_path / "set"
    prepare_resumable_dir(out, {"count": 3})
    for k in range(3):
        (out / f"s{k}.mat").write_text("x")
    real_unlink = Path.unlink
    calls = []

    def dying_unlink(self, *a, **kw):
        calls.append(self.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_unlink(self, *a, **kw)

    monkeypatch.setattr(Path, "unlink", dying_unlink)
    with pytest.raises(KeyboardInterrupt):
        prepare_resumable_dir(out, {"count": 4})
    monkeypatch.undo()
    assert (out / MANIFEST).exists()
    assert prepare_resumable_dir(out, {"count": 4}) is False  # still the project's: cleared now
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST]


def test_interrupted_clear_is_never_resumed(tmp_path: Path, monkeypatch):
    """A clear for other settings killed half-way, then a run with the old settings: the folder
    is cleared again, never resumed with part of its files gone (issue 23 item 3)."""
    out = tmp_path / "set"
    prepare_resumable_dir(out, {"count": 3})
    for k in range(3):
        (out / f"s{k}.mat").write_text("x")
    real_unlink = Path.unlink

    def dying_unlink(self, *a, **kw):
        if self.name == "s1.mat":
            raise KeyboardInterrupt
        return real_unlink(self, *a, **kw)

    monkeypatch.setattr(Path, "unlink", dying_unlink)
    with pytest.raises(KeyboardInterrupt):
        prepare_resumable_dir(out, {"count": 4})
    monkeypatch.undo()
    assert prepare_resumable_dir(out, {"count": 3}) is False
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST]


def test_remove_resumable_dir_killed_half_way_leaves_nothing_reusable(tmp_path, monkeypatch):
    out = tmp_path / "work"
    prepare_resumable_dir(out, {"count": 3})
    for k in range(3):
        (out / f"s{k}.mat").write_text("x")
    real_unlink = Path.unlink

    def dying_unlink(self, *a, **kw):
        if self.name == "s1.mat":
            raise KeyboardInterrupt
        return real_unlink(self, *a, **kw)

    monkeypatch.setattr(Path, "unlink", dying_unlink)
    with pytest.raises(KeyboardInterrupt):
        remove_resumable_dir(out)
    monkeypatch.undo()
    assert prepare_resumable_dir(out, {"count": 3}) is False
    remove_resumable_dir(out)
    assert not out.exists()
