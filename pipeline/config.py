"""Typed configuration: every stage reads its parameters from ``params.yaml`` through here.

Each section is a frozen dataclass; :func:`read_section` builds one from its YAML mapping, driven by
the field types alone (one mechanism for every section), and accepts nothing it would have to guess:

* ``bool``: a YAML boolean (``true`` / ``false``); the string ``"false"`` is an error, not True.
* ``int``: a YAML integer; ``2.7`` (or ``3.0``) is an error, never truncated. ``float``: any
  finite number (integers accepted). ``str``: a string. ``Path``: a string, as a path.
* ``Literal[...]``: one of the listed values (enumerations). ``X | None``: ``null`` or an X.
* ``list`` / ``tuple[X, ...]`` / ``dict``: a YAML sequence / mapping (elements checked when typed);
  a dataclass type: a nested mapping, read the same way.
* Unknown and missing keys are errors (fields with defaults may be left out).

Every problem raises :class:`ConfigError`, one line naming the file and the key, e.g.
``params.yaml: train.epochs: expected an integer, got 2.7``. YAML is read as YAML 1.2 reads numbers
(as DVC does): ``1e-4`` is a float.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = PROJECT_ROOT / "params.yaml"

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad configuration value: ``SOURCE: KEY: REASON`` on one line (KEY may be a section)."""

    def __init__(self, source: str | Path, key: str | None, reason: str):
        self.source = str(source)
        self.key = key
        self.reason = reason
        super().__init__(
            f"{self.source}: {reason}" if key is None else f"{self.source}: {key}: {reason}"
        )


def display_path(path: str | Path) -> str:
    """``path`` as a user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with YAML 1.2's floats: ``1e-4`` and ``1E5`` are numbers, as in DVC."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a params file. A missing file raises FileNotFoundError; bad YAML
    or a non-mapping ConfigError naming the file (and the line)."""
    path = Path(path)
    with open(path) as fh:
        try:
            raw = yaml.load(fh, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ConfigError(
                display_path(path), None, f"not valid YAML{where}: {problem}"
            ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            display_path(path), None, "expected a mapping of sections at the top level"
        )
    return raw


_KIND_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a path (a string)",
    type(None): "null",
    list: "a list",
    tuple: "a list",
    dict: "a mapping",
    Any: "any value",
}


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return _KIND_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def _got(value: Any) -> str:
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return "null" if value is None else repr(value)


