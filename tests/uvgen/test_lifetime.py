"""uvgen.lifetime: a process dies with its parent (kernel signal for a stage, a watch thread for
dask and pool workers), so kill -9 of dvc leaves nothing running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from uvgen.lifetime import process_alive

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's"
)

# A parent that starts a child running CHILD_CODE, reports the child's pid, and waits forever.
PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), flush=True)
time.sleep(120)
"""


def _gone_after_parent_killed(child_code: str, wait: float = 10.0) -> bool:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, child_code], stdout=subprocess.PIPE, text=True
    )
    child = int(parent.stdout.readline())
    try:
        assert process_alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + wait
        while process_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        return not process_alive(child)
    finally:
        if process_alive(child):
            os.kill(child, signal.SIGKILL)


@linux_only
def test_stage_dies_with_its_parent():
    assert _gone_after_parent_killed(
        "import os, time\nfrom uvgen.lifetime import die_with_parent\n"
        "assert die_with_parent()\nprint(os.getpid(), flush=True)\ntime.sleep(60)"
    )


def test_watched_worker_dies_with_its_parent():
    assert _gone_after_parent_killed(
        "import os, time\nfrom uvgen.lifetime import watch_parent\n"
        "watch_parent()\nprint(os.getpid(), flush=True)\ntime.sleep(60)"
    )


def test_unwatched_process_survives_its_parent():
    """The control: without either, the child outlives its killed parent (the bug)."""
    assert not _gone_after_parent_killed(
        "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(30)", wait=1.5
    )


def test_watch_ends_the_process_when_its_owner_dies():
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    code = (
        "import sys, time\nfrom uvgen.lifetime import watch_parent\n"
        "watch_parent(int(sys.argv[1]))\nprint('watching', flush=True)\ntime.sleep(60)"
    )
    watcher = subprocess.Popen(
        [sys.executable, "-c", code, str(owner.pid)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert watcher.stdout.readline().strip() == "watching"
        owner.kill()
        owner.wait()
        assert watcher.wait(timeout=10) != 0
    finally:
        for p in (owner, watcher):
            if p.poll() is None:
                p.kill()
                p.wait()


def test_process_alive():
    assert process_alive(os.getpid())
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    assert not process_alive(int(done.stdout))
