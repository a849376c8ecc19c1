"""The ``prnet`` command line: run PRNet on images and write what its map is used for.

    prnet predict IMAGES... [--out DIR] [--weights data/train/model.pt]
                  [--model-dir data/face_model]
                  [--uv-data PRNet/Data/uv-data] [--uv-file data/uv/test.h5]
                  [--boxes boxes.json] [--landmarks-dir DIR]
                  [--detector-weights mmod_human_face_detector.dat] [--all-faces]
                  [--swap SRC_IMAGE] [--visible-only] [--save-posmap] [--device auto]
                  [--outputs kpt,vertices,obj,ply,texture,depth,pose,preview,posmap]
                  [--ply-ascii] [--depth-norm prnet|minmax] [--depth-size N] [--depth-16bit]
                  [--workers N] [--batch-size B]
    prnet import-weights CKPT_PREFIX --out FILE.pt
    prnet evaluate --data AFLW2000 --method NAME=SOURCE ... --out DIR  (pipeline/benchmark_cli.py)
    prnet export-onnx WEIGHTS OUT.onnx  (pipeline/onnx_cli.py)

IMAGES are image files, folders (their ``*.jpg``, ``*.jpeg``, ``*.png``, ``*.bmp``, not recursive)
or glob patterns; a folder of frames is a folder of images. A video file (``.mp4``, ``.avi``,
``.mov``, ``.mkv``, ...; pipeline/video.py) gives each frame's outputs as ``STEM_frame_NNNNNN``.
``--workers`` threads read, detect and crop, and write, while the network runs on ``--batch-size``
faces of consecutive images at a time (pipeline/predict_stream.py); what is printed, the
``report.csv`` rows and the files are those of ``--workers 0`` (one image at a time). Each
image's face is given, first match wins,

* by a box in ``--boxes``, a JSON object mapping the image's file name (or its stem, or the path as
  given) to ``[left, right, top, bottom]`` in pixels (PRNet's detector-box crop is used), or
* by 68 landmarks in ``NAME.mat`` (300W-LP / AFLW2000-3D style: ``pt3d_68`` (3, 68) or ``pt2d``
  (2, 68), image pixels) in ``--landmarks-dir``, default the image's own folder (the evaluation
  crop of docs/conventions.md section 6 is used), or
* by the face detector (dlib's HOG detector, or its CNN detector with ``--detector-weights``, as
  PRNet's demo): the largest face, or every face with ``--all-faces``.

An image without a face (or whose box lies outside it, or is degenerate) is listed in
``report.csv`` (image, faces, status, detail) and on stderr, and the others go on; the exit
status is 1 only if no image produced output. Per face ``NAME`` (``NAME_faceK`` with
``--all-faces``) the output folder gets the ``--outputs`` named (default: all below but the map;
only what they need is computed, e.g. ``--outputs kpt`` draws no mesh):

* ``NAME_kpt.txt``: the 68 landmarks (68 x 3: x, y, z in image pixels, y down);
* ``NAME_vertices.npy``: the dense face vertices (K, 3) float32, image pixels;
* ``NAME_texture.png``: the UV texture map (256 x 256, face mask applied; ``--visible-only``
  also blanks the pixels the camera does not see, and those whose colour would mix in the
  background at the silhouette);
* ``NAME.obj`` / ``NAME.ply``: the face mesh with vertex colours (the texture's 8-bit values at
  the vertices; ``k / 255`` in the ``.obj``), in the camera frame
  ``(x, h - 1 - y, z)`` (y up, z towards the viewer; counter-clockwise front faces); the ``.ply``
  binary little-endian (``--ply-ascii``: text); with the texture output the ``.obj`` also has
  ``vt`` coordinates into ``NAME_texture.png`` and a ``NAME.mtl`` naming it;
* ``NAME_pose.json``: pitch, yaw, roll (degrees and radians, 300W-LP's angle convention), scale,
  rotation and translation;
* ``NAME_depth.png``: the depth image, the mesh's z-buffer (near = bright, background 0): by
  default PRNet's convention, the one face anti-spoofing projects train on, ``z / max z`` of the
  mesh x 255 (``--depth-16bit``: x 65535, 16-bit PNG); ``--depth-norm minmax``: 1 (farthest) ..
  255 (nearest) on the face. The whole image, or with ``--depth-size N`` the face's crop square
  (the network's input square) drawn at N x N;
* ``NAME_preview.png``: the image with the landmarks drawn (a quick look: stored uncompressed);
* ``NAME_swap.png`` with ``--swap``: the face of SRC_IMAGE (whose face is found the same way)
  pasted onto this face; ``NAME_posmap.npy`` (output ``posmap``, or ``--save-posmap``): the map
  (256, 256, 3) in image pixels.

The UV layout (face mask, key points, canonical shape) must be the one the weights were trained
with: the morphable model in ``--model-dir`` for weights trained here (``--uv-file`` takes the
face mask and key points from a UV HDF5 file), PRNet's own ``uv-data`` folder (``--uv-data``)
for its released model, imported with ``prnet import-weights`` (TensorFlow is not needed).
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.api import PRN, NoFaceError, PreparedImage, visible_texels
from model.detector import DetectorUnavailable, FaceRegionError
from model.draw import draw_landmarks
from model.face_swap import swap_face
from model.head_pose import face_pose
from model.mesh_io import write_obj, write_ply
from model.png import encode_png
from model.uses import (
    FaceMesh,
    FaceUV,
    dense_vertices,
    fill_gaps,
    landmarks,
    texture_coords,
    texture_from_colors,
    vertex_colors,
)
from model.visibility import (
    crop_depth,
    depth_image,
    depth_to_prnet,
    depth_to_uint8,
    render_raster,
)
from pipeline.benchmark_cli import add_evaluate_parser
from pipeline.onnx_cli import add_export_onnx_parser
from pipeline.predict_stream import Emitted, run_stream
from pipeline.stage import EXIT_ERROR
from pipeline.uv_tools_cli import add_parser as add_uv_tools_parser
from pipeline.video import frame_label, frame_name, is_video, read_frames
from uvgen.atomic import atomic_output
from uvgen.formats.errors import DataError
from uvgen.formats.matfile import load_mat, read_jpeg
from uvgen.raster import Rasterization

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class FaceSpec:
    """Where one image's face is: a box (left, right, top, bottom) or 68 points (68, 2+).
    ``frame``: the image is this frame (0-based) of the video ``image``."""

    image: Path
    bbox: tuple[float, float, float, float] | None = None
    points: np.ndarray | None = None
    frame: int | None = None

    @property
    def name(self) -> str:
        """The outputs' name: the image's stem, or ``STEM_frame_NNNNNN`` for a video frame."""
        return self.image.stem if self.frame is None else frame_name(self.image.stem, self.frame)

    @property
    def label(self) -> str:
        """The image as ``report.csv`` and the messages name it."""
        return str(self.image) if self.frame is None else frame_label(self.image, self.frame)


# ----------------------------------------------------------------------------------------------
# Inputs


def list_images(inputs: Sequence[str]) -> list[Path]:
    """Image paths from files, folders (non-recursive) and glob patterns, in the order given
    (each folder's and pattern's images sorted); duplicates dropped."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
            )
        elif path.is_file():
            found = [path]
        else:
            found = sorted(
                Path(p) for p in glob.glob(item) if Path(p).suffix.lower() in IMAGE_SUFFIXES
            )
            if not found:
                raise DataError(path, None, "no such image file, folder or matching pattern")
        out.extend(p for p in found if p not in out)
    return out


