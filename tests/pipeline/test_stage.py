"""pipeline.stage.run: one line per error class, the exit statuses, --debug, warnings."""

from __future__ import annotations

import errno
import os
import warnings

import pytest

from pipeline.stage import EXIT_INTERRUPTED, describe, run
from pipeline.typed_yaml import ConfigError
from uvgen.atomic import atomic_output
from uvgen.formats.errors import DataError, DataWarning
from uvgen.h5open import open_h5


def _run(capsys, main, argv=()) -> tuple[int, list[str]]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run(main, list(argv), with_parent=False)
    return info.value.code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_success_and_status(capsys) -> None:
    seen = []
    assert _run(capsys, lambda argv: seen.append(argv)) == (0, [])
    assert seen == [[]]
    assert _run(capsys, lambda argv: 3)[0] == 3
    _run(capsys, lambda argv: seen.append(argv), ["a", "--debug", "b"])
    assert seen[-1] == ["a", "b"]  # --debug is the wrapper's, not main's


def _raiser(exc: BaseException):
    def main(argv):
        raise exc

    return main


@pytest.mark.parametrize(
    "exc, line",
    [
        (
            DataError("data/synth/x.mat", "Pose_Para", "expected 7 values, got 6"),
            "error: data/synth/x.mat: Pose_Para: expected 7 values, got 6",
        ),
        (
            DataError("data/uv/train.h5", None, "missing file"),
            "error: data/uv/train.h5: missing file",
        ),
        (
            ConfigError("params.yaml", "train.epochs", "expected an integer, got 2.7"),
            "error: params.yaml: train.epochs: expected an integer, got 2.7",
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/nope/a.mat"),
            "error: /nope/a.mat: no such file or directory",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/root/x"),
            "error: /root/x: permission denied",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/uv/x.h5"),
            "error: No space left on device: /data/uv/x.h5",
        ),
        (MemoryError(), "error: out of memory"),
        (
            OSError(
                "Can't write data (file write failed: time = x, filename = 'a.h5', errno = 28, "
                "error message = "
                "'No space left on device')"
            ),
            "error: No space left on device: ",
        ),
    ],
)
def test_error_classes_are_one_line(capsys, exc, line) -> None:
    code, lines = _run(capsys, _raiser(exc))
    assert code == 1 and len(lines) == 1 and lines[0].startswith(line)


def test_unexpected_error_hints_at_debug(capsys) -> None:
    code, lines = _run(capsys, _raiser(ZeroDivisionError("division by zero\nsecond line")))
    assert code == 1 and len(lines) == 1
    assert (
        lines[0].startswith("error: ZeroDivisionError: division by zero second line")
        and "--debug" in lines[0]
    )


def test_full_disk_names_the_file_being_written(capsys, tmp_path) -> None:
    """A write that fails for room (as on a full disk: ENOSPC from ``write``, no file name in
    the error) inside the project's atomic writer names the file being written."""
    target = tmp_path / "out.bin"

    def main(argv):
        with atomic_output(target) as handle:
            handle.write(b"x")
            raise OSError(errno.ENOSPC, "No space left on device")

    code, lines = _run(capsys, main)
    assert code == 1 and lines == [f"error: No space left on device: {target}"]
    assert not list(tmp_path.iterdir())  # no temporary file left


def test_an_error_without_a_file_name_is_not_guessed(capsys) -> None:
    def main(argv):
        raise OSError(errno.ENOSPC, "No space left on device")

    code, lines = _run(capsys, main)
    assert lines == ["error: No space left on device: (path unknown; rerun with --debug)"]


def test_corrupt_hdf5_names_the_file(capsys, tmp_path) -> None:
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x00" * 4096)
    code, lines = _run(capsys, lambda argv: open_h5(bad))
    assert code == 1 and lines == [
        f"error: {bad}: not a readable HDF5 file (file signature not found)"
    ]
    code, lines = _run(capsys, lambda argv: open_h5(tmp_path / "none.h5"))
    assert lines == [f"error: {tmp_path / 'none.h5'}: no such file or directory"]
    code, lines = _run(capsys, lambda argv: open_h5(tmp_path))
    assert lines == [f"error: {tmp_path}: is a directory, expected a file"]


def test_keyboard_interrupt(capsys) -> None:
    assert _run(capsys, _raiser(KeyboardInterrupt())) == (EXIT_INTERRUPTED, ["error: interrupted"])


def test_sys_exit_message_and_usage_errors(capsys) -> None:
    assert _run(capsys, _raiser(SystemExit("uvgen train: 2 bad samples\nsee x.csv"))) == (
        1,
        ["error: uvgen train: 2 bad samples see x.csv"],
    )
    assert _run(capsys, _raiser(SystemExit(2)))[0] == 2


def test_debug_flag_and_environment(monkeypatch) -> None:
    with pytest.raises(DataError):
        run(_raiser(DataError("x.mat", "f", "bad")), ["--debug"], with_parent=False)
    monkeypatch.setenv("PRNET_DEBUG", "1")
    with pytest.raises(KeyboardInterrupt):
        run(_raiser(KeyboardInterrupt()), [], with_parent=False)
    monkeypatch.setenv("PRNET_DEBUG", "0")
    with pytest.raises(SystemExit):
        run(_raiser(KeyboardInterrupt()), [], with_parent=False)


def test_data_warning_is_one_line(capsys) -> None:
    def main(argv):
        warnings.warn(
            DataWarning("AFLW/image01198.mat", "pt2d", "wrong shape (2, 23)"), stacklevel=1
        )

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, lines = _run(capsys, main)
    assert code == 0 and lines == ["warning: AFLW/image01198.mat: pt2d: wrong shape (2, 23)"]


def test_describe_relative_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        describe(DataError(tmp_path / "a" / "b.mat", "x", "bad"))
        == f"{os.path.join('a', 'b.mat')}: x: bad"
    )


def test_usage_error_is_one_line(capsys) -> None:
    import argparse

    def main(argv):
        parser = argparse.ArgumentParser(prog="make_uv")
        parser.add_argument("split", choices=["train", "test"])
        parser.parse_args(argv)

    code, lines = _run(capsys, main, ["bogus"])
    assert (
        code == 2
        and len(lines) == 1
        and lines[0].startswith("error: make_uv: argument split: invalid choice")
    )
