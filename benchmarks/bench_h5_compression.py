"""Benchmark the HDF5 compression choices of uvgen.h5codec: file size and random-read speed.

Writes N synthetic samples (default 2000) as shards, merges them with ``merge_shards`` (the real
code path) once per codec choice (none, blosc-lz4 + shuffle, gzip level 4, and raw images with
blosc-lz4 maps) and measures:

* bytes per sample (images, position maps, whole file);
* write + merge time;
* random reads per second: image + stored float16 map at random indices with h5py (``raw``) and
  through ``PositionMapDataset`` (decoded float32 tensors, ``dataset``), one thread as in a
  DataLoader worker. The file has just been written, so it is read from the page cache (as when
  the machine's RAM holds the file).

Samples imitate real data so that they compress alike: images are smooth multi-scale noise with a
few sharp-edged blobs, mild per-pixel noise (sensor / JPEG) and sometimes a black strip (a crop
reaching past the photo); position maps are smooth face-like surfaces in crop pixels (x, y in about
[20, 240], z in [0, ~150]) with small smooth bumps.

``--photos DIR`` uses random crops of the real JPEG photos in DIR as images instead.

Usage:
``.venv/bin/python benchmarks/bench_h5_compression.py [--count 2000] [--dir /tmp] [--photos DIR]``.
Files are written to a temporary folder under ``--dir`` and deleted afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from model.h5dataset import PositionMapDataset
from uvgen.h5codec import StorageOptions
from uvgen.h5store import SampleRecord, UVData
from uvgen.h5write import merge_shards, write_shard

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (as bench_import.py does)
from tests.uvgen.h5_samples import random_record  # noqa: E402

SIZE = 256
CODECS = ("none", "blosc-lz4", "gzip")
# IMAGE[:POSMAP] codec specs measured by default; "none:blosc-lz4" = raw images, Blosc-LZ4 maps.
DEFAULT_SPECS = ("none", "blosc-lz4", "gzip", "none:blosc-lz4")


def storage_for(spec: str) -> StorageOptions:
    """'IMAGE[:POSMAP]' codec spec -> float16 StorageOptions."""
    image, _, posmap = spec.partition(":")
    return StorageOptions(
        posmap_dtype="float16", compression=image, posmap_compression=posmap or None
    )


def _smooth_noise(
    gen: torch.Generator, n: int, channels: int, grids: tuple[int, ...], decay: float
) -> torch.Tensor:
    """(n, channels, SIZE, SIZE) sum of bicubically upsampled random grids, amplitude
    grid**-decay."""
    out = torch.zeros(n, channels, SIZE, SIZE)
    for g in grids:
        coarse = torch.randn(n, channels, g, g, generator=gen)
        out += (
            F.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
            * g**-decay
        )
    return out


def photo_like_images(gen: torch.Generator, n: int) -> np.ndarray:
    """(n, 256, 256, 3) uint8 images that compress like photo crops (zlib-4 ratio ~0.5-0.9)."""
    base = torch.rand(n, 3, 1, 1, generator=gen) * 140 + 20
    contrast = torch.rand(n, 1, 1, 1, generator=gen) * 90 + 30
    luma = _smooth_noise(gen, n, 1, (3, 6, 12, 24, 48, 96), 0.8) * contrast
    chroma = _smooth_noise(gen, n, 3, (3, 8, 24), 0.8) * 20
    img = base + luma + chroma
    yy, xx = torch.meshgrid(
        torch.arange(SIZE, dtype=torch.float32),
        torch.arange(SIZE, dtype=torch.float32),
        indexing="ij",
    )
    for _ in range(4):  # sharp-edged blobs (hair, clothes, background objects)
        c = torch.rand(n, 2, generator=gen) * SIZE
        r = torch.rand(n, 2, generator=gen) * 60 + 15
        inside = ((xx - c[:, :1, None]) / r[:, :1, None]) ** 2 + (
            (yy - c[:, 1:, None]) / r[:, 1:, None]
        ) ** 2 < 1
        shift = (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 120
        img = img + inside[:, None].float() * shift
    noise = torch.rand(n, 1, 1, 1, generator=gen) * 2 + 0.5  # sensor / JPEG noise, in levels
    img = img + torch.randn(img.shape, generator=gen) * noise
    strip = (torch.rand(n, generator=gen) < 0.2) * (torch.rand(n, generator=gen) * 50).long()
    for k in torch.nonzero(strip).flatten().tolist():
        img[k, :, :, : int(strip[k])] = 0  # crop reaching past the photo's left edge
    return img.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def photo_crops(rng: np.random.Generator, photos: list[Image.Image], n: int) -> np.ndarray:
    """(n, 256, 256, 3) uint8 random crops (box 200-400 px inside the photo, bilinear to 256, random
    flip) of real photos."""
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for k in range(n):
        photo = photos[rng.integers(len(photos))]
        w, h = photo.size
        side = rng.uniform(min(200, w, h), min(400, w, h))
        cx = np.clip(rng.uniform(0.4, 0.6) * w, side / 2, w - side / 2)
        cy = np.clip(rng.uniform(0.4, 0.6) * h, side / 2, h - side / 2)
        box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        crop = np.asarray(photo.resize((SIZE, SIZE), Image.BILINEAR, box=box))
        out[k] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return out


def face_like_posmaps(gen: torch.Generator, n: int) -> np.ndarray:
    """(n, 256, 256, 3) float32 smooth face-like position maps in crop pixels."""
    t = torch.linspace(-1, 1, SIZE)
    v, u = torch.meshgrid(t, t, indexing="ij")
    bumps = _smooth_noise(gen, n, 3, (4, 8, 16), 0.3) * 4
    x = u * 85 + bumps[:, 0]
    y = v * 100 + bumps[:, 1]
    z = 70 * torch.sqrt(torch.clamp(1 - 0.7 * u**2 - 0.4 * v**2, min=0)) + bumps[:, 2]
    pts = torch.stack([x, y, z], dim=-1)  # (n, H, W, 3)
    angles = (torch.rand(n, 3, generator=gen) - 0.5) * torch.tensor([0.6, 2.4, 0.6])
    out = torch.empty_like(pts)
    for k in range(n):
        a, b, c = angles[k].tolist()
        rx = torch.tensor(
            [[1, 0, 0], [0, np.cos(a), np.sin(a)], [0, -np.sin(a), np.cos(a)]], dtype=torch.float32
        )
        ry = torch.tensor(
            [[np.cos(b), 0, -np.sin(b)], [0, 1, 0], [np.sin(b), 0, np.cos(b)]], dtype=torch.float32
        )
        rz = torch.tensor(
            [[np.cos(c), np.sin(c), 0], [-np.sin(c), np.cos(c), 0], [0, 0, 1]], dtype=torch.float32
        )
        out[k] = pts[k] @ (rx @ ry @ rz).T
    scale = torch.rand(n, 1, 1, 1, generator=gen) * 0.2 + 0.9
    centre = torch.tensor([128.0, 128.0, 0.0]) + torch.cat(
        [(torch.rand(n, 2, generator=gen) - 0.5) * 20, torch.zeros(n, 1)], 1
    )
    out = out * scale + centre[:, None, None, :]
    out[..., 2] -= out[..., 2].amin(dim=(1, 2))[:, None, None]
    return out.numpy()


def _records(rng: np.random.Generator, start: int, n: int) -> list[SampleRecord]:
    return [
        random_record(
            rng,
            f"SYN_{start + k:06d}",
            f"/data/300W_LP/SYN/SYN_{start + k:06d}.jpg",
            shape_scale=1e4,
            max_yaw=90.0,
            landmarks=False,
        )
        for k in range(n)
    ]


def _uv() -> UVData:
    face = np.zeros((SIZE, SIZE), bool)
    face[40:216, 40:216] = True
    return UVData(
        weight_class=face.astype(np.uint8),
        face_mask=face,
        kpt_uv=np.full((2, 68), 128, np.int32),
        face_ind=np.flatnonzero(face),
    )


def build(
    spec: str,
    count: int,
    shard_size: int,
    folder: Path,
    seed: int,
    photos: list[Image.Image] | None = None,
) -> tuple[Path, float, float]:
    """Write ``count`` samples as shards and merge them; return (file, write seconds, merge
    seconds).

    Images are synthetic, or crops of ``photos`` when given."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    storage = storage_for(spec)
    tag = spec.replace(":", "_")
    shards, t_write = [], 0.0
    for start in range(0, count, shard_size):
        n = min(shard_size, count - start)
        images = photo_crops(rng, photos, n) if photos else photo_like_images(gen, n)
        posmaps, recs = face_like_posmaps(gen, n), _records(rng, start, n)
        shard = folder / f"{tag}_shard_{start // shard_size:05d}.h5"
        t0 = time.perf_counter()
        write_shard(shard, images, posmaps, recs, storage)
        t_write += time.perf_counter() - t0
        shards.append(shard)
    out = folder / f"{tag}.h5"
    t0 = time.perf_counter()
    merge_shards(
        shards,
        out,
        _uv(),
        {"model_checksum": "bench", "params": {"count": count}, "split": "train"},
    )
    t_merge = time.perf_counter() - t0
    for shard in shards:
        shard.unlink()
    return out, t_write, t_merge


