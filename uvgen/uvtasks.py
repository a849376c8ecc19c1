"""The unit of parallel work of the UV generation: a task of 50-200 samples -> one HDF5 shard.

A task reads its fits and images, makes the pairs (crop + position map) and writes its shard to a
temporary name, renamed when complete, so a killed run leaves only finished shards behind. Bad
samples become rejects (file, field, reason) and are left out. Everything a task needs is in its
spec; the model and its UV layout are loaded once per worker process and cached.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uvgen.formats.aflw import read_aflw_mat
from uvgen.formats.bfm import MorphableModel, load_bfm
from uvgen.formats.errors import DataError
from uvgen.formats.lp300w import read_300wlp_mat
from uvgen.formats.matfile import read_jpeg
from uvgen.formats.scan import Reject
from uvgen.geometry import NO_JITTER, euler_degrees, jitter_draws
from uvgen.groundtruth import UVLayout, build_uv_layout, evaluation_pair, fit_vertices, training_pair
from uvgen.h5store import SampleRecord, StorageOptions, write_shard


@dataclass(frozen=True)
class TaskSpec:
    """One task: ``split`` 'train' (300W-LP layout) or 'test' (AFLW2000-3D layout).

    ``sample_keys`` are the ``.mat`` paths relative to ``source_root`` (their names in the file);
    ``seed`` and ``jitter`` give the reproducible crop jitter of training samples.
    """

    split: str
    model_dir: Path
    source_root: Path
    sample_keys: tuple[str, ...]
    shard_path: Path
    seed: int
    jitter: bool
    storage: StorageOptions


@dataclass
class TaskResult:
    shard_path: Path
    n_written: int
    rejects: list[Reject] = field(default_factory=list)
    seconds: float = 0.0  # time spent in the task (one core), model loading excluded


_CACHE: dict[Path, tuple[MorphableModel, UVLayout]] = {}


def rejects_path_for(shard_path: Path) -> Path:
    """Where a shard's rejects are kept: ``shard_NNNNNN.rejects.json`` beside it."""
    return shard_path.with_suffix(".rejects.json")


def save_rejects(shard_path: Path, rejects: list[Reject]) -> None:
    """Write a task's rejects beside its shard (atomically)."""
    path = rejects_path_for(shard_path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps([[str(r.path), r.field, r.reason] for r in rejects]))
    os.replace(tmp, path)


def load_rejects(shard_path: Path) -> list[Reject]:
    """The rejects saved for a finished shard (none when there is no record)."""
    path = rejects_path_for(shard_path)
    if not path.exists():
        return []
    return [Reject(Path(p), f, r) for p, f, r in json.loads(path.read_text())]


def model_and_layout(model_dir: Path) -> tuple[MorphableModel, UVLayout]:
    """The model in ``model_dir`` and its UV layout, loaded once per process."""
    key = Path(model_dir).resolve()
    if key not in _CACHE:
        model = load_bfm(key)
        _CACHE[key] = (model, build_uv_layout(model))
    return _CACHE[key]


def _check_image(path: Path, image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 2 or image.shape[1] < 2:
        raise DataError(path, "image", f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    return image


def _read_samples(spec: TaskSpec, rejects: list[Reject]) -> list[tuple[str, object, np.ndarray]]:
    """(key, fit, image) for each readable sample of the task; the others go to ``rejects``."""
    reader = read_300wlp_mat if spec.split == "train" else read_aflw_mat
    out = []
    for key in spec.sample_keys:
        path = spec.source_root / key
        try:
            fit = reader(path)
            image = _check_image(fit.image_path, read_jpeg(fit.image_path))
        except DataError as err:
            rejects.append(Reject.from_error(err))
            continue
        out.append((key, fit, image))
    return out


def run_task(spec: TaskSpec) -> TaskResult:
    """Make every pair of the task and write its shard (atomically). Returns what was written."""
    model, layout = model_and_layout(spec.model_dir)
    started = time.perf_counter()
    rejects: list[Reject] = []
    samples = _read_samples(spec, rejects)
    images, posmaps, records = [], [], []
    if samples:
        shapes = np.stack([fit.shape_para for _, fit, _ in samples])
        exps = np.stack([fit.exp_para for _, fit, _ in samples])
        all_vertices = fit_vertices(model, shapes, exps)
    for (key, fit, image), vertices in zip(samples, all_vertices if samples else []):
        pose = np.asarray(fit.pose_para, dtype=np.float64)
        extras: dict[str, np.ndarray] = {}
        if spec.split == "train":
            draws = jitter_draws(spec.seed, key) if spec.jitter else NO_JITTER
            pair = training_pair(model, layout, image, vertices, pose, draws)
        else:
            draws = NO_JITTER
            landmarks = np.asarray(fit.pt3d_68, dtype=np.float64).T  # (68, 3) image pixels
            pair = evaluation_pair(layout, image, landmarks, vertices, pose)
            extras["landmarks_gt"] = landmarks.astype(np.float32)
        if not np.all(np.isfinite(pair.posmap)):
            rejects.append(Reject(fit.mat_path, "posmap", "non-finite position map"))
            continue
        pitch, yaw, roll = euler_degrees(pose)
        images.append(pair.image)
        posmaps.append(pair.posmap)
        records.append(
            SampleRecord(
                name=key,
                source=str(fit.mat_path),
                shape_para=np.asarray(fit.shape_para, dtype=np.float64),
                exp_para=np.asarray(fit.exp_para, dtype=np.float64),
                pose_para=pose,
                transform=pair.transform,
                jitter=np.asarray(draws, dtype=np.float64),
                yaw_deg=yaw,
                pitch_deg=pitch,
                roll_deg=roll,
                extras=extras,
            )
        )
    save_rejects(spec.shard_path, rejects)  # before the shard appears: a finished shard has its rejects
    size = layout.size
    write_shard(
        spec.shard_path,
        np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8),
        np.stack(posmaps) if posmaps else np.zeros((0, size, size, 3), np.float32),
        records,
        spec.storage,
    )
    return TaskResult(spec.shard_path, len(records), rejects, time.perf_counter() - started)
