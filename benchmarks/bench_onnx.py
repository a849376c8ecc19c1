"""ONNX Runtime against PyTorch on the CPU: PRNet's released size (width 16, 256x256), one crop
at a time, interleaved.

    python benchmarks/bench_onnx.py [--threads 2] [--repeats 20] [--width 16]

Exports a random-weight network (batch-norm statistics set as a trained one's) with
model.onnx_export, then times ``Predictor.predict_maps`` (float32, folded batch norms,
channels-last) and ``onnxruntime.InferenceSession.run`` on the same crops, alternating; prints the
median ms per image of each and the largest difference of their maps (crop pixels).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--width", type=int, default=16)
    args = ap.parse_args()
    import onnxruntime as ort

    from model.checkpoint import save_weights
    from model.inference import Predictor
    from model.onnx_export import export_onnx
    from model.prnet import PRNet

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = PRNet(width=args.width)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    with tempfile.TemporaryDirectory() as tmp:
        save_weights(Path(tmp) / "w.pt", net)
        onnx_path = export_onnx(Path(tmp) / "w.pt", Path(tmp) / "p.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    predictor = Predictor(net, np.zeros((2, 68), int), np.zeros(1, int), device="cpu")
    crops = np.random.default_rng(0).integers(0, 256, (args.repeats, 256, 256, 3), np.uint8)
    times: dict[str, list[float]] = {"pytorch": [], "onnxruntime": []}
    diff = 0.0
    for i in range(-2, args.repeats):  # two warm-up rounds
        c = crops[max(i, 0) : max(i, 0) + 1]
        t0 = time.perf_counter()
        a = predictor.predict_maps(c)
        t1 = time.perf_counter()
        b = session.run(None, {"crops": c.astype(np.float32)})[0]
        t2 = time.perf_counter()
        if i >= 0:
            times["pytorch"].append(t1 - t0)
            times["onnxruntime"].append(t2 - t1)
            diff = max(diff, float(np.abs(a - b).max()))
    print(
        f"PRNet width {args.width}, 256x256, batch 1, {args.threads} threads, {args.repeats} crops:"
    )
    for k, v in times.items():
        print(f"  {k:12s} {1e3 * np.median(v):7.1f} ms/image (median)")
    print(f"  largest map difference: {diff:.2e} px")


if __name__ == "__main__":
    main()