def read_value(value: Any, hint: Any, key: str, source: str = "params.yaml") -> Any:
    """``value`` from YAML checked against the type ``hint``, converted (``Path``, int -> float,
    nested dataclasses, lists -> tuples where typed so); ConfigError(source, key, ...) otherwise."""
    origin, args = get_origin(hint), get_args(hint)

    def fail() -> ConfigError:
        return ConfigError(source, key, f"expected {_describe(hint)}, got {_got(value)}")

    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for member in args:
            if member is type(None):
                continue
            try:
                return read_value(value, member, key, source)
            except ConfigError:
                continue
        raise fail()
    if origin is Literal:
        # Compare with the type too: YAML's true must not match a listed 1.
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise fail()
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            raise ConfigError(
                source,
                key,
                f"expected true or false, got {value!r} (a string: write it without quotes)",
            )
        raise fail()
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(source, key, f"expected a finite number, got {value!r}")
            return float(value)
        raise fail()
    if hint is str:
        if isinstance(value, str):
            return value
        raise fail()
    if hint is Path:
        if isinstance(value, (str, Path)) and str(value).strip():
            return Path(value)
        raise fail()
    if hint in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail()
        if not args:
            return list(value) if (hint is list or origin is list) else tuple(value)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(
                    source, key, f"expected a list of {len(args)} values, got {len(value)}"
                )
            return tuple(
                read_value(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args))
            )
        items = [read_value(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise fail()
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return read_section(hint, value, key, source)
    raise TypeError(f"{key}: no reader for the field type {hint!r}")  # a programming error


def read_section(
    cls: type[T],
    section: Any,
    name: str,
    source: str = "params.yaml",
    *,
    optional: Collection[str] | None = None,
    given: dict[str, Any] | None = None,
) -> T:
    """An instance of the dataclass ``cls`` from the YAML mapping ``section`` (key prefix ``name``),
    every field read by :func:`read_value` from its declared type. ``optional``: the fields that
    may be left out (None: every field with a default); ``given``: fields the caller sets, not read
    from the section (a key of that name there is unknown). Range checks in ``cls.__post_init__``
    raising ValueError become ConfigError too."""
    if not isinstance(section, dict):
        raise ConfigError(source, name, f"expected a mapping (a section), got {_got(section)}")
    given = given or {}
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.name not in given}  # type: ignore[arg-type]
    unknown = sorted(set(section) - set(known), key=str)
    if unknown:
        raise ConfigError(
            source, f"{name}.{unknown[0]}", f"unknown key (known: {', '.join(known)})"
        )
    missing = [
        k
        for k, f in known.items()
        if k not in section
        and (
            k not in optional
            if optional is not None
            else f.default is MISSING and f.default_factory is MISSING
        )
    ]
    if missing:
        raise ConfigError(source, f"{name}.{missing[0]}", "missing key")
    values = {
        key: read_value(section[key], hints[key], f"{name}.{key}", source)
        for key in known
        if key in section
    }
    with config_errors(source, name):
        return cls(**given, **values)  # type: ignore[call-arg]


@contextmanager
def config_errors(source: str | Path = "params.yaml", section: str | None = None) -> Iterator[None]:
    """Turn a ValueError raised by a configuration check inside the block (a dataclass's
    ``__post_init__``, e.g. ``model.train.TrainConfig``) into a one-line ConfigError naming
    ``source``; a message starting ``KEY: `` with a bare key gets the ``section`` prefix."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as exc:
        message = " ".join(str(exc).split())  # one line
        prefix = "params.yaml: "
        message = message[len(prefix) :] if message.startswith(prefix) else message
        head = message.split(":", 1)[0]
        if section and not head.startswith(f"{section}.") and re.fullmatch(r"\w+", head):
            message = f"{section}.{message}"
        raise ConfigError(source, None, message) from exc


def _build(cls: type[T], section: Any, name: str, source: str = "params.yaml") -> T:
    """Alias of :func:`read_section` (older name)."""
    return read_section(cls, section, name, source)


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
        if self.n_vertices < 900:
            raise ValueError(
                f"face_model.n_vertices: expected an integer >= 900, got {self.n_vertices}"
            )


@dataclass(frozen=True)
class SynthSetParams:
    """A synthetic data set in a real layout (300W-LP or AFLW2000-3D)."""

    count: int
    image_size: int
    seed: int
    out_dir: Path
    workers: int

    def __post_init__(self) -> None:
        for name in ("count", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {getattr(self, name)}")
        if self.workers < 0:
            raise ValueError(f"workers: expected an integer >= 0, got {self.workers}")


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
    posmap_dtype: Literal["float16", "float32"]
    compression: Literal["none", "blosc-lz4", "gzip"]
    mask_source: Literal["model", "prnet"]
    prnet_dir: Path | None
    on_bad_sample: Literal["skip", "fail"]

    def __post_init__(self) -> None:
        if not 1 <= self.task_size <= 10_000:
            raise ValueError(
                f"uvgen.task_size: expected an integer in [1, 10000], got {self.task_size}"
            )
        if self.workers < 0:
            raise ValueError(f"uvgen.workers: expected an integer >= 0, got {self.workers}")
        if self.mask_source == "prnet" and self.prnet_dir is None:
            raise ValueError("uvgen.prnet_dir: mask_source 'prnet' needs a directory here")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")


@dataclass(frozen=True)
class PredictMethod:
    """One method of the ``predict`` stage: its label (table row, file name), its kind (which
    adapter runs it: 'prn' = model.inference.Predictor, '3ddfa' / 'defa' = model.baselines,
    'mean_map' = the mean training map, a constant) and its trained weights (mean_map: the training
    UV file)."""

    name: str
    kind: Literal["prn", "3ddfa", "defa", "mean_map"]
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
        if self.batch_size < 1:
            raise ValueError(f"predict.batch_size: expected an integer >= 1, got {self.batch_size}")
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
    on_unmatched: Literal["report", "fail"]

    def __post_init__(self) -> None:
        _choice("evaluate.on_unmatched", self.on_unmatched, ("report", "fail"))
        if not isinstance(self.external, list):
            raise ValueError("evaluate.external: expected a list (may be empty)")
        if not 0 < self.max_error <= 1:
            raise ValueError(
                f"evaluate.max_error: expected a number in (0, 1], got {self.max_error}"
            )
        if self.ced_points < 2:
            raise ValueError(
                f"evaluate.ced_points: expected an integer >= 2, got {self.ced_points}"
            )
        if self.chunk < 1:
            raise ValueError(f"evaluate.chunk: expected an integer >= 1, got {self.chunk}")


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


# Keys of the ``train`` section a baseline section inherits unless it sets them itself: the same
# data, holdout, epochs, batch, schedule, augmentation and seed as PRN (comparable budgets).
BASELINE_INHERITED = (
    "train_file",
    "val_file",
    "val_fraction",
    "epochs",
    "batch_size",
    "lr_step_epochs",
    "lr_gamma",
    "lr_schedule",
    "warmup_frac",
    "bn_momentum",
    "augment",
    "rotation_deg",
    "scale_range",
    "shift_frac",
    "color_range",
    "occlusion_prob",
    "seed",
    "device",
    "amp",
    "num_workers",
    "checkpoint_every",
    "resume",
    "progress",
)
BASELINE_SECTIONS = {"3ddfa": "train_3ddfa", "defa": "train_defa"}


# Fields of a baseline section that may be left out (their defaults: wpdc_fraction matters for
# 3ddfa only, landmark_weight for defa); every other field must be given, here or in ``train``.
BASELINE_OPTIONAL = ("wpdc_fraction", "landmark_weight", "loss_vertices")


def train_section(path: str | Path = DEFAULT_PARAMS) -> tuple[dict[str, Any], str, str]:
    """The raw ``train`` section of a params file, its key and the file's display name, for
    ``read_section(model.train.TrainConfig, ...)`` (pipeline/train.py: every field required)."""
    raw, source = read_yaml(path), display_path(path)
    return raw.get("train"), "train", source


def baseline_section(
    kind: str, path: str | Path = DEFAULT_PARAMS
) -> tuple[dict[str, Any], str, str]:
    """The ``train_3ddfa`` or ``train_defa`` section (``kind`` '3ddfa' | 'defa') completed from
    ``train`` (keys of :data:`BASELINE_INHERITED` it does not set), its key and the file's display
    name, for ``read_section(model.baselines.train_baseline.BaselineConfig, ...)``
    (pipeline/train_baseline.py)."""
    if kind not in BASELINE_SECTIONS:
        raise ValueError(f"baseline kind must be one of {sorted(BASELINE_SECTIONS)}, got {kind!r}")
    name = BASELINE_SECTIONS[kind]
    raw, source = read_yaml(path), display_path(path)
    section, train = raw.get(name), raw.get("train")
    for key, value in ((name, section), ("train", train)):
        if not isinstance(value, dict):
            raise ConfigError(source, key, f"expected a mapping (a section), got {_got(value)}")
    inherited = {k: train[k] for k in BASELINE_INHERITED if k in train}
    return {**inherited, **section}, name, source


@dataclass(frozen=True)
class FiguresParams:
    """Stage ``figures``: the paper's figures and tables as images (eval/figures.py,
    pipeline/figures.py)."""

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
    ced_axis_max: Literal["auto"] | float
    dpi: int
    pdf: bool

    def __post_init__(self) -> None:
        if self.ced_axis_max != "auto" and not (
            isinstance(self.ced_axis_max, (int, float)) and self.max_error <= self.ced_axis_max <= 1
        ):
            raise ValueError(
                f"figures.ced_axis_max: expected 'auto' or a number in [max_error, 1], "
                f"got {self.ced_axis_max!r}"
            )
        if not 1 <= self.qualitative_rows <= 20:
            raise ValueError(
                "figures.qualitative_rows: expected an integer in [1, 20], "
                f"got {self.qualitative_rows}"
            )
        if not 0 < self.max_error <= 1:
            raise ValueError(
                f"figures.max_error: expected a number in (0, 1], got {self.max_error}"
            )
        if not 20 <= self.dpi <= 600:
            raise ValueError(f"figures.dpi: expected an integer in [20, 600], got {self.dpi}")


def load_figures_params(path: str | Path = DEFAULT_PARAMS) -> FiguresParams:
    """The ``figures`` section of ``params.yaml``."""
    return read_section(
        FiguresParams, read_yaml(path).get("figures"), "figures", display_path(path)
    )
