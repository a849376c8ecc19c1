"""Whether ``uvgen.posmap_float16`` earns its place: float16 map encoding, numpy's element-wise
conversion (``uvgen.h5codec.encode_posmap_into``, the reference) against the vectorised one
(``encode_posmap_fast``), interleaved on the same face-like 256x256x3 maps.

    python benchmarks/bench_posmap_float16.py [--repeats 7] [--number 100]

Prints ms per map for both, their difference, and that difference as a share of the batched UV
build's cost per sample (``--batched-ms``, from ``benchmarks/bench_uvgen.py``; default 5.0 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uvgen.h5codec import StorageOptions, encode_posmap_into  # noqa: E402
from uvgen.posmap_float16 import encode_posmap_fast  # noqa: E402


def face_like_map(seed: int, size: int = 256) -> np.ndarray:
    """(size, size, 3) float32 crop pixels: x, y across the crop, z a smooth dome of 0..150."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    z = 150.0 * np.clip(1.0 - ((u - 0.5) ** 2 + (v - 0.5) ** 2) * 3.0, 0.0, None)
    m = np.stack([20 + 220 * u, 20 + 220 * v, z], axis=-1).astype(np.float32)
    return m + rng.normal(0.0, 0.3, m.shape).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--number", type=int, default=100, help="maps per timing")
    ap.add_argument("--batched-ms", type=float, default=5.0)
    args = ap.parse_args()
    storage = StorageOptions()
    maps = [face_like_map(i) for i in range(8)]
    out = np.empty(maps[0].shape, np.float16)
    scratch = np.empty(maps[0].shape, np.float32)
    times: dict[str, list[float]] = {"numpy": [], "fast": []}
    for _ in range(args.repeats):
        for name, fn in (("numpy", encode_posmap_into), ("fast", encode_posmap_fast)):
            t0 = time.perf_counter()
            for k in range(args.number):
                fn(maps[k % len(maps)], storage, out, scratch)
            times[name].append((time.perf_counter() - t0) / args.number * 1e3)
    ref, fast = statistics.median(times["numpy"]), statistics.median(times["fast"])
    print(
        f"float16 map encoding, ms per 256x256x3 map (median of {args.repeats}): numpy {ref:.3f}, "
        f"vectorised {fast:.3f} ({ref / fast:.1f}x); saves {ref - fast:.3f} ms = "
        f"{100 * (ref - fast) / args.batched_ms:.0f} % of a {args.batched_ms} ms batched sample; "
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
