"""Which torch device a run uses: one rule for training, inference and the predict stage."""

from __future__ import annotations

import torch


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """'auto' -> CUDA when available, else CPU; with ``local_rank`` (a DDP process) 'cuda' ->
    'cuda:<local_rank>'; anything else as given. A CUDA device without CUDA -> ValueError."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and local_rank is not None:
        spec = f"cuda:{local_rank}"
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {spec!r} asked for, but CUDA is not available")
    return device
