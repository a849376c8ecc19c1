"""UV ground-truth generation speed at real scale (53,215 vertices, 450x450 JPEG input).

Prints the per-stage breakdown on one core (JPEG decode, fit read, vertices, crop warp, map,
HDF5 write) and end-to-end samples per second for one in-process worker and for two dask workers.

    python benchmarks/bench_uvgen.py --count 400

The model is the real BFM topology from ../shared/fixtures with generated components when the
fixtures are present, else the embedded model at 53,215 vertices. Samples are synthetic 300W-LP
samples of that model, written once into --workdir.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from uvgen.formats.bfm import save_bfm
from uvgen.formats.lp300w import list_300wlp_samples, read_300wlp_mat
from uvgen.formats.matfile import read_jpeg
from uvgen.geometry import crop_transform, image_vertices, jitter_draws, training_crop_box
from uvgen.crop import warp_to_crop
from uvgen.groundtruth import build_uv_layout, crop_positions, fit_vertices
from uvgen.h5store import SampleRecord, StorageOptions, write_shard
from uvgen.synth.dataset import write_synthetic_set
from uvgen.uvbuild import BuildSettings, build_split

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "bfm_topology"


def real_scale_model():
    if FIXTURES.is_dir():
        from uvgen.synth.facemodel import make_real_topology_model

        return make_real_topology_model(FIXTURES, seed=0), "real BFM topology + generated components"
    from uvgen.synth.facemodel import make_face_model

    return make_face_model(n_vertices=53215, seed=0), "embedded model at 53,215 vertices"


def stage_breakdown(model, layout, mats: list[Path], shard_dir: Path) -> dict[str, float]:
    """Seconds per sample for each step, run in sequence on one core over ``mats``."""
    t = dict.fromkeys(["read .mat", "decode JPEG", "vertices (batched)", "pose + crop box", "crop warp", "UV map", "HDF5 write"], 0.0)
    tic = time.perf_counter()
    fits = [read_300wlp_mat(p) for p in mats]
    t["read .mat"] = time.perf_counter() - tic
    tic = time.perf_counter()
    images = [read_jpeg(f.image_path) for f in fits]
    t["decode JPEG"] = time.perf_counter() - tic
    tic = time.perf_counter()
    verts = fit_vertices(model, np.stack([f.shape_para for f in fits]), np.stack([f.exp_para for f in fits]))
    t["vertices (batched)"] = time.perf_counter() - tic
    crops, maps, records = [], [], []
    for fit, image, v in zip(fits, images, verts):
        tic = time.perf_counter()
        draws = jitter_draws(0, fit.name)
        box = training_crop_box(image_vertices(v[model.kpt_ind], fit.pose_para, image.shape[0]), draws)
        tr = crop_transform(box)
        pos = crop_positions(v, fit.pose_para, image.shape[0], tr)
        t["pose + crop box"] += time.perf_counter() - tic
        tic = time.perf_counter()
        crops.append(warp_to_crop(image, tr))
        t["crop warp"] += time.perf_counter() - tic
        tic = time.perf_counter()
        maps.append(layout.position_map(pos))
        t["UV map"] += time.perf_counter() - tic
        records.append(
            SampleRecord(
                name=fit.name, source=str(fit.mat_path), shape_para=fit.shape_para, exp_para=fit.exp_para,
                pose_para=fit.pose_para, transform=tr, jitter=np.array(draws), yaw_deg=fit.yaw_deg,
                pitch_deg=0.0, roll_deg=0.0, extras={},
            )
        )
    tic = time.perf_counter()
    write_shard(shard_dir / "bench_shard.h5", np.stack(crops), np.stack(maps), records, StorageOptions())
    t["HDF5 write"] = time.perf_counter() - tic
    return {k: v / len(mats) for k, v in t.items()}


def replicate(source: Path, target: Path, count: int) -> None:
    """A 300W-LP tree of ``count`` samples made of links to the unique samples in ``source``."""
    unique = list_300wlp_samples(source)
    for i in range(count):
        mat = unique[i % len(unique)]
        folder = target / mat.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{mat.stem}_r{i // len(unique)}"
        for suffix in (".mat", ".jpg"):
            link = folder / (name + suffix)
            if not link.exists():
                link.symlink_to(mat.with_suffix(suffix))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unique", type=int, default=200, help="distinct synthetic samples to render")
    parser.add_argument("--count", type=int, default=2000, help="samples per end-to-end run (links to the unique ones)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs here (default: a temp dir)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_uvgen_"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir, unique_dir, source = work / "model", work / "unique", work / "300W_LP"
    tic = time.perf_counter()
    model, kind = real_scale_model()
    if not (model_dir / "BFM.mat").exists():
        save_bfm(model, model_dir)
    print(f"model: {kind}, {model.n_vertices} vertices, {len(model.full_triangles)} triangles "
          f"({time.perf_counter() - tic:.1f} s to make)")
    write_synthetic_set("300wlp", model_dir, unique_dir, args.unique, 450, seed=5, workers=2)
    replicate(unique_dir, source, args.count)
    print(f"inputs: {args.count} samples (links to {args.unique} synthetic 450x450 JPEG + .mat)")

    tic = time.perf_counter()
    layout = build_uv_layout(model)
    print(f"UV layout (once per model): {time.perf_counter() - tic:.2f} s")
    per = stage_breakdown(model, layout, list_300wlp_samples(unique_dir), work)
    print("\nper-stage, one core, ms per sample:")
    for k, v in per.items():
        print(f"  {k:<20s} {1000 * v:7.2f}")
    print(f"  {'total':<20s} {1000 * sum(per.values()):7.2f}")

    for workers, label in ((0, "1 worker (in-process)"), (2, "2 dask workers")):
        out = work / f"train_{workers}.h5"
        settings = BuildSettings(
            split="train", model_dir=model_dir, source_root=source, out_path=out,
            rejects_path=work / f"rejects_{workers}.csv", seed=0, jitter=True, task_size=100,
            storage=StorageOptions(), workers=workers,
        )
        tic = time.perf_counter()
        report = build_split(settings)
        dt = time.perf_counter() - tic
        n = args.count
        per_core = 1000 * report.task_seconds / report.task_samples
        # Fixed cost (cluster start-up, model loading per worker) vs cost per sample (tasks, merge):
        # the task phase's wall time minus the tasks' own time on the busiest core is the start-up.
        busy = report.task_seconds / max(workers, 1)
        startup = max(report.tasks_wall_seconds - busy, 0.0)
        per_sample = (busy + report.merge_seconds) / n
        full = startup + 122450 * per_sample + (dt - report.tasks_wall_seconds - report.merge_seconds)
        print(f"\n{label}: {n / dt:.1f} samples/s end to end ({1000 * dt / n:.2f} ms/sample wall, "
              f"start-up and merge included); in the tasks {per_core:.2f} ms/sample per core; "
              f"start-up {startup:.1f} s, merge {1000 * report.merge_seconds / n:.2f} ms/sample; "
              f"122,450 samples -> {full / 60:.1f} min (start-up once + {1000 * per_sample:.2f} ms/sample)")
        out.unlink()
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