def load_boxes(path: Path) -> dict[str, tuple[float, float, float, float]]:
    """``{name: (left, right, top, bottom)}`` from a JSON object; raises DataError."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(path, None, "missing file") from None
    except (OSError, ValueError) as exc:
        raise DataError(path, None, f"not a JSON file ({exc})") from exc
    if not isinstance(raw, dict):
        raise DataError(
            path, None, "expected a JSON object mapping image names to [left, right, top, bottom]"
        )
    boxes = {}
    for name, box in raw.items():
        try:
            values = tuple(float(v) for v in box)
        except (TypeError, ValueError):
            values = ()
        if (
            len(values) != 4
            or not np.all(np.isfinite(values))
            or values[1] <= values[0]
            or values[3] <= values[2]
        ):
            raise DataError(
                path,
                name,
                "expected [left, right, top, bottom] with right > left and "
                f"bottom > top, got {box!r}",
            )
        boxes[name] = values  # type: ignore[assignment]
    return boxes


def read_points_mat(path: Path) -> np.ndarray:
    """(68, 2 or 3) landmarks in image pixels from ``pt3d_68`` (3, 68) or ``pt2d`` (2, 68)."""
    mat = load_mat(path)
    for field, rows in (("pt3d_68", 3), ("pt2d", 2)):
        if field in mat:
            pts = np.asarray(mat[field], dtype=np.float64)
            if pts.shape == (rows, 68):
                if not np.all(np.isfinite(pts)):
                    raise DataError(path, field, "non-finite values")
                return pts.T
            if field == "pt3d_68":
                raise DataError(path, field, f"expected shape (3, 68), got {pts.shape}")
    raise DataError(path, "pt3d_68", "no 68 landmarks: need pt3d_68 (3, 68) or pt2d (2, 68)")


def face_spec(
    image: Path,
    boxes: dict[str, tuple] | None,
    landmarks_dir: Path | None,
    boxes_path: Path | None = None,
) -> FaceSpec:
    """The face of ``image``: its box in ``boxes`` (by file name, stem or path), else the 68
    points of ``NAME.mat`` in ``landmarks_dir`` (default: beside the image), else neither (the
    face detector finds it)."""
    return _spec(FaceSpec(image), (image.name, image.stem, str(image)), boxes, landmarks_dir)


def frame_spec(
    video: Path, index: int, boxes: dict[str, tuple] | None, landmarks_dir: Path | None
) -> FaceSpec:
    """:func:`face_spec` of frame ``index`` of ``video``: its box in ``boxes`` by its name
    (``STEM_frame_NNNNNN``) or label (``PATH#frame_NNNNNN``), else ``NAME.mat``'s points."""
    spec = FaceSpec(video, frame=index)
    return _spec(spec, (spec.name, spec.label), boxes, landmarks_dir)


def _spec(
    spec: FaceSpec, keys: Sequence[str], boxes: dict[str, tuple] | None, landmarks_dir: Path | None
) -> FaceSpec:
    if boxes:
        for key in keys:
            if key in boxes:
                return FaceSpec(spec.image, bbox=boxes[key], frame=spec.frame)
    folder = Path(landmarks_dir) if landmarks_dir is not None else spec.image.parent
    mat = folder / f"{spec.name}.mat"
    if not mat.is_file():
        return spec
    return FaceSpec(spec.image, points=read_points_mat(mat), frame=spec.frame)


# ----------------------------------------------------------------------------------------------
# Outputs


#: Every per-face output ``--outputs`` can name, and its file suffix.
OUTPUT_SUFFIXES = {
    "kpt": "_kpt.txt",
    "vertices": "_vertices.npy",
    "texture": "_texture.png",
    "obj": ".obj",
    "ply": ".ply",
    "pose": "_pose.json",
    "depth": "_depth.png",
    "preview": "_preview.png",
    "posmap": "_posmap.npy",
}
#: The default ``--outputs``: all but the position map (``posmap`` / ``--save-posmap``).
DEFAULT_OUTPUTS = tuple(k for k in OUTPUT_SUFFIXES if k != "posmap")


def parse_outputs(text: str) -> tuple[str, ...]:
    """``"kpt,depth"`` -> ("kpt", "depth") in :data:`OUTPUT_SUFFIXES` order; ``all`` = every
    output; raises ValueError naming an unknown one."""
    names = {n.strip() for n in text.split(",") if n.strip()}
    if "all" in names:
        names = (names - {"all"}) | set(OUTPUT_SUFFIXES)
    unknown = sorted(names - set(OUTPUT_SUFFIXES))
    if unknown or not names:
        raise ValueError(
            f"unknown output(s) {unknown}; choose from {', '.join(OUTPUT_SUFFIXES)} or all"
            if unknown
            else "no output named"
        )
    return tuple(k for k in OUTPUT_SUFFIXES if k in names)


@dataclass(frozen=True)
class DepthOptions:
    """How ``NAME_depth.png`` is drawn: ``norm`` "prnet" (z / max z, model.visibility.
    depth_to_prnet) or "minmax" (depth_to_uint8); ``size`` None = the whole image, else the
    face's crop square rendered at size x size; ``bits`` 8 or 16 (16 only for "prnet")."""

    norm: str = "prnet"
    size: int | None = None
    bits: int = 8


def _save_png(path: Path, array: np.ndarray, compress: bool = True) -> None:
    a = np.asarray(array)
    data = encode_png(a if a.dtype == np.uint16 else a.astype(np.uint8, copy=False), compress)
    with atomic_output(path) as fh:
        fh.write(data)


def _save_text(path: Path, text: str) -> None:
    with atomic_output(path) as fh:
        fh.write(text.encode("utf-8"))


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as fh:
        np.save(fh, array)


def write_outputs(
    out_dir: Path,
    name: str,
    image: np.ndarray,
    posmap: np.ndarray,
    uv: FaceUV,
    visible_only: bool = False,
    save_posmap: bool = False,
    outputs: Sequence[str] = DEFAULT_OUTPUTS,
    ply_binary: bool = True,
    depth: DepthOptions = DepthOptions(),
    transform: np.ndarray | None = None,
) -> dict[str, Path]:
    """Write the ``outputs`` (see the module docstring; ``save_posmap`` adds ``posmap``) of one
    face, computing only what they need; returns their paths. ``transform`` (3, 3) image -> crop
    pixels: needed for a cropped depth image (``depth.size``)."""
    want = set(outputs) | ({"posmap"} if save_posmap else set())
    h, w = image.shape[:2]
    posmap = fill_gaps(posmap, uv)
    paths = {k: out_dir / f"{name}{suffix}" for k, suffix in OUTPUT_SUFFIXES.items() if k in want}
    kpt = landmarks(posmap, uv) if want & {"kpt", "preview"} else None
    verts = colors = mesh = None
    if want & {"obj", "ply", "vertices", "texture", "depth", "pose"}:
        verts = dense_vertices(posmap, uv).astype(np.float32, copy=False)
    if want & {"obj", "ply", "texture"}:  # the image read once: the meshes' and texture's colours
        colors = vertex_colors(image, verts)
    if want & {"obj", "ply"}:
        mesh = FaceMesh(verts, uv.triangles, colors)  # = face_mesh(image, posmap, uv)
    raster = None  # the full raster only where visibility needs it; depth alone: the z-buffer
    if "texture" in want and visible_only:
        raster = render_raster(verts, uv.triangles, h, w)

    if "kpt" in want:
        buf = [f"{x:.3f} {y:.3f} {z:.3f}" for x, y, z in kpt]
        _save_text(paths["kpt"], "\n".join(buf) + "\n")
    if "vertices" in want:
        _save_npy(paths["vertices"], verts)
    if "texture" in want:
        visible = None
        if visible_only:
            visible = visible_texels(verts, uv, h, w, raster=raster)
        _save_png(paths["texture"], texture_from_colors(colors, uv, visible))
    if mesh is not None:
        cam = mesh.camera_vertices(h)
        if "obj" in want:
            textured = "texture" in want
            write_obj(
                paths["obj"],
                cam,
                mesh.triangles,
                mesh.colors,
                texcoords=texture_coords(uv) if textured else None,
                texture=paths["texture"] if textured else None,
            )
        if "ply" in want:
            write_ply(paths["ply"], cam, mesh.triangles, mesh.colors, binary=ply_binary)
    if "pose" in want:
        pose = face_pose(posmap, uv, h, vertices=verts)
        _save_text(paths["pose"], json.dumps(pose.to_dict(), indent=2) + "\n")
    if "depth" in want:
        _save_png(paths["depth"], _depth_png(verts, uv, h, w, raster, depth, transform))
    if "preview" in want:
        # a quick look, stored uncompressed: 1.7x the size of a compressed photo, 15x faster
        _save_png(paths["preview"], draw_landmarks(image, kpt), compress=False)
    if "posmap" in want:
        _save_npy(paths["posmap"], np.asarray(posmap, dtype=np.float32))
    return paths


def _depth_png(
    verts: np.ndarray,
    uv: FaceUV,
    h: int,
    w: int,
    raster: Rasterization | None,
    opts: DepthOptions,
    transform: np.ndarray | None,
) -> np.ndarray:
    """The depth image of ``verts`` (K, 3) image pixels as :class:`DepthOptions` asks."""
    if opts.size is None:
        zbuf, mask = depth_image(verts, uv.triangles, h, w, raster=raster)
    else:
        if transform is None:
            raise ValueError("a cropped depth image needs the face's crop transform")
        # the transform is to the network's crop, as large as its UV map
        zbuf, mask = crop_depth(verts, uv.triangles, transform, opts.size, in_size=uv.size)
    if opts.norm == "minmax":
        return depth_to_uint8(zbuf, mask)
    return depth_to_prnet(zbuf, mask, float(np.max(verts[:, 2])), opts.bits)


# ----------------------------------------------------------------------------------------------
# predict


REPORT_NAME = "report.csv"
#: Default ``--batch-size`` (faces per forward pass) and ``--workers`` (threads per stage).
DEFAULT_BATCH = 8
DEFAULT_WORKERS = min(4, os.cpu_count() or 1)


def _write_report(path: Path, rows: list[tuple[str, int, str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["image", "faces", "status", "detail"])
    writer.writerows(rows)
    _save_text(path, buf.getvalue())


def predict(args: argparse.Namespace) -> int:
    """Every image: its faces (box > landmarks > detector) -> outputs; per-image failures (no face,
    a region outside the image, an unreadable file) go to ``report.csv`` and stderr and the
    others go on. Exit status 1 only if no image produced output."""
    images = list_images(args.images)
    if not images:
        raise DataError(Path(args.images[0]), None, "no images found")
    stems = [p.stem for p in images]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise DataError(
            Path(args.images[0]),
            None,
            f"several images share the name(s) {dupes}: outputs would clash",
        )
    boxes = load_boxes(args.boxes) if args.boxes else None
    specs = [
        FaceSpec(p) if is_video(p) else face_spec(p, boxes, args.landmarks_dir, args.boxes)
        for p in images
    ]
    swap_spec = (
        face_spec(Path(args.swap), boxes, args.landmarks_dir, args.boxes) if args.swap else None
    )

    if not Path(args.weights).is_file():
        raise DataError(
            args.weights,
            None,
            "missing weights file (train first: dvc repro train, "
            "`prnet import-weights` PRNet's release, or pass --weights)",
        )
    prn = PRN(
        args.weights,
        uv_data=args.uv_data,
        model_dir=None if args.uv_data else args.model_dir,
        uv_file=args.uv_file,
        detector_weights=args.detector_weights,
        all_faces=args.all_faces,
        device=args.device,
        batch_size=args.batch_size,
    )
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    needs_detector = [  # a video's frames need it unless boxes or landmark files are given
        s
        for s in specs + ([swap_spec] if swap_spec else [])
        if (s.bbox is None and s.points is None and not is_video(s.image))
        or (is_video(s.image) and not boxes and args.landmarks_dir is None)
    ]
    if needs_detector:  # a missing dlib or detector file stops the run before any image
        try:
            prn.detector  # noqa: B018 - the property loads the detector, raising if unavailable
        except DetectorUnavailable as exc:
            raise DataError(
                needs_detector[0].image, None, f"no box or landmarks given, and {exc}"
            ) from exc
    source = None
    if swap_spec is not None:
        try:
            source_faces = prn.process(
                read_jpeg(swap_spec.image), bbox=swap_spec.bbox, points=swap_spec.points
            )
        except (NoFaceError, FaceRegionError) as exc:
            raise DataError(swap_spec.image, None, f"--swap source: {exc}") from exc
        source = (source_faces[0].image, source_faces[0].posmap)
    rows = predict_images(prn, specs, args, out_dir, boxes, source)
    _write_report(out_dir / REPORT_NAME, rows)
    done = sum(r[2] == "ok" for r in rows)
    if done < len(rows):
        print(
            f"prnet: {len(rows) - done} of {len(rows)} images gave no output "
            f"(see {out_dir / REPORT_NAME})",
            file=sys.stderr,
        )
    return 0 if done else 1


def predict_images(
    prn: PRN,
    specs: Sequence[FaceSpec],
    args: argparse.Namespace,
    out_dir: Path,
    boxes: dict[str, tuple] | None = None,
    source: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[tuple[str, int, str, str]]:
    """The outputs of the images (and videos' frames) of ``specs`` written to ``out_dir`` as
    ``args`` asks (``--outputs``, ``--workers``, ``--batch-size``, ...), through
    :func:`pipeline.predict_stream.run_stream`; ``source`` (image, map): the ``--swap`` face.
    Returns the ``report.csv`` rows, in input order."""
    depth_opts = DepthOptions(
        norm=args.depth_norm, size=args.depth_size, bits=16 if args.depth_16bit else 8
    )

    def jobs() -> Iterator[tuple[tuple[FaceSpec, np.ndarray | None], Callable]]:
        for spec in specs:
            if not is_video(spec.image):
                yield (spec, None), prepare
                continue
            try:  # an unreadable video (or the rest of one) is a report row, as an image
                for k, frame in enumerate(read_frames(spec.image)):
                    yield (frame_spec(spec.image, k, boxes, args.landmarks_dir), frame), prepare
            except DataError as exc:
                yield (spec, exc), prepare

    def prepare(key: tuple[FaceSpec, np.ndarray | DataError | None], detector) -> PreparedImage:
        spec, frame = key
        if isinstance(frame, DataError):
            raise frame
        image = read_jpeg(spec.image) if frame is None else frame
        return prn.prepare(image, bbox=spec.bbox, points=spec.points, detector=detector)

    def write(key: tuple[FaceSpec, np.ndarray | None], prepared, maps) -> Emitted:
        spec = key[0]
        if isinstance(prepared, Exception):
            status = "no_face" if isinstance(prepared, NoFaceError) else "error"
            return Emitted(
                (spec.label, 0, status, str(prepared)), [], [f"prnet: {spec.label}: {prepared}"]
            )
        faces = prn.finish(prepared, maps)
        image = prepared.image
        names = [spec.name]
        if args.all_faces:
            names = [f"{spec.name}_face{k}" for k in range(len(faces))]
        lines = []
        for face, name in zip(faces, names):
            write_outputs(
                out_dir,
                name,
                image,
                face.posmap,
                prn.uv,
                args.visible_only,
                args.save_posmap,
                outputs=args.outputs,
                ply_binary=not args.ply_ascii,
                depth=depth_opts,
                transform=face.transform,
            )
            if source is not None:
                _save_png(
                    out_dir / f"{name}_swap.png",
                    swap_face(source[0], source[1], image, face.posmap, prn.uv),
                )
            lines.append(f"{spec.label} -> {out_dir / name}_*")
        return Emitted((spec.label, len(faces), "ok", ""), lines, [])

    rows: list[tuple[str, int, str, str]] = []
    videos = any(is_video(s.image) for s in specs)
    progress = tqdm(
        desc="predict",
        unit="image",
        total=None if videos else len(specs),
        disable=len(specs) < 2 and not videos,
        file=sys.stderr,
    )

    def emit(done: Emitted) -> None:
        for line in done.err_lines:
            print(line, file=sys.stderr)
        for line in done.out_lines:
            print(line)
        rows.append(done.row)
        progress.update()

    with progress:
        run_stream(prn, jobs(), write, emit, workers=args.workers, batch_size=args.batch_size)
    return rows


def import_weights(args: argparse.Namespace) -> int:
    """``prnet import-weights``: a TensorFlow checkpoint of PRNet's graph -> the project's weights
    file."""
    from model.prnet import count_parameters
    from model.release import import_weights_file

    model = import_weights_file(args.checkpoint, args.out)
    print(
        f"{args.checkpoint} -> {args.out}: PRNet width {model.width}, "
        f"{count_parameters(model):,} parameters (use it with --uv-data PRNet/Data/uv-data)"
    )
    return 0


def _outputs_arg(text: str) -> tuple[str, ...]:
    try:
        return parse_outputs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prnet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "predict",
        help="landmarks, mesh, texture, pose, depth (and face swap) for images",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="+", help="image files, folders or glob patterns")
    for flag, default, help_text in (
        ("--out", Path("prnet_results"), "output folder (default prnet_results)"),
        ("--weights", Path("data/train/model.pt"), "trained weights (model.pt or a checkpoint)"),
        (
            "--model-dir",
            Path("data/face_model"),
            "face3d-layout morphable model (BFM.mat, BFM_UV.mat, BFM_info.mat)",
        ),
        ("--uv-file", None, "take the face mask and key points from this UV HDF5 file"),
    ):
        p.add_argument(flag, type=Path, default=default, help=help_text)
    p.add_argument(
        "--uv-data",
        type=Path,
        default=None,
        metavar="DIR",
        help="PRNet's own uv-data folder (uv_kpt_ind.txt, face_ind.txt, canonical_vertices.npy): "
        "the layout of its released model; replaces --model-dir",
    )
    p.add_argument(
        "--detector-weights",
        type=Path,
        default=None,
        metavar="DAT",
        help="dlib CNN face detector (PRNet's mmod_human_face_detector.dat); "
        "default: dlib's HOG detector",
    )
    p.add_argument(
        "--all-faces",
        action="store_true",
        help="every detected face (outputs NAME_faceK_*, largest first) instead of the largest",
    )
    p.add_argument(
        "--boxes",
        type=Path,
        default=None,
        help="JSON {image name: [left, right, top, bottom]} face boxes",
    )
    p.add_argument(
        "--landmarks-dir",
        type=Path,
        default=None,
        help="folder of NAME.mat landmark files (default: beside each image)",
    )
    p.add_argument(
        "--swap",
        default=None,
        metavar="SRC_IMAGE",
        help="also paste this image's face onto every face (NAME_swap.png)",
    )
    p.add_argument(
        "--visible-only",
        action="store_true",
        help="blank texture pixels the camera does not see (or sees only at the silhouette)",
    )
    p.add_argument(
        "--save-posmap", action="store_true", help="also write NAME_posmap.npy (= posmap output)"
    )
    p.add_argument(
        "--outputs",
        type=_outputs_arg,
        default=DEFAULT_OUTPUTS,
        metavar="LIST",
        help="comma-separated outputs per face, only these are computed: "
        f"{','.join(OUTPUT_SUFFIXES)} or all (default: {','.join(DEFAULT_OUTPUTS)})",
    )
    p.add_argument(
        "--ply-ascii", action="store_true", help="write NAME.ply as ASCII (default: binary)"
    )
    p.add_argument(
        "--depth-norm",
        choices=("prnet", "minmax"),
        default="prnet",
        help="depth image values: prnet = z / max z of the mesh (PRNet's, the anti-spoofing "
        "projects'; default), minmax = 1 (farthest) .. 255 (nearest) on the face",
    )
    p.add_argument(
        "--depth-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="depth image of the face's crop square at N x N pixels (default: the whole image)",
    )
    p.add_argument(
        "--depth-16bit", action="store_true", help="16-bit depth PNG (with --depth-norm prnet)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help=f"faces per forward pass, across consecutive images (default {DEFAULT_BATCH})",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help="threads reading, detecting and cropping images, and as many writing outputs, "
        "while the network runs (0: one image at a time, all in one thread; "
        f"default {DEFAULT_WORKERS})",
    )
    p.set_defaults(func=predict)
    q = sub.add_parser(
        "import-weights",
        help="PRNet's released TensorFlow checkpoint -> a weights file (no TensorFlow)",
        description="Read a TensorFlow V2 checkpoint of PRNet's graph (PREFIX.index + "
        "PREFIX.data-*; CRCs verified, Adam slots skipped) and write the "
        "project's weights file. The width is inferred from the shapes.",
    )
    q.add_argument(
        "checkpoint",
        type=Path,
        metavar="CKPT_PREFIX",
        help="checkpoint prefix, e.g. Data/net-data/256_256_resfcn256_weight (or its .index file)",
    )
    q.add_argument(
        "--out", required=True, type=Path, help="weights file to write (e.g. prnet_release.pt)"
    )
    q.set_defaults(func=import_weights)
    add_evaluate_parser(sub)
    add_uv_tools_parser(sub)
    add_export_onnx_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``prnet`` command; its exit status: 0 done, 1 an error in the data or the files
    (one ``prnet: error:`` line), 2 a usage error (argparse's status)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "batch_size", 1) < 1:
        parser.error("--batch-size must be >= 1")
    if getattr(args, "workers", 0) < 0:
        parser.error("--workers must be >= 0")
    if getattr(args, "depth_16bit", False) and args.depth_norm != "prnet":
        parser.error("--depth-16bit needs --depth-norm prnet")
    try:
        return args.func(args)
    except DataError as exc:
        print(f"prnet: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    from pipeline.stage import run

    run(main, with_parent=False)  # one-line errors, --debug for the traceback
