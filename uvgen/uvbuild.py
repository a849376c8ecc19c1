"""Build one split's HDF5 file: list the samples, run the tasks (dask or in-process), merge.

Resumable: tasks write finished shards (and their rejects) into a work directory next to the
output; a rerun with the same settings skips finished shards, a rerun with other settings starts
over. The final file and the rejects report appear under their names only when complete.

Never stale, never corrupt:

* One build per output at a time: the build holds a lock (``.NAME.lock`` beside the output, with
  its pid) from listing to merge; a second build of the same output fails at once
  (:class:`BuildLockedError`, "another build of OUT is running (pid N)").
* A shard is reused only when everything that decides its bytes is unchanged. The work directory's
  manifest holds the settings (model checksum, seed, jitter, task size, storage, masks, the uvgen
  source code and the versions of the libraries that read and write the data); each shard's name
  carries a digest of those settings, its sample keys and each sample's input files' identity: size,
  mtime and ctime in nanoseconds of the ``.mat`` and the ``.jpg`` (:func:`input_identity`). A file
  rewritten, touched, or copied over with its old mtime kept (ctime changes) rebuilds its shard.
  Stat, not a content hash: a content hash of 300W-LP (~122,000 pairs, several GB) would be read in
  full at every start (a minute or more from disk), while two stats per sample take ~3.5 s in all
  (28.5 us per sample, measured from the page cache); a stat misses only a write that also forges
  the ctime (which a user's tools cannot do).
* A full disk fails with :class:`~uvgen.diskspace.DiskFullError` ("No space left on device: PATH"):
  each task and the merge check the free space against what they will write first, and a failure
  that still happens is converted; nothing appears under a final name.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import io
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from uvgen.atomic import atomic_write_text
from uvgen.checks import check_uv_size
from uvgen.diskspace import DiskFullError, disk_full_as_error, ensure_free_space, free_bytes
from uvgen.formats.errors import DataError, warn_data
from uvgen.formats.lp300w import image_path_for
from uvgen.formats.registry import DataSetFormat, format_of_split
from uvgen.formats.scan import Reject
from uvgen.h5codec import StorageOptions
from uvgen.h5store import UVData
from uvgen.h5write import merge_shards
from uvgen.masks import UV_SIZE, build_uv_masks
from uvgen.model_checksum import model_checksum
from uvgen.resumable import (
    BuildLockedError,
    check_output_file,
    exclusive_lock,
    prepare_resumable_dir,
    remove_resumable_dir,
    remove_stale_temporaries,
)
from uvgen.uvtasks import (
    TaskResult,
    TaskSpec,
    is_finished,
    load_rejects,
    model_and_layout,
    rejects_path_for,
    run_task,
)

__all__ = [
    "BadSamplesError",
    "BuildLockedError",
    "BuildReport",
    "BuildSettings",
    "DiskFullError",
    "build_split",
]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class BuildSettings:
    """Everything that decides the content of a split's file (plus how to run it)."""

    split: str  # the file's role, 'train' or 'test' (its `split` attribute)
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
    uv_size: int = UV_SIZE  # map and crop side (face3d's uv_h = uv_w = image_h = image_w)
    data_format: str = ""  # uvgen.formats.registry name; "" = the split's default

    @property
    def format(self) -> DataSetFormat:
        """The data set format the samples are listed, read and cropped by."""
        return format_of_split(self.split, self.data_format)

    @property
    def work_dir(self) -> Path:
        return self.out_path.parent / f".{self.out_path.name}.work"


class BadSamplesError(RuntimeError):
    """Raised (after the rejects report is written) when bad samples must fail the stage."""


def list_sample_keys(split: str, source_root: Path, data_format: str = "") -> list[str]:
    """The sample files' paths relative to ``source_root``, sorted, as the split's data set format
    lists them (:mod:`uvgen.formats.registry`). Every entry is a sample (a folder, a dangling link,
    an AFLW2000-3D file not named ``imageNNNNN.mat``): the tasks reject those with a reason."""
    return format_of_split(split, data_format).sample_keys(source_root)


_PACKAGE_DIR = Path(__file__).resolve().parent
# Libraries whose version can change the stored bytes (decoding, arithmetic, codecs).
_DATA_LIBRARIES = ("numpy", "scipy", "pillow", "h5py", "hdf5plugin")


