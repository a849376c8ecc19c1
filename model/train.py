"""PRNet training (docs/conventions.md section 8): Adam, step decay, on-device augmentation,
resumable; the epoch loop, checkpoints, resume and history are model.trainer's.

Recipe (paper): Adam at ``lr`` 1e-4, halved every 5 epochs (``lr_schedule='step'``,
``lr_step_epochs``, ``lr_gamma``), batch 16, the weighted position-map loss (model.loss): each UV
pixel weighted by its weight class (``uv/weight_class`` in the training file,
uvgen.weight_classes) as ``loss_weights`` says (params.yaml ``train.loss_weights``; the paper's
16 / 4 / 3 / 0 by default), augmentation as in model.augment.

Devices: ``device='auto'`` takes CUDA when present, else the CPU. On CUDA the network and batches
are channels-last and the forward pass runs under bf16 autocast (``amp='bf16'``; the loss is
computed in float32); ``compile=True`` adds ``torch.compile``. On the CPU the forward pass runs
under bf16 autocast too when the processor has native bf16 (AVX512-BF16 / AMX;
model.train_settings.cpu_bf16_supported), else float32; the log says which; its convolutions run
channels-last and the rest in the standard layout (``cpu_channels_last_convs``). A CPU run is
reproducible on one machine: the same config and seed give bit-identical weights (with
``num_workers`` any value).
Multi-GPU: launch with ``torchrun --nproc_per_node=G -m pipeline.train``; WORLD_SIZE > 1 wraps the
network in DistributedDataParallel, ``batch_size`` is the global batch (each rank takes
``batch_size / G``) and rank 0 alone writes files (model.distributed).

Outputs in ``out_dir``: ``checkpoints/last.pt`` (every ``checkpoint_every`` steps and at each
epoch end, atomic), ``model.pt`` (final weights, model.checkpoint.save_weights), ``metrics.json``
(the last epoch's numbers, for ``dvc metrics``) and ``loss.csv`` (one row per epoch, for
``dvc plots``).

Resuming: with ``resume=True`` a run starts from ``checkpoints/last.pt`` when that checkpoint's
fingerprint (every setting that changes the numbers, the identity of the input files and the source
of the training modules) matches, else from scratch. The sample order of an epoch is a function of
(seed, epoch) and the augmentation draws of a step a function of (seed, global step, rank), so a
run killed mid-epoch and resumed ends with the same weights as one never interrupted (on the CPU;
CUDA kernels are not bit-reproducible). ``epochs`` may be raised to continue a finished run with
the step schedule (the one-cycle schedule spans all epochs: another ``epochs`` starts afresh).

params.yaml's default is a short CPU run (width 6, ``net_size`` 128, ``template``, the one-cycle
schedule; see README "Training PRNet"); this class's defaults are the paper's recipe. The paper's
configuration on a GPU, as a DVC experiment:
``dvc exp run -S train.width=16 -S train.lr=1e-4 -S train.net_size=null -S train.template=false
-S train_common.epochs=40 -S train_common.lr_schedule=step -S train_common.bn_momentum=0.001
-S train_common.device=cuda -S train_common.num_workers=8 -S train_common.checkpoint_every=1000
-S train_common.rotation_deg=45 -S 'train_common.scale_range=[0.9,1.2]'
-S train_common.shift_frac=0.1 -S 'train_common.color_range=[0.6,1.4]'
-S train_common.occlusion_prob=0.5``
(params.yaml: ``train_common`` holds what PRN shares with the baselines).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.checkpoint import Progress, save_weights
from model.data import (
    DataSplit,
    EpochBatchSampler,
    ShardSampler,
    load_split,
    make_loader,
    prepare_batch,
    to_device,
)
from model.device import resolve_device
from model.distributed import DistInfo, all_reduce_sum, init_distributed, shutdown
from model.h5dataset import PositionMapDataset
from model.loss import LossWeights, weighted_map_loss
from model.nme import nme_2d
from model.prnet import PRNet, map_scale, use_channels_last_convs
from model.train_settings import (
    TrainCommon,
    autocast_enabled,
    check_common_fields,
    make_scheduler,
    package_digest,
    precision_note,
    run_fingerprint_of,
    seed_everything,
    set_bn_momentum,
)
from model.trainer import (  # noqa: F401 (re-exported: the output names and the history writer)
    CHECKPOINT_NAME,
    METRICS_NAME,
    TABLE_COLUMNS,
    TABLE_NAME,
    TIMING_COLUMNS,
    TIMING_NAME,
    WEIGHTS_NAME,
    Task,
    fit,
    open_checkpoint,
    optimizer_step,
    training_lock,
    write_history,
)
from uvgen.checks import check_range
from uvgen.h5store import PositionMapFile

# Settings that do not change the numbers: a checkpoint written under other values is resumed.
_NOT_FINGERPRINTED = (
    "train_file",
    "val_file",
    "out_dir",
    "epochs",
    "num_workers",
    "checkpoint_every",
    "resume",
    "progress",
    "device",
    "compile",
)


@dataclass(frozen=True, kw_only=True)
class TrainConfig(TrainCommon):
    """Everything a training run needs; the defaults are the paper's recipe at full width.

    The fields PRN shares with the baselines (data, holdout, budget, schedule, augmentation,
    runtime): model.train_settings.TrainCommon. PRN's own: ``out_dir``, ``lr`` (Adam; the peak for
    'onecycle'), ``width`` (16 = paper), ``net_size`` (None = the crop size, paper; see
    model.prnet.PRNet), ``template`` (start the output at the mean training map; False = paper),
    ``compile`` (torch.compile), ``cpu_channels_last_convs`` (on the CPU the convs alone run
    channels-last: model.prnet.use_channels_last_convs), ``loss_weights`` (the weight of each UV
    pixel's weight class in the loss, model.loss.LossWeights; default the paper's 16 / 4 / 3 / 0).
    """

    out_dir: Path = Path("data/train")
    lr: float = 1e-4
    width: int = 16
    net_size: int | None = None
    template: bool = False
    compile: bool = False
    cpu_channels_last_convs: bool = True
    loss_weights: LossWeights = LossWeights.paper()

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "out_dir", Path(self.out_dir))
        check_common_fields(self, "train", ("epochs", "batch_size", "width", "lr_step_epochs"))
        if self.net_size is not None:
            check_range("train.net_size", self.net_size, 32, 1024)


@dataclass
class TrainResult:
    """What :func:`train` returns (on every rank): the bare network and the per-epoch rows."""

    model: PRNet
    history: list[dict[str, Any]]
    out_dir: Path
    resumed_from: Progress | None


def code_digest() -> str:
    """SHA-256 of the model package's sources: a checkpoint of other code is not resumed from."""
    return package_digest(Path(__file__).resolve().parent)


