"""Typed configuration: every stage reads its parameters from ``params.yaml`` through here.

Each section is a frozen dataclass read by :func:`pipeline.typed_yaml.read_section` (the rules:
types, unknown and missing keys, one-line :class:`~pipeline.typed_yaml.ConfigError` naming the file
and the key, e.g. ``params.yaml: train_common.epochs: expected an integer, got 2.7``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_type_hints

from pipeline.typed_yaml import (
    ConfigError,
    T,
    display_path,
    got,
    read_section,
    read_value,
    read_yaml,
)
from uvgen.checks import check_device, check_range, check_seed, check_uv_size
from uvgen.formats.registry import format_names

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"


def check_split(path: str | Path, expected: str, key: str, source: str = "params.yaml") -> None:
    """ConfigError when the UV HDF5 file ``path`` (given by ``key``) holds another split than
    ``expected`` (its ``split`` attribute): training on the test split is refused. A missing file
    or one without the attribute is left to the reader, which names it."""
    path = Path(path)
    if not path.is_file():
        return
    import h5py  # here: reading the configuration needs no HDF5 otherwise

    try:
        with h5py.File(path, "r") as f:
            split = f.attrs.get("split")
    except OSError:
        return  # not readable as HDF5: the data reader reports it with the file's name
    if isinstance(split, bytes):
        split = split.decode()
    if split is not None and split != expected:
        raise ConfigError(
            source,
            key,
            f"{display_path(path)} holds the {split!r} split; "
            f"this stage needs the {expected!r} split",
        )


@dataclass(frozen=True)
class FaceModelParams:
    """The embedded procedural face model."""

    n_vertices: int
    seed: int
    out_dir: Path

    def __post_init__(self) -> None:
        check_range("face_model.n_vertices", self.n_vertices, 900, 1_000_000)
        check_seed("face_model.seed", self.seed)


@dataclass(frozen=True)
class SynthSetParams:
    """A synthetic data set in a real layout (300W-LP or AFLW2000-3D)."""

    count: int
    image_size: int
    seed: int
    out_dir: Path
    workers: int

    def __post_init__(self) -> None:
        check_range("count", self.count, 1)
        check_range("image_size", self.image_size, 32, 8192)
        check_seed("seed", self.seed)
        check_range("workers", self.workers, 0, 1024)


@dataclass(frozen=True)
class UVGenParams:
    """The UV ground-truth generation (stages ``uvgen@train`` and ``uvgen@test``)."""

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
    posmap_dtype: Literal["float16", "float32"]
    compression: Literal["none", "blosc-lz4", "gzip"]
    mask_source: Literal["model", "prnet"]
    prnet_dir: Path | None
    on_bad_sample: Literal["skip", "fail"]
    uv_size: int = 256  # side of the UV maps and crops: 128, 256 (PRNet's), 512, ...
    train_format: str = "300w_lp"  # data set formats (uvgen.formats.registry) of the two roots
    test_format: str = "aflw2000_3d"

    def __post_init__(self) -> None:
        check_uv_size("uvgen.uv_size", self.uv_size)
        for key in ("train_format", "test_format"):
            _choice(f"uvgen.{key}", getattr(self, key), format_names())
        if self.mask_source == "prnet" and self.uv_size != 256:
            raise ValueError(
                f"uvgen.uv_size: mask_source 'prnet' has PRNet's 256x256 masks, got {self.uv_size}"
            )
        check_seed("uvgen.seed", self.seed)
        check_range("uvgen.task_size", self.task_size, 1, 10_000)
        check_range("uvgen.workers", self.workers, 0, 1024)
        if self.mask_source == "prnet" and self.prnet_dir is None:
            raise ValueError("uvgen.prnet_dir: mask_source 'prnet' needs a directory here")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")


@dataclass(frozen=True)
class PredictMethod:
    """One method of the ``predict`` stage: its label (table row, file name), its kind (a method
    registered in model.methods.registry: 'prn', '3ddfa', 'defa', 'mean_map', ...; checked by the
    stage) and its trained weights (mean_map: the training UV file)."""

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
    methods: tuple[PredictMethod, ...]
    skip_missing: bool

    def __post_init__(self) -> None:
        if not isinstance(self.methods, (list, tuple)) or not self.methods:
            raise ValueError("predict.methods: expected a non-empty list")
        specs = []
        for i, m in enumerate(self.methods):  # PredictMethods (from params.yaml) or plain mappings
            specs.append(
                m
                if isinstance(m, PredictMethod)
                else read_section(PredictMethod, m, f"predict.methods[{i}]")
            )
        names = [m.name for m in specs]
        if len(set(names)) != len(names):
            raise ValueError(f"predict.methods: names must be unique, got {names}")
        check_range("predict.batch_size", self.batch_size, 1, 65_536)
        check_device("predict.device", self.device)
        object.__setattr__(self, "methods", tuple(specs))


@dataclass(frozen=True)
class EvaluateParams:
    """Stage ``evaluate``: predictions + test ground truth -> tables, metrics, CED data, figures."""

    test_file: Path
    data_dir: Path | None
    model_dir: Path | None
    predictions_dir: Path
    out_dir: Path
    external: list
    max_error: float
    ced_points: int
    chunk: int
    recon_scale: bool
    on_unmatched: Literal["report", "fail"]

    def __post_init__(self) -> None:
        _choice("evaluate.on_unmatched", self.on_unmatched, ("report", "fail"))
        if not isinstance(self.external, list):
            raise ValueError("evaluate.external: expected a list (may be empty)")
        check_range("evaluate.max_error", self.max_error, 0, 1, low_open=True)
        check_range("evaluate.ced_points", self.ced_points, 2, 100_000)
        check_range("evaluate.chunk", self.chunk, 1, 1_000_000)


@dataclass(frozen=True)
class BenchmarkMethod:
    """One method of the real-data benchmark: its table label and SOURCE (eval/sources.py)."""

    name: str
    source: str


@dataclass(frozen=True)
class BenchmarkParams:
    """Stage ``benchmark`` of the real-data pipeline (real/params.yaml): `prnet evaluate` from
    params (eval.aflw_benchmark.run_benchmark); paths relative to the params file's folder."""

    data_dir: Path
    methods: list[BenchmarkMethod]
    out_dir: Path
    reannotated: Path | None = None
    reannotated_names: Path | None = None
    model_dir: Path | None = None
    uv_data: Path | None = None
    test_file: Path | None = None
    device: str = "auto"
    recon_scale: bool = False

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("benchmark.methods: give at least one {name, source}")
        names = [m.name for m in self.methods]
        if len(set(names)) != len(names):
            raise ValueError(f"benchmark.methods: names must be unique, got {names}")
        check_device("benchmark.device", self.device)