def code_digest(package_dir: Path = _PACKAGE_DIR) -> str:
    """SHA-256 over the uvgen package's Python sources (relative names and bytes, sorted)."""
    h = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        h.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that decide the stored bytes."""
    out = {}
    for name in _DATA_LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _content_settings(s: BuildSettings, keys: list[str], checksum: str) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "split": s.split,
        "data_format": s.format.name,
        "model_checksum": checksum,
        "source_root": str(s.source_root),
        "samples": file_digest_of_text("\n".join(keys)),
        "seed": s.seed,
        "jitter": s.jitter,
        "task_size": s.task_size,
        "storage": repr(s.storage),
        "mask_source": s.mask_source,
        "uv_size": s.uv_size,
    }


def _resume_settings(content: dict) -> dict:
    """What must match for finished shards to be reused: content settings, code, libraries."""
    return {**content, "code": code_digest(), "libraries": library_versions()}


def file_digest_of_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _stat(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:  # missing or unreadable: the task rejects it; its appearance changes the key
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def input_identity(source_root: Path, key: str) -> list:
    """The identity of one sample's input files: (size, mtime_ns, ctime_ns) of the ``.mat`` and
    of the ``.jpg`` beside it (None for a missing file)."""
    mat = Path(source_root) / key
    return [_stat(mat), _stat(image_path_for(mat))]


def shard_name(index: int, settings_digest: str, keys: tuple[str, ...], identities: list) -> str:
    """``shard_NNNNNN_DIGEST.h5``: DIGEST covers the settings, the sample keys and their inputs."""
    blob = json.dumps([settings_digest, list(keys), identities], separators=(",", ":"))
    return f"shard_{index:06d}_{hashlib.sha256(blob.encode()).hexdigest()[:20]}.h5"


def _remove_stale_files(work_dir: Path, wanted: set[str]) -> int:
    """Remove temporaries and shards (with their rejects) not in ``wanted``; return the count of
    stale shards. Only called under the build's lock: no other writer uses the folder."""
    keep = wanted | {rejects_path_for(work_dir / n).name for n in wanted}
    doomed = [
        p
        for p in work_dir.iterdir()
        if p.name.endswith(".tmp") or (p.name.startswith("shard_") and p.name not in keep)
    ]
    # Shards before their rejects: a kill in between leaves rejects without a shard, never the
    # reverse.
    doomed.sort(key=lambda p: p.suffix != ".h5")
    for path in doomed:
        path.unlink()
    return sum(p.suffix == ".h5" and p.name.startswith("shard_") for p in doomed)


def _sample_bytes_bound(storage: StorageOptions, size: int = UV_SIZE) -> int:
    """Upper bound of one stored sample: crop (uint8) and map uncompressed, and its record."""
    return size * size * 3 * (1 + np.dtype(storage.posmap_dtype).itemsize) + 4096


def run_task_with_space_check(spec: TaskSpec) -> TaskResult | DiskFullError:
    """:func:`run_task` after checking that its shard fits on the disk (uncompressed bound).

    A full disk (found by the check or during the task) is returned as a :class:`DiskFullError`
    naming the shard's folder, not raised: a dask worker would log a raised one as a multi-line
    report. The caller raises it."""
    folder = spec.shard_path.parent
    try:
        bound = _sample_bytes_bound(spec.storage, spec.uv_size)
        ensure_free_space(folder, len(spec.sample_keys) * bound)
        with disk_full_as_error(folder):
            return run_task(spec)
    except DiskFullError as err:
        return err


def _checked(result: TaskResult | DiskFullError) -> TaskResult:
    if isinstance(result, DiskFullError):
        raise result
    return result


def _run_tasks(specs: list[TaskSpec], s: BuildSettings) -> list[TaskResult]:
    """Run the tasks in this process (workers 0) or on dask; results in completion order."""
    results: list[TaskResult] = []
    if not specs:
        return results
    progress = tqdm(
        total=sum(len(x.sample_keys) for x in specs), desc=f"uvgen {s.split}", unit="sample"
    )
    try:
        if s.workers <= 0 and not s.scheduler_address:
            for spec in specs:
                results.append(_checked(run_task_with_space_check(spec)))
                progress.update(len(spec.sample_keys))
        else:
            from distributed import as_completed

            from uvgen.cluster import dask_client

            with dask_client(s.workers, s.scheduler_address) as client:
                futures = [
                    client.submit(
                        run_task_with_space_check,
                        spec,
                        key=f"uvgen-{s.split}-{spec.shard_path.stem}",
                        pure=False,
                    )
                    for spec in specs
                ]
                for future in as_completed(futures):
                    results.append(_checked(future.result()))
                    progress.update(len(results[-1].rejects) + results[-1].n_written)
    except Exception as err:
        # A worker that died writing (e.g. the HDF5 library on a full disk) says only that it died.
        bound = max(len(x.sample_keys) for x in specs) * _sample_bytes_bound(s.storage, s.uv_size)
        if not isinstance(err, DiskFullError) and free_bytes(s.work_dir) < bound:
            raise DiskFullError(s.work_dir, f"a task failed with {type(err).__name__}") from err
        raise
    finally:
        progress.close()
    show_task_warnings(results)
    return results


def show_task_warnings(results: list[TaskResult]) -> None:
    """Re-emit the tasks' DataWarnings in this process (each distinct one once, in sample order),
    so they show as the stage shows any warning, after the progress bar."""
    seen = dict.fromkeys(
        w for r in sorted(results, key=lambda r: r.shard_path.name) for w in r.warnings
    )
    for path, field, reason in seen:
        warn_data(path, field, reason)


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