def run_fingerprint(cfg: TrainConfig) -> str:
    """Hash of the settings that change the numbers, the input files' identity and the code."""
    return run_fingerprint_of(cfg, _NOT_FINGERPRINTED, code_digest())


def mean_target(dataset: PositionMapDataset, limit: int = 512) -> torch.Tensor:
    """Mean training map (3, H, W) on the network's [0, 1] scale, over the first ``limit`` samples
    of ``dataset`` (float64 sum; deterministic)."""
    n = min(len(dataset), limit)
    if n == 0:
        raise ValueError("no training samples to average for the template")
    total = None
    for k in range(n):
        m = dataset[k][1].to(torch.float64)
        total = m if total is None else total + m
    return (total / n).permute(2, 0, 1).to(torch.float32) / map_scale(total.shape[0])


def landmark_nme(
    pred_px: torch.Tensor, target_px: torch.Tensor, kpt_uv: torch.Tensor
) -> torch.Tensor:
    """Per-image 2D landmark NME (B,), as a fraction (docs/conventions.md section 6), in crop
    pixels.

    pred_px, target_px: (B, 3, H, W) maps in crop pixels; kpt_uv (2, 68) long, row 0 = column, row
    1 = row. Error = mean point distance in (x, y) / sqrt(w * h) of the target points' box.
    """
    ku, kv = kpt_uv[0], kpt_uv[1]
    pred = pred_px[:, :2, kv, ku].float().transpose(1, 2)  # (B, 68, 2)
    gt = target_px[:, :2, kv, ku].float().transpose(1, 2)
    return nme_2d(pred, gt)


def forward_loss(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    weight_mask: torch.Tensor,
    use_amp: bool = False,
) -> torch.Tensor:
    """The weighted map loss of a prepared batch (with its graph).

    x: (B, 3, H, W) images in [0, 1]; y: (B, 3, H, W) maps in crop pixels. The forward pass runs
    under bf16 autocast when ``use_amp``; the loss is computed in float32.
    """
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_amp):
        pred = net(x)
    return weighted_map_loss(pred.float(), y, weight_mask, map_scale(y.shape[-1]))


def train_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    weight_mask: torch.Tensor,
    use_amp: bool = False,
) -> torch.Tensor:
    """One optimisation step on a prepared batch (see :func:`forward_loss`); returns the
    (detached) loss."""
    return optimizer_step(optimizer, forward_loss(net, x, y, weight_mask, use_amp))


