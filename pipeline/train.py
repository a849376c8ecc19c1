"""Stage `train`: the UV training file -> PRNet weights, checkpoints, per-epoch metrics.

Reads the ``train_common`` and ``train`` sections of params.yaml (fields documented in
model.train.TrainConfig) and writes to ``train.out_dir``: ``checkpoints/last.pt``, ``model.pt``,
``metrics.json``, ``loss.csv``. A run killed mid-epoch resumes from its last checkpoint when started
again (``dvc repro`` or this command) with the same settings, data and code; raising
``train_common.epochs`` continues a finished run.

The default is a short CPU run (params.yaml: width 6, the network at 128x128 inside the 256 crop,
an output that starts at the mean training map, a one-cycle learning-rate schedule peaking at 2e-3,
bf16 autocast where the CPU has native bf16, milder augmentation). The paper's configuration on
a GPU (full width 16 at 256x256, plain sigmoid, Adam at 1e-4 halved every 5 epochs, TensorFlow's
batch-norm momentum, the paper's augmentation ranges, 40 epochs):

    dvc exp run -S train.width=16 -S train.lr=1e-4 -S train.net_size=null \
        -S train.template=false -S train_common.epochs=40 -S train_common.lr_schedule=step \
        -S train_common.bn_momentum=0.001 -S train_common.device=cuda \
        -S train_common.num_workers=8 -S train_common.checkpoint_every=1000 \
        -S train_common.rotation_deg=45 -S 'train_common.scale_range=[0.9,1.2]' \
        -S train_common.shift_frac=0.1 -S 'train_common.color_range=[0.6,1.4]' \
        -S train_common.occlusion_prob=0.5

(with the real 300W-LP behind ``uvgen.train_root`` for the paper's data). Several GPUs:
``torchrun --standalone --nproc_per_node=G -m pipeline.train`` (``train_common.batch_size`` is the
global batch, divided over the GPUs).
"""

from __future__ import annotations

import argparse
import os

from model.train import TrainConfig, train
from pipeline.config import DEFAULT_PARAMS, read_training


def config_from_params(path=DEFAULT_PARAMS) -> TrainConfig:
    """The ``train_common`` and ``train`` sections of a params file as a validated TrainConfig,
    every field required (ConfigError naming the key; a test-split ``train_file`` is refused)."""
    return read_training(TrainConfig, "train", path, optional=())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    cfg = config_from_params(args.params)
    result = train(cfg)
    if result.history and os.environ.get("RANK", "0") == "0":
        last = result.history[-1]
        print(
            f"train: {len(result.history)} epochs, "
            f"train loss {result.history[0]['train_loss']:.4f} -> "
            f"{last['train_loss']:.4f}; weights -> {cfg.out_dir / 'model.pt'}"
        )


if __name__ == "__main__":
    from pipeline.stage import run as run_stage

    run_stage(main)  # one-line errors, --debug for the traceback, dies with its parent
