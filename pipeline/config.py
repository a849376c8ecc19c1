"""Typed configuration: every stage reads its parameters from ``params.yaml`` through here."""
from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
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
    lr_schedule: str
    warmup_frac: float
    width: int
    net_size: int | None
    template: bool
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


PREDICT_KINDS = ("prn", "3ddfa", "defa", "mean_map")


@dataclass(frozen=True)
class PredictMethod:
    """One method of the ``predict`` stage: its label (table row, file name), its kind (which
    adapter runs it: 'prn' = model.inference.Predictor, '3ddfa' / 'defa' = model.baselines,
    'mean_map' = the mean training map, a constant) and its trained weights (mean_map: the training
    UV file)."""

    name: str
    kind: str
    checkpoint: Path


@dataclass(frozen=True)
class PredictParams:
    """Stage ``predict``: every method on the test HDF5 -> one predictions file per method."""

    test_file: Path
    out_dir: Path
    batch_size: int
    device: str
    methods: tuple
    skip_missing: bool

    def __post_init__(self) -> None:
        if not isinstance(self.methods, (list, tuple)) or not self.methods:
            raise ValueError("params.yaml: predict.methods must be a non-empty list")
        specs = []
        for i, m in enumerate(self.methods):
            if isinstance(m, PredictMethod):
                specs.append(m)
                continue
            if not isinstance(m, dict) or set(m) != {"name", "kind", "checkpoint"}:
                raise ValueError(f"params.yaml: predict.methods[{i}] needs exactly name, kind, checkpoint")
            _choice(f"predict.methods[{i}].kind", m["kind"], PREDICT_KINDS)
            specs.append(PredictMethod(str(m["name"]), str(m["kind"]), Path(m["checkpoint"])))
        names = [m.name for m in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"params.yaml: predict.methods names must be unique, got {names}")
        if self.batch_size < 1:
            raise ValueError(f"params.yaml: predict.batch_size must be >= 1, got {self.batch_size}")
        object.__setattr__(self, "methods", tuple(specs))


@dataclass(frozen=True)
class EvaluateParams:
    """Stage ``evaluate``: predictions + test ground truth -> tables, metrics, CED data, figures."""

    test_file: Path
    predictions_dir: Path
    out_dir: Path
    external: list
    max_error: float
    ced_points: int
    chunk: int
    recon_scale: bool
    on_unmatched: str

    def __post_init__(self) -> None:
        _choice("evaluate.on_unmatched", self.on_unmatched, ("report", "fail"))
        if not isinstance(self.external, list):
            raise ValueError("params.yaml: evaluate.external must be a list (may be empty)")
        if not 0 < self.max_error <= 1:
            raise ValueError(f"params.yaml: evaluate.max_error must be in (0, 1], got {self.max_error}")
        if self.ced_points < 2 or self.chunk < 1:
            raise ValueError("params.yaml: evaluate.ced_points must be >= 2 and evaluate.chunk >= 1")


@dataclass(frozen=True)
class Params:
    face_model: FaceModelParams
    synth_300wlp: SynthSetParams
    synth_aflw2000: SynthSetParams
    uvgen: UVGenParams
    train: TrainParams
    predict: PredictParams
    evaluate: EvaluateParams


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
        predict=_build(PredictParams, raw.get("predict"), "predict"),
        evaluate=_build(EvaluateParams, raw.get("evaluate"), "evaluate"),
    )


# Keys of the ``train`` section a baseline section inherits unless it sets them itself: the same
# data, holdout, epochs, batch, schedule, augmentation and seed as PRN (comparable budgets).
BASELINE_INHERITED = ("train_file", "val_file", "val_fraction", "epochs", "batch_size", "lr_step_epochs",
                      "lr_gamma", "lr_schedule", "warmup_frac", "bn_momentum", "augment", "rotation_deg", "scale_range", "shift_frac",
                      "color_range", "occlusion_prob", "seed", "device", "amp", "num_workers",
                      "checkpoint_every", "resume", "progress")
BASELINE_SECTIONS = {"3ddfa": "train_3ddfa", "defa": "train_defa"}


@dataclass(frozen=True)
class BaselineParams:
    """A baseline's training (stages ``train_3ddfa`` / ``train_defa``): the fields of
    ``model.baselines.train_baseline.BaselineConfig`` less ``kind``, which documents and checks them.
    Keys in :data:`BASELINE_INHERITED` missing from the section come from ``train``; the last
    three have defaults (``wpdc_fraction`` matters for 3ddfa only, ``landmark_weight`` for defa)."""

    out_dir: Path
    model_dir: Path | None
    lr: float
    width: float
    input_size: int
    train_file: Path
    val_file: Path | None
    val_fraction: float
    epochs: int
    batch_size: int
    lr_step_epochs: int
    lr_gamma: float
    lr_schedule: str
    warmup_frac: float
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
    num_workers: int
    checkpoint_every: int
    resume: bool
    progress: bool
    wpdc_fraction: float = 0.34
    landmark_weight: float = 0.01
    loss_vertices: int = 1024


def load_baseline_params(kind: str, path: str | Path = DEFAULT_PARAMS) -> BaselineParams:
    """The ``train_3ddfa`` or ``train_defa`` section (``kind`` '3ddfa' | 'defa'), completed from ``train``."""
    if kind not in BASELINE_SECTIONS:
        raise ValueError(f"baseline kind must be one of {sorted(BASELINE_SECTIONS)}, got {kind!r}")
    name = BASELINE_SECTIONS[kind]
    with open(path) as fh:
        raw = yaml.safe_load(fh)
    section, train = raw.get(name), raw.get("train")
    if not isinstance(section, dict) or not isinstance(train, dict):
        raise ValueError(f"params.yaml: sections '{name}' and 'train' must be mappings")
    defaults = {f.name: f.default for f in fields(BaselineParams) if f.default is not MISSING}
    inherited = {k: train[k] for k in BASELINE_INHERITED if k in train}
    return _build(BaselineParams, {**defaults, **inherited, **section}, name)


@dataclass(frozen=True)
class FiguresParams:
    """Stage ``figures``: the paper's figures and tables as images (eval/figures.py, pipeline/figures.py)."""

    test_file: Path
    model_dir: Path | None
    predictions_dir: Path
    eval_dir: Path
    out_dir: Path
    uv_sample: str | None
    uv_sample_yaw: float
    qualitative_rows: int
    qualitative_max_yaw: float
    max_error: float
    ced_axis_max: str | float
    dpi: int
    pdf: bool

    def __post_init__(self) -> None:
        if self.ced_axis_max != "auto" and not (isinstance(self.ced_axis_max, (int, float))
                                                and self.max_error <= self.ced_axis_max <= 1):
            raise ValueError(f"params.yaml: figures.ced_axis_max must be 'auto' or a number in "
                             f"[max_error, 1], got {self.ced_axis_max!r}")
        if not 1 <= self.qualitative_rows <= 20:
            raise ValueError(f"params.yaml: figures.qualitative_rows must be in [1, 20], got {self.qualitative_rows}")
        if not 0 < self.max_error <= 1:
            raise ValueError(f"params.yaml: figures.max_error must be in (0, 1], got {self.max_error}")
        if not 20 <= self.dpi <= 600:
            raise ValueError(f"params.yaml: figures.dpi must be in [20, 600], got {self.dpi}")


def load_figures_params(path: str | Path = DEFAULT_PARAMS) -> FiguresParams:
    """The ``figures`` section of ``params.yaml``."""
    with open(path) as fh:
        raw = yaml.safe_load(fh)
    return _build(FiguresParams, raw.get("figures"), "figures")
