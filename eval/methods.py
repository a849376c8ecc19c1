"""Every method on the test file -> one predictions file per method and a manifest (the predict
stage).

Each method kind has a small adapter that yields crop-space UV position maps (B, S, S, 3) for the
test file's crops, in file order:

* ``prn``: :class:`model.inference.Predictor` on the trained weights (batches of ``batch_size``);
* ``3ddfa`` / ``defa``: the in-house baselines
  (:func:`model.baselines.predict.iter_predicted_maps`), which decode their parameters through the
  morphable model into maps;
* ``mean_map``: a constant, the mean position map of the training file given as ``checkpoint``
  (any method that learned from the images scores below it).

All maps are decoded the same way (:func:`eval.decode.decode_maps`) and written as
``<out_dir>/<name>.h5`` (:mod:`eval.predictions`), with ``<out_dir>/manifest.json`` listing the
files (and any method skipped because its checkpoint is absent, which only ``skip_missing`` allows).

Runtime per image: the wall time of the adapter (weights loading, crop reading, network) plus the
decoding, spread evenly over the images of each batch; the device is recorded beside it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from eval.decode import decode_maps
from eval.predictions import PredictionsWriter, method_file_name
from uvgen.formats.errors import DataError
from uvgen.h5store import PositionMapFile

MANIFEST = "manifest.json"


class MethodSpec(Protocol):
    """One method to run: its label (table row, file name), kind (which adapter) and weights."""

    name: str
    kind: str
    checkpoint: Path


MapAdapter = Callable[[MethodSpec, Path, int, str], Iterator[np.ndarray]]


def prn_maps(
    method: MethodSpec, test_file: Path, batch_size: int, device: str
) -> Iterator[np.ndarray]:
    """PRN: the test crops through ``Predictor`` in batches -> crop-space maps, file order."""
    from model.inference import Predictor

    predictor = Predictor.from_files(
        method.checkpoint, test_file, device=device, batch_size=batch_size
    )
    with PositionMapFile(test_file) as f:
        for start in range(0, len(f), batch_size):
            crops = np.stack([f.image(i) for i in range(start, min(len(f), start + batch_size))])
            yield predictor.predict_maps(crops)


def baseline_maps(
    method: MethodSpec, test_file: Path, batch_size: int, device: str
) -> Iterator[np.ndarray]:
    """3DDFA / DeFA: :func:`model.baselines.predict.iter_predicted_maps` (batches, file order)."""
    from model.baselines.predict import iter_predicted_maps

    expect = 0
    for start, maps in iter_predicted_maps(method.checkpoint, test_file, batch_size, device=device):
        if start != expect:
            raise DataError(
                method.checkpoint, "maps", f"batch starts at row {start}, expected {expect}"
            )
        expect += len(maps)
        yield np.asarray(maps, dtype=np.float32)


def mean_map_maps(
    method: MethodSpec, test_file: Path, batch_size: int, device: str
) -> Iterator[np.ndarray]:
    """The constant predictor: the mean of the position maps of the training file named by
    ``checkpoint`` (crop pixels, summed in float64), the same map for every test crop."""
    with PositionMapFile(test_file) as f:
        n, size = len(f), f.uv_size
    with PositionMapFile(method.checkpoint) as f:
        if not len(f):
            raise DataError(method.checkpoint, "posmaps", "no samples to average")
        if f.uv_size != size:
            raise DataError(
                method.checkpoint,
                "uv_size",
                f"maps are {f.uv_size}x{f.uv_size}, the test file's {size}x{size}",
            )
        total = np.zeros(f.posmap(0).shape, np.float64)
        for i in range(len(f)):
            total += f.posmap(i)
        mean = (total / len(f)).astype(np.float32)
    for start in range(0, n, batch_size):
        yield np.repeat(mean[None], min(batch_size, n - start), axis=0)


ADAPTERS: dict[str, MapAdapter] = {
    "prn": prn_maps,
    "3ddfa": baseline_maps,
    "defa": baseline_maps,
    "mean_map": mean_map_maps,
}


def predict_method(
    method: MethodSpec,
    test_file: Path,
    out_path: Path,
    batch_size: int,
    device: str,
    adapter: MapAdapter | None = None,
) -> dict:
    """Run one method on the whole test file and write its predictions file; returns its
    manifest entry."""
    adapter = adapter or ADAPTERS[method.kind]
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
        for maps in adapter(method, test_file, batch_size, device):
            b = len(maps)
            if maps.ndim != 4 or maps.shape[-1] != 3 or start + b > n:
                raise DataError(
                    method.checkpoint,
                    "maps",
                    f"{method.kind} adapter gave maps {maps.shape} at row {start} of {n}",
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
                f"{method.kind} adapter gave {start} maps for {n} test images",
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
