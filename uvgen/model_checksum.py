"""The identity of a morphable-model folder: one digest over its three BFM files (torch-free).

The UV files record it (attribute ``model_checksum``), the synthetic sets their resumable
settings, and a baseline checks it against the UV file it trains or predicts on.
"""

from __future__ import annotations

from pathlib import Path

from uvgen.resumable import file_digest

MODEL_FILES = ("BFM.mat", "BFM_UV.mat", "BFM_info.mat")


def model_checksum(model_dir: Path) -> str:
    """SHA-256 (hex) over the bytes of ``model_dir``'s ``BFM.mat``, ``BFM_UV.mat`` and
    ``BFM_info.mat``, in that order."""
    d = Path(model_dir)
    return file_digest(*(d / name for name in MODEL_FILES))
