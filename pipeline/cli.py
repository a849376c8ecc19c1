"""The ``prnet`` command line: run a trained PRNet on images and write what its map is used for.

    prnet predict IMAGES... --out DIR [--weights data/train/model.pt] [--model-dir data/face_model]
                  [--boxes boxes.json] [--landmarks-dir DIR] [--uv-file data/uv/test.h5]
                  [--swap SRC_IMAGE] [--visible-only] [--save-posmap] [--device auto]

IMAGES are image files, folders (their ``*.jpg``, ``*.jpeg``, ``*.png``, ``*.bmp``, not recursive)
or glob patterns. There is no face detector: each image's face is given either

* by a box in ``--boxes``, a JSON object mapping the image's file name (or its stem, or the path as
  given) to ``[left, right, top, bottom]`` in pixels (PRNet's detector-box crop is used), or
* by 68 landmarks in ``NAME.mat`` (300W-LP / AFLW2000-3D style: ``pt3d_68`` (3, 68) or ``pt2d``
  (2, 68), image pixels) in ``--landmarks-dir``, default the image's own folder (the evaluation
  crop of docs/conventions.md section 6 is used).

A box wins over landmarks. Per image ``NAME`` the output folder gets:

* ``NAME_kpt.txt``: the 68 landmarks (68 x 3: x, y, z in image pixels, y down);
* ``NAME_vertices.npy``: the dense face vertices (K, 3) float32, image pixels;
* ``NAME_texture.png``: the UV texture map (256 x 256, face mask applied; ``--visible-only``
  also blanks the pixels the camera does not see, and those whose colour would mix in the
  background at the silhouette);
* ``NAME.obj`` / ``NAME.ply``: the face mesh with vertex colours, in the camera frame
  ``(x, h - 1 - y, z)`` (y up, z towards the viewer; counter-clockwise front faces);
* ``NAME_pose.json``: pitch, yaw, roll (degrees and radians, 300W-LP's angle convention), scale,
  rotation and translation;
* ``NAME_depth.png``: the depth image (the mesh's z-buffer; near = bright, background 0);
* ``NAME_preview.png``: the image with the landmarks drawn;
* ``NAME_swap.png`` with ``--swap``: the face of SRC_IMAGE (whose face is found the same way)
  pasted onto this face; ``NAME_posmap.npy`` with ``--save-posmap``: the map (256, 256, 3) in
  image pixels.

The UV layout (face mask, key points, canonical shape) comes from the morphable model in
``--model-dir``; ``--uv-file`` takes the face mask and key points from a UV HDF5 file instead (the
ones a network was trained with).
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from model.checkpoint import load_weights
from model.inference import Predictor
from model.mesh_io import write_obj, write_ply
from model.uses import (
    FaceUV,
    build_face_uv,
    depth_image,
    depth_to_uint8,
    draw_landmarks,
    face_mesh,
    face_pose,
    fill_gaps,
    landmarks,
    render_raster,
    swap_face,
    uv_texture,
    visible_vertices,
)
from uvgen.formats.bfm import load_bfm
from uvgen.formats.errors import DataError
from uvgen.formats.matfile import atomic_output, load_mat, read_jpeg
from uvgen.groundtruth import build_uv_layout

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class FaceSpec:
    """Where one image's face is: a box (left, right, top, bottom) or 68 points (68, 2+)."""

    image: Path
    bbox: tuple[float, float, float, float] | None = None
    points: np.ndarray | None = None


# ----------------------------------------------------------------------------------------------
# Inputs


