"""UV ground-truth generation speed at real scale (53,215 vertices, 450x450 JPEG input).

For each split, runs the build's own task function (``uvgen.uvtasks.run_task``: read, decode,
vertices, crop, map, float16 encode, HDF5 shard write) on tasks of ``--task-size`` samples and
prints, per sample on one core: the wall time of a task, the CPU time of each step, and the
floor it is measured against, a bare JPEG decode of the same images in the same run (so the gap
to the floor stays visible whatever else the machine is doing). Medians over ``--repeats``.

    taskset -c 0 python benchmarks/bench_uvgen.py                 # per-step breakdown, both splits
    taskset -c 0 python benchmarks/bench_uvgen.py --end-to-end    # + whole builds (1 and 2 workers)
    taskset -c 0 python benchmarks/bench_uvgen.py --per-sample    # one at a time vs batched
        [--face3d F3D --face3d-python PY]    # + face3d's own script, interleaved

``--per-sample``: ms per sample from a decoded image and its fit to the crop and the float32 map
(vertices, crop box, warp, map; no file reading, encoding or writing), in rounds that alternate
the public API one sample at a time (``fit_vertices`` of one sample + ``training_pair``: what a
DataLoader's ``__getitem__`` would call), the same with every product padded to 50 rows (as
before the narrow product), the same API on batches of 50 samples, and, with
``--face3d``, face3d's ``examples/8_generate_posmap_300WLP.py`` function on the same samples and
draws (benchmarks/face3d_timer.py, run by ``--face3d-python``, an interpreter with scikit-image
and face3d's built Cython rasteriser; file I/O replaced by look-ups). Medians over rounds.

Steps are timed in CPU time of the thread (``time.thread_time``), so other processes on a shared
machine inflate them less than wall time; the load average is printed beside the figures. Each
timed run writes its own new shard, as a build does (it never writes over a finished shard); the
shard is deleted after the run, outside the timing. (Renaming each run's shard over the previous
one, as this benchmark did before, made ext4 flush the new file at the rename and free the old
one's pages: ~0.06 ms/sample of CPU and ~0.3 ms of wall time that a build does not pay.)

The model is the real BFM topology from ../shared/fixtures with generated components when the
fixtures are present, else the embedded model at 53,215 vertices. Training samples are synthetic
300W-LP samples of that model; test samples are the real AFLW2000-3D photos and fits of the
fixtures when present (linked repeatedly), else synthetic ones. Inputs are written once into
--workdir.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from uvgen.formats.aflw import list_aflw_samples
from uvgen.formats.bfm import save_bfm
from uvgen.formats.lp300w import list_300wlp_samples, read_300wlp_mat
from uvgen.formats.matfile import read_jpeg
from uvgen.h5codec import StorageOptions
from uvgen.synth.dataset import write_synthetic_set
from uvgen.uvbuild import BuildSettings, build_split
from uvgen.uvtasks import TaskSpec, model_and_layout, rejects_path_for, run_task

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def real_scale_model():
    if (SHARED / "bfm_topology").is_dir():
        from uvgen.synth.facemodel import make_real_topology_model

        return make_real_topology_model(
            SHARED / "bfm_topology", seed=0
        ), "real BFM topology + generated components"
    from uvgen.synth.facemodel import make_face_model

    return make_face_model(n_vertices=53215, seed=0), "embedded model at 53,215 vertices"


def link_tree(mats: list[Path], target: Path, count: int, flat: bool) -> None:
    """``count`` samples made of links to ``mats`` (and their .jpg), cycling through them."""
    for i in range(count):
        mat = mats[i % len(mats)]
        folder = target if flat else target / mat.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        name = f"image{i:05d}" if flat else f"{mat.stem}_r{i // len(mats)}"
        for suffix in (".mat", ".jpg"):
            link = folder / (name + suffix)
            if not link.exists():
                link.symlink_to(mat.with_suffix(suffix).resolve())


def breakdown(
    split: str, model_dir: Path, root: Path, task_size: int, repeats: int, work: Path
) -> None:
    """Per-step CPU ms per sample of run_task, the task's wall ms per sample, and the floor."""
    mats = list_300wlp_samples(root) if split == "train" else list_aflw_samples(root)
    keys = tuple(p.relative_to(root).as_posix() for p in mats)[:task_size]
    spec = TaskSpec(
        split=split,
        model_dir=model_dir,
        source_root=root,
        sample_keys=keys,
        shard_path=work / f"bench_{split}.h5",  # replaced per run below
        seed=0,
        jitter=True,
        storage=StorageOptions(),
    )
    steps: list[dict[str, float]] = []
    walls, floors = [], []
    jpgs = [m.with_suffix(".jpg") for m in mats[:task_size]]
    for run in range(repeats + 1):  # run 0: warm-up (page cache, buffers)
        # A new shard each run, as in a build (which never writes over a finished shard);
        # the previous one is removed outside the timing.
        run_spec = dataclasses.replace(spec, shard_path=work / f"bench_{split}_{run}.h5")
        timings: dict[str, float] = {}
        result = run_task(run_spec, timings=timings)
        for path in (run_spec.shard_path, rejects_path_for(run_spec.shard_path)):
            path.unlink(missing_ok=True)
        if run == 0:
            continue
        steps.append({k: v / len(keys) for k, v in timings.items()})
        walls.append(result.seconds / len(keys))
        tic = time.thread_time()
        for p in jpgs:
            read_jpeg(p)
        floors.append((time.thread_time() - tic) / len(jpgs))
    written = result.n_written
    print(
        f"\n{split} split: {len(keys)} samples per task "
        f"({written} written, {len(result.rejects)} rejected), "
        f"median of {repeats} runs, ms per sample on one core"
    )
    total = 0.0
    for name in steps[0]:
        value = statistics.median(s.get(name, 0.0) for s in steps)
        total += value
        print(f"  {name:<26s} {1000 * value:7.3f}")
    floor = statistics.median(floors)
    print(f"  {'total (CPU)':<26s} {1000 * total:7.3f}")
    print(f"  {'task wall time':<26s} {1000 * statistics.median(walls):7.3f}")
    print(
        f"  floor: bare JPEG decode of the same images {1000 * floor:.3f} ms "
        f"-> total is {total / floor:.2f}x the floor"
    )


