"""Build one split's HDF5 file: list the samples, run the tasks (dask or in-process), merge.

Resumable: tasks write finished shards (and their rejects) into a work directory next to the
output; a rerun with the same settings skips finished shards, a rerun with other settings starts
over. The final file and the rejects report appear under their names only when complete.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from uvgen.formats.aflw import list_aflw_samples
from uvgen.formats.errors import DataError
from uvgen.formats.lp300w import list_300wlp_samples
from uvgen.formats.scan import Reject
from uvgen.h5store import StorageOptions, UVData, merge_shards
from uvgen.masks import build_uv_masks
from uvgen.model_checksum import model_checksum
from uvgen.resumable import prepare_resumable_dir
from uvgen.uvtasks import TaskResult, TaskSpec, load_rejects, model_and_layout, run_task

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
    return hashlib.sha256(text.encode()).hexdigest()


def _run_tasks(specs: list[TaskSpec], s: BuildSettings) -> list[TaskResult]:
    """Run the tasks in this process (workers 0) or on dask; results in completion order."""
    results: list[TaskResult] = []
    if not specs:
        return results
    progress = tqdm(total=sum(len(x.sample_keys) for x in specs), desc=f"uvgen {s.split}", unit="sample")
    if s.workers <= 0 and not s.scheduler_address:
        for spec in specs:
            results.append(run_task(spec))
            progress.update(len(spec.sample_keys))
    else:
        from distributed import as_completed

        from uvgen.cluster import dask_client

        with dask_client(s.workers, s.scheduler_address) as client:
            futures = [
                client.submit(run_task, spec, key=f"uvgen-{s.split}-{spec.shard_path.stem}", pure=False)
                for spec in specs
            ]
            for future in as_completed(futures):
                results.append(future.result())
                progress.update(len(results[-1].rejects) + results[-1].n_written)
    progress.close()
    return results


@dataclass(frozen=True)
class BuildReport:
    """What a build did: samples in the file, the rejects, and the time its tasks took (on
    their cores; tasks of an earlier interrupted run excluded)."""

    written: int
    rejects: list[Reject]
    task_seconds: float
    task_samples: int
    tasks_wall_seconds: float = 0.0  # wall time of the task phase (cluster start-up included)
    merge_seconds: float = 0.0  # wall time of the merge into the final file


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


def build_split(s: BuildSettings, params_for_attrs: dict | None = None) -> BuildReport:
    """Make ``s.out_path`` (and the rejects report)."""
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
    started = time.perf_counter()
    results = _run_tasks(pending, s)
    tasks_wall = time.perf_counter() - started
    rejects = [r for spec in specs for r in load_rejects(spec.shard_path)]
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
    started = time.perf_counter()
    merge_shards([spec.shard_path for spec in specs], s.out_path, uv, attrs)
    merge_seconds = time.perf_counter() - started
    shutil.rmtree(s.work_dir)
    return BuildReport(
        written=len(keys) - len(rejects),
        rejects=rejects,
        task_seconds=sum(r.seconds for r in results),
        task_samples=sum(r.n_written + len(r.rejects) for r in results),
        tasks_wall_seconds=tasks_wall,
        merge_seconds=merge_seconds,
    )
