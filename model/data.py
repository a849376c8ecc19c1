"""Training data: resumable sample order, DataLoaders over the UV HDF5 file, device conversion.

Sample order: the order of epoch ``e`` is a pure function of ``(seed, e)`` (a torch.randperm from a
generator seeded with both), cut into fixed batches of ``batch_size`` indices (the last partial
batch is dropped, so every epoch and every rank has the same number of steps). Under
DistributedDataParallel rank r of W takes every W-th batch of that order (``batches[r::W]``, the
shortest rank's count), so the W ranks together see exactly the batches one process would see.
Resuming at step k of an epoch skips the first k batches: no sampler state needs saving.

Device conversion: the loader yields raw uint8 crops (B, H, W, 3) and float32 maps (B, H, W, 3) in
crop pixels (from :class:`model.h5dataset.PositionMapDataset`); :func:`to_device` moves them
(pinned, non-blocking on CUDA) and :func:`prepare_batch` turns them into network tensors (B, 3, H,
W): images float32 in [0, 1], maps in crop pixels, optionally augmented on the device
(model.augment) and in channels-last memory format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from model.augment import AugmentConfig, augment_batch
from model.h5dataset import PositionMapDataset
from uvgen.formats.errors import DataError
from uvgen.h5store import PositionMapFile, UVData
from uvgen.weight_classes import EYE_NOSE_MOUTH, FACE, KEYPOINT, OUTSIDE


def derived_seed(*parts: int | str) -> int:
    """A 63-bit seed from any tuple of ints/strings (stable across processes and platforms)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The sample order (n,) int64 of ``epoch``: a function of (seed, epoch) only."""
    g = torch.Generator().manual_seed(derived_seed("order", seed, epoch))
    return torch.randperm(n, generator=g)


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample indices 0..n-1 into (train, validation), sorted; a seeded random holdout.

    ``round(val_fraction * n)`` samples go to validation (at least 1 when the fraction is > 0 and
    n > 1). Returns int64 arrays.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n > 1:
        n_val = max(n_val, 1)
    rng = np.random.default_rng(derived_seed("holdout", seed))
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of dataset positions for one rank: deterministic per (seed, epoch), resumable.

    Call :meth:`set_epoch` before iterating; ``start_step`` skips the batches this rank already
    trained on in that epoch. ``len()`` is the number of batches left in the current epoch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_step = 0, 0

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch and rank (partial batches dropped)."""
        return (self.n // self.batch_size) // self.world_size

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(f"start_step {start_step} outside [0, {self.steps_per_epoch}]")
        self.epoch, self.start_step = epoch, start_step

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch`` for this rank, from step 0."""
        perm = epoch_permutation(self.n, self.seed, epoch)
        n_batches = self.n // self.batch_size
        batches = perm[: n_batches * self.batch_size].view(n_batches, self.batch_size)
        mine = batches[self.rank :: self.world_size][: self.steps_per_epoch]
        return mine.tolist()

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.epoch_batches(self.epoch)[self.start_step :]

    def __len__(self) -> int:
        return self.steps_per_epoch - self.start_step


class ShardSampler(Sampler[int]):
    """Every ``world_size``-th position from ``rank`` (no padding, no shuffling): evaluation."""

    def __init__(self, n: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, n, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_loader(
    dataset: PositionMapDataset,
    *,
    batch_sampler: Sampler | None = None,
    batch_size: int = 1,
    sampler: Sampler | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader of (uint8 images (B,H,W,3), float32 maps (B,H,W,3)).

    Workers (if any) are persistent and prefetch 4 batches each; each opens the HDF5 file itself.
    """
    # A private generator: creating the loader's iterator then leaves the global torch RNG alone.
    kwargs: dict = {
        "num_workers": num_workers,
        "pin_memory": pin_memory,
        "generator": torch.Generator().manual_seed(0),
    }
    if num_workers > 0:
        kwargs.update(persistent_workers=True, prefetch_factor=4)
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **kwargs)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, shuffle=False, **kwargs)


@dataclass(frozen=True)
class DataSplit:
    """Training and validation datasets and the UV data (weight mask, key points) of the file."""

    train: PositionMapDataset
    val: PositionMapDataset | None
    uv: UVData


def load_split(
    train_file: Path, val_file: Path | None, val_fraction: float, seed: int
) -> DataSplit:
    """Open the training file; validation = ``val_file`` if given (of the same UV size, else
    DataError naming it), else a held-out fraction."""
    with PositionMapFile(train_file) as f:
        n, uv, size = len(f), f.uv, f.uv_size
    if val_file is not None:
        with PositionMapFile(val_file) as f:
            if f.uv_size != size:
                raise DataError(
                    val_file,
                    "uv_size",
                    f"maps are {f.uv_size}x{f.uv_size}, the training file's {size}x{size}",
                )
        return DataSplit(PositionMapDataset(train_file), PositionMapDataset(val_file), uv)
    train_idx, val_idx = split_indices(n, val_fraction, seed)
    val = PositionMapDataset(train_file, val_idx) if len(val_idx) else None
    return DataSplit(PositionMapDataset(train_file, train_idx), val, uv)


