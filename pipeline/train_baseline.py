"""Stages `train_3ddfa` and `train_defa`: the UV training file -> a baseline's weights and metrics.

    python -m pipeline.train_baseline 3ddfa      # section train_3ddfa of params.yaml
    python -m pipeline.train_baseline defa       # section train_defa

Each section holds the baseline's own settings (out_dir, model_dir, lr, width, input_size and its
loss settings); every other field (data, holdout, epochs, batch, lr schedule, augmentation, seed,
runtime) comes from the ``train_common`` section, shared with PRN's ``train`` stage, so all three
methods get the same training budget (model.train_settings.TrainCommon; a baseline section may still
set one of those keys for itself). Fields are documented in
model.baselines.train_baseline.BaselineConfig. Outputs in ``out_dir``: ``checkpoints/last.pt``
(resumed after a kill when settings, data and code are unchanged), ``model.pt`` (weights with the
whitening statistics and everything decoding needs), ``metrics.json``, ``loss.csv``.

Defaults: a short CPU run (MobileNet-V1 at width 0.5; DeFANet at width 12). The paper's
configurations on a GPU, with PRN's (train_common.epochs=40, train_common.device=cuda, ...):

    dvc exp run -S train_3ddfa.width=1.0 -S train_defa.width=32 \\
                -S train_common.epochs=40 -S train_common.device=cuda ...
"""

from __future__ import annotations

import argparse

from model.baselines.train_baseline import KINDS, BaselineConfig, train_baseline
from pipeline.config import (
    BASELINE_OPTIONAL,
    BASELINE_SECTIONS,
    DEFAULT_PARAMS,
    read_training,
)


def config_from_params(kind: str, path=DEFAULT_PARAMS) -> BaselineConfig:
    """The baseline's section of a params file (completed from ``train_common``) as a validated
    BaselineConfig (ConfigError naming the key; a test-split ``train_file`` is refused)."""
    if kind not in BASELINE_SECTIONS:
        raise ValueError(f"baseline kind must be one of {sorted(BASELINE_SECTIONS)}, got {kind!r}")
    section = BASELINE_SECTIONS[kind]
    return read_training(
        BaselineConfig, section, path, optional=BASELINE_OPTIONAL, given={"kind": kind}
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=KINDS, help="which baseline to train")
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    cfg = config_from_params(args.kind, args.params)
    result = train_baseline(cfg)
    if result.history:
        last = result.history[-1]
        print(
            f"train_baseline {cfg.kind}: {len(result.history)} epochs, train loss "
            f"{result.history[0]['train_loss']:.4f} -> {last['train_loss']:.4f} "
            f"({last['loss_kind']}), "
            f"val NME {last['val_nme_pct']:.2f} %; weights -> {cfg.out_dir / 'model.pt'}"
            if last.get("val_nme_pct") is not None
            else f"train_baseline {cfg.kind}: {len(result.history)} epochs; "
            f"weights -> {cfg.out_dir / 'model.pt'}"
        )


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
