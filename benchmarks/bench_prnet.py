"""PRNet speed: training images/s end to end and inference latency / throughput, CPU and CUDA.

Training: batches read from a UV HDF5 file by a DataLoader, moved to the device, augmented there
(model.augment: rotation, scale, shift, colour, occlusion), forward + weighted loss + backward +
Adam step (model.train.train_step); images/s over the timed steps after a warm-up.
Inference (batch norms folded, channels-last; bf16 autocast on CUDA): latency of one 256x256 crop
(network, uint8 crop in -> map in crop pixels out) and of one whole face (crop warp of a 450x450
image + network + decoding of 68 landmarks and the dense vertices), and batched throughput
(network only, crops and maps on the device).

    python benchmarks/bench_prnet.py              # CPU (2 threads): fp32 / bf16, each also with
                                                  # channels-last convs; compiled
    python benchmarks/bench_prnet.py --width 6 --net-size 128   # default CPU training config
    python benchmarks/bench_prnet.py --device cuda --compile --train-batch 256
    python benchmarks/bench_prnet.py --device cuda --precision fp32 --no-channels-last

On CUDA, ``--precision`` (bf16 autocast or float32) and ``--no-channels-last`` choose the variant;
training also prints the peak GPU memory. benchmarks/gpu_check.sh runs the whole matrix.

Data: --h5 (default data/uv/train.h5 when it exists, else a generated 256x256 toy file).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from model.augment import AugmentConfig
from model.data import EpochBatchSampler, make_loader, prepare_batch, to_device, write_toy_file
from model.h5dataset import PositionMapDataset
from model.inference import Predictor
from model.prnet import PRNet, count_parameters, use_channels_last_convs
from model.train import train_step
from model.train_settings import cpu_bf16_supported, set_bn_momentum
from uvgen.h5store import PositionMapFile

DEFAULT_H5 = Path(__file__).resolve().parents[1] / "data" / "uv" / "train.h5"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def endless(loader, sampler):
    """Batches of successive epochs, forever."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


