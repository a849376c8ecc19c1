"""How every stage script and the ``prnet`` command start and fail: :func:`run`.

A stage's ``if __name__ == "__main__":`` line is ``run(main)``. Then

* an error is **one line** on stderr naming what to fix, and the exit status is non-zero::

      error: data/synth/x.mat: Pose_Para: wrong shape (1, 6), expected (1, 7)
      error: params.yaml: train_common.epochs: expected an integer, got 2.7
      error: No space left on device: data/uv/.train.h5.tmp
      error: data/uv/train.h5: not a readable HDF5 file (file signature not found)

  (bad input data: :class:`~uvgen.formats.errors.DataError`; configuration:
  :class:`~pipeline.config.ConfigError`; missing files, permissions, a full disk, a corrupt HDF5
  file; Ctrl-C prints ``interrupted`` and exits 130). Anything else is a bug: still one line, with
  the exception's type, and a hint to rerun with ``--debug``;
* ``--debug`` (anywhere on the command line; removed before ``main`` sees it) or the environment
  variable ``PRNET_DEBUG=1`` lets the exception through with its full traceback;
* a :class:`~uvgen.formats.errors.DataWarning` (an unusual variant of a field the pipeline does not
  use) is one ``warning:`` line;
* the process dies with its parent (``uvgen.lifetime.die_with_parent``, when that module is
  present), so ``kill -9`` of ``dvc`` does not leave a stage writing.

Exit statuses: 0 success, 1 error, 2 usage (argparse), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

DEBUG_FLAG = "--debug"
DEBUG_ENV = "PRNET_DEBUG"
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

def debug_requested(argv: Sequence[str] | None = None) -> bool:
    """Whether ``--debug`` is among ``argv`` or ``PRNET_DEBUG`` is set to a true value."""
    flag = os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")
    return flag or (argv is not None and DEBUG_FLAG in argv)


def _display(path: Any) -> str:
    if isinstance(path, bytes):
        path = path.decode(errors="replace")
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe(exc: BaseException) -> str:
    """One line saying what went wrong and where (no ``error:`` prefix)."""
    from pipeline.typed_yaml import ConfigError
    from uvgen.formats.errors import DataError, StageError

    if isinstance(exc, StageError):
        return _one_line(str(exc))
    if isinstance(exc, DataError):
        where = _display(exc.path) if exc.field is None else f"{_display(exc.path)}: {exc.field}"
        return _one_line(f"{where}: {exc.reason}")
    if isinstance(exc, ConfigError):
        return _one_line(str(exc))
    if isinstance(exc, OSError):
        # The file comes with the error (uvgen.atomic.naming_errors, uvgen.h5open.open_h5 and
        # Python's own open() set it); none is looked for elsewhere.
        where = _display(exc.filename) if exc.filename is not None else None
        text = str(exc)
        if exc.errno == errno.ENOSPC or "No space left on device" in text or "errno = 28," in text:
            # (h5py reports a full disk in its message: "... errno = 28, error message =
            # 'No space ...'")
            return f"No space left on device: {where or '(path unknown; rerun with --debug)'}"
        if exc.errno == errno.EDQUOT:
            return f"Disk quota exceeded: {where or '(path unknown; rerun with --debug)'}"
        if isinstance(exc, FileNotFoundError):
            return f"{where}: no such file or directory" if where else _one_line(str(exc))
        if isinstance(exc, PermissionError):
            return f"{where}: permission denied" if where else _one_line(str(exc))
        if isinstance(exc, IsADirectoryError):
            return f"{where}: is a directory, expected a file" if where else _one_line(str(exc))
        if isinstance(exc, NotADirectoryError):
            return f"{where}: not a directory" if where else _one_line(str(exc))
        reason = exc.strerror or str(exc)
        return _one_line(f"{where}: {reason}" if where else reason)
    if isinstance(exc, MemoryError):
        return "out of memory (try fewer workers or a smaller batch; --debug shows where)"
    text = _one_line(str(exc))
    return (
        f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    ) + f" (unexpected; rerun with {DEBUG_FLAG} or {DEBUG_ENV}=1 for the traceback)"


def _format_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    from uvgen.formats.errors import DataWarning

    stream = file if file is not None else sys.stderr
    if isinstance(message, DataWarning):
        where = (
            _display(message.path)
            if message.field is None
            else f"{_display(message.path)}: {message.field}"
        )
        text = f"warning: {where}: {message.reason}"
    else:
        text = f"warning: {category.__name__}: {message}"
    tqdm_module = sys.modules.get("tqdm")
    try:
        if tqdm_module is not None and getattr(tqdm_module.tqdm, "_instances", None):
            tqdm_module.tqdm.write(_one_line(text), file=stream)  # above the progress bar
        else:
            stream.write(_one_line(text) + "\n")
    except OSError:
        pass


def _close_progress_bars() -> None:
    """End progress bars left open by the exception, so the error starts on a line of its own."""
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is None:
        return
    for bar in list(getattr(tqdm_module.tqdm, "_instances", ())):
        with contextlib.suppress(Exception):  # best effort
            bar.close()


def _usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    """argparse's usage error as one line (status 2, as argparse's own)."""
    parser.exit(2, f"error: {parser.prog}: {_one_line(message)} (see --help)\n")


def die_with_parent_hook() -> None:
    """Make the process die with its parent when ``uvgen.lifetime.die_with_parent`` exists."""
    try:
        from uvgen.lifetime import die_with_parent  # type: ignore[import-not-found]
    except ImportError:
        return
    die_with_parent()


def run(
    main: Callable[[list[str]], Any],
    argv: Sequence[str] | None = None,
    *,
    with_parent: bool = True,
    stderr: TextIO | None = None,
) -> NoReturn:
    """Call ``main(argv)`` (default ``sys.argv[1:]``, ``--debug`` removed) and exit: its return
    value as the status (None = 0), or one ``error:`` line and a non-zero status (module docstring).
    ``with_parent``: die with the parent process (stages; not needed for an interactive command)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(args)
    args = [a for a in args if a != DEBUG_FLAG]
    stream = stderr if stderr is not None else sys.stderr
    if with_parent:
        die_with_parent_hook()
    if not debug:
        warnings.showwarning = _format_warning
    usage_error = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _usage_error  # type: ignore[method-assign]
    try:
        status = main(args)
    except SystemExit as exc:
        if isinstance(exc.code, str) and not debug:  # sys.exit("message"): the same one-line form
            _close_progress_bars()
            print(f"error: {_one_line(exc.code)}", file=stream)
            sys.exit(EXIT_ERROR)
        raise  # argparse usage errors (2) and numeric exits keep their status
    except KeyboardInterrupt:
        if debug:
            raise
        _close_progress_bars()
        print("error: interrupted", file=stream)
        sys.exit(EXIT_INTERRUPTED)
    except BaseException as exc:  # noqa: BLE001 - every error ends as one line
        if debug:
            raise
        _close_progress_bars()
        print(f"error: {describe(exc)}", file=stream)
        sys.exit(EXIT_ERROR)
    finally:
        argparse.ArgumentParser.error = usage_error  # type: ignore[method-assign]
    sys.exit(status if isinstance(status, int) else 0)
