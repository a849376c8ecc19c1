"""CPU milliseconds per image of ``prnet predict``'s work: detection + crop + network + decoding.

    python benchmarks/bench_predict.py [--repeats 7] [--threads 0] [--detector hog|none]
                                       [--outputs-repeats 5] [--skip-stages]
                                       [--folder-images 16] [--folder-repeats 2]
                                       [--workers 2] [--batch-size 8] [--new-only]

The image is a rendered synthetic face (the project's embedded morphable model, 450 x 450, the
size of 300W-LP / AFLW2000-3D images) that dlib's HOG detector finds. The network is PRNet at
width 16 with random weights: the released model's architecture, so the same compute (the weights
do not change the cost). The UV layout is PRNet's uv-data from ../shared/fixtures when present
(the release's), else the embedded model's. Each stage is timed over ``--repeats`` runs after one
warm-up; the medians are printed, with the machine load (``os.getloadavg``).

Then (``--outputs-repeats``, 0 to skip) the whole per-image path from a given box, outputs
written to a temporary folder, interleaved on the same image: every output (``prnet predict``'s
default) vs ``--outputs kpt`` vs ``--outputs depth --depth-size 256``, against the floor (the
network's forward pass alone); and the depth images rendered per second at 256x256 on one core.
The random network's map is flat, so the outputs are drawn from a face-sized dome map in the box
instead (the same 43,867 vertices and ~87k triangles a real face has; decoding is timed on the
network's map).

Last (``--folder-images``, 0 to skip) ``prnet predict`` over a folder of 450x450 JPEG photos with
given boxes, start-up excluded, in interleaved rounds: today's path (``--workers 0 --batch-size
1``, one image at a time) and the pipeline (``--workers``, ``--batch-size``) for ``--outputs
kpt``, depth only (``--depth-size 256``) and every output, against the floor (the predictor's
float32 forward passes alone on the same crops, at the pipeline's batch size; also at 1), in
images/s and % of the floor, and every / kpt and depth / kpt time ratios. The floor runs before
and after every mode, and each mode is compared with the mean of those two runs, round by round
(the median over rounds is printed with each round's figure). Each run writes into a new
folder, as a fresh ``--out`` does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.api import PRN  # noqa: E402
from model.prnet import PRNet  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--detector", choices=("hog", "none"), default="hog")
    ap.add_argument(
        "--outputs-repeats", type=int, default=5, help="runs of the outputs comparison (0: skip)"
    )
    ap.add_argument(
        "--folder-images",
        type=int,
        default=16,
        help="photos in the folder comparison (0: skip it)",
    )
    ap.add_argument("--folder-repeats", type=int, default=2, help="runs of the folder comparison")
    ap.add_argument("--batch-size", type=int, default=8, help="--batch-size of the new path")
    ap.add_argument("--workers", type=int, default=2, help="--workers of the new path")
    ap.add_argument(
        "--skip-stages", action="store_true", help="skip the per-stage timing (detection etc.)"
    )
    ap.add_argument(
        "--new-only",
        action="store_true",
        help="folder comparison: only the pipeline's modes (not today's one-at-a-time path)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from uvgen.formats.bfm import save_bfm
    from uvgen.synth.dataset import draw_sample, sample_rng
    from uvgen.synth.facemodel import make_face_model

    face_model = make_face_model(n_vertices=5000, seed=0)
    image = draw_sample(face_model, 450, sample_rng(0, 0)).image
    uv_dir = ROOT.parent / "shared" / "fixtures" / "prnet_uv"
    torch.manual_seed(0)
    net = PRNet(width=16).eval()
    if uv_dir.is_dir():
        prn = PRN(net, uv_data=uv_dir, device="cpu")
        layout = "PRNet's uv-data"
    else:
        import tempfile

        tmp = Path(tempfile.mkdtemp())
        save_bfm(face_model, tmp)
        prn = PRN(net, model_dir=tmp, device="cpu")
        layout = "embedded model"

    timings: dict[str, list[float]] = {
        k: [] for k in ("detect", "crop", "network", "decode", "total")
    }
    box = None
    for k in range(0 if args.skip_stages else args.repeats + 1):
        t0 = time.perf_counter()
        if args.detector == "hog":
            faces = prn.detect(image)
            if not faces:
                raise SystemExit("the HOG detector found no face in the benchmark image")
            box = faces[0].bbox
        else:
            box = (130.0, 330.0, 120.0, 340.0)
        t1 = time.perf_counter()
        crop, t = prn.predictor.crop(image, bbox=box)
        t2 = time.perf_counter()
        maps = prn.predictor.predict_maps(crop[None])
        t3 = time.perf_counter()
        pred = prn.predictor.decode(maps[0], t, crop)
        _ = pred.landmarks, pred.vertices
        t4 = time.perf_counter()
        if k:  # the first run warms up
            for name, dt in zip(
                ("detect", "crop", "network", "decode", "total"),
                (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0),
            ):
                timings[name].append(dt * 1e3)
    if not args.skip_stages:
        print(
            f"prnet predict, CPU, {torch.get_num_threads()} torch threads, 450x450 image, "
            "PRNet width 16, "
            f"layout: {layout}, detector: {args.detector}; median of {args.repeats} (ms):"
        )
        for name, values in timings.items():
            print(
                f"  {name:8s} {statistics.median(values):8.1f}   "
                f"(min {min(values):.1f}, max {max(values):.1f})"
            )
        print(
            f"  load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
            f"on {os.cpu_count()} CPUs; box {box}"
        )
        np.testing.assert_equal(pred.landmarks.shape, (68, 3))
    if args.outputs_repeats:
        bench_outputs(prn, image, args.outputs_repeats)
    if args.folder_images:
        bench_folder(
            prn,
            face_model,
            args.folder_images,
            args.folder_repeats,
            args.batch_size,
            args.workers,
            args.new_only,
        )


def dome_map(box: tuple[float, float, float, float], size: int = 256) -> np.ndarray:
    """(size, size, 3) float32 position map of a dome filling ``box`` (left, right, top, bottom),
    image pixels: a face-sized stand-in for a trained network's map."""
    left, right, top, bottom = box
    cols, rows = np.meshgrid(np.arange(size), np.arange(size))
    bump = np.cos((cols - size / 2) / (1.2 * size) * np.pi) * np.cos(
        (rows - size / 2) / (1.2 * size) * np.pi
    )
    return np.stack(
        [
            left + (right - left) * cols / (size - 1),
            top + (bottom - top) * rows / (size - 1),
            (right - left) * 0.5 * bump,
        ],
        axis=-1,
    ).astype(np.float32)


