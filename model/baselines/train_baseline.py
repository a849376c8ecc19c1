"""Training of the 3DDFA- and DeFA-style baselines on the PRN training file, resumable.

Runs in PRN's training loop (model.trainer: epochs, checkpoints, resume -- a checkpoint that
cannot be read or was written with other settings starts the run afresh --, progress, history)
and shares PRN's machinery (model.train, model.data, model.checkpoint, model.augment): the same
train/validation holdout (``split_indices`` with the same seed and fraction), the same epoch order
(``EpochBatchSampler``: a function of (seed, epoch)), the same augmentation draws per step (a
generator seeded with (seed, global step)), atomic checkpoints with the random states, the
fingerprint rule for resuming, device selection, tqdm and the metrics files.

Targets: every sample's exact crop-space fit (params3dmm.read_crop_fits) is computed once at the
start; the whitening statistics (params3dmm.Whitening) once per run, over 4 seeded random
augmentations of each training target (3DDFA computes them over its augmented training set), and
are stored in the checkpoint and in ``model.pt``.

Per step: the uint8 256x256 crops are augmented on the device with PRN's augmentation (rotation,
scale, shift, colour scale, occlusion; model.augment's draws in its order), the target cameras go
through the same 2x3 affine (params3dmm.augment_camera), so targets stay exact, and the image,
resized to ``input_size`` first for speed (bilinear, antialiased), is warped by the conjugated
affine and normalised to [-1, 1]. Parameters stay in 256-crop pixels whatever the input size.

Losses (model.baselines.losses):

* ``3ddfa``: WPDC for the first ``round(wpdc_fraction * epochs)`` epochs (at least 1 when the
  fraction is > 0), then VDC to the end (3DDFA's order: VDC fine-tunes a WPDC-trained network).
  Default fraction 0.34: 1 + 2 epochs in the 3-epoch CPU run, 14 + 26 in a 40-epoch run. Both on
  ``loss_vertices`` vertices drawn once (seeded) from the model.
* ``defa``: parameter loss + ``landmark_weight`` x landmark loss (px^2) every epoch.

Outputs in ``out_dir``: ``checkpoints/last.pt``, ``model.pt`` (weights + everything decoding needs:
kind, parameter layout, whitening statistics, input size, model_dir and its checksum),
``metrics.json`` and ``loss.csv`` (one row per epoch: loss kind -- the scale changes from WPDC to
VDC --, train and validation loss, validation landmark NME in % from the decoded 68 points exactly
as PRN's maps are decoded, throughput).

Single process (no DDP: these networks are small); channels-last; bf16 autocast (``amp``) on CUDA
and on CPUs with native bf16, as PRN's (model.train_settings.autocast_enabled). The learning rate
follows PRN's per-step schedule (``lr_schedule``: 'step' or 'onecycle',
model.train_settings.lr_factor). CPU runs are reproducible bit for bit on one machine, like PRN's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from model.baselines.defa_net import DeFANet
from model.baselines.inputs import ImageDataset, augment_images, network_input, resize_affine
from model.baselines.mobilenet import MobileNetV1, count_parameters
from model.baselines.objective import FitTable, LossFn, evaluate, fit_whitening
from model.baselines.params3dmm import (
    SPECS,
    LandmarkDecoder,
    ParamSpec,
    Whitening,
    model_dir_of,
    read_crop_fits,
)
from model.checkpoint import Progress, atomic_torch_save
from model.data import EpochBatchSampler, make_loader, split_indices
from model.device import resolve_device
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
from model.trainer import Task, fit, open_checkpoint, training_lock
from uvgen.checks import check_range
from uvgen.formats.bfm import load_bfm
from uvgen.formats.errors import DataError
from uvgen.groundtruth import build_uv_layout
from uvgen.h5store import PositionMapFile

KINDS = tuple(SPECS)  # the parameter layouts: "3ddfa", "defa"
DEFAULT_INPUT = {"3ddfa": 120, "defa": 128}
PAPER_WIDTH = {"3ddfa": 1.0, "defa": 32}
TABLE_COLUMNS = ("epoch", "step", "lr", "loss_kind", "train_loss", "val_loss", "val_nme_pct")
_NOT_FINGERPRINTED = (
    "train_file",
    "val_file",
    "out_dir",
    "model_dir",
    "epochs",
    "num_workers",
    "checkpoint_every",
    "resume",
    "progress",
    "device",
)


@dataclass(frozen=True, kw_only=True)
class BaselineConfig(TrainCommon):
    """A baseline training run; defaults = the paper configuration of ``kind`` where it gives one.

    The fields shared with PRN (data, holdout, budget, schedule, augmentation, runtime):
    model.train_settings.TrainCommon (``epochs``, ``bn_momentum`` and ``num_workers`` default to
    the baselines' own values here). kind: '3ddfa' | 'defa'. ``out_dir``, ``model_dir`` (the
    morphable model; None: the ``model_dir`` recorded in the training file's params, relative to the
    working directory). Adam at ``lr`` (the peak for 'onecycle'). Network: ``width`` (MobileNet-V1
    width multiplier for 3ddfa, paper 1.0; DeFANet base channels for defa, 32), ``input_size``
    (None: 120 for 3ddfa, 128 for defa). Losses: ``wpdc_fraction`` (3ddfa: share of the epochs
    trained with WPDC before VDC), ``landmark_weight`` (defa: weight of the px^2 landmark loss),
    ``loss_vertices`` (vertex subsample of WPDC/VDC).
    """

    kind: str
    epochs: int = 40
    bn_momentum: float = 0.1
    num_workers: int = 1
    out_dir: Path = Path("data/baselines/3ddfa")
    model_dir: Path | None = None
    lr: float = 1e-3
    width: float | None = None
    input_size: int | None = None
    wpdc_fraction: float = 0.34
    landmark_weight: float = 0.01
    loss_vertices: int = 1024

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen)
        if self.kind not in KINDS:
            raise ValueError(f"baseline kind must be one of {KINDS}, got {self.kind!r}")
        super().__post_init__()
        set_("out_dir", Path(self.out_dir))
        if self.model_dir is not None:
            set_("model_dir", Path(self.model_dir))
        if self.width is None:
            set_("width", PAPER_WIDTH[self.kind])
        if self.input_size is None:
            set_("input_size", DEFAULT_INPUT[self.kind])
        set_("width", float(self.width))
        positive = ("epochs", "batch_size", "lr_step_epochs", "input_size", "loss_vertices")
        section = f"baselines.{self.kind}"
        check_common_fields(self, section, positive)
        check_range(f"{section}.width", self.width, 0, low_open=True)
        if self.kind == "defa" and self.width != int(self.width):
            raise ValueError(f"{section}.width: must be an integer for defa, got {self.width}")
        if self.kind == "defa" and self.input_size % 32:
            raise ValueError(
                f"{section}.input_size: must be a multiple of 32, got {self.input_size}"
            )
        check_range(f"{section}.input_size", self.input_size, 32, 1024)
        check_range(f"{section}.wpdc_fraction", self.wpdc_fraction, 0, 1)
        check_range(f"{section}.landmark_weight", self.landmark_weight, 0)

    @property
    def spec(self) -> ParamSpec:
        return SPECS[self.kind]

    @property
    def wpdc_epochs(self) -> int:
        """Epochs trained with WPDC (3ddfa); VDC afterwards."""
        return max(1, int(round(self.wpdc_fraction * self.epochs))) if self.wpdc_fraction > 0 else 0

    def loss_kind(self, epoch: int) -> str:
        """'wpdc' | 'vdc' (3ddfa) or 'param+lmk' (defa) for the 0-based ``epoch``."""
        if self.kind == "defa":
            return "param+lmk"
        return "wpdc" if epoch < self.wpdc_epochs else "vdc"



@dataclass
class BaselineResult:
    model: nn.Module
    history: list[dict[str, Any]]
    out_dir: Path
    resumed_from: Progress | None
    whitening: Whitening


# ----------------------------------------------------------------------------------------------
# Pieces


def build_network(
    kind: str, width: float, input_size: int, num_outputs: int | None = None
) -> nn.Module:
    """MobileNet-V1 (3ddfa, width multiplier) or DeFANet (defa, base channels)."""
    n_out = SPECS[kind].dim if num_outputs is None else num_outputs
    if kind == "3ddfa":
        return MobileNetV1(n_out, alpha=float(width))
    return DeFANet(n_out, width=int(width), in_size=int(input_size))


def resolve_model_dir(cfg_model_dir: Path | None, uv_file: Path) -> Path:
    """The model directory to use, checked against the UV file's ``model_checksum``."""
    from uvgen.model_checksum import model_checksum

    model_dir = Path(cfg_model_dir) if cfg_model_dir is not None else model_dir_of(uv_file)
    if not (model_dir / "BFM.mat").is_file():
        raise DataError(model_dir, "BFM.mat", "no morphable model here (set model_dir)")
    with PositionMapFile(uv_file) as f:
        expected = str(f.attrs.get("model_checksum"))
    actual = model_checksum(model_dir)
    if actual != expected:
        raise DataError(
            uv_file,
            "model_checksum",
            f"the file was made with another model than {model_dir} "
            f"({expected[:12]} != {actual[:12]})",
        )
    return model_dir


