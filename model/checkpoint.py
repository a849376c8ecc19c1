"""Training checkpoints and final weights: atomic writes, random states, progress counters.

A checkpoint (``torch.save`` dict, loadable with ``weights_only=True``) holds:

* ``model``, ``optimizer``, ``scheduler``: state dicts (the bare PRNet's, never a DDP/compiled
  wrapper's, so any run can load any checkpoint);
* ``progress``: :class:`Progress` as a dict (epoch, step in epoch, global step, the epoch's running
  loss sum and the per-epoch history rows written so far);
* ``rng``: the python, numpy, torch-CPU and (if any) CUDA random states (:func:`rng_state`);
* ``fingerprint``: the hash of everything that changes the numbers (config + input data); a
  checkpoint with another fingerprint is never resumed from;
* ``meta``: PRNet ``width`` / ``in_size`` and the config, for humans and for loading.

The training sample order and the augmentation draws are functions of (seed, epoch, step) (see
model.data and model.train), so they need no saved state. Writes go to a temporary name in the
same directory, are fsynced and renamed with ``os.replace``: a kill leaves the previous checkpoint
intact, and a full disk is one error naming the file (the free space is checked before writing).
"""

from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.prnet import PRNet
from uvgen.atomic import atomic_write_bytes
from uvgen.formats.errors import DataError, check_not_lfs_pointer

FORMAT_VERSION = 1


@dataclass
class Progress:
    """Where a run stands. ``step_in_epoch`` = batches already trained in ``epoch`` (0-based epoch).

    ``loss_sum``: sum of this rank's per-step training losses so far in ``epoch`` (float64).
    ``history``: one dict per finished epoch (the rows of the metrics table).
    """

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    loss_sum: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def rng_state() -> dict[str, Any]:
    """The global random states (python, numpy, torch CPU, every CUDA device),
    torch-serialisable."""
    np_state = np.random.get_state(legacy=False)
    state = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(np_state["state"]["key"]).astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (CUDA states only where CUDA is in use)."""
    random.setstate(_as_tuple(state["python"]))
    ns = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": ns["bit_generator"],
            "state": {"key": ns["key"].numpy().astype(np.uint32), "pos": ns["pos"]},
            "has_gauss": ns["has_gauss"],
            "gauss": ns["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        states = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(states)


def _as_tuple(value: Any) -> Any:
    """Lists back to tuples, recursively (random.setstate wants tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` into memory, then written atomically (a temporary name of this call, fsync,
    ``os.replace``; ``uvgen.diskspace.atomic_write_bytes``). The same bytes as saving to a file;
    a full disk raises ``DiskFullError`` ("No space left on device: PATH") before anything is
    written, instead of torch's "enforce fail ... unexpected pos"."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getbuffer())


def save_checkpoint(
    path: Path,
    *,
    model: PRNet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    progress: Progress,
    fingerprint: str,
    meta: dict[str, Any],
) -> None:
    """Write a full training checkpoint atomically (see module docstring)."""
    atomic_torch_save(
        {
            "format_version": FORMAT_VERSION,
            "fingerprint": fingerprint,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "progress": asdict(progress),
            "rng": rng_state(),
            "meta": meta,
        },
        path,
    )


def read_torch_file(path: Path | str, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """``torch.load`` (weights only) of a file the project wrote: a dict. DataError naming the file
    for a Git LFS pointer or a file that is not one (random bytes, a .mat, a pickle of another
    kind); a missing or unreadable file raises OSError."""
    path = Path(path)
    check_not_lfs_pointer(path)
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as exc:  # torch's unpickler raises many kinds, with pages of text
        raise DataError(
            path, None, f"not a PyTorch file of this project ({type(exc).__name__})"
        ) from exc
    if not isinstance(blob, dict):
        raise DataError(
            path, None, f"not a PyTorch file of this project (holds a {type(blob).__name__})"
        )
    return blob


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors on ``map_location``)."""
    ckpt = read_torch_file(path, map_location)
    if ckpt.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported checkpoint format {ckpt.get('format_version')!r}")
    return ckpt


def restore_checkpoint(
    ckpt: dict[str, Any],
    *,
    model: PRNet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> Progress:
    """Load states into model/optimizer/scheduler, restore the random states; return the
    progress."""
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"])
    return Progress(**ckpt["progress"])


def save_weights(path: Path, model: PRNet, meta: dict[str, Any] | None = None) -> None:
    """Final weights for inference:
    ``{"model": state_dict, "width", "in_size", "net_size", "meta"}``, atomic."""
    atomic_torch_save(
        {
            "model": model.state_dict(),
            "width": model.width,
            "in_size": model.in_size,
            "net_size": model.net_size,
            "template": model.template,
            "meta": meta or {},
        },
        path,
    )


def load_weights(path: Path, map_location: torch.device | str = "cpu") -> PRNet:
    """A PRNet (eval mode) from :func:`save_weights` output or a training checkpoint; DataError
    naming the file for anything else (a baseline's weights, a file that is not torch's)."""
    blob = read_torch_file(path, map_location)
    info = blob if "width" in blob else blob.get("meta")
    info = info if isinstance(info, dict) else {}
    if "kind" in info:  # model.baselines.train_baseline.weights_meta
        name = {"3ddfa": "3DDFA", "defa": "DeFA"}.get(info["kind"], str(info["kind"]))
        raise DataError(path, None, f"a {name}-style baseline, not a PRN model")
    if not {"width", "in_size"} <= set(info) or "model" not in blob:
        raise DataError(path, None, "not a PRN weights file or training checkpoint")
    width, in_size = info["width"], info["in_size"]
    net_size = info.get("net_size") or in_size  # absent in files written before net_size existed
    model = PRNet(
        width=int(width),
        in_size=int(in_size),
        net_size=int(net_size),
        template=bool(info.get("template", False)),
    )
    model.load_state_dict(blob["model"])
    return model.to(map_location).eval()