def bench_outputs(prn: PRN, image: np.ndarray, repeats: int) -> None:
    """Per-image ms from a given box: network floor vs kpt vs depth vs every output (interleaved),
    and depth renders/s at 256x256."""
    import tempfile

    from model.visibility import crop_depth, depth_to_prnet
    from pipeline.cli import DEFAULT_OUTPUTS, DepthOptions, write_outputs

    box = (130.0, 330.0, 120.0, 340.0)
    dome = dome_map(box)
    modes = {
        "floor": None,
        "kpt": (("kpt",), DepthOptions()),
        "depth": (("depth",), DepthOptions(size=256)),
        "every": (DEFAULT_OUTPUTS, DepthOptions()),
    }
    times: dict[str, list[float]] = {k: [] for k in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeats + 1):
            for mode, spec in modes.items():  # interleaved: the same load for every mode
                if spec is None:  # the floor: the forward pass alone
                    crop, t = prn.predictor.crop(image, bbox=box)
                t0 = time.perf_counter()
                if spec is not None:
                    crop, t = prn.predictor.crop(image, bbox=box)
                maps = prn.predictor.predict_maps(crop[None])
                if spec is not None:
                    prn.predictor.decode(maps[0], t, crop)
                    outputs, depth = spec
                    write_outputs(
                        Path(tmp),
                        "face",
                        image,
                        dome,
                        prn.uv,
                        outputs=outputs,
                        depth=depth,
                        transform=t,
                    )
                if k:
                    times[mode].append((time.perf_counter() - t0) * 1e3)
    floor = statistics.median(times["floor"])
    print(
        f"per image from a given box, {torch.get_num_threads()} torch threads, "
        f"median of {repeats} (ms):"
    )
    for mode, values in times.items():
        med = statistics.median(values)
        print(f"  {mode:6s} {med:8.1f}   {med / floor:5.2f}x floor   {1e3 / med:6.1f} images/s")
    print(
        f"  every / kpt: {statistics.median(times['every']) / statistics.median(times['kpt']):.2f}x"
    )
    verts = dome.reshape(-1, 3)[prn.uv.face_ind]
    _, t = prn.predictor.crop(image, bbox=box)
    zmax = float(verts[:, 2].max())
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        depth_to_prnet(*crop_depth(verts, prn.uv.triangles, t, 256), zmax)
        n += 1
    rate = n / (time.perf_counter() - t0)
    print(f"  depth images 256x256 (z-buffer + PRNet normalisation, one core): {rate:.1f} /s")


