"""Build one split's HDF5 file: list the samples, run the tasks (dask or in-process), merge.

Resumable: tasks write finished shards (and their rejects) into a work directory next to the
output; a rerun with the same settings skips finished shards, a rerun with other settings starts
over. The final file and the rejects report appear under their names only when complete.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from uvgen.formats.aflw import list_aflw_samples
from uvgen.formats.errors import DataError
from uvgen.formats.lp300w import list_300wlp_samples
from uvgen.formats.scan import Reject
from uvgen.h5store import StorageOptions, UVData, merge_shards
from uvgen.masks import build_uv_masks
from uvgen.uvtasks import TaskResult, TaskSpec, model_and_layout, run_task
from pipeline.stage_io import file_digest, prepare_resumable_dir

FORMAT_VERSION = 1


@dataclass(frozen=True)
class BuildSettings:
    """Everything that decides the content of a split's file (plus how to run it)."""

    split: str  # 'train' (300W-LP layout) or 'test' (AFLW2000-3D layout)
    model_dir: Path
    source_root: Path
    out_path: Path
    rejects_path: Path
    seed: int
    jitter: bool
    task_size: int
    storage: StorageOptions
    mask_source: str = "model"  # or 'prnet' (PRNet's PNGs from prnet_dir)
    prnet_dir: Path | None = None
    on_bad_sample: str = "skip"  # or 'fail'
    workers: int = 2  # 0 = run in this process without dask
    scheduler_address: str | None = None

    @property
    def work_dir(self) -> Path:
        return self.out_path.parent / f".{self.out_path.name}.work"


class BadSamplesError(RuntimeError):
    """Raised (after the rejects report is written) when bad samples must fail the stage."""


def model_checksum(model_dir: Path) -> str:
    d = Path(model_dir)
    return file_digest(d / "BFM.mat", d / "BFM_UV.mat", d / "BFM_info.mat")


def list_sample_keys(split: str, source_root: Path) -> list[str]:
    """``.mat`` paths relative to ``source_root``, sorted (300W-LP folders or AFLW2000-3D)."""
    paths = list_300wlp_samples(source_root) if split == "train" else list_aflw_samples(source_root)
    return [p.relative_to(source_root).as_posix() for p in paths]


def _content_settings(s: BuildSettings, keys: list[str], checksum: str) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "split": s.split,
        "model_checksum": checksum,
        "source_root": str(s.source_root),
        "samples": file_digest_of_text("\n".join(keys)),
        "seed": s.seed,
        "jitter": s.jitter,
        "task_size": s.task_size,
        "storage": repr(s.storage),
        "mask_source": s.mask_source,
    }


def file_digest_of_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _rejects_sidecar(shard: Path) -> Path:
    return shard.with_suffix(".rejects.json")


def _run_and_record(spec: TaskSpec) -> TaskResult:
    """Run a task; its rejects are saved beside the shard before the shard itself appears."""
    result = run_task_rejects_first(spec)
    return result


def run_task_rejects_first(spec: TaskSpec) -> TaskResult:
    result = run_task(spec)
    sidecar = _rejects_sidecar(spec.shard_path)
    tmp = sidecar.with_name(f".{sidecar.name}.tmp")
    tmp.write_text(json.dumps([[str(r.path), r.field, r.reason] for r in result.rejects]))
    os.replace(tmp, sidecar)
    return result


def _load_rejects(shard: Path) -> list[Reject]:
    sidecar = _rejects_sidecar(shard)
    if not sidecar.exists():
        return []
    return [Reject(Path(p), f, r) for p, f, r in json.loads(sidecar.read_text())]


def _run_tasks(specs: list[TaskSpec], s: BuildSettings) -> None:
    if not specs:
        return
    progress = tqdm(total=sum(len(x.sample_keys) for x in specs), desc=f"uvgen {s.split}", unit="sample")
    if s.workers <= 0 and not s.scheduler_address:
        for spec in specs:
            _run_and_record(spec)
            progress.update(len(spec.sample_keys))
    else:
        from distributed import as_completed

        from uvgen.cluster import dask_client

        with dask_client(s.workers, s.scheduler_address) as client:
            futures = [client.submit(_run_and_record, spec, key=f"uvgen-{spec.shard_path.stem}-{s.split}", pure=False) for spec in specs]
            for future in as_completed(futures):
                result = future.result()
                progress.update(result.n_written + len(result.rejects))
    progress.close()


def write_rejects_report(path: Path, rejects: list[Reject]) -> None:
    """CSV with columns file, field, reason (atomically written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "field", "reason"])
        for r in rejects:
            writer.writerow([str(r.path), r.field or "", r.reason])
    os.replace(tmp, path)


def build_split(s: BuildSettings, params_for_attrs: dict | None = None) -> tuple[int, list[Reject]]:
    """Make ``s.out_path``; returns (samples written, rejects)."""
    if s.split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {s.split!r}")
    keys = list_sample_keys(s.split, s.source_root)
    if not keys:
        raise DataError(s.source_root, None, "no samples found")
    checksum = model_checksum(s.model_dir)
    settings = _content_settings(s, keys, checksum)
    if prepare_resumable_dir(s.work_dir, settings):
        print(f"resuming from finished shards in {s.work_dir}")
    specs = [
        TaskSpec(
            split=s.split,
            model_dir=s.model_dir,
            source_root=s.source_root,
            sample_keys=tuple(keys[i : i + s.task_size]),
            shard_path=s.work_dir / f"shard_{i // s.task_size:06d}.h5",
            seed=s.seed,
            jitter=s.jitter and s.split == "train",
            storage=s.storage,
        )
        for i in range(0, len(keys), s.task_size)
    ]
    pending = [spec for spec in specs if not spec.shard_path.exists()]
    _run_tasks(pending, s)
    rejects = [r for spec in specs for r in _load_rejects(spec.shard_path)]
    write_rejects_report(s.rejects_path, rejects)
    if rejects and s.on_bad_sample == "fail":
        raise BadSamplesError(
            f"{len(rejects)} bad sample(s); see {s.rejects_path} (first: {rejects[0]}); "
            "set on_bad_sample: skip to leave them out"
        )
    model, layout = model_and_layout(s.model_dir)
    masks = build_uv_masks(model, layout.size, source=s.mask_source, prnet_dir=s.prnet_dir, raster=layout.raster)
    uv = UVData(weight_mask=masks.weights, face_mask=masks.face, kpt_uv=masks.kpt_uv, face_ind=masks.face_ind)
    attrs = {
        "format_version": FORMAT_VERSION,
        "model_checksum": checksum,
        "split": s.split,
        "params": json.dumps(params_for_attrs or settings, sort_keys=True, default=str),
    }
    s.out_path.parent.mkdir(parents=True, exist_ok=True)
    merge_shards([spec.shard_path for spec in specs], s.out_path, uv, attrs)
    shutil.rmtree(s.work_dir)
    return len(keys) - len(rejects), rejects