@dataclasses.dataclass
class Trainer:
    """One fixed network, Adam optimizer and loader on ``device`` (made by :func:`make_trainer`)."""

    device: torch.device
    batch: int
    step: Callable  # (images, maps) of a loader batch -> loss: one training step
    batches: Iterator  # the loader's batches of successive epochs, forever

    def rate(self, steps: int) -> float:
        """Training images/s over ``steps`` steps end to end (loading included)."""
        _sync(self.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step(*next(self.batches))
        _sync(self.device)
        return steps * self.batch / (time.perf_counter() - t0)


def make_trainer(
    h5: Path,
    width: int,
    device: torch.device,
    batch: int,
    num_workers: int,
    compile_net: bool,
    use_amp: bool,
    net_size: int | None = None,
    channels_last: bool | None = None,
    bn_momentum: float = 0.1,
    island_convs: bool = False,
) -> Trainer:
    """Training end to end (HDF5 -> augmented batch on the device -> forward, weighted loss,
    backward, Adam) with one fixed network and loader; ``channels_last`` defaults to CUDA;
    ``island_convs``: the convs alone channels-last (model.prnet.use_channels_last_convs, the
    CPU training default)."""
    on_cuda = device.type == "cuda"
    channels_last = on_cuda if channels_last is None else channels_last
    with PositionMapFile(h5) as f:
        uv, size = f.uv, f.image(0).shape[0]
    dataset = PositionMapDataset(h5)
    torch.manual_seed(0)
    model = PRNet(width=width, in_size=size, net_size=net_size)
    set_bn_momentum(model, bn_momentum)
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    elif island_convs:
        use_channels_last_convs(model)
    net = torch.compile(model) if compile_net else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    weight_mask = torch.from_numpy(uv.weight_mask).to(device)
    sampler = EpochBatchSampler(len(dataset), batch, seed=0)
    if sampler.steps_per_epoch == 0:
        raise SystemExit(f"{h5}: {len(dataset)} samples are fewer than one batch of {batch}")
    loader = make_loader(
        dataset, batch_sampler=sampler, num_workers=num_workers, pin_memory=on_cuda
    )
    gen = torch.Generator(device=device).manual_seed(0)
    aug = AugmentConfig()

    def step(images: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        images, maps = to_device(images, maps, device)
        x, y = prepare_batch(images, maps, augment=aug, generator=gen, channels_last=channels_last)
        return train_step(net, optimizer, x, y, weight_mask, use_amp=use_amp)

    return Trainer(device, batch, step, endless(loader, sampler))


def _compiled_child(
    queue, h5, width, batch, steps, rounds, num_workers, net_size, amp, threads
) -> None:
    """Child process of :func:`bench_train_cpu_modes`: one compiled mode, its rates into
    ``queue``."""
    torch.set_num_threads(threads)
    run = make_trainer(h5, width, torch.device("cpu"), batch, num_workers, True, amp, net_size).rate
    run(3)  # compilation
    queue.put([run(steps) for _ in range(rounds)])


def bench_train_cpu_modes(
    h5: Path,
    width: int,
    batch: int,
    steps: int,
    rounds: int,
    num_workers: int,
    net_size: int | None,
) -> dict[str, list[float] | str]:
    """CPU training images/s of float32 and bf16 autocast (each network built once and warmed up,
    then timed in ``rounds`` interleaved rounds of ``steps`` steps, so a load change on a shared
    machine hits both alike), then of ``torch.compile`` (float32 and bf16), each in a child process
    because a compiled CPU backward can crash the interpreter (torch 2.13: "double free or
    corruption"); a crash is reported, not fatal. Returns mode -> rates (or the failure)."""
    import multiprocessing as mp

    cpu = torch.device("cpu")
    if not cpu_bf16_supported():
        print("(this CPU has no native bf16: bf16 autocast runs emulated, expect it slower)")
    modes = (("fp32", False, False), ("bf16", True, False))
    modes += (("fp32 CL convs", False, True), ("bf16 CL convs", True, True))
    runners = {
        name: make_trainer(
            h5, width, cpu, batch, num_workers, False, amp, net_size, island_convs=island
        ).rate
        for name, amp, island in modes
    }
    for run in runners.values():
        run(1)
    rates: dict[str, list[float] | str] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            rates[name].append(run(steps))
    ctx = mp.get_context("spawn")
    for name, amp in (("compiled fp32", False), ("compiled bf16", True)):
        queue = ctx.Queue()
        child = ctx.Process(
            target=_compiled_child,
            args=(
                queue,
                h5,
                width,
                batch,
                steps,
                rounds,
                num_workers,
                net_size,
                amp,
                torch.get_num_threads(),
            ),
        )
        child.start()
        child.join()
        rates[name] = (
            queue.get() if child.exitcode == 0 else f"crashed (exit code {child.exitcode})"
        )
    return rates


def _timings_ms(fn, runs: int, device: torch.device) -> tuple[float, float]:
    """(median, best) wall time of ``fn`` in ms over ``runs`` calls (best: least disturbed by
    other processes on a shared machine)."""
    times = []
    for _ in range(runs):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times), 1000 * min(times)


def bench_inference(
    h5: Path,
    width: int,
    device: torch.device,
    batch: int,
    runs: int,
    compile_net: bool,
    amp: str = "bf16",
    channels_last: bool = True,
) -> dict[str, float]:
    """Latency (ms, (median, best)) of one crop and of one whole face; batched throughput
    (images/s, (median, best))."""
    with PositionMapFile(h5) as f:
        uv, crop = f.uv, f.image(0)
    size = crop.shape[0]
    torch.manual_seed(0)
    pred = Predictor(
        PRNet(width=width, in_size=size).eval(),
        uv.kpt_uv,
        uv.face_ind,
        device=str(device),
        batch_size=batch,
        amp=amp,
    )
    if not channels_last:
        pred.channels_last = False
        pred.net = pred.net.to(memory_format=torch.contiguous_format)
    if compile_net:
        pred.net = torch.compile(pred.net)
    one = crop[None]
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(450, 450, 3), dtype=np.uint8)
    bbox = (120.0, 330.0, 110.0, 340.0)
    for _ in range(3):
        pred.predict_maps(one)
        pred.predict_one(image, bbox=bbox)
    out = {
        "latency_crop_ms": _timings_ms(lambda: pred.predict_maps(one), runs, device),
        "latency_face_ms": _timings_ms(lambda: pred.predict_one(image, bbox=bbox), runs, device),
    }
    crops = torch.from_numpy(np.repeat(crop[None], batch, 0)).to(device)
    for _ in range(2):
        pred.predict_maps_tensor(crops)
    med, best = _timings_ms(lambda: pred.predict_maps_tensor(crops), max(3, runs // 2), device)
    out["throughput_img_s"] = (batch * 1000 / med, batch * 1000 / best)
    out["batch"] = batch
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--h5",
        type=Path,
        default=None,
        help="UV HDF5 file (default: data/uv/train.h5 or a toy file)",
    )
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument(
        "--net-size",
        type=int,
        default=None,
        help="size the network runs at (default: the crop size, the paper's 256)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="CPU: interleaved timing rounds per mode"
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "all"], default="all")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--train-batch", type=int, default=None, help="default: 16 (CPU), 256 (CUDA)"
    )
    parser.add_argument("--train-steps", type=int, default=None, help="default: 3 (CPU), 50 (CUDA)")
    parser.add_argument(
        "--infer-batch", type=int, default=None, help="default: 4 (CPU), 512 (CUDA)"
    )
    parser.add_argument(
        "--runs", type=int, default=None, help="latency repetitions (default 10 CPU, 50 CUDA)"
    )
    parser.add_argument(
        "--num-workers", type=int, default=None, help="loader processes (default 1 CPU, 8 CUDA)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the network (CUDA runs)"
    )
    parser.add_argument(
        "--precision",
        choices=["bf16", "fp32"],
        default="bf16",
        help="CUDA: bf16 autocast (default) or float32 for training and inference",
    )
    parser.add_argument(
        "--no-channels-last",
        action="store_true",
        help="CUDA: keep the network and batches in the standard (NCHW) memory layout",
    )
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    devices = []
    if args.device in ("cpu", "all") or (args.device == "auto" and not torch.cuda.is_available()):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "auto", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("CUDA is not available")

    with tempfile.TemporaryDirectory() as tmp:
        h5 = args.h5 or (DEFAULT_H5 if DEFAULT_H5.is_file() else None)
        if h5 is None:
            h5 = write_toy_file(
                Path(tmp) / "toy.h5", n=1024 if torch.cuda.is_available() else 64, size=256
            )
        with PositionMapFile(h5) as f:
            n, size = len(f), f.image(0).shape[0]
        params = count_parameters(PRNet(width=args.width, in_size=size))
        print(
            f"PRNet width {args.width}, {size}x{size}, {params:,} parameters; "
            f"data {h5} ({n} samples); "
            f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}"
        )
        for device in devices:
            cuda = device.type == "cuda"
            name = (
                torch.cuda.get_device_name(device)
                if cuda
                else f"CPU ({torch.get_num_threads()} threads)"
            )
            mode = (
                f"{args.precision}, {'NCHW' if args.no_channels_last else 'channels-last'}"
                if cuda
                else f"native bf16: {cpu_bf16_supported()}"
            )
            print(f"\n== {name}: {mode}{', torch.compile' if args.compile else ''}")
            if not args.skip_train and not cuda:
                batch, steps = args.train_batch or 16, args.train_steps or 3
                workers = args.num_workers if args.num_workers is not None else 1
                rates = bench_train_cpu_modes(
                    h5, args.width, batch, steps, args.rounds, workers, args.net_size
                )
                base = statistics.median(rates["fp32"])
                print(
                    "training (HDF5 + augmentation + fwd/bwd/Adam), "
                    f"width {args.width}, network at "
                    f"{args.net_size or size}, batch {batch}, {workers} loader workers; median of "
                    f"{args.rounds} rounds of {steps} steps "
                    "(modes interleaved; compiled: in a child after):"
                )
                for name, r in rates.items():
                    if isinstance(r, str):
                        print(f"  {name:16s} {r}")
                        continue
                    med = statistics.median(r)
                    print(
                        f"  {name:16s} {med:7.2f} images/s  ({med / base:.2f}x fp32)  rounds: "
                        + ", ".join(f"{v:.2f}" for v in r)
                    )
            elif not args.skip_train:
                batch = args.train_batch or (256 if cuda else 16)
                steps = args.train_steps or (50 if cuda else 3)
                workers = args.num_workers if args.num_workers is not None else (8 if cuda else 1)
                if cuda:
                    torch.cuda.reset_peak_memory_stats(device)
                trainer = make_trainer(
                    h5,
                    args.width,
                    device,
                    batch,
                    workers,
                    args.compile,
                    use_amp=cuda and args.precision == "bf16",
                    net_size=args.net_size,
                    channels_last=cuda and not args.no_channels_last,
                )
                trainer.rate(5 if cuda else 1)  # warm-up
                ips = trainer.rate(steps)
                peak = (
                    f", peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
                    if cuda
                    else ""
                )
                print(
                    f"training (HDF5 + augmentation + fwd/bwd/Adam), {args.precision}, "
                    f"{'NCHW' if args.no_channels_last else 'channels-last'}, batch {batch}, "
                    f"{workers} loader workers: {ips:,.1f} images/s{peak}"
                )
            inf = bench_inference(
                h5,
                args.width,
                device,
                args.infer_batch or (512 if cuda else 4),
                args.runs or (50 if cuda else 10),
                args.compile,
                amp="bf16" if args.precision == "bf16" else "none",
                channels_last=not (cuda and args.no_channels_last),
            )
            (crop_med, crop_best), (face_med, face_best) = (
                inf["latency_crop_ms"],
                inf["latency_face_ms"],
            )
            print(
                f"inference latency, batch 1 (median / best): "
                f"network {crop_med:.1f} / {crop_best:.1f} ms; "
                f"whole face (crop + network + decode) {face_med:.1f} / {face_best:.1f} ms"
            )
            tp_med, tp_best = inf["throughput_img_s"]
            print(
                f"inference throughput, batch {inf['batch']} (median / best): "
                f"{tp_med:,.1f} / {tp_best:,.1f} images/s"
            )


if __name__ == "__main__":
    main()