def list_images(inputs: Sequence[str]) -> list[Path]:
    """Image paths from files, folders (non-recursive) and glob patterns, in the order given
    (each folder's and pattern's images sorted); duplicates dropped."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(item) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
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
        raise DataError(path, None, "expected a JSON object mapping image names to [left, right, top, bottom]")
    boxes = {}
    for name, box in raw.items():
        try:
            values = tuple(float(v) for v in box)
        except (TypeError, ValueError):
            values = ()
        if len(values) != 4 or not np.all(np.isfinite(values)) or values[1] <= values[0] or values[3] <= values[2]:
            raise DataError(path, name, "expected [left, right, top, bottom] with right > left and "
                                        f"bottom > top, got {box!r}")
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


def face_spec(image: Path, boxes: dict[str, tuple] | None, landmarks_dir: Path | None,
              boxes_path: Path | None = None) -> FaceSpec:
    """The face of ``image``: its box in ``boxes`` (by file name, stem or path), else the 68
    points of ``NAME.mat`` in ``landmarks_dir`` (default: beside the image)."""
    if boxes:
        for key in (image.name, image.stem, str(image)):
            if key in boxes:
                return FaceSpec(image, bbox=boxes[key])
    mat = (Path(landmarks_dir) if landmarks_dir is not None else image.parent) / f"{image.stem}.mat"
    if not mat.is_file():
        where = f"no entry in {boxes_path} and " if boxes_path is not None else ""
        raise DataError(image, None, f"no face given: {where}no landmark file {mat} "
                                     "(there is no face detector: pass --boxes or .mat landmarks)")
    return FaceSpec(image, points=read_points_mat(mat))


# ----------------------------------------------------------------------------------------------
# Outputs


def _save_png(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as fh:
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(fh, format="PNG")


def _save_text(path: Path, text: str) -> None:
    with atomic_output(path) as fh:
        fh.write(text.encode("utf-8"))


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_output(path) as fh:
        np.save(fh, array)


def write_outputs(out_dir: Path, name: str, image: np.ndarray, posmap: np.ndarray, uv: FaceUV,
                  visible_only: bool = False, save_posmap: bool = False) -> dict[str, Path]:
    """Write every per-image output (see the module docstring) for one face; returns the paths."""
    h, w = image.shape[:2]
    posmap = fill_gaps(posmap, uv)
    paths = {k: out_dir / f"{name}{suffix}" for k, suffix in (
        ("kpt", "_kpt.txt"), ("vertices", "_vertices.npy"), ("texture", "_texture.png"), ("obj", ".obj"),
        ("ply", ".ply"), ("pose", "_pose.json"), ("depth", "_depth.png"), ("preview", "_preview.png"))}
    kpt = landmarks(posmap, uv)
    mesh = face_mesh(image, posmap, uv)
    raster = render_raster(mesh.vertices, mesh.triangles, h, w)

    buf = [f"{x:.3f} {y:.3f} {z:.3f}" for x, y, z in kpt]
    _save_text(paths["kpt"], "\n".join(buf) + "\n")
    _save_npy(paths["vertices"], mesh.vertices.astype(np.float32))
    visible = None
    if visible_only:
        vis = visible_vertices(mesh.vertices, mesh.triangles, h, w, raster=raster, solid=True)
        visible = np.zeros(uv.face_mask.size, dtype=bool)
        visible[uv.face_ind] = vis
        visible = visible.reshape(uv.face_mask.shape)
    _save_png(paths["texture"], uv_texture(image, posmap, uv.face_mask, visible))
    cam = mesh.camera_vertices(h)
    write_obj(paths["obj"], cam, mesh.triangles, mesh.colors)
    write_ply(paths["ply"], cam, mesh.triangles, mesh.colors)
    _save_text(paths["pose"], json.dumps(face_pose(posmap, uv, h).to_dict(), indent=2) + "\n")
    depth, mask = depth_image(mesh.vertices, mesh.triangles, h, w, raster=raster)
    _save_png(paths["depth"], depth_to_uint8(depth, mask))
    _save_png(paths["preview"], draw_landmarks(image, kpt))
    if save_posmap:
        paths["posmap"] = out_dir / f"{name}_posmap.npy"
        _save_npy(paths["posmap"], np.asarray(posmap, dtype=np.float32))
    return paths


# ----------------------------------------------------------------------------------------------
# predict


def load_face_uv(model_dir: Path, uv_file: Path | None = None) -> FaceUV:
    """The :class:`FaceUV` of the model in ``model_dir`` (masks from ``uv_file`` when given)."""
    model = load_bfm(model_dir)
    layout = build_uv_layout(model)
    if uv_file is None:
        return build_face_uv(model, layout=layout)
    from uvgen.h5store import PositionMapFile

    with PositionMapFile(Path(uv_file)) as f:
        data = f.uv
    return build_face_uv(model, layout=layout, face_mask=data.face_mask, kpt_uv=data.kpt_uv)


def predict(args: argparse.Namespace) -> int:
    images = list_images(args.images)
    if not images:
        raise DataError(Path(args.images[0]), None, "no images found")
    stems = [p.stem for p in images]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise DataError(Path(args.images[0]), None, f"several images share the name(s) {dupes}: outputs would clash")
    boxes = load_boxes(args.boxes) if args.boxes else None
    specs = [face_spec(p, boxes, args.landmarks_dir, args.boxes) for p in images]
    swap_spec = face_spec(Path(args.swap), boxes, args.landmarks_dir, args.boxes) if args.swap else None

    if not Path(args.weights).is_file():
        raise DataError(args.weights, None, "missing weights file (train first: dvc repro train, or pass --weights)")
    uv = load_face_uv(args.model_dir, args.uv_file)
    predictor = Predictor(load_weights(args.weights), uv.kpt_uv, uv.face_ind, device=args.device,
                          batch_size=args.batch_size)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    def run(batch: list[FaceSpec]) -> list[tuple[np.ndarray, np.ndarray]]:
        imgs = [read_jpeg(s.image) for s in batch]
        preds = []
        for img, s in zip(imgs, batch):
            crop, t = predictor.crop(img, bbox=s.bbox, points=s.points)
            preds.append((crop, t))
        maps = predictor.predict_maps(np.stack([c for c, _ in preds]))
        return [(img, predictor.decode(m, t, c).posmap) for img, m, (c, t) in zip(imgs, maps, preds)]

    source = run([swap_spec])[0] if swap_spec is not None else None
    for start in range(0, len(specs), args.batch_size):
        batch = specs[start:start + args.batch_size]
        for spec, (image, posmap) in zip(batch, run(batch)):
            name = spec.image.stem
            write_outputs(out_dir, name, image, posmap, uv, args.visible_only, args.save_posmap)
            if source is not None:
                _save_png(out_dir / f"{name}_swap.png", swap_face(source[0], source[1], image, posmap, uv))
            print(f"{spec.image} -> {out_dir / name}_*")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prnet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="landmarks, mesh, texture, pose, depth (and face swap) for images",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--weights", type=Path, default=Path("data/train/model.pt"),
                   help="trained weights (model.pt or a checkpoint)")
    p.add_argument("--model-dir", type=Path, default=Path("data/face_model"),
                   help="face3d-layout morphable model (BFM.mat, BFM_UV.mat, BFM_info.mat)")
    p.add_argument("--uv-file", type=Path, default=None,
                   help="take the face mask and key points from this UV HDF5 file")
    p.add_argument("--boxes", type=Path, default=None,
                   help="JSON {image name: [left, right, top, bottom]} face boxes")
    p.add_argument("--landmarks-dir", type=Path, default=None,
                   help="folder of NAME.mat landmark files (default: beside each image)")
    p.add_argument("--swap", default=None, metavar="SRC_IMAGE",
                   help="also paste this image's face onto every face (NAME_swap.png)")
    p.add_argument("--visible-only", action="store_true", help="blank texture pixels the camera does not see (or sees only at the silhouette)")
    p.add_argument("--save-posmap", action="store_true", help="also write NAME_posmap.npy")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    p.set_defaults(func=predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "batch_size", 1) < 1:
        raise SystemExit("prnet: --batch-size must be >= 1")
    try:
        return args.func(args)
    except DataError as exc:
        print(f"prnet: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from pipeline.stage import run

    run(main, with_parent=False)  # one-line errors, --debug for the traceback