def rejects_summary(rejects: list[Reject], rejects_path: Path, top: int = 3) -> str:
    """``N rejected`` and, when N > 0, where the list is and the ``top`` most common reasons (field
    and reason), e.g. ``9 rejected (list: data/uv/test_rejects.csv; most common: Pose_Para:
    non-finite values x 5, roi: wrong shape x 4)``."""
    if not rejects:
        return "0 rejected"
    counts = Counter(f"{r.field}: {r.reason}" if r.field else r.reason for r in rejects)
    common = ", ".join(f"{reason} x {n}" for reason, n in counts.most_common(top))
    return f"{len(rejects)} rejected (list: {rejects_path}; most common: {common})"


def write_rejects_report(path: Path, rejects: list[Reject]) -> None:
    """CSV with columns file, field, reason (atomically written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["file", "field", "reason"])
    for r in rejects:
        writer.writerow([str(r.path), r.field or "", r.reason])
    atomic_write_text(path, text.getvalue())


def build_split(s: BuildSettings, params_for_attrs: dict | None = None) -> BuildReport:
    """Make ``s.out_path`` (and the rejects report), holding the output's lock throughout.

    Raises :class:`BuildLockedError` when another build of the same output runs,
    :class:`DiskFullError` on a full disk, :class:`BadSamplesError` (``on_bad_sample: fail``)."""
    if s.split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {s.split!r}")
    check_uv_size("uv_size", s.uv_size)
    if s.mask_source == "prnet" and s.uv_size != UV_SIZE:
        raise ValueError(
            f"mask_source 'prnet': PRNet's masks are {UV_SIZE}x{UV_SIZE}, uv_size is {s.uv_size}"
        )
    for path in (s.out_path, s.rejects_path):
        check_output_file(path)
    with exclusive_lock(s.out_path):
        remove_stale_temporaries(s.out_path, s.rejects_path)  # left by a killed build
        return _build_locked(s, params_for_attrs)


def _plan(s: BuildSettings, keys: list[str], resume: dict) -> list[TaskSpec]:
    digest = file_digest_of_text(json.dumps(resume, sort_keys=True, default=str))
    specs = []
    for i in range(0, len(keys), s.task_size):
        chunk = tuple(keys[i : i + s.task_size])
        name = shard_name(
            i // s.task_size, digest, chunk, [input_identity(s.source_root, k) for k in chunk]
        )
        specs.append(
            TaskSpec(
                split=s.split,
                model_dir=s.model_dir,
                source_root=s.source_root,
                sample_keys=chunk,
                shard_path=s.work_dir / name,
                seed=s.seed,
                jitter=s.jitter and s.format.crop == "training",
                storage=s.storage,
                first_index=i,
                uv_size=s.uv_size,
                data_format=s.format.name,
            )
        )
    return specs


def _build_locked(s: BuildSettings, params_for_attrs: dict | None) -> BuildReport:
    keys = list_sample_keys(s.split, s.source_root, s.data_format)
    if not keys:
        raise DataError(s.source_root, None, "no samples found")
    checksum = model_checksum(s.model_dir)
    settings = _content_settings(s, keys, checksum)
    resume = _resume_settings(settings)
    with disk_full_as_error(s.work_dir):
        resuming = prepare_resumable_dir(s.work_dir, resume)
    specs = _plan(s, keys, resume)
    stale = _remove_stale_files(s.work_dir, {spec.shard_path.name for spec in specs})
    pending = [spec for spec in specs if not is_finished(spec.shard_path)]
    if resuming:
        changed = f"; {stale} shard(s) redone because their inputs changed" if stale else ""
        print(
            f"resuming from {len(specs) - len(pending)} finished shard(s) in {s.work_dir}{changed}"
        )
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
    model, layout = model_and_layout(s.model_dir, s.uv_size)
    masks = build_uv_masks(
        model, layout.size, source=s.mask_source, prnet_dir=s.prnet_dir, raster=layout.raster
    )
    uv = UVData(
        weight_class=masks.weight_class,
        face_mask=masks.face,
        kpt_uv=masks.kpt_uv,
        face_ind=masks.face_ind,
    )
    attrs = {
        "format_version": FORMAT_VERSION,
        "model_checksum": checksum,
        "split": s.split,
        "data_format": s.format.name,
        "uv_size": s.uv_size,
        "params": json.dumps(params_for_attrs or settings, sort_keys=True, default=str),
    }
    s.out_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    shard_paths = [spec.shard_path for spec in specs]
    # The merge copies the shards' stored chunks: the file is their size plus headers and masks.
    ensure_free_space(s.out_path, sum(p.stat().st_size for p in shard_paths))
    with disk_full_as_error(s.out_path):
        merge_shards(shard_paths, s.out_path, uv, attrs)
    merge_seconds = time.perf_counter() - started
    remove_resumable_dir(s.work_dir)
    return BuildReport(
        written=len(keys) - len(rejects),
        rejects=rejects,
        task_seconds=sum(r.seconds for r in results),
        task_samples=sum(r.n_written + len(r.rejects) for r in results),
        tasks_wall_seconds=tasks_wall,
        merge_seconds=merge_seconds,
    )