def load_benchmark_params(path: str | Path) -> BenchmarkParams:
    """The ``benchmark`` section of a real-data params file (real/params.yaml)."""
    raw, source = read_yaml(path), display_path(path)
    return read_section(BenchmarkParams, raw.get("benchmark"), "benchmark", source)


@dataclass(frozen=True)
class Params:
    face_model: FaceModelParams
    synth_300wlp: SynthSetParams
    synth_aflw2000: SynthSetParams
    uvgen: UVGenParams
    predict: PredictParams
    evaluate: EvaluateParams


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate ``params.yaml`` (the sections of :class:`Params`; others are ignored)."""
    raw, source = read_yaml(path), display_path(path)
    hints = get_type_hints(Params)
    return Params(
        **{
            f.name: read_section(hints[f.name], raw.get(f.name), f.name, source)
            for f in fields(Params)
        }
    )


def _section(raw: dict, name: str) -> Any:
    """``raw[a][b]`` for the dotted section name ``a.b`` (None where absent)."""
    node: Any = raw
    for part in name.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


# PRN's and the baselines' training take the shared fields (model.train_settings.TrainCommon:
# the same data, holdout, epochs, batch, schedule, augmentation, seed and runtime) from the
# ``train_common`` section. Each stage's own section (``train`` for PRN, ``baselines.KIND`` for a
# baseline, KIND a trained method of model.methods.registry) holds the rest; it may also set a
# shared key, which then holds for that stage alone.
def read_training(
    cls: type[T],
    name: str,
    path: str | Path = DEFAULT_PARAMS,
    *,
    optional: Collection[str] | None = None,
    given: dict[str, Any] | None = None,
) -> T:
    """The configuration ``cls`` (model.train.TrainConfig or
    model.baselines.train_baseline.BaselineConfig: a model.train_settings.TrainCommon) of the
    training stage whose own section is ``name``: the shared keys (``cls.common_keys()``) from
    ``train_common`` (each typed by ``cls``'s field and named ``train_common.KEY`` in errors; every
    one required there, no other allowed), the rest
    from the stage's section, which may also set a common key for itself. ``optional`` and
    ``given`` as :func:`read_section` (ConfigError naming the file and the key; a test-split
    ``train_file`` is refused)."""
    raw, source = read_yaml(path), display_path(path)
    common, own = raw.get("train_common"), _section(raw, name)
    for key, value in (("train_common", common), (name, own)):
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"expected a mapping (a section), got {got(value)}")
    shared = cls.common_keys()  # type: ignore[attr-defined]
    unknown = sorted(set(common) - set(shared), key=str)
    if unknown:
        raise ConfigError(
            source, f"train_common.{unknown[0]}", f"unknown key (known: {', '.join(shared)})"
        )
    missing = [k for k in shared if k not in common]
    if missing:
        raise ConfigError(source, f"train_common.{missing[0]}", "missing key")
    hints = get_type_hints(cls)
    inherited = {
        key: read_value(common[key], hints[key], f"train_common.{key}", source)
        for key in shared
        if key not in own
    }
    try:
        cfg = read_section(
            cls, own, name, source, optional=optional, given={**(given or {}), **inherited}
        )
    except ConfigError as exc:  # a range check of a key taken from train_common: name it there
        key = re.match(rf"{re.escape(name)}\.(\w+)", str(exc.reason))
        if key is None or key.group(1) not in inherited:
            raise
        raise ConfigError(source, None, f"train_common.{exc.reason[len(name) + 1 :]}") from exc
    key = f"{name}.train_file" if "train_file" in own else "train_common.train_file"
    check_split(cfg.train_file, "train", key, source)
    return cfg
