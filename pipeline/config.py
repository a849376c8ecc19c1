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
class Params:
    face_model: FaceModelParams
    synth_300wlp: SynthSetParams
    synth_aflw2000: SynthSetParams


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
        if kind == "Path":
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
    )
