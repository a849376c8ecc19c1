"""UV build at 300W-LP's scale: time, memory and file size at three sizes, extrapolated to 122,450.

Builds the training file (``uvgen.uvbuild.build_split``: 2 dask workers, one thread each, tasks
of 100, float16 maps, blosc-lz4) from ``N`` 300W-LP samples at 53,215 vertices, for each ``N`` of
``--sizes``: ``--unique`` synthetic samples of the real-topology model (450x450 JPEG + .mat) are
rendered once and listed N times over under different names through symbolic links (the UV
build reads each; nothing is cached across samples). For each size it prints the build's wall
time (tasks, merge), the CPU time of the worker processes (user + system: what a loaded
machine inflates least), the peak resident memory of each worker process and of the main process
during the merge (sampled every 0.1 s with psutil), the file's size, and the training reader's
images/s from the file (``model.h5dataset.PositionMapDataset`` through ``model.data.make_loader``,
batches of 16 in the training sampler's shuffled order, in-process, for ``--read-seconds``).
Then the least-squares line time = a + b N, the bytes per sample, and both at 122,450 samples,
so that the growth can be checked linear and the memory flat.

    python benchmarks/bench_uvgen_scale.py                       # 2k, 5k, 10k (~3 min, ~9 GB)
    python benchmarks/bench_uvgen_scale.py --sizes 10000 50000 122450   # needs ~2x60 GB of disk

Each size's file (and the build's shards, removed by the build) is deleted before the next.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from bench_uvgen import link_tree, real_scale_model  # this folder: run as benchmarks/...

from uvgen import uvbuild
from uvgen.formats.bfm import save_bfm
from uvgen.formats.lp300w import list_300wlp_samples
from uvgen.h5codec import StorageOptions
from uvgen.synth.dataset import write_synthetic_set
from uvgen.uvbuild import BuildSettings, build_split

FULL = 122450
MB = 1 << 20


class MemorySampler:
    """Peak RSS of this process and of each of its descendant processes, sampled every 0.1 s;
    ``phase`` names the part of the build each sample of this process is counted in."""

    def __init__(self) -> None:
        self.me = psutil.Process()
        self.phase = "tasks"
        self.peaks: dict[str, int] = {}
        self.children: dict[int, int] = {}
        self.cpu: dict[int, float] = {}  # last user + system seconds seen per descendant
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.me.memory_info().rss
                self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
                for child in self.me.children(recursive=True):
                    try:
                        mem = child.memory_info().rss
                        times = child.cpu_times()
                    except psutil.Error:
                        continue
                    self.children[child.pid] = max(self.children.get(child.pid, 0), mem)
                    self.cpu[child.pid] = times.user + times.system
            except psutil.Error:
                pass
            self._stop.wait(0.1)


def reader_rate(h5: Path, seconds: float) -> float:
    """Images/s of the training reader (batches of 16, shuffled, in-process)."""
    from model.data import EpochBatchSampler, make_loader
    from model.h5dataset import PositionMapDataset

    dataset = PositionMapDataset(h5)
    sampler = EpochBatchSampler(len(dataset), 16, seed=0)
    n, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        for images, _ in make_loader(dataset, batch_sampler=sampler):
            n += images.shape[0]
            if time.perf_counter() - tic >= seconds:
                break
    return n / (time.perf_counter() - tic)


def build_once(model_dir: Path, root: Path, out: Path, workers: int) -> dict:
    settings = BuildSettings(
        split="train",
        model_dir=model_dir,
        source_root=root,
        out_path=out,
        rejects_path=out.with_suffix(".rejects.csv"),
        seed=0,
        jitter=True,
        task_size=100,
        storage=StorageOptions(),
        workers=workers,
    )
    original = uvbuild.merge_shards
    with MemorySampler() as memory:

        def merge(*args, **kwargs):
            memory.phase = "merge"
            return original(*args, **kwargs)

        uvbuild.merge_shards = merge
        try:
            tic = time.perf_counter()
            report = build_split(settings)
            wall = time.perf_counter() - tic
        finally:
            uvbuild.merge_shards = original
    workers_rss = sorted(memory.children.values(), reverse=True)[:workers]
    return {
        "worker_cpu": sum(memory.cpu.values()),
        "wall": wall,
        "tasks": report.tasks_wall_seconds,
        "merge": report.merge_seconds,
        "written": report.written,
        "worker_peaks": workers_rss,
        "main_tasks_peak": memory.peaks.get("tasks", 0),
        "merge_peak": memory.peaks.get("merge", 0),
        "bytes": out.stat().st_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs=3, default=[2000, 5000, 10000])
    parser.add_argument("--unique", type=int, default=200, help="distinct synthetic samples")
    parser.add_argument("--workers", type=int, default=2, help="dask workers (one core each)")
    parser.add_argument("--read-seconds", type=float, default=5.0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs here")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_uvgen_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "model"
    model, kind = real_scale_model()
    if not (model_dir / "BFM.mat").exists():
        save_bfm(model, model_dir)
    if not (work / "unique_train").exists():
        write_synthetic_set(
            "300wlp", model_dir, work / "unique_train", args.unique, 450, seed=5, workers=2
        )
    mats = list_300wlp_samples(work / "unique_train")
    free = shutil.disk_usage(work).free
    print(
        f"model: {kind}, {model.n_vertices} vertices; {len(mats)} distinct synthetic 450x450 "
        f"samples linked under new names; {args.workers} workers; {os.cpu_count()} cores; "
        f"{free / 1e9:.0f} GB free in {work}"
    )
    print(
        f"{'samples':>8s} {'wall s':>8s} {'tasks s':>8s} {'merge s':>8s} {'ms/sample':>9s} "
        f"{'worker CPU ms/sample':>20s} "
        f"{'worker peak MB':>16s} {'merge peak MB':>13s} {'file MB':>9s} {'read img/s':>10s} "
        f"{'load':>5s}"
    )
    rows = []
    for size in args.sizes:
        root = work / f"300W_LP_{size}"
        shutil.rmtree(root, ignore_errors=True)
        link_tree(mats, root, size, flat=False)
        out = work / f"train_{size}.h5"
        result = build_once(model_dir, root, out, args.workers)
        rate = reader_rate(out, args.read_seconds)
        out.unlink()
        shutil.rmtree(root)
        rows.append((size, result))
        peaks = "/".join(f"{p / MB:.0f}" for p in result["worker_peaks"])
        print(
            f"{size:8d} {result['wall']:8.1f} {result['tasks']:8.1f} {result['merge']:8.1f} "
            f"{1000 * result['wall'] / size:9.2f} {1000 * result['worker_cpu'] / size:20.2f} "
            f"{peaks:>16s} {result['merge_peak'] / MB:13.0f} "
            f"{result['bytes'] / MB:9.0f} {rate:10.0f} {os.getloadavg()[0]:5.2f}",
            flush=True,
        )
    sizes = np.array([s for s, _ in rows], dtype=np.float64)
    walls = np.array([r["wall"] for _, r in rows])
    slope, intercept = np.polyfit(sizes, walls, 1)
    fit = intercept + slope * sizes
    cpus = np.array([r["worker_cpu"] for _, r in rows])
    cpu_slope, cpu_intercept = np.polyfit(sizes, cpus, 1)
    per_sample = np.array([r["bytes"] for _, r in rows]) / sizes
    print(
        f"time = {intercept:.1f} s + {1000 * slope:.2f} ms x N (largest residual "
        f"{np.abs(walls - fit).max():.1f} s); file {per_sample.mean() / 1e3:.1f} kB/sample "
        f"(spread {100 * np.ptp(per_sample) / per_sample.mean():.2f}%); worker CPU = "
        f"{cpu_intercept:.1f} s + {1000 * cpu_slope:.2f} ms x N (largest residual "
        f"{np.abs(cpus - cpu_intercept - cpu_slope * sizes).max():.1f} s)"
    )
    print(
        f"extrapolated to {FULL:,} samples: {(intercept + slope * FULL) / 60:.1f} min, "
        f"{per_sample.mean() * FULL / 1e9:.1f} GB"
    )
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