def per_sample(
    model_dir: Path,
    root: Path,
    count: int,
    rounds: int,
    face3d: Path | None,
    face3d_python: str,
    work: Path,
) -> None:
    """One-at-a-time vs batched ms per sample of the public API (and face3d's), interleaved."""
    import json
    import subprocess

    import numpy as np

    from uvgen.geometry import jitter_draws
    from uvgen.groundtruth import PRODUCT_ROWS, fit_vertices, narrow_products_agree, training_pair

    model, layout = model_and_layout(model_dir)
    mats = list_300wlp_samples(root)[:count]
    keys = [m.relative_to(root).as_posix() for m in mats]
    fits = [read_300wlp_mat(m) for m in mats]
    images = [read_jpeg(m.with_suffix(".jpg")) for m in mats]
    draws = [jitter_draws(0, k) for k in keys]
    shapes = np.stack([f.shape_para for f in fits])
    exps = np.stack([f.exp_para for f in fits])
    poses = [np.asarray(f.pose_para, dtype=np.float64).ravel() for f in fits]
    tic = time.perf_counter()
    narrow = narrow_products_agree(model)
    print(
        f"\nper sample: {count} synthetic 300W-LP samples; narrow products agree with the build's: "
        f"{narrow} (checked once per process in {time.perf_counter() - tic:.2f} s)"
    )

    def one_at_a_time(exact: bool = True) -> float:
        tic = time.perf_counter()
        for i in range(count):
            v = fit_vertices(model, shapes[i], exps[i], slots=[i], exact=exact)[0]
            training_pair(model, layout, images[i], v, poses[i], draws[i])
        return (time.perf_counter() - tic) / count

    def batched() -> float:
        tic = time.perf_counter()
        for start in range(0, count, PRODUCT_ROWS):
            part = slice(start, start + PRODUCT_ROWS)
            verts = fit_vertices(model, shapes[part], exps[part], slots=np.arange(count)[part])
            for i, v in zip(range(start, min(start + PRODUCT_ROWS, count)), verts):
                training_pair(model, layout, images[i], v, poses[i], draws[i])
        return (time.perf_counter() - tic) / count

    from uvgen import groundtruth

    def padded_one_at_a_time() -> float:
        """One at a time as before the narrow product: every product padded to 50 rows."""
        key = id(model)
        saved = groundtruth._NARROW[key]
        groundtruth._NARROW[key] = (saved[0], False)
        try:
            return one_at_a_time()
        finally:
            groundtruth._NARROW[key] = saved

    timers = {
        "one at a time": one_at_a_time,
        "one at a time, exact=False (1-row gemv)": lambda: one_at_a_time(exact=False),
        "one at a time, padded to 50 rows (before)": padded_one_at_a_time,
        f"batches of {PRODUCT_ROWS}": batched,
    }
    proc = None
    if face3d is not None:
        spec = work / "face3d_samples.json"
        spec.write_text(
            json.dumps(
                {
                    "samples": [
                        {"jpg": str(m.with_suffix(".jpg")), "mat": str(m), "draws": list(d)}
                        for m, d in zip(mats, draws)
                    ]
                }
            )
        )
        timer = Path(__file__).with_name("face3d_timer.py")
        proc = subprocess.Popen(
            [face3d_python, str(timer), str(face3d), str(model_dir), str(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("face3d_timer.py did not start")

        def face3d_script() -> float:
            proc.stdin.write("1\n")
            proc.stdin.flush()
            return float(proc.stdout.readline()) / 1000

        timers["face3d's script"] = face3d_script
    results: dict[str, list[float]] = {name: [] for name in timers}
    for run in range(rounds + 1):  # round 0: warm-up
        for name, timer_fn in timers.items():
            value = timer_fn()
            if run:
                results[name].append(value)
    if proc is not None:
        proc.stdin.close()
        proc.wait()
    load = os.getloadavg()
    print(f"  median of {rounds} interleaved rounds, load average {load[0]:.2f}:")
    for name, values in results.items():
        print(f"  {name:<42s} {1000 * statistics.median(values):7.2f} ms/sample")
    exact_false_differences(model, layout, shapes, exps, images, poses, draws)


def exact_false_differences(model, layout, shapes, exps, images, poses, draws) -> None:
    """How often ``exact=False`` changes a stored float16 map value, and by how many steps."""
    import numpy as np

    from uvgen.groundtruth import fit_vertices, training_pair
    from uvgen.posmap_float16 import encode_posmap_fast

    storage = StorageOptions()
    stored = [np.empty((256, 256, 3), np.float16) for _ in range(2)]
    changed = values = samples_changed = over_one = 0
    largest_px = largest_over_one = 0.0
    for i in range(len(shapes)):
        for exact, out in ((True, stored[0]), (False, stored[1])):
            v = fit_vertices(model, shapes[i], exps[i], slots=[i], exact=exact)[0]
            pair = training_pair(model, layout, images[i], v, poses[i], draws[i])
            encode_posmap_fast(pair.posmap, storage, out)
        diff = stored[0] != stored[1]
        changed += int(diff.sum())
        values += diff.size
        samples_changed += bool(diff.any())
        if diff.any():  # steps between same-signed float16 values: their bit patterns' distance
            a, b = (x[diff].view(np.int16).astype(np.int64) for x in stored)
            same = np.sign(stored[0][diff]) == np.sign(stored[1][diff])
            gap = np.where(same, np.abs(a - b), np.abs(a & 0x7FFF) + np.abs(b & 0x7FFF))
            px = np.abs(stored[0][diff].astype(np.float64) - stored[1][diff])
            largest_px = max(largest_px, float(px.max()))
            over_one += int((gap > 1).sum())
            if (gap > 1).any():  # where the stored value (map - 128) is near 0: finer steps
                largest_over_one = max(
                    largest_over_one, float(np.abs(stored[0][diff][gap > 1]).max())
                )
    print(
        f"  exact=False against the build's bytes: {changed} of {values:,} stored float16 values "
        f"differ ({100 * changed / values:.4f}%), in {samples_changed} of {len(shapes)} samples; "
        f"{over_one} by more than one storage step, all where |map - 128| <= "
        f"{largest_over_one:.3g} px (steps finer than float32's rounding of the positions); "
        f"largest difference {largest_px:.2g} px"
    )


def end_to_end(model_dir: Path, source: Path, work: Path) -> None:
    for workers, label in ((0, "1 worker (in-process)"), (2, "2 dask workers")):
        out = work / f"train_{workers}.h5"
        settings = BuildSettings(
            split="train",
            model_dir=model_dir,
            source_root=source,
            out_path=out,
            rejects_path=work / f"rejects_{workers}.csv",
            seed=0,
            jitter=True,
            task_size=100,
            storage=StorageOptions(),
            workers=workers,
        )
        tic = time.perf_counter()
        report = build_split(settings)
        dt = time.perf_counter() - tic
        count = report.written + len(report.rejects)
        per_core = 1000 * report.task_seconds / report.task_samples
        busy = report.task_seconds / max(workers, 1)
        startup = max(report.tasks_wall_seconds - busy, 0.0)
        per_sample = (busy + report.merge_seconds) / count
        full = (
            startup + 122450 * per_sample + (dt - report.tasks_wall_seconds - report.merge_seconds)
        )
        print(
            f"\n{label}: {count / dt:.1f} samples/s end to end "
            f"({1000 * dt / count:.2f} ms/sample wall, "
            f"start-up and merge included); in the tasks {per_core:.2f} ms/sample per core; "
            f"start-up {startup:.1f} s, merge {1000 * report.merge_seconds / count:.2f} ms/sample; "
            f"122,450 samples -> {full / 60:.1f} min "
            f"(start-up once + {1000 * per_sample:.2f} ms/sample)"
        )
        out.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--unique", type=int, default=100, help="distinct synthetic samples to render per split"
    )
    parser.add_argument("--task-size", type=int, default=100, help="samples per timed task")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per split (median reported)"
    )
    parser.add_argument(
        "--end-to-end", action="store_true", help="also time whole builds (1 and 2 workers)"
    )
    parser.add_argument("--count", type=int, default=2000, help="samples per end-to-end build")
    parser.add_argument(
        "--per-sample", action="store_true", help="one at a time vs batched (and face3d)"
    )
    parser.add_argument("--per-sample-count", type=int, default=50, help="samples per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved per-sample rounds")
    parser.add_argument(
        "--face3d", type=Path, default=None, help="face3d checkout with its Cython module built"
    )
    parser.add_argument(
        "--face3d-python", default=sys.executable, help="interpreter with face3d's requirements"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep inputs here (default: a temp dir)"
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_uvgen_"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "model"
    tic = time.perf_counter()
    model, kind = real_scale_model()
    if not (model_dir / "BFM.mat").exists():
        save_bfm(model, model_dir)
    print(
        f"model: {kind}, {model.n_vertices} vertices, {len(model.full_triangles)} triangles "
        f"({time.perf_counter() - tic:.1f} s to make)"
    )
    if not (work / "unique_train").exists():
        write_synthetic_set(
            "300wlp", model_dir, work / "unique_train", args.unique, 450, seed=5, workers=2
        )
    train_root = work / "300W_LP"
    shutil.rmtree(train_root, ignore_errors=True)
    link_tree(
        list_300wlp_samples(work / "unique_train"),
        train_root,
        max(args.task_size, args.per_sample_count, args.count if args.end_to_end else 0),
        flat=False,
    )
    aflw = SHARED / "aflw2000_3d"
    if aflw.is_dir():
        test_mats, test_kind = (
            sorted(aflw.glob("*.mat")),
            f"the {len(list(aflw.glob('*.mat')))} real AFLW2000-3D fixtures",
        )
    else:
        if not (work / "unique_test").exists():
            write_synthetic_set(
                "aflw2000", model_dir, work / "unique_test", args.unique, 450, seed=6, workers=2
            )
        test_mats, test_kind = (
            list_aflw_samples(work / "unique_test"),
            "synthetic AFLW2000-3D samples",
        )
    test_root = work / "AFLW2000"
    link_tree(test_mats, test_root, args.task_size, flat=True)
    print(f"inputs: synthetic 300W-LP (450x450 JPEG + .mat); test split: {test_kind}")
    tic = time.perf_counter()
    model_and_layout(model_dir)
    print(f"model + UV layout loaded once per worker: {time.perf_counter() - tic:.2f} s")
    load = os.getloadavg()
    print(
        f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"on {os.cpu_count()} cores; "
        f"CPU affinity {sorted(os.sched_getaffinity(0))}"
    )
    if args.per_sample:
        per_sample(
            model_dir,
            train_root,
            args.per_sample_count,
            args.rounds,
            args.face3d,
            args.face3d_python,
            work,
        )
        if args.workdir is None:
            shutil.rmtree(work)
        return
    for split, root in (("train", train_root), ("test", test_root)):
        breakdown(split, model_dir, root, args.task_size, args.repeats, work)
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.end_to_end:
        end_to_end(model_dir, train_root, work)
    if args.workdir is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