def bench_folder(
    prn: PRN,
    face_model,
    n_images: int,
    repeats: int,
    batch: int,
    workers: int,
    new_only: bool = False,
) -> None:
    """``prnet predict`` over a folder of 450x450 JPEG photos with given boxes, start-up
    excluded: today's path (``--workers 0 --batch-size 1``, one image at a time) and the
    pipeline (``--workers``, ``--batch-size``), for ``--outputs kpt``, depth only
    (``--depth-size 256``) and every output, interleaved with the floor (the forward passes
    alone on the same crops at the pipeline's batch size; also at batch 1, today's) and printed
    in images/s."""
    import contextlib
    import io
    import json
    import shutil
    import tempfile

    from model.api import PRN as PRNClass
    from pipeline.cli import build_parser, face_spec, list_images, load_boxes, predict_images
    from uvgen.formats.matfile import atomic_save_jpeg
    from uvgen.synth.dataset import draw_sample, sample_rng

    tmp = Path(tempfile.mkdtemp())
    photos = tmp / "photos"
    photos.mkdir()
    boxes = {}
    for k in range(n_images):
        s = draw_sample(face_model, 450, sample_rng(1, k))
        atomic_save_jpeg(photos / f"p{k:03d}.jpg", s.image)
        lo, hi = s.landmarks[:, :2].min(axis=0), s.landmarks[:, :2].max(axis=0)
        boxes[f"p{k:03d}.jpg"] = [float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])]
    (tmp / "boxes.json").write_text(json.dumps(boxes))
    specs = [face_spec(p, load_boxes(tmp / "boxes.json"), None) for p in list_images([photos])]
    crops = np.stack([prn.predictor.crop(*_read(s.image), bbox=s.bbox)[0] for s in specs])

    # the random network's map is flat: draw the outputs from a dome in each face's box instead
    finish = PRNClass.finish

    def dome_finish(self, prepared, maps):
        faces = finish(self, prepared, maps)
        for face in faces:
            inv = np.linalg.inv(face.transform)
            corners = np.array([[0, 0, 1], [255, 255, 1]], float) @ inv.T
            face.posmap = dome_map((corners[0, 0], corners[1, 0], corners[0, 1], corners[1, 1]))
        return faces

    PRNClass.finish = dome_finish
    modes = {
        "floor b=1": None,
        "kpt today": ("kpt", 0, 1),
        "kpt new": ("kpt", workers, batch),
        "depth today": ("depth --depth-size 256", 0, 1),
        "depth new": ("depth --depth-size 256", workers, batch),
        "every today": ("kpt,vertices,obj,ply,texture,depth,pose,preview", 0, 1),
        "every new": ("kpt,vertices,obj,ply,texture,depth,pose,preview", workers, batch),
    }
    if new_only:
        modes = {k: v for k, v in modes.items() if v is None or k.endswith(" new")}

    network_s = [0.0]  # seconds inside the predictor's forward passes during a mode's run
    forward = prn.predictor.predict_maps

    def timed_forward(crops_in):
        t = time.perf_counter()
        try:
            return forward(crops_in)
        finally:
            network_s[0] += time.perf_counter() - t

    outside: dict[str, list[float]] = {k: [] for k in modes}  # ms per image outside the network

    def run(mode: str) -> float:
        """images/s of one run of ``mode`` ("floor": the forward passes at the pipeline's batch
        size); a mode's ms per image outside the network go to ``outside``."""
        spec = modes.get(mode)
        network_s[0] = 0.0
        t0 = time.perf_counter()
        if spec is None:  # the floor: forward passes alone, float32, same crops
            prn.predictor.batch_size = 1 if mode == "floor b=1" else batch
            prn.predictor.predict_maps(crops)
        else:
            outputs, w, b = spec
            argv = ["predict", str(photos), "--outputs", *outputs.split()]
            args = build_parser().parse_args(argv + ["--workers", str(w), "--batch-size", str(b)])
            prn.predictor.batch_size = b
            out = Path(tempfile.mkdtemp(dir=tmp))  # a new folder, as a fresh --out
            quiet = io.StringIO()
            prn.predictor.predict_maps = timed_forward
            try:
                with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                    rows = predict_images(prn, specs, args, out)
            finally:
                del prn.predictor.predict_maps  # the class's method again
            assert all(r[2] == "ok" for r in rows), rows
        wall = time.perf_counter() - t0
        if spec is not None:
            shutil.rmtree(out)
            outside[mode].append(1e3 * (wall - network_s[0]) / len(specs))
        return len(specs) / wall

    # Each round: the floor, then each mode followed by the floor again. A mode's share of the
    # floor is taken against the mean of the floors just before and after it, so that a machine
    # whose speed drifts (other jobs, a shared host) is compared with itself.
    rates: dict[str, list[float]] = {k: [] for k in ("floor", *modes)}
    shares: dict[str, list[float]] = {k: [] for k in modes}
    floor_ms: list[float] = []  # per round: ms per image of the batch floor, mean of its runs
    try:
        for k in range(repeats + 1):
            before = run("floor")
            floors = [before]
            for mode in modes:
                rate = run(mode)
                after = run("floor")
                floors.append(after)
                if k:  # the first round warms up
                    rates[mode].append(rate)
                    shares[mode].append(2 * rate / (before + after))
                before = after
            if k:
                rates["floor"] += floors
                floor_ms.append(1e3 * statistics.mean(1 / f for f in floors))
            else:
                for values in outside.values():
                    values.clear()
    finally:
        PRNClass.finish = finish
    print(
        f"a folder of {len(specs)} 450x450 photos with given boxes, {torch.get_num_threads()} "
        f"torch threads, new path: --workers {workers} --batch-size {batch}; median of "
        f"{repeats} rounds (start-up excluded), each mode between two runs of the floor:"
    )
    print(f"  {'floor':12s} {statistics.median(rates['floor']):7.2f} images/s")
    for mode in modes:
        share = 100 * statistics.median(shares[mode])
        line = (
            f"  {mode:12s} {statistics.median(rates[mode]):7.2f} images/s   "
            f"{share:5.1f} % of the floor (per round: "
            f"{', '.join(f'{100 * v:.0f}' for v in shares[mode])})"
        )
        if outside[mode]:
            line += f"; outside the network {statistics.median(outside[mode]):.1f} ms/image"
        print(line)
    for out in ("every", "depth"):
        for path in ("new",) if new_only else ("today", "new"):
            ratio = statistics.median(
                a / b for a, b in zip(shares[f"kpt {path}"], shares[f"{out} {path}"])
            )
            print(f"  {out} / kpt time, {path}: {ratio:.2f}x")
    # The network's own time swings with the host's load from run to run; with every mode given
    # the floor's network time (the round's floor at the pipeline's batch size) and its own time
    # outside the network, the ratios compare only the work each mode adds.
    for out in ("every", "depth"):
        pairs = zip(floor_ms, outside[f"{out} new"], outside["kpt new"])
        ratio = statistics.median((f + o) / (f + k) for f, o, k in pairs)
        print(f"  {out} / kpt time, new, the network's time equalised to the floor: {ratio:.2f}x")
    print(f"  load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


def _read(path: Path) -> tuple[np.ndarray]:
    from uvgen.formats.matfile import read_jpeg

    return (read_jpeg(path),)


if __name__ == "__main__":
    main()
