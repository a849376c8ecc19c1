"""Speed of the evaluation: 2,000 test images, dense 2D/3D NME and the rigidly aligned 3D error.

    python benchmarks/bench_evaluate.py                 # 2,000 images, K = 43,867
                                                        # (PRNet's face_ind)
    python benchmarks/bench_evaluate.py --n 200 --k 45218

Builds, in a temporary folder, a test-split UV HDF5 file (uvgen.h5store, float16 maps, Blosc-LZ4)
of ``--n`` smooth random position maps and a predictions file (eval.predictions) of one method
(ground truth + noise, two images left out so the unmatched path runs too), then times
``eval.evaluate.evaluate`` on them: reading and decoding the ground-truth maps, reading the dense
predictions, all five metrics per image including the batched Kabsch alignment. The metric
arithmetic alone (arrays in memory) is timed beside it. Target: <= 30 s for 2,000 images.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from eval.decode import to_image_batch
from eval.evaluate import GroundTruthFile, evaluate, image_metrics
from eval.predictions import PredictionsFile, PredictionsWriter
from uvgen.h5codec import StorageOptions
from uvgen.h5store import SampleRecord, UVData
from uvgen.h5write import merge_shards, write_shard

SIZE = 256


def _maps(rng: np.random.Generator, b: int) -> tuple[np.ndarray, np.ndarray]:
    """b smooth face-like maps in crop pixels and their crop transforms (original -> crop)."""
    v, u = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1.0)
    maps = np.empty((b, SIZE, SIZE, 3), np.float32)
    transforms = np.empty((b, 3, 3))
    for i in range(b):
        a = rng.uniform(0.8, 1.2)
        maps[i, ..., 0] = 40 + 170 * a * u + 5 * np.sin(3 * v + i)
        maps[i, ..., 1] = 30 + 190 * a * v + 5 * np.cos(2 * u + i)
        maps[i, ..., 2] = 60 * np.sin(np.pi * u) * np.sin(np.pi * v) * a
        s, tx, ty = rng.uniform(0.5, 1.0), rng.uniform(-100, 0), rng.uniform(-100, 0)
        transforms[i] = [[s, 0, tx], [0, s, ty], [0, 0, 1]]
    return maps, transforms


def build_test_file(path: Path, n: int, k: int, seed: int = 0, shard: int = 200) -> None:
    rng = np.random.default_rng(seed)
    kpt = rng.choice(SIZE * SIZE, 68, replace=False)
    face_ind = np.sort(rng.choice(SIZE * SIZE, k, replace=False))
    uv = UVData(
        np.ones((SIZE, SIZE), np.uint8),
        np.zeros((SIZE, SIZE), bool),
        np.stack([kpt % SIZE, kpt // SIZE]).astype(np.int32),
        face_ind,
    )
    shards = []
    for start in range(0, n, shard):
        b = min(shard, n - start)
        maps, transforms = _maps(rng, b)
        # the maps' key points in original-image pixels
        lm_img = to_image_batch(maps.reshape(b, -1, 3)[:, kpt], transforms).astype(np.float32)
        records = [
            SampleRecord(
                name=f"image{start + j:05d}.mat",
                source="bench",
                shape_para=np.zeros(199),
                exp_para=np.zeros(29),
                pose_para=np.zeros(7),
                transform=transforms[j],
                jitter=np.full(3, 0.5),
                yaw_deg=float(rng.uniform(-100, 100)),
                pitch_deg=0.0,
                roll_deg=0.0,
                extras={"landmarks_gt": lm_img[j]},
            )
            for j in range(b)
        ]
        p = path.with_name(f"shard{start:06d}.h5")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            write_shard(p, np.zeros((b, SIZE, SIZE, 3), np.uint8), maps, records, StorageOptions())
        shards.append(p)
    merge_shards(shards, path, uv, {"model_checksum": "bench", "params": {}, "split": "test"})
    for p in shards:
        p.unlink()


def build_predictions(
    gt: GroundTruthFile, path: Path, noise_px: float, seed: int = 1, chunk: int = 100
) -> None:
    rng = np.random.default_rng(seed)
    keep = np.arange(
        2, len(gt)
    )  # the first two test images get no prediction (reported as missing)
    names = [gt.names[i] for i in keep]
    with PredictionsWriter(path, "bench", names, gt.dense_count) as w:
        for start in range(0, len(keep), chunk):
            rows = keep[start : start + chunk]
            dense = gt.dense_rows(slice(int(rows[0]), int(rows[-1]) + 1))
            dense += rng.normal(0, noise_px, dense.shape)
            lm = gt.landmarks[rows] + rng.normal(0, noise_px, (len(rows), 68, 3))
            w.write(start, lm, dense, runtime_s=0.01)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="test images")
    parser.add_argument("--k", type=int, default=43867, help="dense face vertices per image")
    parser.add_argument("--chunk", type=int, default=64, help="images per evaluation batch")
    parser.add_argument("--noise", type=float, default=2.0, help="prediction noise, pixels")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_evaluate_"))
    try:
        tic = time.perf_counter()
        build_test_file(work / "test.h5", args.n, args.k)
        with GroundTruthFile(work / "test.h5") as gt:
            build_predictions(gt, work / "pred.h5", args.noise)
        print(f"setup: {args.n} maps + predictions written in {time.perf_counter() - tic:.1f} s")

        with GroundTruthFile(work / "test.h5") as gt, PredictionsFile(work / "pred.h5") as pred:
            tic = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the two missing images
                (res,) = evaluate(gt, [pred], chunk=args.chunk)
            dt = time.perf_counter() - tic
            stats = res.per_image.iloc[:, 2:].mean()
            # the arithmetic alone: one chunk in memory, repeated
            sl = slice(2, 2 + args.chunk)
            g_dense = gt.dense_rows(sl)
            p_dense, p_lm = (
                pred.dense_rows(slice(0, args.chunk)),
                pred.landmarks_rows(slice(0, args.chunk)),
            )
            t0 = time.perf_counter()
            reps = 3
            for _ in range(reps):
                image_metrics(gt.landmarks[sl], p_lm, g_dense, p_dense)
            per_image_math = (time.perf_counter() - t0) / (reps * args.chunk)
        print(
            f"evaluate: {args.n} images, K = {args.k}, all five metrics "
            f"(dense 2D/3D NME, rigid alignment), "
            f"from the files: {dt:.1f} s ({1000 * dt / args.n:.2f} ms/image; "
            f"{res.matching.n_matched} matched, "
            f"{len(res.matching.missing)} missing)"
        )
        print(
            f"  metric arithmetic alone: {1000 * per_image_math:.2f} ms/image "
            f"-> {per_image_math * args.n:.1f} s for {args.n} images; "
            "the rest is reading and decoding"
        )
        print("  mean NME (%): " + ", ".join(f"{k} {100 * v:.3f}" for k, v in stats.items()))
        print(f"  target <= 30 s: {'met' if dt <= 30 else 'NOT met'}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
