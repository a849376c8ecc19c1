"""Stage `predict`: every method on the test HDF5 -> one predictions file per method.

Reads the ``predict`` section of params.yaml and runs :func:`eval.methods.predict_methods`: each
method (``prn``: model.inference.Predictor; ``3ddfa`` / ``defa``: model/baselines; ``mean_map``: the
mean training map, a constant) yields UV
position maps of the test crops, decoded the same way (``eval.decode.decode_maps``) into
``<out_dir>/<name>.h5`` in the common predictions format, with ``<out_dir>/manifest.json`` listing
the files (and any method skipped because its checkpoint is absent, which only
``skip_missing: true`` allows). Runtime per image and the device are recorded beside them.
"""

from __future__ import annotations

import argparse

from eval.methods import predict_methods
from model.device import resolve_device
from pipeline.config import DEFAULT_PARAMS, PredictParams, load_params
from uvgen.resumable import exclusive_lock


def run(p: PredictParams) -> dict:
    """The stage: every method of ``p`` -> files + manifest in ``p.out_dir``; returns the
    manifest. One run per ``out_dir`` at a time (its lock, as the UV build's)."""
    device = str(resolve_device(p.device))
    with exclusive_lock(p.out_dir, "prediction"):
        return predict_methods(
            p.methods, p.test_file, p.out_dir, p.batch_size, device, p.skip_missing
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    run(load_params(args.params).predict)


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
