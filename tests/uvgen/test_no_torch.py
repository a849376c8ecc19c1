"""uvgen never imports torch: the UV build and its dask workers stay light, and a change to the
training reader (model.h5dataset) never touches the UV stages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]

IMPORT_ALL = """
import importlib, pkgutil, sys
import uvgen
names = sorted(m.name for m in pkgutil.walk_packages(uvgen.__path__, "uvgen."))
for name in names:
    importlib.import_module(name)
from uvgen.cluster import dask_client  # the dask client too (distributed registers torch lazily)
import distributed
print(len(names))
print(sorted(m for m in sys.modules if m == "torch" or m.startswith("torch.")))
"""


def test_importing_every_uvgen_module_does_not_import_torch():
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], cwd=PROJECT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    count, torch_modules = done.stdout.strip().splitlines()[-2:]
    assert int(count) >= 20  # every module was imported (formats, synth and the build included)
    assert torch_modules == "[]"


def test_the_check_sees_torch_when_it_is_imported():
    """The control: the same probe does report torch once something imports it."""
    code = IMPORT_ALL.replace("import distributed", "import distributed, model.h5dataset")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "'torch'" in done.stdout.strip().splitlines()[-1]
