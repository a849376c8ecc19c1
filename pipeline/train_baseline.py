"""Stage `train_baseline@KIND`: the UV training file -> a baseline's weights and metrics.

    python -m pipeline.train_baseline 3ddfa      # section baselines.3ddfa of params.yaml
    python -m pipeline.train_baseline defa       # section baselines.defa

KIND is a trained method of model.methods.registry (``3ddfa``, ``defa``, or one added as a module
of model/methods/); dvc.yaml runs one stage per key of the ``baselines`` section. Each section
holds the method's own settings (for 3ddfa and defa: out_dir, model_dir, lr, width, input_size and
their loss settings, documented in model.baselines.train_baseline.BaselineConfig); every other
field (data, holdout, epochs, batch, lr schedule, augmentation, seed, runtime) comes from the
``train_common`` section, shared with PRN's ``train`` stage, so every method gets the same training
budget (model.train_settings.TrainCommon; a section may still set one of those keys for itself).
Outputs in ``out_dir``: ``checkpoints/last.pt`` (resumed after a kill when settings, data and code
are unchanged), ``model.pt`` (weights with everything decoding needs), ``metrics.json``,
``loss.csv``.

Defaults: a short CPU run (MobileNet-V1 at width 0.5; DeFANet at width 12). The paper's
configurations on a GPU, with PRN's (train_common.epochs=40, train_common.device=cuda, ...):

    dvc exp run -S baselines.3ddfa.width=1.0 -S baselines.defa.width=32 \\
                -S train_common.epochs=40 -S train_common.device=cuda ...
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from model.methods.registry import get_method
from pipeline.config import DEFAULT_PARAMS, read_training
from pipeline.typed_yaml import ConfigError, display_path


def config_from_params(kind: str, path: str | Path = DEFAULT_PARAMS) -> Any:
    """Section ``baselines.KIND`` of a params file (completed from ``train_common``) as the
    method's validated training configuration (ConfigError naming the key; a test-split
    ``train_file`` is refused)."""
    try:
        method = get_method(kind)
    except KeyError as exc:
        raise ConfigError(display_path(path), f"baselines.{kind}", exc.args[0]) from None
    if not method.trains:
        raise ConfigError(
            display_path(path), f"baselines.{kind}", f"method {kind!r} has nothing to train"
        )
    return read_training(
        method.train_config,
        f"baselines.{kind}",
        path,
        optional=method.train_optional,
        given=dict(method.train_given),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", help="which method to train (a key of the baselines section)")
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    cfg = config_from_params(args.kind, args.params)
    result = get_method(args.kind).train(cfg)
    history = getattr(result, "history", None) or []
    weights = Path(cfg.out_dir) / "model.pt"
    if not history:
        print(f"train_baseline {args.kind}: weights -> {weights}")
        return
    first, last = history[0], history[-1]
    loss_kind = f" ({last['loss_kind']})" if "loss_kind" in last else ""
    nme = f", val NME {last['val_nme_pct']:.2f} %" if last.get("val_nme_pct") is not None else ""
    print(
        f"train_baseline {args.kind}: {len(history)} epochs, train loss "
        f"{first['train_loss']:.4f} -> {last['train_loss']:.4f}{loss_kind}{nme}; "
        f"weights -> {weights}"
    )


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
