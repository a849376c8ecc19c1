"""Stages `synth@300wlp` and `synth@aflw2000`: synthetic data sets in the real on-disk layouts."""

from __future__ import annotations

import argparse
import sys

from pipeline.config import DEFAULT_PARAMS, load_params
from uvgen.lifetime import die_with_parent
from uvgen.model_checksum import model_checksum
from uvgen.resumable import (
    BuildLockedError,
    ForeignDirectoryError,
    exclusive_lock,
    prepare_resumable_dir,
)
from uvgen.synth.dataset import check_count, write_synthetic_set


def main(argv: list[str] | None = None) -> None:
    die_with_parent()  # kill -9 of dvc takes this stage and its pool down
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("layout", choices=["300wlp", "aflw2000"])
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    params = load_params(args.params)
    section = "synth_300wlp" if args.layout == "300wlp" else "synth_aflw2000"
    p = getattr(params, section)
    try:
        check_count(p.count, f"params.yaml: {section}.count")  # before anything is cleared
    except ValueError as err:
        sys.exit(str(err))
    model_dir = params.face_model.out_dir
    settings = {
        "layout": args.layout,
        "count": p.count,
        "image_size": p.image_size,
        "seed": p.seed,
        "model": model_checksum(model_dir),
    }
    try:
        with exclusive_lock(p.out_dir):
            # Only a folder this stage made (it holds the settings manifest) or an empty
            # one is ever cleared.
            if prepare_resumable_dir(p.out_dir, settings):
                print(f"resuming the unfinished set in {p.out_dir}")
            write_synthetic_set(
                args.layout, model_dir, p.out_dir, p.count, p.image_size, p.seed, workers=p.workers
            )
    except (BuildLockedError, ForeignDirectoryError) as err:
        sys.exit(f"synth {args.layout}: {err}")


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