@torch.no_grad()
def evaluate(
    model: PRNet,
    dataset: PositionMapDataset,
    weight_mask: torch.Tensor,
    kpt_uv: torch.Tensor,
    *,
    device: torch.device,
    batch_size: int,
    info: DistInfo = DistInfo(),
    use_amp: bool = False,
    channels_last: bool = False,
    num_workers: int = 0,
) -> dict[str, float]:
    """Mean loss (per sample) and landmark NME (%) over ``dataset``, split over the ranks."""
    was_training = model.training
    model.eval()
    loader = make_loader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), info.rank, info.world_size),
        num_workers=min(num_workers, 2),
        pin_memory=device.type == "cuda",
    )
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss * B, nme, count
    for images, maps in loader:
        images, maps = to_device(images, maps, device)
        x, y = prepare_batch(images, maps, channels_last=channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            pred = model(x)
        pred = pred.float()
        scale = map_scale(y.shape[-1])
        sums[0] += weighted_map_loss(pred, y, weight_mask, scale).double() * len(x)
        sums[1] += landmark_nme(pred * scale, y, kpt_uv).double().sum()
        sums[2] += len(x)
    all_reduce_sum(sums, info)
    model.train(was_training)
    count = max(float(sums[2]), 1.0)
    return {"val_loss": float(sums[0]) / count, "val_nme_pct": 100.0 * float(sums[1]) / count}


def _image_size(path: Path) -> int:
    """The crops' (and maps') side: the file's UV size (``uvgen.uv_size``)."""
    with PositionMapFile(path) as f:
        return f.uv_size


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) training as configured; see the module docstring. Returns on every rank."""
    info = init_distributed()
    try:
        with training_lock(cfg.out_dir, info):
            return _train(cfg, info)
    finally:
        shutdown(info)


def _train(cfg: TrainConfig, info: DistInfo) -> TrainResult:
    device = resolve_device(cfg.device, info.local_rank)
    on_cuda = device.type == "cuda"
    use_amp = autocast_enabled(device, cfg.amp)
    if cfg.batch_size % info.world_size:
        raise ValueError(
            f"train.batch_size {cfg.batch_size} is not divisible by {info.world_size} ranks"
        )
    per_rank_batch = cfg.batch_size // info.world_size
    if on_cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    data: DataSplit = load_split(cfg.train_file, cfg.val_file, cfg.val_fraction, cfg.seed)
    in_size = _image_size(cfg.train_file)
    seed_everything(cfg.seed)
    model = PRNet(width=cfg.width, in_size=in_size, net_size=cfg.net_size, template=cfg.template)
    set_bn_momentum(model, cfg.bn_momentum)
    if cfg.template:
        model.set_template(mean_target(data.train))
    model.to(device)
    island_convs = not on_cuda and cfg.cpu_channels_last_convs
    if on_cuda:
        model.to(memory_format=torch.channels_last)
    elif island_convs:
        use_channels_last_convs(model)
    sampler = EpochBatchSampler(
        len(data.train), per_rank_batch, cfg.seed, info.rank, info.world_size
    )
    if sampler.steps_per_epoch == 0:
        raise ValueError(
            f"{cfg.train_file}: {len(data.train)} training samples make no batch of "
            f"{per_rank_batch} per rank"
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scheduler = make_scheduler(optimizer, cfg, sampler.steps_per_epoch)
    if info.is_main:
        layout = ", channels-last convs" if island_convs else ""
        tqdm.write(
            f"train: {precision_note(device, cfg.amp)}{layout}, {torch.get_num_threads()} threads"
        )
    fingerprint = run_fingerprint(cfg)
    meta = {
        "width": cfg.width,
        "in_size": in_size,
        "net_size": model.net_size,
        "template": model.template,
        "config": cfg.to_json(),
    }
    weight_mask = torch.from_numpy(cfg.loss_weights.weight_map(data.uv.weight_class)).to(device)
    kpt_uv = torch.from_numpy(np.asarray(data.uv.kpt_uv, np.int64)).to(device)
    augment = cfg.augment_config()

    def batch_loss(net: nn.Module, batch: Any, generator: torch.Generator, epoch: int):
        images, maps = to_device(*batch, device)
        x, y = prepare_batch(
            images, maps, augment=augment, generator=generator, channels_last=on_cuda
        )
        return forward_loss(net, x, y, weight_mask, use_amp)

    def validate(epoch: int) -> dict[str, float]:
        return evaluate(
            model,
            data.val,
            weight_mask,
            kpt_uv,
            device=device,
            batch_size=per_rank_batch,
            info=info,
            use_amp=use_amp,
            channels_last=on_cuda,
            num_workers=cfg.num_workers,
        )

    task = Task(
        name="train",
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=sampler,
        loader=make_loader(
            data.train, batch_sampler=sampler, num_workers=cfg.num_workers, pin_memory=on_cuda
        ),
        device=device,
        fingerprint=fingerprint,
        meta=meta,
        loss=batch_loss,
        save_weights=lambda path: save_weights(path, model, meta),
        evaluate=validate if data.val is not None and len(data.val) else None,
        extra={"width": cfg.width},
    )
    ckpt = open_checkpoint(cfg, fingerprint, device, "train", info)
    done = fit(cfg, task, ckpt, info)
    del ckpt
    return TrainResult(
        model=model, history=done.history, out_dir=cfg.out_dir, resumed_from=done.resumed_from
    )


def state_digest(model: nn.Module) -> str:
    """SHA-256 over every parameter and buffer (name, dtype, bytes): equal digests = equal
    weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


__all__ = [
    "TrainConfig",
    "TrainResult",
    "train",
    "train_step",
    "forward_loss",
    "write_history",
    "evaluate",
    "landmark_nme",
    "run_fingerprint",
    "set_bn_momentum",
    "state_digest",
]
