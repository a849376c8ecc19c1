"""Processes that die with their parent, so that ``kill -9`` of ``dvc`` (or of a stage) never leaves
a stage or its workers running and writing into the next run's files.

* :func:`die_with_parent`: for a stage's main process, called first thing in ``main()``. On Linux
  the kernel sends the process ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``); a
  process whose parent died before the call exits at once. A no-op elsewhere.
* :func:`watch_parent`: a daemon thread that ends the process (``os._exit``) as soon as it has been
  re-parented (its parent died) or an owner process has gone. Used where ``PR_SET_PDEATHSIG`` is
  unreliable: it fires when the *thread* that started the process ends, and dask's nanny starts its
  worker from a helper thread. Also the initializer of process-pool workers
  (``initializer=watch_parent, initargs=(os.getpid(),)``).
* :func:`dask_setup`: the preload hook (``uvgen.lifetime`` in ``preload`` / ``preload_nanny``) that
  starts the watch in a dask nanny and in its worker; the owner is the process that started the
  local cluster (environment variable :data:`OWNER_ENV`).

The chain for a local dask build: dvc dies -> the kernel kills the stage (which also runs the local
cluster's nannies) -> each worker process sees its parent change and exits within
:data:`POLL_SECONDS`. Nannies in processes of their own (``dask nanny`` started by hand with this
preload) exit the same way when their parent dies.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

OWNER_ENV = "PRNET_GT_OWNER_PID"
POLL_SECONDS = 0.25
ORPHAN_EXIT_CODE = 1
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

# (pid, parent) as first seen (this module is imported early by the stages): a parent that dies
# before die_with_parent() runs is noticed by the comparison there.
_FIRST_SEEN = (os.getpid(), os.getppid())


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Make this process die with its parent (see the module docstring). Returns whether the kernel
    will do it (False off Linux). Exits at once when the parent has already died."""
    armed = set_parent_death_signal(sig)
    if (
        armed and _FIRST_SEEN[0] == os.getpid() and os.getppid() != _FIRST_SEEN[1]
    ):  # died before arming
        os._exit(ORPHAN_EXIT_CODE)
    return armed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a dead process not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): kill(0) is all we know
    return state not in ("Z", "X")


def watch_parent(owner_pid: int | None = None, interval: float = POLL_SECONDS) -> threading.Thread:
    """Start a daemon thread that exits the process when its parent changes or ``owner_pid`` dies.
    Returns the thread."""
    parent = os.getppid()

    def orphaned() -> bool:
        return os.getppid() != parent or (owner_pid is not None and not process_alive(owner_pid))

    def watch() -> None:
        while not orphaned():
            time.sleep(interval)
        os._exit(ORPHAN_EXIT_CODE)

    thread = threading.Thread(target=watch, name="watch-parent", daemon=True)
    thread.start()
    return thread


def owner_pid_from_env() -> int | None:
    """The owner recorded in :data:`OWNER_ENV` (None when unset or not a pid)."""
    value = os.environ.get(OWNER_ENV, "")
    return int(value) if value.isdigit() else None


def dask_setup(server: Any = None) -> None:
    """dask preload hook (nanny and worker): exit when the parent or the cluster's owner dies.

    A local cluster's nannies run inside the owner itself (which :func:`die_with_parent` covers):
    nothing to watch there."""
    owner = owner_pid_from_env()
    if owner != os.getpid():
        watch_parent(owner)
