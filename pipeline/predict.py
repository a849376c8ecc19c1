"""Stage `predict`: every method on the test HDF5 -> one predictions file per method.

Reads the ``predict`` section of params.yaml and runs :func:`eval.methods.predict_methods`: each
method, by its kind registered in model.methods.registry (``prn``: model.inference.Predictor;
``3ddfa`` / ``defa``: model/baselines; ``mean_map``: the mean training map, a constant), yields UV
position maps of the test crops, decoded the same way (``eval.decode.decode_maps``) into
``<out_dir>/<name>.h5`` in the common predictions format, with ``<out_dir>/manifest.json`` listing
the files (and any method skipped because its checkpoint is absent, which only
``skip_missing: true`` allows). Runtime per image and the device are recorded beside them.
"""

from __future__ import annotations

import argparse

from eval.methods import predict_methods
from model.device import resolve_device
from model.methods.registry import method_kinds
from pipeline.config import DEFAULT_PARAMS, PredictParams, load_params
from pipeline.typed_yaml import ConfigError, display_path
from uvgen.resumable import exclusive_lock


def check_kinds(p: PredictParams, source: str = "params.yaml") -> None:
    """ConfigError naming ``predict.methods[i].kind`` for a kind no module of model/methods/
    registers."""
    known = method_kinds()
    for i, m in enumerate(p.methods):
        if m.kind not in known:
            raise ConfigError(
                source,
                f"predict.methods[{i}].kind",
                f"unknown method kind {m.kind!r} (known: {', '.join(known)})",
            )


def run(p: PredictParams, source: str = "params.yaml") -> dict:
    """The stage: every method of ``p`` -> files + manifest in ``p.out_dir``; returns the
    manifest. One run per ``out_dir`` at a time (its lock, as the UV build's)."""
    check_kinds(p, source)
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
    run(load_params(args.params).predict, display_path(args.params))


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
