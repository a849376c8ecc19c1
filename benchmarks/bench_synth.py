"""Speed of writing synthetic 300W-LP samples (render + JPEG + .mat), the foundation benchmark.

    python benchmarks/bench_synth.py --count 10000 --workers 2

Prints samples per second for the embedded model at the default size (5,000 vertices) and,
with --n-vertices 53215, at the real model's size.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from uvgen.formats.bfm import save_bfm
from uvgen.synth.dataset import write_synthetic_set
from uvgen.synth.facemodel import make_face_model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--n-vertices", type=int, default=5000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    try:
        model = make_face_model(n_vertices=args.n_vertices, seed=0)
        save_bfm(model, work / "model")
        tic = time.perf_counter()
        write_synthetic_set(
            "300wlp",
            work / "model",
            work / "300W_LP",
            args.count,
            450,
            seed=1,
            workers=args.workers,
        )
        dt = time.perf_counter() - tic
        print(
            f"{args.count} synthetic 300W-LP samples, {model.n_vertices} vertices, "
            f"{args.workers} worker(s): "
            f"{dt:.1f} s, {args.count / dt:.1f} samples/s "
            f"({1000 * dt / args.count:.1f} ms/sample wall)"
        )
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
