"""Samples, UV data and built files shared by the tests of uvgen.h5codec, h5write and h5store."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from uvgen.h5codec import StorageOptions
from uvgen.h5store import SampleRecord, UVData
from uvgen.h5write import merge_shards, write_shard

N = 12


ATTRS = {
    "model_checksum": "sha256:abc",
    "params": {"crop": {"scale": 1.5}, "seed": 3},
    "split": "test",
}


def random_record(
    rng: np.random.Generator,
    name: str,
    source: str,
    shape_scale: float = 1e5,
    max_yaw: float = 99.0,
    landmarks: bool = True,
) -> SampleRecord:
    """A record of random metadata from ``rng`` (drawn field by field, in order; yaw in
    [-max_yaw, max_yaw]); with ``landmarks`` a random (68, 3) float32 ``landmarks_gt`` extra, drawn
    last. Also the metadata of benchmarks/bench_h5_compression.py."""
    return SampleRecord(
        name=name,
        source=source,
        shape_para=rng.normal(size=199) * shape_scale,
        exp_para=rng.normal(size=29),
        pose_para=rng.normal(size=7),
        transform=rng.normal(size=(3, 3)),
        jitter=rng.random(3),
        yaw_deg=float(rng.uniform(-max_yaw, max_yaw)),
        pitch_deg=float(rng.uniform(-30, 30)),
        roll_deg=float(rng.uniform(-30, 30)),
        extras={"landmarks_gt": rng.normal(size=(68, 3)).astype(np.float32)} if landmarks else {},
    )


def samples(n: int = N, seed: int = 0, lo: float = -127.9, hi: float = 383.9):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 256, 256, 3), dtype=np.uint8)
    posmaps = rng.uniform(lo, hi, size=(n, 256, 256, 3)).astype(np.float32)
    records = [
        random_record(
            rng,
            f"AFW_{k}_1_0" if k % 2 else f"HÉLEN_{k}",  # non-ASCII on purpose
            f"/data/300W_LP/AFW/AFW_{k}_1_0.jpg",
        )
        for k in range(n)
    ]
    return images, posmaps, records


def uv_data() -> UVData:
    face = np.zeros((256, 256), bool)
    face[30:220, 40:210] = True
    rng = np.random.default_rng(9)
    return UVData(
        weight_class=face.astype(np.uint8),  # 1 = face, 0 = outside
        face_mask=face,
        kpt_uv=rng.integers(0, 256, size=(2, 68)).astype(np.int32),
        face_ind=np.flatnonzero(face).astype(np.int64),
    )


def build(tmp: Path, sizes: list[int], storage: StorageOptions, name: str = "data.h5") -> Path:
    images, posmaps, records = samples(sum(sizes))
    shards, start = [], 0
    for k, n in enumerate(sizes):
        shard = tmp / f"{name}.shard{k:03d}.h5"
        write_shard(
            shard,
            images[start : start + n],
            posmaps[start : start + n],
            records[start : start + n],
            storage,
        )
        shards.append(shard)
        start += n
    out = tmp / name
    merge_shards(shards, out, uv_data(), ATTRS)
    return out


def replace_dataset(f: h5py.File, name: str, data: np.ndarray) -> None:
    del f[name]
    f.create_dataset(name, data=data)
