"""The unit of parallel work of the UV generation: a task of 50-200 samples -> one HDF5 shard.

A task reads its fits and images, makes the pairs (crop + position map) and writes its shard to a
temporary name, renamed when complete, so a killed run leaves only finished shards behind. Bad
samples become rejects (file, field, reason) and are left out. Everything a task needs is in its
spec; the model and its UV layout are loaded once per worker process and cached.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from uvgen.atomic import atomic_write_text
from uvgen.formats.aflw import check_aflw_name, read_aflw_mat
from uvgen.formats.bfm import MorphableModel, load_bfm
from uvgen.formats.errors import DataError, DataWarning
from uvgen.formats.lp300w import read_300wlp_mat
from uvgen.formats.matfile import read_jpeg
from uvgen.formats.scan import Reject
from uvgen.geometry import (
    MAX_MAP_ABS,
    NO_JITTER,
    GeometryError,
    check_face_box,
    check_image,
    check_pose,
    euler_degrees,
    evaluation_crop_box,
    image_vertices,
    jitter_draws,
    training_crop_box,
)
from uvgen.groundtruth import (
    CropPair,
    UVLayout,
    build_uv_layout,
    fit_vertices,
    make_pair,
    single_thread_blas,
)
from uvgen.h5codec import StorageOptions, stored_posmap_dtype
from uvgen.h5store import SampleRecord
from uvgen.h5write import write_encoded_shard
from uvgen.masks import UV_SIZE
from uvgen.posmap_float16 import encode_posmap_fast


@dataclass(frozen=True)
class TaskSpec:
    """One task: ``split`` 'train' (300W-LP layout) or 'test' (AFLW2000-3D layout).

    ``sample_keys`` are the ``.mat`` paths relative to ``source_root`` (their names in the file);
    ``seed`` and ``jitter`` give the reproducible crop jitter of training samples. ``first_index``
    (the first sample's index in the whole split) places each sample in its fixed row of the
    vertex products, so its bytes do not depend on how the split is cut into tasks
    (:func:`uvgen.groundtruth.fit_vertices`). ``uv_size`` is the side of the maps and crops.
    """

    split: str
    model_dir: Path
    source_root: Path
    sample_keys: tuple[str, ...]
    shard_path: Path
    seed: int
    jitter: bool
    storage: StorageOptions
    first_index: int = 0  # index of sample_keys[0] in the split's sorted sample list
    uv_size: int = UV_SIZE  # side of the UV maps and of the crops (pixels)


@dataclass
class TaskResult:
    shard_path: Path
    n_written: int
    rejects: list[Reject] = field(default_factory=list)
    seconds: float = 0.0  # time spent in the task (one core), model loading excluded
    # DataWarnings raised by the task, as (path, field, reason): a dask worker would print them in
    # Python's format; the build shows them in the stage's format after the progress bar.
    warnings: list[tuple[str, str | None, str]] = field(default_factory=list)


_CACHE: dict[tuple[Path, int], tuple[MorphableModel, UVLayout]] = {}


_BUFFERS: dict[tuple, np.ndarray] = {}


def _buffer(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A per-process array of at least ``shape[0]`` rows, reused by later tasks: a task's arrays
    (~60 MB, above the size glibc serves from its heap) would otherwise be fresh pages from the
    kernel every task, whose page faults cost ~0.1-0.2 ms a sample."""
    key = (shape[1:], np.dtype(dtype).str)
    buf = _BUFFERS.get(key)
    if buf is None or len(buf) < shape[0]:
        buf = _BUFFERS[key] = np.empty(shape, dtype)
    return buf[: shape[0]]


def _buffers(
    n: int, size: int, stored_dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images (n,size,size,3) uint8, stored maps (n,size,size,3), float64 scratch for one map)."""
    return (
        _buffer((n, size, size, 3), np.uint8),
        _buffer((n, size, size, 3), stored_dtype),
        _buffer((1, size, size, 3), np.float64)[0],
    )


def rejects_path_for(shard_path: Path) -> Path:
    """Where a shard's rejects are kept: ``shard_NNNNNN.rejects.json`` beside it."""
    return shard_path.with_suffix(".rejects.json")


def save_rejects(shard_path: Path, rejects: list[Reject]) -> None:
    """Write a task's rejects beside its shard (atomically)."""
    rows = [[str(r.path), r.field, r.reason] for r in rejects]
    atomic_write_text(rejects_path_for(shard_path), json.dumps(rows))


def is_finished(shard_path: Path) -> bool:
    """A shard is finished when it and its rejects record both exist (the record is written
    first; a shard without it is redone)."""
    return shard_path.exists() and rejects_path_for(shard_path).exists()


def load_rejects(shard_path: Path) -> list[Reject]:
    """The rejects saved for a finished shard."""
    path = rejects_path_for(shard_path)
    return [Reject(Path(p), f, r) for p, f, r in json.loads(path.read_text())]


def model_and_layout(model_dir: Path, size: int = UV_SIZE) -> tuple[MorphableModel, UVLayout]:
    """The model in ``model_dir`` and its UV layout at ``size`` x ``size``, loaded once per
    process (the model is shared between sizes)."""
    path = Path(model_dir).resolve()
    key = (path, int(size))
    if key not in _CACHE:
        model = next((m for (p, _), (m, _) in _CACHE.items() if p == path), None)
        model = load_bfm(path) if model is None else model
        _CACHE[key] = (model, build_uv_layout(model, int(size)))
    return _CACHE[key]


def _check_image(path: Path, image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 2 or image.shape[1] < 2:
        raise DataError(path, "image", f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    return image


def _read_samples(
    spec: TaskSpec, rejects: list[Reject], clock: StepClock
) -> list[tuple[int, str, object, np.ndarray]]:
    """(index in the task, key, fit, image) of each readable sample; the others go to
    ``rejects``."""
    reader = read_300wlp_mat if spec.split == "train" else read_aflw_mat
    out = []
    for i, key in enumerate(spec.sample_keys):
        path = spec.source_root / key
        try:
            if spec.split == "test":
                check_aflw_name(path)
            fit = reader(path)
            clock.lap("read .mat")
            image = _check_image(fit.image_path, read_jpeg(fit.image_path))
            clock.lap("decode JPEG")
        except DataError as err:
            rejects.append(Reject.from_error(err))
            continue
        out.append((i, key, fit, image))
    return out


def _box_field(model: MorphableModel, vertices: np.ndarray) -> str:
    """Which fit field to blame for an absurd key-point box: 'Shape_Para' when the unposed key
    vertices already span over 10x the mean face's, else 'Pose_Para'."""

    def span(v: np.ndarray) -> float:
        return float(np.ptp(v[:, :2], axis=0).max())

    mean = np.asarray(model.shape_mu, dtype=np.float64).reshape(-1, 3)[model.kpt_ind]
    key = np.asarray(vertices[model.kpt_ind], dtype=np.float64)
    return "Shape_Para" if not span(key) <= 10 * span(mean) else "Pose_Para"


class StepClock:
    """Accumulates seconds per named step into ``totals`` (a no-op when ``totals`` is None).

    Counts this thread's CPU time (``time.thread_time``), so that other processes on a shared
    machine do not inflate the steps (cache and memory contention still do)."""

    def __init__(self, totals: dict[str, float] | None):
        self.totals = totals
        self.last = time.thread_time()

    def lap(self, step: str) -> None:
        if self.totals is not None:
            now = time.thread_time()
            self.totals[step] = self.totals.get(step, 0.0) + now - self.last
            self.last = now


def make_sample_pair(
    split: str,
    model: MorphableModel,
    layout: UVLayout,
    fit: object,
    image: np.ndarray,
    vertices: np.ndarray,
    draws: tuple[float, float, float],
    lap: Callable[[str], None] | None = None,
) -> tuple[CropPair, dict[str, np.ndarray]]:
    """The pair of one sample (and its extras), after the plausibility checks of
    :mod:`uvgen.geometry`; raises GeometryError(field, reason) for an absurd or degenerate sample.
    ``lap(step)`` is called after each step (benchmark breakdown)."""
    pose = np.asarray(fit.pose_para, dtype=np.float64).ravel()
    check_pose(pose)
    check_image(image.shape)
    if not np.all(np.isfinite(vertices)):
        raise GeometryError(
            "Shape_Para", "the fit's vertices overflow float32 (Shape_Para/Exp_Para far too large)"
        )
    extras: dict[str, np.ndarray] = {}
    if split == "train":
        key_img = image_vertices(vertices[model.kpt_ind], pose, image.shape[0])
        try:
            check_face_box(key_img, image.shape, "Pose_Para")
        except GeometryError as err:
            raise GeometryError(
                _box_field(model, vertices) if "over" in err.reason else err.field, err.reason
            ) from None
        pair = make_pair(layout, image, vertices, pose, training_crop_box(key_img, draws), lap=lap)
    else:
        landmarks = np.asarray(fit.pt3d_68, dtype=np.float64).T  # (68, 3) image pixels
        check_face_box(landmarks, image.shape, "pt3d_68")
        pair = make_pair(layout, image, vertices, pose, evaluation_crop_box(landmarks), lap=lap)
        extras["landmarks_gt"] = landmarks.astype(np.float32)
    lo, hi = float(pair.posmap.min()), float(pair.posmap.max())
    if lap:
        lap("map checks")
    if not (lo >= -MAX_MAP_ABS and hi <= MAX_MAP_ABS):
        raise GeometryError(
            "posmap",
            f"position-map values span {lo:.4g}..{hi:.4g} crop px (bound +-{MAX_MAP_ABS:g}): "
            "the fit (Pose_Para, Shape_Para, Exp_Para) does not match the face",
        )
    return pair, extras


def run_task(spec: TaskSpec, timings: dict[str, float] | None = None) -> TaskResult:
    """Make every pair of the task and write its shard (atomically). Returns what was written.

    ``timings``, when given, receives the seconds spent in each step (summed over the task).
    DataWarnings are collected into the result's ``warnings``, not shown.
    The BLAS runs one thread (a task is the unit of parallel work; small products on several
    threads only contend)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        model, layout = model_and_layout(spec.model_dir, spec.uv_size)
        with single_thread_blas():
            result = _run_task(spec, model, layout, timings)
    for w in caught:
        if isinstance(w.message, DataWarning):
            item = (str(w.message.path), w.message.field, w.message.reason)
            if item not in result.warnings:
                result.warnings.append(item)
        else:  # other warnings as Python would show them
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def _run_task(
    spec: TaskSpec, model: MorphableModel, layout: UVLayout, timings: dict[str, float] | None
) -> TaskResult:
    started = time.perf_counter()
    clock = StepClock(timings)
    lap = clock.lap if timings is not None else None
    rejects: list[Reject] = []
    samples = _read_samples(spec, rejects, clock)
    size = layout.size
    images, stored, scratch = _buffers(len(samples), size, stored_posmap_dtype(spec.storage))
    lossy = 0
    records = []
    if samples:
        shapes = np.stack([fit.shape_para for _, _, fit, _ in samples])
        exps = np.stack([fit.exp_para for _, _, fit, _ in samples])
        slots = spec.first_index + np.array([i for i, _, _, _ in samples])
        all_vertices = fit_vertices(model, shapes, exps, slots=slots, reuse_buffer=True)
    clock.lap("vertices (task product)")
    for (_, key, fit, image), vertices in zip(samples, all_vertices if samples else []):
        draws = jitter_draws(spec.seed, key) if spec.split == "train" and spec.jitter else NO_JITTER
        try:
            pair, extras = make_sample_pair(
                spec.split, model, layout, fit, image, vertices, draws, lap
            )
        except (GeometryError, ValueError) as err:
            field = getattr(err, "field", None)
            reason = getattr(err, "reason", str(err))
            rejects.append(Reject(fit.mat_path, field, reason))
            continue
        pose = np.asarray(fit.pose_para, dtype=np.float64).ravel()
        pitch, yaw, roll = euler_degrees(pose)
        images[len(records)] = pair.image
        lossy += encode_posmap_fast(pair.posmap, spec.storage, stored[len(records)], scratch)
        clock.lap("float16 encode")
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
        clock.lap("records")
    save_rejects(
        spec.shard_path, rejects
    )  # before the shard appears: a finished shard has its rejects
    n = len(records)
    write_encoded_shard(
        spec.shard_path, images[:n], stored[:n], lossy, records, spec.storage, lap=lap
    )
    return TaskResult(spec.shard_path, n, rejects, time.perf_counter() - started)