def code_digest() -> str:
    """SHA-256 of the model package's and this package's sources."""
    here = Path(__file__).resolve().parent
    return package_digest(here.parent, here)


def run_fingerprint(cfg: BaselineConfig, checksum: str) -> str:
    """Hash of the settings that change the numbers, the input files, the model and the code."""
    return run_fingerprint_of(cfg, _NOT_FINGERPRINTED, code_digest(), model=checksum)


def weights_meta(
    cfg: BaselineConfig, whitening: Whitening, model_dir: Path, checksum: str, n_params: int
) -> dict[str, Any]:
    """Everything decoding needs, stored in the checkpoint and in model.pt
    (torch weights_only-safe)."""
    return {
        "kind": cfg.kind,
        "spec": cfg.spec.to_json(),
        "width": cfg.width,
        "input_size": cfg.input_size,
        "whitening": whitening.to_state(),
        "model_dir": str(model_dir),
        "model_checksum": checksum,
        "n_parameters": n_params,
        "config": cfg.to_json(),
    }


# ----------------------------------------------------------------------------------------------
# The loop


def train_baseline(cfg: BaselineConfig) -> BaselineResult:
    """Run (or resume) a baseline training as configured; see the module docstring. One at a
    time per ``out_dir`` (:func:`model.trainer.training_lock`)."""
    with training_lock(cfg.out_dir):
        return _train_baseline(cfg)


