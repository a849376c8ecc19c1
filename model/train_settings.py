"""The training settings PRN (model.train) and the baselines (model.baselines.train_baseline)
share (:class:`TrainCommon`), and what they mean: the learning-rate schedule (:func:`lr_factor`),
the precision (bf16 autocast where native, :func:`autocast_enabled`), the augmentation of a
configuration, seeding, batch-norm momentum, a configuration as JSON and the identity of an input
file (for resuming)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from model.augment import AugmentConfig
from model.data import derived_seed
from model.device import resolve_device
from uvgen.checks import check_device, check_range, check_seed
from uvgen.h5store import PositionMapFile

AMP_MODES = ("bf16", "none")
LR_SCHEDULES = ("step", "onecycle")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainCommon:
    """The settings PRN's training (model.train.TrainConfig) and the baselines'
    (model.baselines.train_baseline.BaselineConfig) share: params.yaml's ``train_common`` section
    holds exactly these fields (:meth:`common_keys`), so that every method gets the same data,
    holdout, budget, schedule, augmentation, seed and runtime. Defaults: the paper's recipe.

    Data: ``train_file`` (UV HDF5 file, model.data), ``val_file`` (None: hold out ``val_fraction``
    of the training file, the same samples for every method with the same seed). Optimisation:
    ``epochs``, ``batch_size`` (global), ``lr_schedule`` ('step' = paper: ``lr_gamma`` every
    ``lr_step_epochs``; 'onecycle': warm-up over ``warmup_frac`` of all steps, cosine to 0;
    :func:`lr_factor`), ``bn_momentum`` (PyTorch convention; 0.001 = TensorFlow's decay 0.999).
    Augmentation (model.augment.AugmentConfig): ``augment`` on/off, ``rotation_deg``,
    ``scale_range``, ``shift_frac``, ``color_range``, ``occlusion_prob``. Runtime: ``seed``,
    ``device`` ('auto' | 'cpu' | 'cuda' | 'cuda:N'), ``amp`` ('bf16' | 'none'; bf16 on CUDA and on
    CPUs with native bf16), ``num_workers``, ``checkpoint_every`` (steps; 0 = only at epoch
    ends), ``resume``, ``progress`` (tqdm bar). Checked by :func:`check_common_fields`.
    """

    train_file: Path
    val_file: Path | None = None
    val_fraction: float = 0.1
    epochs: int = 100
    batch_size: int = 16
    lr_step_epochs: int = 5
    lr_gamma: float = 0.5
    lr_schedule: str = "step"
    warmup_frac: float = 0.05
    bn_momentum: float = 0.001
    augment: bool = True
    rotation_deg: float = 45.0
    scale_range: tuple[float, float] = (0.9, 1.2)
    shift_frac: float = 0.1
    color_range: tuple[float, float] = (0.6, 1.4)
    occlusion_prob: float = 0.5
    seed: int = 0
    device: str = "auto"
    amp: str = "bf16"
    num_workers: int = 2
    checkpoint_every: int = 500
    resume: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_file", Path(self.train_file))
        if self.val_file is not None:
            object.__setattr__(self, "val_file", Path(self.val_file))

    @classmethod
    def common_keys(cls) -> tuple[str, ...]:
        """The shared fields' names (params.yaml's ``train_common`` keys), in declaration order."""
        return tuple(f.name for f in dataclasses.fields(TrainCommon))

    def augment_config(self) -> AugmentConfig | None:
        return augment_config_of(self)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict of every field (paths as strings, tuples as lists, nested dataclasses
        as dicts)."""
        return config_json(self)


def augment_config_of(cfg: Any) -> AugmentConfig | None:
    """The augmentation of a training configuration (its ``augment`` and range fields);
    None = off."""
    if not cfg.augment:
        return None
    # The AugmentConfig fields the configuration has (the others keep AugmentConfig's defaults).
    names = [f.name for f in dataclasses.fields(AugmentConfig) if hasattr(cfg, f.name)]
    return AugmentConfig(**{name: getattr(cfg, name) for name in names})


