"""Speed of reading TensorFlow checkpoints without TensorFlow: CRC32C and ``import_tf_checkpoint``.

    python benchmarks/bench_import.py [--repeats 3]

Writes a checkpoint of PRNet at width 16 (the release's 245 variables, 53.5 MB of float32, random
weights) with the tests' bundle writer in a temporary folder, then prints the median seconds of
CRC32C over those bytes and of the whole import with and without CRC verification.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "model")]

from tf_bundle_helpers import write_bundle  # noqa: E402

from model.crc32c import crc32c  # noqa: E402
from model.prnet import PRNet, export_tf_weights  # noqa: E402
from model.release import import_tf_checkpoint  # noqa: E402


def _median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    tf = export_tf_weights(PRNet(width=16))
    blob = np.concatenate([v.reshape(-1).view(np.uint8) for v in tf.values()])
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "ckpt"
        write_bundle(prefix, tf)
        crc = _median_s(lambda: crc32c(blob), args.repeats)
        full = _median_s(lambda: import_tf_checkpoint(prefix), args.repeats)
        bare = _median_s(lambda: import_tf_checkpoint(prefix, verify=False), args.repeats)
    print(
        f"{len(tf)} variables, {blob.size / 1e6:.1f} MB; median of {args.repeats} (s): "
        f"CRC32C {crc:.2f}, import with CRC checks {full:.2f}, without {bare:.2f}; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
