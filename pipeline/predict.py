"""Stage `predict`: every method on the test HDF5 -> one predictions file per method.

Reads the ``predict`` section of params.yaml. Each method is a small adapter that yields crop-space
UV position maps (B, 256, 256, 3) for the test file's crops, in file order:

* ``prn``: ``model.inference.Predictor`` on the trained weights (batches of ``batch_size``);
* ``3ddfa`` / ``defa``: the in-house baselines (model/baselines/predict.py ``iter_predicted_maps``),
  which decode their parameters through the morphable model into maps;
* ``mean_map``: a constant, the mean training map (``checkpoint`` = the training UV file).

All maps are decoded the same way (``eval.predictions.decode_maps``: PRNet's landmark and face-pixel
sampling, then back to original-image pixels) and written as ``<out_dir>/<name>.h5`` in the common
predictions format, with ``<out_dir>/manifest.json`` listing the files (and any method skipped
because its checkpoint is absent, which only ``skip_missing: true`` allows).

Runtime per image: the wall time of the adapter (weights loading, crop reading, network) plus the
decoding, spread evenly over the images of each batch; the device is recorded beside it.
"""
from __future__ import annotations

import argparse
import inspect
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from eval.predictions import PredictionsWriter, decode_maps, method_file_name
from pipeline.config import DEFAULT_PARAMS, PredictMethod, PredictParams, load_params
from uvgen.formats.errors import DataError
from uvgen.h5store import PositionMapFile

MANIFEST = "manifest.json"
MapAdapter = Callable[[PredictMethod, Path, int, str], Iterator[np.ndarray]]


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when available, else 'cpu'; anything else unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def prn_maps(method: PredictMethod, test_file: Path, batch_size: int, device: str) -> Iterator[np.ndarray]:
    """PRN: the test crops through ``Predictor`` in batches -> crop-space maps, file order."""
    from model.inference import Predictor

    predictor = Predictor.from_files(method.checkpoint, test_file, device=device, batch_size=batch_size)
    with PositionMapFile(test_file) as f:
        for start in range(0, len(f), batch_size):
            crops = np.stack([f.image(i) for i in range(start, min(len(f), start + batch_size))])
            yield predictor.predict_maps(crops)


def _baseline_module():
    import importlib

    for module in ("model.baselines.predict", "model.baselines"):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, "iter_predicted_maps") or hasattr(mod, "predict_maps"):
            return mod
    raise ImportError("model.baselines provides neither iter_predicted_maps nor predict_maps")


def baseline_maps(method: PredictMethod, test_file: Path, batch_size: int, device: str) -> Iterator[np.ndarray]:
    """3DDFA / DeFA: model.baselines' ``iter_predicted_maps(checkpoint, test_file, batch_size,
    device)`` (batches, in file order), else ``predict_maps`` (all maps at once)."""
    mod = _baseline_module()
    if hasattr(mod, "iter_predicted_maps"):
        expect = 0
        for start, maps in mod.iter_predicted_maps(method.checkpoint, test_file, batch_size, device=device):
            if start != expect:
                raise DataError(method.checkpoint, "maps", f"batch starts at row {start}, expected {expect}")
            expect += len(maps)
            yield np.asarray(maps, dtype=np.float32)
        return
    fn = mod.predict_maps
    kwargs = {"device": device} if "device" in inspect.signature(fn).parameters else {}
    yield np.asarray(fn(method.checkpoint, test_file, batch_size, **kwargs), dtype=np.float32)


def mean_map_maps(method: PredictMethod, test_file: Path, batch_size: int, device: str) -> Iterator[np.ndarray]:
    """The constant predictor: the mean of the position maps of the training file named by
    ``checkpoint`` (crop pixels, float64 sum), the same map for every test crop. Any method that
    learned something from the images scores below it."""
    with PositionMapFile(method.checkpoint) as f:
        if not len(f):
            raise DataError(method.checkpoint, "posmaps", "no samples to average")
        total = np.zeros(f.posmap(0).shape, np.float64)
        for i in range(len(f)):
            total += f.posmap(i)
        mean = (total / len(f)).astype(np.float32)
    with PositionMapFile(test_file) as f:
        n = len(f)
    for start in range(0, n, batch_size):
        yield np.repeat(mean[None], min(batch_size, n - start), axis=0)


ADAPTERS: dict[str, MapAdapter] = {"prn": prn_maps, "3ddfa": baseline_maps, "defa": baseline_maps,
                                   "mean_map": mean_map_maps}


def predict_method(method: PredictMethod, test_file: Path, out_path: Path, batch_size: int,
                   device: str, adapter: MapAdapter | None = None) -> dict:
    """Run one method on the whole test file and write its predictions file; returns its
    manifest entry."""
    adapter = adapter or ADAPTERS[method.kind]
    with PositionMapFile(test_file) as f:
        names = f.names
        transforms = np.array([r.transform for r in f.records()], dtype=np.float64).reshape(-1, 3, 3)
        uv = f.uv
    n = len(names)
    meta = {"kind": method.kind, "checkpoint": str(method.checkpoint), "test_file": str(test_file),
            "device": device, "batch_size": str(batch_size)}
    start = 0
    with PredictionsWriter(out_path, method.name, names, int(uv.face_ind.size), meta=meta) as w:
        tick = time.perf_counter()
        for maps in adapter(method, test_file, batch_size, device):
            b = len(maps)
            if maps.ndim != 4 or maps.shape[-1] != 3 or start + b > n:
                raise DataError(method.checkpoint, "maps",
                                f"{method.kind} adapter gave maps {maps.shape} at row {start} of {n}")
            lm, dense = decode_maps(maps, transforms[start:start + b], uv.kpt_uv, uv.face_ind)
            now = time.perf_counter()
            w.write(start, lm, dense, runtime_s=(now - tick) / max(b, 1))
            start += b
            tick = time.perf_counter()
        if start != n:
            raise DataError(method.checkpoint, "maps", f"{method.kind} adapter gave {start} maps for {n} test images")
    return {"name": method.name, "kind": method.kind, "checkpoint": str(method.checkpoint),
            "file": out_path.name, "n_images": n, "device": device}


def run(p: PredictParams) -> dict:
    """The stage: every method of ``p`` -> files + manifest in ``p.out_dir``; returns the manifest."""
    if not p.test_file.is_file():
        raise DataError(p.test_file, None, "test file not found")
    device = resolve_device(p.device)
    out_dir = Path(p.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict = {"test_file": str(p.test_file), "methods": [], "skipped": []}
    for m in p.methods:
        if not Path(m.checkpoint).is_file():
            if not p.skip_missing:
                raise DataError(m.checkpoint, None, f"checkpoint of method {m.name!r} not found "
                                "(train it first, or set predict.skip_missing: true to leave it out)")
            print(f"predict: {m.name}: checkpoint {m.checkpoint} not found -> skipped")
            manifest["skipped"].append({"name": m.name, "reason": f"checkpoint {m.checkpoint} not found"})
            continue
        out_path = out_dir / method_file_name(m.name)
        t0 = time.perf_counter()
        entry = predict_method(m, p.test_file, out_path, p.batch_size, device)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default=DEFAULT_PARAMS, help="params.yaml to read")
    args = parser.parse_args(argv)
    run(load_params(args.params).predict)


if __name__ == "__main__":
    main()
