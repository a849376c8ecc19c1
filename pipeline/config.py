"""Typed configuration: every stage reads its parameters from ``params.yaml`` through here."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"

T = TypeVar("T")


@dataclass(frozen=True)
class FaceModelParams:
    """The embedded procedural face model."""

    n_vertices: int
    seed: int
    out_dir: Path


@dataclass(frozen=True)
class SynthSetParams:
    """A synthetic data set in a real layout (300W-LP or AFLW2000-3D)."""

    count: int
    image_size: int
    seed: int
    out_dir: Path
    workers: int


@dataclass(frozen=True)
class UVGenParams:
    """The UV ground-truth generation (stages ``uvgen_train`` and ``uvgen_test``)."""

    model_dir: Path
    train_root: Path
    test_root: Path
    train_out: Path
    test_out: Path
    seed: int
    jitter: bool
    task_size: int
    workers: int
    scheduler_address: str | None
    posmap_dtype: str
    compression: str
    mask_source: str
    prnet_dir: Path | None
    on_bad_sample: str

    def __post_init__(self) -> None:
        _choice("uvgen.posmap_dtype", self.posmap_dtype, ("float16", "float32"))
        _choice("uvgen.compression", self.compression, ("none", "blosc-lz4", "gzip"))
        _choice("uvgen.mask_source", self.mask_source, ("model", "prnet"))
        _choice("uvgen.on_bad_sample", self.on_bad_sample, ("skip", "fail"))
        if not 1 <= self.task_size <= 10_000:
            raise ValueError(f"params.yaml: uvgen.task_size must be in [1, 10000], got {self.task_size}")
        if self.mask_source == "prnet" and self.prnet_dir is None:
            raise ValueError("params.yaml: uvgen.mask_source 'prnet' needs uvgen.prnet_dir")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"params.yaml: {name} must be one of {allowed}, got {value!r}")


@dataclass(frozen=True)
class TrainParams:
    """PRNet training (stage ``train``); the same fields as ``model.train.TrainConfig``, which
    documents and checks them."""

    train_file: Path
    val_file: Path | None
    out_dir: Path
    val_fraction: float
    epochs: int
    batch_size: int
    lr: float
    lr_step_epochs: int
    lr_gamma: float
    width: int
    bn_momentum: float
    augment: bool
    rotation_deg: float
    scale_range: list
    shift_frac: float
    color_range: list
    occlusion_prob: float
    seed: int
    device: str
    amp: str
    compile: bool
    num_workers: int
    checkpoint_every: int
    resume: bool
    progress: bool


@dataclass(frozen=True)
class Params:
    face_model: FaceModelParams
    synth_300wlp: SynthSetParams
    synth_aflw2000: SynthSetParams
    uvgen: UVGenParams
    train: TrainParams


def _build(cls: type[T], section: dict[str, Any], name: str) -> T:
    """Instantiate a dataclass from a YAML section, converting types and naming bad keys."""
    if not isinstance(section, dict):
        raise ValueError(f"params.yaml: section '{name}' must be a mapping")
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(section) - set(known)
    missing = set(known) - set(section)
    if unknown:
        raise ValueError(f"params.yaml: unknown key(s) in '{name}': {sorted(unknown)}")
    if missing:
        raise ValueError(f"params.yaml: missing key(s) in '{name}': {sorted(missing)}")
    values = {}
    for key, f in known.items():
        value = section[key]
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if kind.startswith("Path"):
            value = None if value is None else Path(value)
        elif kind in ("int", "float", "bool"):
            value = {"int": int, "float": float, "bool": bool}[kind](value)
        values[key] = value
    return cls(**values)  # type: ignore[call-arg]


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate ``params.yaml``."""
    with open(path) as fh:
        raw = yaml.safe_load(fh)
    return Params(
        face_model=_build(FaceModelParams, raw.get("face_model"), "face_model"),
        synth_300wlp=_build(SynthSetParams, raw.get("synth_300wlp"), "synth_300wlp"),
        synth_aflw2000=_build(SynthSetParams, raw.get("synth_aflw2000"), "synth_aflw2000"),
        uvgen=_build(UVGenParams, raw.get("uvgen"), "uvgen"),
        train=_build(TrainParams, raw.get("train"), "train"),
    )
