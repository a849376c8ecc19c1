"""Resumable work directories: a settings manifest decides whether finished work is reused, and file digests."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

MANIFEST = ".stage_params.json"


def file_digest(*paths: Path) -> str:
    """SHA-256 over the bytes of the given files, in order."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def prepare_resumable_dir(out_dir: Path, settings: dict[str, Any]) -> bool:
    """Make ``out_dir`` ready for a run with ``settings``; returns True when resuming.

    A directory left by an interrupted run with the same settings is kept (its finished work is
    reused); one made with other settings is cleared, so stale samples never mix with new ones.
    """
    out_dir = Path(out_dir)
    manifest = out_dir / MANIFEST
    wanted = json.dumps(settings, sort_keys=True, default=str)
    if manifest.exists() and manifest.read_text() == wanted:
        return True
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    manifest.write_text(wanted)
    return False