def config_json(cfg: Any) -> dict[str, Any]:
    """A configuration dataclass as a JSON-ready dict (paths as strings, tuples as lists, nested
    dataclasses as dicts)."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif dataclasses.is_dataclass(value):
            value = config_json(value)
        out[f.name] = value
    return out


def check_common_fields(cfg: Any, section: str, positive: tuple[str, ...]) -> None:
    """Validate the fields PRN's and the baselines' configurations share (ValueError naming
    ``section.FIELD``): the ``positive`` integers, the learning-rate schedule, the [low, high]
    augmentation ranges (normalised to float tuples on the frozen ``cfg``), the precision, the
    worker and checkpoint counts and the validation fraction."""
    for name in positive:
        check_range(f"{section}.{name}", getattr(cfg, name), 1)
    check_range(f"{section}.lr", cfg.lr, 0, low_open=True)
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(
            f"{section}.lr_schedule must be one of {LR_SCHEDULES}, got {cfg.lr_schedule!r}"
        )
    check_range(f"{section}.lr_gamma", cfg.lr_gamma, 0, 1, low_open=True)
    check_range(f"{section}.warmup_frac", cfg.warmup_frac, 0, 1, high_open=True)
    check_range(f"{section}.bn_momentum", cfg.bn_momentum, 0, 1)
    check_range(f"{section}.rotation_deg", cfg.rotation_deg, 0, 180)
    check_range(f"{section}.shift_frac", cfg.shift_frac, 0, 1)
    check_range(f"{section}.occlusion_prob", cfg.occlusion_prob, 0, 1)
    for name, low in (("scale_range", 0.0), ("color_range", 0.0)):
        value = tuple(float(v) for v in getattr(cfg, name))
        if len(value) != 2 or value[0] > value[1]:
            raise ValueError(f"{section}.{name} must be [low, high], got {getattr(cfg, name)!r}")
        check_range(f"{section}.{name}[0]", value[0], low, low_open=name == "scale_range")
        object.__setattr__(cfg, name, value)
    if cfg.amp not in AMP_MODES:
        raise ValueError(f"{section}.amp must be one of {AMP_MODES}, got {cfg.amp!r}")
    check_device(f"{section}.device", cfg.device)
    check_seed(f"{section}.seed", cfg.seed)
    check_range(f"{section}.num_workers", cfg.num_workers, 0, 1024)
    check_range(f"{section}.checkpoint_every", cfg.checkpoint_every, 0)
    check_range(f"{section}.val_fraction", cfg.val_fraction, 0, 1, high_open=True)


def lr_factor(
    step: int,
    *,
    schedule: str,
    steps_per_epoch: int,
    epochs: int,
    lr_step_epochs: int,
    lr_gamma: float,
    warmup_frac: float,
) -> float:
    """Learning-rate multiplier of the 0-based optimisation ``step`` (a pure function of the step).

    ``step`` (the paper's): ``lr_gamma ** (epoch // lr_step_epochs)``, constant within an epoch.
    ``onecycle`` (short runs): a linear warm-up from 0 over the first ``warmup_frac`` of all
    ``epochs * steps_per_epoch`` steps to the peak ``lr``, then a cosine decay to 0 at the last
    step.
    """
    if schedule == "step":
        return lr_gamma ** (step // (steps_per_epoch * lr_step_epochs))
    total = max(epochs * steps_per_epoch, 1)
    warm = int(round(warmup_frac * total))
    if step < warm:
        return (step + 1) / warm
    t = min((step - warm) / max(total - warm, 1), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: Any, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step scheduler (call ``step()`` after every optimiser step) following
    :func:`lr_factor`."""
    kw = dict(
        schedule=cfg.lr_schedule,
        steps_per_epoch=steps_per_epoch,
        epochs=cfg.epochs,
        lr_step_epochs=cfg.lr_step_epochs,
        lr_gamma=cfg.lr_gamma,
        warmup_frac=cfg.warmup_frac,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, **kw))


def cpu_bf16_supported() -> bool:
    """Whether this CPU has native bf16 arithmetic (AVX512-BF16 or AMX) that oneDNN uses."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        return False


def autocast_enabled(device: torch.device, amp: str) -> bool:
    """bf16 autocast for ``amp='bf16'``: always on CUDA, on the CPU where it is native
    (else fp32)."""
    if amp != "bf16":
        return False
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16_supported())


def precision_note(device: torch.device, amp: str) -> str:
    """One line saying which precision a run uses, for the log."""
    if autocast_enabled(device, amp):
        return f"bf16 autocast on {device.type}"
    why = "amp: none" if amp != "bf16" else "no native bf16 on this CPU"
    return f"float32 on {device.type} ({why})"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(derived_seed("numpy", seed) % (2**32))
    torch.manual_seed(seed)


def set_bn_momentum(model: nn.Module, momentum: float) -> None:
    """Set every batch norm's running-average momentum (PyTorch convention: new-value weight)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum


def file_identity(path: Path) -> dict[str, Any]:
    """What identifies a UV file's content cheaply: sample count, size, names hash, attributes."""
    with PositionMapFile(path) as f:
        attrs = f.attrs
        names = hashlib.sha256("\n".join(f.names).encode()).hexdigest()
        n = len(f)
    keep = ("model_checksum", "params", "split", "posmap_dtype", "posmap_offset")
    return {
        "n": n,
        "bytes": Path(path).stat().st_size,
        "names": names,
        **{k: str(attrs.get(k)) for k in keep},
    }


def source_digest(paths: Iterable[Path]) -> str:
    """SHA-256 over the names and bytes of the source files ``paths``, in the order given."""
    h = hashlib.sha256()
    for path in paths:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def package_digest(*folders: Path) -> str:
    """:func:`source_digest` of every ``*.py`` file directly in ``folders`` (sorted by path): the
    code of a training run, for its resume fingerprint (a checkpoint of other code is not resumed
    from; no hand-kept file list)."""
    return source_digest(sorted(p for folder in folders for p in Path(folder).glob("*.py")))


def run_fingerprint_of(
    cfg: Any, not_fingerprinted: Collection[str], code: str, **more: Any
) -> str:
    """Hash of what changes the numbers of a run: ``cfg``'s settings but ``not_fingerprinted``
    (``epochs`` too under the one-cycle schedule, which spans all epochs), the precision that
    runs, the ``code`` digest, the input files' identity and ``more``."""
    settings = {k: v for k, v in cfg.to_json().items() if k not in not_fingerprinted}
    if cfg.lr_schedule != "step":
        settings["epochs"] = cfg.epochs
    settings["precision"] = (
        "bf16" if autocast_enabled(resolve_device(cfg.device), cfg.amp) else "float32"
    )
    settings.update(code=code, train_data=file_identity(cfg.train_file), **more)
    if cfg.val_file is not None:
        settings["val_data"] = file_identity(cfg.val_file)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
