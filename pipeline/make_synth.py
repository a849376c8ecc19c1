"""Stages `synth_300wlp` and `synth_aflw2000`: synthetic data sets in the real on-disk layouts."""
from __future__ import annotations

import argparse

from pipeline.config import DEFAULT_PARAMS, load_params
from uvgen.model_checksum import model_checksum
from uvgen.resumable import prepare_resumable_dir
from uvgen.synth.dataset import write_synthetic_set


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("layout", choices=["300wlp", "aflw2000"])
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    p = params.synth_300wlp if args.layout == "300wlp" else params.synth_aflw2000
    model_dir = params.face_model.out_dir
    settings = {
        "layout": args.layout,
        "count": p.count,
        "image_size": p.image_size,
        "seed": p.seed,
        "model": model_checksum(model_dir),
    }
    resuming = prepare_resumable_dir(p.out_dir, settings)
    if resuming:
        print(f"resuming the unfinished set in {p.out_dir}")
    write_synthetic_set(args.layout, model_dir, p.out_dir, p.count, p.image_size, p.seed, workers=p.workers)


if __name__ == "__main__":
    main()