def read_rate_raw(path: Path, indices: np.ndarray) -> float:
    """Samples per second reading image + stored map with h5py at the given indices."""
    with h5py.File(path, "r") as f:
        images, posmaps = f["images"], f["posmaps"]
        t0 = time.perf_counter()
        for i in indices:
            images[i]
            posmaps[i]
        return len(indices) / (time.perf_counter() - t0)


def read_rate_dataset(path: Path, indices: np.ndarray) -> float:
    """Samples per second through PositionMapDataset (decoded float32 tensors)."""
    ds = PositionMapDataset(path)
    ds[0]
    t0 = time.perf_counter()
    for i in indices:
        ds[int(i)]
    rate = len(indices) / (time.perf_counter() - t0)
    ds.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=2000, help="samples per file (default 2000)")
    ap.add_argument("--shard-size", type=int, default=100, help="samples per shard (default 100)")
    ap.add_argument(
        "--reads", type=int, default=2000, help="random reads per measurement (default 2000)"
    )
    ap.add_argument(
        "--repeats", type=int, default=3, help="read measurements per file; the best is kept"
    )
    ap.add_argument(
        "--codecs",
        nargs="+",
        default=list(DEFAULT_SPECS),
        metavar="IMAGE[:POSMAP]",
        help=f"codec specs, each of {CODECS} (default: {' '.join(DEFAULT_SPECS)})",
    )
    ap.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="scratch folder (default /tmp)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--photos",
        type=Path,
        help="folder of real *.jpg photos to crop instead of synthetic images",
    )
    args = ap.parse_args()
    for spec in args.codecs:
        try:
            storage_for(spec)
        except ValueError as exc:
            ap.error(str(exc))
    torch.set_num_threads(1)  # as in a DataLoader worker; also steadier timings
    photos = None
    if args.photos:
        photos = [Image.open(p).convert("RGB") for p in sorted(args.photos.glob("*.jpg"))]
        if not photos:
            ap.error(f"no *.jpg in {args.photos}")

    folder = Path(tempfile.mkdtemp(prefix="bench_h5_", dir=args.dir))
    indices = np.random.default_rng(args.seed + 1).integers(0, args.count, size=args.reads)
    rows = []
    try:
        for codec in args.codecs:
            path, t_write, t_merge = build(
                codec, args.count, args.shard_size, folder, args.seed, photos
            )
            with h5py.File(path, "r") as f:
                img_b = f["images"].id.get_storage_size() / args.count
                map_b = f["posmaps"].id.get_storage_size() / args.count
            file_b = path.stat().st_size
            raw = max(read_rate_raw(path, indices) for _ in range(args.repeats))
            dset = max(read_rate_dataset(path, indices) for _ in range(args.repeats))
            rows.append((codec, img_b, map_b, file_b, t_write, t_merge, raw, dset))
            print(f"{codec}: done ({file_b / 1e6:.0f} MB)", flush=True)
            path.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    kind = f"crops of {len(photos)} photos in {args.photos}" if photos else "synthetic images"
    print(
        f"\n{args.count} samples ({kind}), {args.reads} random reads (best of {args.repeats}), "
        "float16 maps"
    )
    head = (
        f"{'image:posmap codec':<20} {'image KB':>9} {'posmap KB':>10} {'file MB':>8} "
        f"{'write s':>8} {'merge s':>8} {'raw/s':>8} {'dataset/s':>10}"
    )
    print(head)
    print("-" * len(head))
    for codec, img_b, map_b, file_b, t_write, t_merge, raw, dset in rows:
        print(
            f"{codec:<20} {img_b / 1e3:>9.1f} {map_b / 1e3:>10.1f} {file_b / 1e6:>8.1f} "
            f"{t_write:>8.1f} {t_merge:>8.1f} {raw:>8.0f} {dset:>10.0f}"
        )


if __name__ == "__main__":
    main()
