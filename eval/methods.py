"""Every method on the test file -> one predictions file per method and a manifest (the predict
stage).

Each method's kind names a registered method (:mod:`model.methods.registry`: ``prn``, ``3ddfa``,
``defa``, ``mean_map`` and any added in ``model/methods/``), whose ``predict_maps`` yields
crop-space UV position maps (B, S, S, 3) for the test file's crops, in file order.

All maps are decoded the same way (:func:`eval.decode.decode_maps`) and written as
``<out_dir>/<name>.h5`` (:mod:`eval.predictions`), with ``<out_dir>/manifest.json`` listing the
files (and any method skipped because its checkpoint is absent, which only ``skip_missing`` allows).

Runtime per image: the wall time of ``predict_maps`` (weights loading, crop reading, network)
plus the decoding, spread evenly over the images of each batch; the device is recorded beside it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from eval.decode import decode_maps
from eval.predictions import PredictionsWriter, method_file_name
from model.methods.registry import MapPredictor, get_method
from uvgen.formats.errors import DataError
from uvgen.h5store import PositionMapFile

MANIFEST = "manifest.json"


class MethodSpec(Protocol):
    """One method to run: its label (table row, file name), kind (a name registered in
    model.methods.registry) and weights."""

    name: str
    kind: str
    checkpoint: Path


def predict_method(
    method: MethodSpec,
    test_file: Path,
    out_path: Path,
    batch_size: int,
    device: str,
    predict_maps: MapPredictor | None = None,
) -> dict:
    """Run one method on the whole test file and write its predictions file; returns its
    manifest entry. ``predict_maps``: the maps' source, by default the registered method's."""
    predict_maps = predict_maps or get_method(method.kind).predict_maps
    with PositionMapFile(test_file) as f:
        names = f.names
        transforms = np.array([r.transform for r in f.records()], dtype=np.float64).reshape(
            -1, 3, 3
        )
        layout = f.uv
    n = len(names)
    meta = {
        "kind": method.kind,
        "checkpoint": str(method.checkpoint),
        "test_file": str(test_file),
        "device": device,
        "batch_size": str(batch_size),
    }
    start = 0
    with PredictionsWriter(out_path, method.name, names, int(layout.face_ind.size), meta=meta) as w:
        tick = time.perf_counter()
        for maps in predict_maps(Path(method.checkpoint), test_file, batch_size, device):
            b = len(maps)
            if maps.ndim != 4 or maps.shape[-1] != 3 or start + b > n:
                raise DataError(
                    method.checkpoint,
                    "maps",
                    f"method {method.kind!r} gave maps {maps.shape} at row {start} of {n}",
                )
            lm, dense = decode_maps(
                maps, transforms[start : start + b], layout.kpt_uv, layout.face_ind
            )
            now = time.perf_counter()
            w.write(start, lm, dense, runtime_s=(now - tick) / max(b, 1))
            start += b
            tick = time.perf_counter()
        if start != n:
            raise DataError(
                method.checkpoint,
                "maps",
                f"method {method.kind!r} gave {start} maps for {n} test images",
            )
    return {
        "name": method.name,
        "kind": method.kind,
        "checkpoint": str(method.checkpoint),
        "file": out_path.name,
        "n_images": n,
        "device": device,
    }


def predict_methods(
    methods: Sequence[MethodSpec],
    test_file: Path,
    out_dir: Path,
    batch_size: int,
    device: str,
    skip_missing: bool = False,
) -> dict:
    """Every method -> ``<out_dir>/<name>.h5`` + ``<out_dir>/manifest.json``; returns the manifest.

    ``device``: a resolved torch device name ('cpu', 'cuda', ...). A method whose checkpoint is
    absent is a DataError unless ``skip_missing`` (then it is listed under ``skipped``)."""
    if not Path(test_file).is_file():
        raise DataError(test_file, None, "test file not found")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"test_file": str(test_file), "methods": [], "skipped": []}
    for m in methods:
        if not Path(m.checkpoint).is_file():
            if not skip_missing:
                raise DataError(
                    m.checkpoint,
                    None,
                    f"checkpoint of method {m.name!r} not found "
                    "(train it first, or set predict.skip_missing: true to leave it out)",
                )
            print(f"predict: {m.name}: checkpoint {m.checkpoint} not found -> skipped")
            manifest["skipped"].append(
                {"name": m.name, "reason": f"checkpoint {m.checkpoint} not found"}
            )
            continue
        out_path = out_dir / method_file_name(m.name)
        t0 = time.perf_counter()
        entry = predict_method(m, test_file, out_path, batch_size, device)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        manifest["methods"].append(entry)
        print(f"predict: {m.name} ({m.kind}) -> {out_path} in {entry['seconds']:.1f} s on {device}")
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(predictions_dir: Path) -> dict:
    """The predict stage's manifest (DataError if absent or malformed)."""
    path = Path(predictions_dir) / MANIFEST
    if not path.is_file():
        raise DataError(path, None, "not found: run the predict stage first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(path, None, f"not JSON: {exc}") from exc
    if not isinstance(manifest.get("methods"), list):
        raise DataError(path, "methods", "missing list")
    return manifest
