"""Stages `uvgen@train` and `uvgen@test`: fits + images -> one HDF5 file of crops and UV maps."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from pipeline.config import DEFAULT_PARAMS, load_params
from pipeline.typed_yaml import display_path
from uvgen.h5codec import StorageOptions
from uvgen.lifetime import die_with_parent
from uvgen.resumable import ForeignDirectoryError, check_output_file
from uvgen.uvbuild import (
    BadSamplesError,
    BuildLockedError,
    BuildSettings,
    DiskFullError,
    build_split,
    rejects_summary,
)


def main(argv: list[str] | None = None) -> None:
    die_with_parent()  # kill -9 of dvc takes this stage and its dask workers down
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("split", choices=["train", "test"])
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    p = load_params(args.params).uvgen
    out = p.train_out if args.split == "train" else p.test_out
    check_output_file(out, f"{display_path(args.params)}: uvgen.{args.split}_out")
    settings = BuildSettings(
        split=args.split,
        model_dir=p.model_dir,
        source_root=p.train_root if args.split == "train" else p.test_root,
        out_path=out,
        rejects_path=out.with_name(out.stem + "_rejects.csv"),
        seed=p.seed,
        jitter=p.jitter,
        task_size=p.task_size,
        storage=StorageOptions(posmap_dtype=p.posmap_dtype, compression=p.compression),
        mask_source=p.mask_source,
        prnet_dir=p.prnet_dir,
        on_bad_sample=p.on_bad_sample,
        workers=p.workers,
        scheduler_address=p.scheduler_address,
        uv_size=p.uv_size,
        data_format=p.train_format if args.split == "train" else p.test_format,
    )
    params = {k: str(v) for k, v in dataclasses.asdict(p).items()}
    try:
        report = build_split(settings, params_for_attrs=params)
    except (BadSamplesError, BuildLockedError, DiskFullError, ForeignDirectoryError) as err:
        sys.exit(f"uvgen {args.split}: {err}")
    rejected = rejects_summary(report.rejects, settings.rejects_path)
    print(f"uvgen {args.split}: {report.written} samples -> {out}; {rejected}")


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