def _train_baseline(cfg: BaselineConfig) -> BaselineResult:
    from uvgen.model_checksum import model_checksum

    device = resolve_device(cfg.device, local_rank=0)
    on_cuda = device.type == "cuda"
    use_amp = autocast_enabled(device, cfg.amp)
    channels_last = True  # faster for both networks on CPU and GPU (depthwise convs especially)
    spec = cfg.spec
    model_dir = resolve_model_dir(cfg.model_dir, cfg.train_file)
    checksum = model_checksum(model_dir)
    if cfg.val_file is not None:
        resolve_model_dir(model_dir, cfg.val_file)
    model = load_bfm(model_dir)

    with PositionMapFile(cfg.train_file) as f:
        n, uv = len(f), f.uv
        crop_size = f.uv_size  # the crops' side is the maps' (uvgen.uv_size)
    layout = build_uv_layout(model, crop_size)
    if cfg.val_file is None:
        train_idx, val_idx = split_indices(n, cfg.val_fraction, cfg.seed)
        val_path = cfg.train_file
    else:
        train_idx = np.arange(n, dtype=np.int64)
        with PositionMapFile(cfg.val_file) as f:
            val_idx = np.arange(len(f), dtype=np.int64)
        val_path = cfg.val_file
    fits = read_crop_fits(cfg.train_file, model, layout, train_idx)
    val_fits = read_crop_fits(val_path, model, layout, val_idx) if len(val_idx) else None

    fingerprint = run_fingerprint(cfg, checksum)
    ckpt = open_checkpoint(cfg, fingerprint, device, "train_baseline")
    # whitening statistics: computed once on the (unaugmented) training targets, kept with the run
    whitening = (
        Whitening.from_state(ckpt["meta"]["whitening"])
        if ckpt is not None
        else fit_whitening(spec, fits, cfg.augment_config(), cfg.seed, size=crop_size)
    )

    seed_everything(cfg.seed)
    net = build_network(cfg.kind, cfg.width, cfg.input_size)
    set_bn_momentum(net, cfg.bn_momentum)
    net.to(device)
    net.to(memory_format=torch.channels_last)
    dataset = ImageDataset(cfg.train_file, train_idx)
    sampler = EpochBatchSampler(len(dataset), cfg.batch_size, cfg.seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    scheduler = make_scheduler(optimizer, cfg, max(sampler.steps_per_epoch, 1))
    tqdm.write(
        f"train_baseline {cfg.kind}: {precision_note(device, cfg.amp)}, "
        f"{torch.get_num_threads()} threads"
    )
    n_params = count_parameters(net)
    meta = weights_meta(cfg, whitening, model_dir, checksum, n_params)
    table = FitTable(fits, device)
    val_table = FitTable(val_fits, device) if val_fits is not None else None
    lmk_decoder = LandmarkDecoder(spec, model, layout, uv.kpt_uv, device=device)
    loss_fn = LossFn(cfg, model, whitening, lmk_decoder, device)
    val_dataset = ImageDataset(val_path, val_idx) if val_fits is not None else None
    if sampler.steps_per_epoch == 0:
        raise ValueError(
            f"{cfg.train_file}: {len(dataset)} training samples make no batch of {cfg.batch_size}"
        )
    augment = cfg.augment_config()

    def batch_loss(net: nn.Module, batch: Any, generator: torch.Generator, epoch: int):
        images, k = batch
        images, k = images.to(device, non_blocking=on_cuda), k.to(device)
        x, A = augment_images(images, generator, augment, cfg.input_size)
        target_raw, gt_lmk = table.targets(spec, k, A if augment is not None else None)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            pred_w = net(x)
        return loss_fn(cfg.loss_kind(epoch), pred_w.float(), target_raw, gt_lmk)

    def validate(epoch: int) -> dict[str, float]:
        return evaluate(
            net,
            val_dataset,
            val_table,
            loss_fn,
            cfg.loss_kind(epoch),
            device=device,
            batch_size=cfg.batch_size,
            input_size=cfg.input_size,
            use_amp=use_amp,
            channels_last=channels_last,
        )

    task = Task(
        name="train_baseline",
        label=f"{cfg.kind} ",
        model=net,
        optimizer=optimizer,
        scheduler=scheduler,
        sampler=sampler,
        loader=make_loader(
            dataset, batch_sampler=sampler, num_workers=cfg.num_workers, pin_memory=on_cuda
        ),
        device=device,
        fingerprint=fingerprint,
        meta=meta,
        loss=batch_loss,
        save_weights=lambda path: atomic_torch_save(
            {"model": net.state_dict(), "meta": meta}, path
        ),
        evaluate=validate if val_dataset is not None and len(val_dataset) else None,
        row_fields=lambda epoch: {"loss_kind": cfg.loss_kind(epoch)},
        columns=TABLE_COLUMNS,
        extra={
            "kind": cfg.kind,
            "width": cfg.width,
            "input_size": cfg.input_size,
            "n_parameters": n_params,
        },
    )
    done = fit(cfg, task, ckpt)
    del ckpt
    return BaselineResult(net, done.history, cfg.out_dir, done.resumed_from, whitening)


__all__ = [
    "BaselineConfig",
    "BaselineResult",
    "train_baseline",
    "build_network",
    "network_input",
    "augment_images",
    "resize_affine",
    "fit_whitening",
    "ImageDataset",
    "FitTable",
    "LossFn",
    "evaluate",
    "resolve_model_dir",
    "run_fingerprint",
    "KINDS",
]
