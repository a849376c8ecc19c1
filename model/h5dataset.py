"""The training reader of the UV ground-truth files (``uvgen.h5store`` format): a torch ``Dataset``.

It lives with the training code so that ``uvgen`` (and the dask workers of the UV build) never
import torch, and a change to this reader never re-runs the UV build.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter the files are compressed with)
import numpy as np
import torch
from torch.utils.data import Dataset

from uvgen.h5open import open_h5
from uvgen.h5store import PositionMapFile


def decode_posmap_tensor(stored: np.ndarray, offset: float) -> torch.Tensor:
    """Stored map values -> float32 tensor in crop pixels (the offset added back, in float32).

    Bit-identical to ``uvgen.h5store.decode_posmap``; torch converts float16 to float32 faster
    than numpy (vectorised F16C)."""
    out = torch.from_numpy(np.asarray(stored)).to(torch.float32)
    if offset:
        out.add_(offset)
    return out


class PositionMapDataset(Dataset):
    """Torch dataset of (image, posmap) pairs from a merged file, safe with DataLoader workers.

    Items: image (H,W,3) uint8 tensor and posmap (H,W,3) float32 tensor in crop pixels, raw (any
    normalisation happens on the device). ``indices`` selects a subset of the file's samples.
    The file is validated once here; the HDF5 handle is opened lazily in each process (re-opened
    after a fork) and is never pickled.
    """

    def __init__(self, path: Path, indices: Sequence[int] | np.ndarray | None = None):
        self.path = Path(path)
        with PositionMapFile(self.path) as f:
            n = len(f)
            self.posmap_offset = float(f.attrs["posmap_offset"])
        if indices is None:
            self.indices = np.arange(n, dtype=np.int64)
        else:
            self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
            if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n):
                raise IndexError(f"indices outside [0, {n}) for {self.path}")
        self._f: h5py.File | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _datasets(self) -> tuple[h5py.Dataset, h5py.Dataset]:
        if self._f is None or self._pid != os.getpid():
            # A handle inherited through fork belongs to the parent: drop it, open our own.
            self._f = open_h5(self.path)
            self._pid = os.getpid()
            self._images, self._posmaps = self._f["images"], self._f["posmaps"]
        return self._images, self._posmaps

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = int(self.indices[k])
        images, posmaps = self._datasets()
        return torch.from_numpy(images[i]), decode_posmap_tensor(posmaps[i], self.posmap_offset)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_f", "_pid", "_images", "_posmaps"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._f = None
        self._pid = None

    def close(self) -> None:
        if self._f is not None and self._pid == os.getpid():
            self._f.close()
        self._f = None
        self._pid = None
