"""Does the data loader keep the accelerator busy? Loader images/s alone, then the GPU's busy
fraction during training fed by it.

1. Loader alone: batches of raw crops and maps read from a UV HDF5 file by ``--num-workers``
   DataLoader processes (blosc-lz4 decode included), nothing else; images/s after a warm-up.
2. Training fed by that loader (PRNet at ``--width``, bf16 autocast and channels-last on CUDA,
   on-device augmentation, Adam): for ``--train-seconds`` of wall time. Each step's GPU work is
   bracketed by CUDA events; the busy fraction is the summed event time over the wall time from
   the first step's start to the last step's end. Gaps between steps (the GPU waiting for the
   next batch or for the Python side) count as idle. On the CPU the "busy" figure is the
   fraction of wall time spent in the step itself (outside the loader's ``next``).

    python benchmarks/bench_feed.py --h5 data/uv/train.h5 --device cuda --num-workers 8 --batch 256

Prints one line per measurement; ``--json FILE`` also writes them as a JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from bench_prnet import endless, make_trainer  # this folder: run as benchmarks/bench_feed.py

from model.data import EpochBatchSampler, make_loader
from model.h5dataset import PositionMapDataset
from uvgen.h5store import PositionMapFile


def loader_rate(h5: Path, batch: int, num_workers: int, seconds: float, pin: bool) -> float:
    """Images/s the DataLoader alone delivers (after two warm-up batches)."""
    dataset = PositionMapDataset(h5)
    sampler = EpochBatchSampler(len(dataset), batch, seed=0)
    batches = endless(
        make_loader(dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin),
        sampler,
    )
    for _ in range(2):
        next(batches)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        images, _ = next(batches)
        n += images.shape[0]
    return n / (time.perf_counter() - t0)


def fed_training(
    h5: Path,
    width: int,
    device: torch.device,
    batch: int,
    num_workers: int,
    seconds: float,
    compile_net: bool,
) -> dict[str, float]:
    """Train for ``seconds`` fed by the loader; images/s and the device's busy fraction."""
    cuda = device.type == "cuda"
    trainer = make_trainer(
        h5, width, device, batch, num_workers, compile_net, use_amp=cuda, bn_momentum=0.001
    )
    step, batches = trainer.step, trainer.batches
    for _ in range(5):  # warm-up (compilation, cuDNN autotuning, loader start-up)
        step(*next(batches))
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    events, cpu_busy, images_seen = [], 0.0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        images, maps = next(batches)
        t_step = time.perf_counter()
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            loss = step(images, maps)
            end.record()
            events.append((start, end))
        else:
            loss = step(images, maps)
        cpu_busy += time.perf_counter() - t_step
        images_seen += images.shape[0]
    if cuda:
        torch.cuda.synchronize(device)
        busy_ms = sum(s.elapsed_time(e) for s, e in events)
        span_ms = events[0][0].elapsed_time(events[-1][1])
        busy = busy_ms / span_ms
    wall = time.perf_counter() - t0
    out = {
        "train_images_per_s": images_seen / wall,
        "steps": len(events) if cuda else images_seen // batch,
        "busy_fraction": busy if cuda else cpu_busy / wall,
        "last_loss": float(loss),
    }
    if cuda:
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--h5", type=Path, required=True, help="UV HDF5 training file")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--num-workers", type=int, default=8)
    parser.add_argument("--loader-seconds", type=float, default=20.0)
    parser.add_argument("--train-seconds", type=float, default=45.0)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    with PositionMapFile(args.h5) as f:
        n = len(f)
    print(
        f"data {args.h5}: {n} samples; batch {args.batch}; {args.num_workers} loader workers; "
        f"device {device}"
    )
    rate = loader_rate(
        args.h5, args.batch, args.num_workers, args.loader_seconds, pin=device.type == "cuda"
    )
    print(f"loader alone: {rate:,.0f} images/s")
    fed = fed_training(
        args.h5, args.width, device, args.batch, args.num_workers, args.train_seconds, args.compile
    )
    print(
        f"training fed by the loader: {fed['train_images_per_s']:,.0f} images/s "
        f"over {fed['steps']} steps, "
        f"device busy {100 * fed['busy_fraction']:.1f} %, last loss {fed['last_loss']:.4f}"
        + (f", peak memory {fed['peak_memory_gib']:.1f} GiB" if "peak_memory_gib" in fed else "")
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "samples": n,
                    "batch": args.batch,
                    "num_workers": args.num_workers,
                    "loader_images_per_s": rate,
                    **fed,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
