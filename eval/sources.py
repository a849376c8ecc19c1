"""``NAME=SOURCE``: any method's predictions on an AFLW2000-3D folder, from what a user has.

SOURCE is one of (first match wins):

* ``key=value,key=value``: another method's files as :class:`eval.external.ExternalSpec` fields,
  e.g. ``params=2dasl_params.npy,names=names.txt,basis=basis.npz,roi_boxes=roi.npy`` or
  ``landmarks=pts68.npy,names=names.txt``;
* a weights file (``.pt``: trained here, or PRNet's release imported by ``prnet import-weights``)
  or a TensorFlow checkpoint prefix (``PREFIX.index`` exists): PRN run on every image with the
  paper's protocol crop (the box of the ground-truth 68 points, side 1.6x, docs/conventions.md
  section 6), its UV layout from ``--uv-data`` (PRNet's) or ``--model-dir`` (the project's);
* a folder of ``prnet predict`` outputs (``NAME_kpt.txt``; ``NAME_posmap.npy`` or
  ``NAME_vertices.npy`` for the dense points; ``NAME_pose.json`` for the head pose);
* a predictions file of the predict stage (``.h5``, :mod:`eval.predictions`);
* any other file or folder: 68 landmarks (:func:`eval.external_readers.read_landmarks`: ``.npy``
  / ``.npz`` arrays with names, or per-image text files).

Dense points are compared at the ground truth's face pixels ``face_ind`` (one common region for
every method): maps are sampled there, and vertices of another topology go through the model's
UV correspondence (``topology=`` of an external spec).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eval.evaluate import GroundTruth
from eval.external import ExternalSpec, load_external
from eval.predictions import Predictions, PredictionSet
from uvgen.formats.errors import DataError


class MethodSpecError(ValueError):
    """A malformed ``NAME=SOURCE`` (the message names it)."""


def parse_method(text: str) -> tuple[str, str]:
    """``NAME=SOURCE`` -> (name, source); MethodSpecError naming the argument when malformed."""
    name, sep, source = text.partition("=")
    if not sep or not name.strip() or not source.strip():
        raise MethodSpecError(f"--method {text!r}: expected NAME=SOURCE")
    return name.strip(), source.strip()


def _external_fields(source: str) -> dict[str, str] | None:
    """``key=value,...`` -> dict, or None when ``source`` is a plain path."""
    if "=" not in source:
        return None
    out = {}
    for part in source.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise MethodSpecError(f"method source {source!r}: {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def load_method(
    name: str,
    source: str,
    truth: GroundTruth,
    uv_data: Path | None = None,
    model_dir: Path | None = None,
    device: str = "auto",
    batch_size: int = 8,
) -> PredictionSet:
    """The predictions of method ``name`` from ``source`` (module docstring) for ``truth``."""
    face_ind = getattr(truth, "face_ind", None)
    size = getattr(truth, "uv_size", 256)  # a test split's own size; else PRNet's UV layout
    face_count = truth.dense_count if truth.dense_count is not None else -1
    fields = _external_fields(source)
    if fields is not None:
        try:
            spec = ExternalSpec.from_dict({"name": name, **fields})
        except (TypeError, ValueError) as exc:
            raise MethodSpecError(f"--method {name}={source}: {exc}") from exc
        if truth.dense_count is None and spec.dense is not None:
            spec = ExternalSpec.from_dict({**fields, "name": name, "dense": None})
        return load_external(spec, face_count, face_ind, size)
    path = Path(source)
    if path.suffix == ".pt" or Path(f"{source}.index").is_file():
        return run_prn(name, path, truth, uv_data, model_dir, device, batch_size)
    if path.is_dir() and any(path.glob("*_kpt.txt")):
        return read_predict_folder(name, path, face_ind)
    if path.suffix == ".h5":
        from eval.predictions import PredictionsFile

        preds = PredictionsFile(path)
        preds.method = name
        return preds
    if not path.exists():
        raise DataError(path, None, f"method {name}: no such file or folder")
    return load_external(ExternalSpec(name=name, landmarks=path), face_count, face_ind, size)


def _image_path(data_dir: Path, name: str) -> Path:
    for suffix in (".jpg", ".png"):
        p = data_dir / f"{name}{suffix}"
        if p.is_file():
            return p
    raise DataError(data_dir / f"{name}.jpg", None, "missing image")


def _crops_from_images(truth: GroundTruth, predictor, rows: range):
    """[(crop, transform, image height)] of ``rows``: the protocol crop of each original image."""
    from uvgen.formats.matfile import read_jpeg

    data_dir = Path(truth.source)
    out = []
    for i in rows:
        img = read_jpeg(_image_path(data_dir, truth.names[i]))
        crop, t = predictor.crop(img, points=truth.landmarks[i, :, :2])
        out.append((crop, t, img.shape[0]))
    return out


def run_prn(
    name: str,
    weights: Path,
    truth: GroundTruth,
    uv_data: Path | None,
    model_dir: Path | None,
    device: str = "auto",
    batch_size: int = 8,
) -> Predictions:
    """PRN on every test image with the protocol crop (the box of the ground-truth 68 points, side
    1.6x: the test split's crop too) -> landmarks, dense points at the truth's face pixels, the
    pose of each map, seconds per image (image decoding included)."""
    from model.api import PRN
    from model.head_pose import face_pose
    from model.inference import map_to_image
    from model.uses import fill_gaps, landmarks

    if weights.suffix == ".pt":
        prn = PRN(weights, uv_data=uv_data, model_dir=model_dir, device=device)
    else:
        if uv_data is None:
            raise DataError(weights, None, "PRNet's released checkpoint needs --uv-data")
        prn = PRN.from_tf_checkpoint(weights, uv_data, device=device)
    face_ind = getattr(truth, "face_ind", None)
    n = len(truth)
    lm = np.zeros((n, 68, 3), np.float32)
    dense = None if face_ind is None else np.zeros((n, len(face_ind), 3), np.float32)
    pose = np.full((n, 3), np.nan)
    runtime = np.zeros(n)
    for start in tqdm(range(0, n, batch_size), desc=f"{name}: PRN", unit="batch", leave=False):
        rows = range(start, min(n, start + batch_size))
        t0 = time.perf_counter()
        got = _crops_from_images(truth, prn.predictor, rows)
        maps = prn.predictor.predict_maps(np.stack([c for c, _, _ in got]))
        for i, m, (_, t, height) in zip(rows, maps, got):
            posmap = map_to_image(m, t)
            lm[i] = landmarks(posmap, prn.uv)
            if dense is not None:
                dense[i] = posmap.reshape(-1, 3)[face_ind]
            pose[i] = face_pose(fill_gaps(posmap, prn.uv), prn.uv, height).degrees
        runtime[list(rows)] = (time.perf_counter() - t0) / len(rows)
    return Predictions(
        name,
        truth.names,
        lm,
        dense,
        runtime,
        {"source": f"PRN weights {weights}", "device": str(prn.predictor.device)},
        str(weights),
        pose,
    )


def read_predict_folder(name: str, folder: Path, face_ind: np.ndarray | None) -> Predictions:
    """A folder of ``prnet predict`` outputs -> Predictions: ``NAME_kpt.txt`` (68 x 3), dense from
    ``NAME_posmap.npy`` at ``face_ind`` (else ``NAME_vertices.npy`` when it has K points), pose
    from ``NAME_pose.json``. Every image with a key-point file is read; a bad file names itself."""
    from eval.external_readers import read_landmarks

    names, lm = read_landmarks(folder)
    dense = None
    if face_ind is not None:
        rows = []
        for n in names:
            posmap, verts = folder / f"{n}_posmap.npy", folder / f"{n}_vertices.npy"
            if posmap.is_file():
                m = np.load(posmap, allow_pickle=False)
                if m.ndim != 3 or m.shape[2] != 3 or m.shape[0] * m.shape[1] <= face_ind.max():
                    raise DataError(posmap, None, f"expected an (S, S, 3) map, got {m.shape}")
                rows.append(m.reshape(-1, 3)[face_ind])
            elif verts.is_file():
                v = np.load(verts, allow_pickle=False)
                if v.shape != (len(face_ind), 3):
                    rows = None
                    break
                rows.append(v)
            else:
                rows = None
                break
        if rows:
            dense = np.asarray(rows, dtype=np.float32)
    pose = np.full((len(names), 3), np.nan)
    for i, n in enumerate(names):
        p = folder / f"{n}_pose.json"
        if p.is_file():
            try:
                d = json.loads(p.read_text())
                pose[i] = [float(d["pitch_deg"]), float(d["yaw_deg"]), float(d["roll_deg"])]
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(p, "pitch_deg", f"not a prnet pose file: {exc}") from exc
    has_pose = np.isfinite(pose).all(axis=1).any()
    return Predictions(
        name,
        tuple(names),
        lm,
        dense,
        None,
        {"source": "prnet predict folder"},
        str(folder),
        pose if has_pose else None,
    )