def to_device(
    images: torch.Tensor, maps: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move a raw batch to ``device`` (non-blocking: use pinned loader memory on CUDA)."""
    non_blocking = device.type == "cuda"
    return images.to(device, non_blocking=non_blocking), maps.to(device, non_blocking=non_blocking)


def prepare_batch(
    images: torch.Tensor,
    maps: torch.Tensor,
    *,
    augment: AugmentConfig | None = None,
    generator: torch.Generator | None = None,
    channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw batch on its device -> (images (B,3,H,W) float32 in [0,1], maps (B,3,H,W) crop pixels).

    images: (B,H,W,3) uint8; maps: (B,H,W,3) float crop pixels. With ``augment`` the batch goes
    through :func:`model.augment.augment_batch` using ``generator``.
    """
    if augment is not None:
        x, y = augment_batch(images, maps, generator, augment)
    else:
        x = images.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        y = maps.permute(0, 3, 1, 2).to(torch.float32)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt), y.contiguous(memory_format=fmt)


def toy_disc(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(u, v, r2) of a ``size``-sided toy UV map: pixel columns and rows (float64) and the squared
    radius from the centre in units of the face disc's radius (0.45 * size)."""
    c = (size - 1) / 2.0
    vv, uu = np.mgrid[0:size, 0:size].astype(np.float64)
    return uu, vv, ((uu - c) ** 2 + (vv - c) ** 2) / (0.45 * size) ** 2


def toy_uv_data(size: int) -> UVData:
    """The toy UV layout: a disc-shaped face (r2 <= 1), weight classes face / eye_nose_mouth
    (inner disc, r2 <= 0.3) / keypoint (68 key points on a 9 x 8 grid) / outside."""
    _, _, r2 = toy_disc(size)
    face = r2 <= 1.0
    grid = np.linspace(0.3 * size, 0.7 * size, 9)
    kx, ky = np.meshgrid(grid, grid[:8])
    kpt_uv = np.stack([kx.ravel()[:68], ky.ravel()[:68]]).round().astype(np.int32)
    classes = np.where(face, FACE, OUTSIDE).astype(np.uint8)
    classes[r2 <= 0.3] = EYE_NOSE_MOUTH
    classes[kpt_uv[1], kpt_uv[0]] = KEYPOINT
    return UVData(
        weight_class=classes,
        face_mask=face,
        kpt_uv=kpt_uv,
        face_ind=np.flatnonzero(face).astype(np.int64),
    )


def write_toy_file(path: Path, n: int, size: int = 64, seed: int = 0, split: str = "train") -> Path:
    """A small learnable UV file in the real layout, for tests and benchmarks (not a face).

    UV data: a disc-shaped face mask, weight classes face / eye_nose_mouth (inner disc) / keypoint
    (68 key points on a grid) / outside. Sample k: a random rotation (+-30 deg), scale (0.7..0.9)
    and shift (+-10 %) of the UV grid gives the map (x, y = the moved UV pixel, z = a bump times
    the scale) and the crop is a texture of the UV coordinates seen through the same transform
    (noise outside).
    """
    from uvgen.h5codec import StorageOptions
    from uvgen.h5store import SampleRecord
    from uvgen.h5write import merge_shards, write_shard

    path = Path(path)
    rng = np.random.default_rng(seed)
    uu, vv, r2 = toy_disc(size)
    c = (size - 1) / 2.0
    uv = toy_uv_data(size)
    images = np.empty((n, size, size, 3), np.uint8)
    maps = np.empty((n, size, size, 3), np.float32)
    records = []
    for k in range(n):
        ang, s = np.radians(rng.uniform(-30, 30)), rng.uniform(0.7, 0.9)
        t = rng.uniform(-0.1, 0.1, 2) * size
        lin = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        off = np.array([c, c]) - lin @ np.array([c, c]) + t
        maps[k, ..., 0] = lin[0, 0] * uu + lin[0, 1] * vv + off[0]
        maps[k, ..., 1] = lin[1, 0] * uu + lin[1, 1] * vv + off[1]
        maps[k, ..., 2] = s * 0.2 * size * np.clip(1.0 - r2, 0.0, None)
        inv = np.linalg.inv(lin)  # crop pixel -> UV pixel seen there
        qu = inv[0, 0] * (uu - off[0]) + inv[0, 1] * (vv - off[1])
        qv = inv[1, 0] * (uu - off[0]) + inv[1, 1] * (vv - off[1])
        inside = ((qu - c) ** 2 + (qv - c) ** 2) / (0.45 * size) ** 2 <= 1.0
        tex = np.stack([qu / size, qv / size, 0.5 + 0.4 * np.sin(qu / 3.0) * np.cos(qv / 3.0)], -1)
        img = np.where(inside[..., None], tex, rng.uniform(0, 0.3, (size, size, 3)))
        images[k] = np.clip(img * 255, 0, 255).astype(np.uint8)
        transform = np.eye(3)
        records.append(SampleRecord.without_fit(f"toy_{k:05d}", "toy", transform))
    shard = path.with_name(path.name + ".shard000.h5")
    write_shard(shard, images, maps, records, StorageOptions(posmap_dtype="float32"))
    merge_shards(
        [shard],
        path,
        uv,
        {"model_checksum": "toy", "params": {"seed": seed, "n": n}, "split": split},
    )
    shard.unlink()
    return path
