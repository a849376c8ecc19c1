"""A Python API for PRNet inference, beside the ``prnet`` command line (like PRNet's ``api.py``).

    from model.api import PRN
    prn = PRN("release.pt", uv_data="PRNet/Data/uv-data")   # or PRN.from_tf_checkpoint(prefix, ...)
    face = prn.process("photo.jpg")[0]                       # detector -> crop -> map -> decode
    face.landmarks, face.vertices, face.pose.degrees         # (68, 3), (K, 3) image pixels; degrees
    texture = face.texture()                                 # (256, 256, 3) uint8 UV texture

Faces come from (first match wins) ``bbox`` (left, right, top, bottom), ``points`` (68, 2+),
else the face detector (:mod:`model.detector`; the largest face, or all with ``all_faces``). The
crop is PRNet's (detector box: centre moved down 0.14 of the box size, side 1.58x; 68 points:
side 1.6x), the network input is the crop in [0, 1], its output times S x 1.1 (S the crop side,
256 for PRNet) is the map in crop pixels, mapped back to the image (:mod:`model.inference`).
Landmarks are the map at the 68 key-point pixels (PRNet's ``uv_kpt_ind``), dense vertices the map
at the face pixels (``face_ind``), both in image pixels (x right, y down, z towards the viewer).

The UV layout (key points, face pixels, canonical face for the pose) must be the one the weights
were trained with: PRNet's ``uv-data`` folder for its release (``uv_data=``), the project's
morphable model folder (``model_dir=``, optionally with the masks of a UV HDF5 file ``uv_file=``)
for weights trained here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.checkpoint import load_weights
from model.detector import FaceBox, FaceDetector, select_faces
from model.head_pose import HeadPose, face_pose
from model.inference import Predictor, map_to_image
from model.prnet import PRNet
from model.uses import FaceUV, dense_vertices, fill_gaps, landmarks, uv_texture
from uvgen.formats.errors import DataError
from uvgen.formats.matfile import read_jpeg
from uvgen.raster import Rasterization

MAX_SIDE = 1000
"""A photo whose longer side is over this many pixels is shrunk to it before detection and
cropping, as PRNet's ``demo.py`` does; the results are mapped back to the original pixels."""


def shrink_to_max_side(
    image: np.ndarray, max_side: int = MAX_SIDE
) -> tuple[np.ndarray, np.ndarray]:
    """(image, S): ``image`` itself and the identity when its longer side is at most ``max_side``;
    else the image resized (PIL bilinear, anti-aliased) to a longer side of ``max_side`` and S
    (3, 3) original -> shrunk pixels (pixel centres at integers)."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image, np.eye(3)
    from PIL import Image

    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    sx, sy = size[0] / w, size[1] / h
    return small, np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])


def _apply(s: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ s[:2, :2].T + s[:2, 2]


def _box_through(s: np.ndarray, box: Sequence[float]) -> tuple[float, float, float, float]:
    """(left, right, top, bottom) through the axis-aligned map ``s``."""
    (left, top), (right, bottom) = _apply(s, np.array([[box[0], box[2]], [box[1], box[3]]], float))
    return float(left), float(right), float(top), float(bottom)


class NoFaceError(ValueError):
    """The detector found no face in an image."""


def visible_texels(
    vertices: np.ndarray, uv: FaceUV, h: int, w: int, raster: Rasterization | None = None
) -> np.ndarray:
    """(S, S) bool: the UV texels whose face vertex the camera sees in an h x w image (the
    vertices (K, 3) in image pixels, ``uv.face_ind`` order; a vertex hidden by the face, or seen
    only at the silhouette, is False; outside the face False). ``raster``: the image's z-buffer
    raster of these vertices when already drawn (``model.visibility.render_raster``)."""
    from model.visibility import visible_vertices

    seen = visible_vertices(vertices, uv.triangles, h, w, raster=raster, solid=True)
    visible = np.zeros(uv.face_mask.size, dtype=bool)
    visible[uv.face_ind] = seen
    return visible.reshape(uv.face_mask.shape)


@dataclass(eq=False)
class Face:
    """One reconstructed face. ``posmap`` (S, S, 3) is the whole map in image pixels (S: the
    network's crop size, 256 for PRNet); ``transform`` (3, 3) image -> crop pixels; ``box`` the
    detector box (None when a box or points were given)."""

    image: np.ndarray = field(repr=False)
    posmap: np.ndarray = field(repr=False)
    transform: np.ndarray = field(repr=False)
    uv: FaceUV = field(repr=False)
    box: FaceBox | None = None

    @property
    def landmarks(self) -> np.ndarray:
        """(68, 3) float32 image pixels."""
        return landmarks(self.posmap, self.uv).astype(np.float32)

    @property
    def vertices(self) -> np.ndarray:
        """(K, 3) float32 dense face vertices, image pixels, in ``face_ind`` order."""
        return dense_vertices(self.posmap, self.uv).astype(np.float32)

    @property
    def pose(self) -> HeadPose:
        """Head pose (pitch, yaw, roll; scale, rotation, translation) fitted on the rigid upper
        face."""
        return face_pose(self.posmap, self.uv, self.image.shape[0])

    def texture(self, visible_only: bool = False) -> np.ndarray:
        """(S, S, 3) uint8 UV texture sampled from the image (face mask applied;
        ``visible_only`` also blanks what the camera does not see)."""
        visible = None
        if visible_only:
            from model.uses import face_mesh

            mesh = face_mesh(self.image, self.posmap, self.uv)
            visible = visible_texels(mesh.vertices, self.uv, *self.image.shape[:2])
        return uv_texture(self.image, fill_gaps(self.posmap, self.uv), self.uv.face_mask, visible)


@dataclass(eq=False)
class PreparedImage:
    """One image ready for the network (:meth:`PRN.prepare`): ``image`` (H, W, 3) uint8,
    ``crops`` (F, S, S, 3) one per face, ``transforms`` F (3, 3) image -> crop pixels, ``boxes``
    F detector boxes (None where a box or points were given)."""

    image: np.ndarray = field(repr=False)
    crops: np.ndarray = field(repr=False)
    transforms: list[np.ndarray] = field(repr=False)
    boxes: list[FaceBox | None]


def load_layout(
    uv_data: Path | str | None = None,
    model_dir: Path | str | None = None,
    uv_file: Path | str | None = None,
    size: int = 256,
) -> FaceUV:
    """The UV layout (``size`` x ``size``: the network's crop size) from PRNet's ``uv_data``
    folder or from the morphable model in ``model_dir`` (with ``uv_file``'s face mask and key
    points, when given: its UV size must be ``size``)."""
    if uv_data is not None:
        from model.release import load_uv_data

        return load_uv_data(uv_data, size)
    if model_dir is None:
        raise ValueError(
            "give uv_data (PRNet's uv-data folder) or model_dir (the project's face model)"
        )
    from model.uses import build_face_uv
    from uvgen.formats.bfm import load_bfm
    from uvgen.groundtruth import build_uv_layout

    model = load_bfm(Path(model_dir))
    layout = build_uv_layout(model, size)
    if uv_file is None:
        return build_face_uv(model, layout=layout)
    from uvgen.h5store import PositionMapFile

    with PositionMapFile(Path(uv_file)) as f:
        data, file_size = f.uv, f.uv_size
    if file_size != size:
        raise DataError(
            uv_file,
            "uv_size",
            f"maps are {file_size}x{file_size}, the network's crops {size}x{size}",
        )
    return build_face_uv(model, layout=layout, face_mask=data.face_mask, kpt_uv=data.kpt_uv)


class PRN:
    """PRNet ready to run: weights, UV layout, predictor, and (made on first use) a detector.

    weights: a weights file (``save_weights``/``prnet import-weights`` output or a training
    checkpoint) or a :class:`PRNet`. detector_weights: dlib's CNN detector ``.dat`` (default:
    dlib's HOG detector). all_faces: every detected face instead of the largest. device, batch_size:
    see :class:`model.inference.Predictor`.
    """

    def __init__(
        self,
        weights: Path | str | PRNet,
        uv_data: Path | str | None = None,
        model_dir: Path | str | None = None,
        uv_file: Path | str | None = None,
        detector_weights: Path | str | None = None,
        all_faces: bool = False,
        device: str = "auto",
        batch_size: int | None = None,
    ):
        if isinstance(weights, PRNet):
            net = weights
        else:
            if not Path(weights).is_file():
                raise DataError(weights, None, "missing weights file")
            if uv_data is None:
                from model.release import weights_meta

                if weights_meta(weights).get("uv_layout") == "prnet":
                    raise DataError(
                        weights,
                        None,
                        "weights imported from PRNet's release need PRNet's UV "
                        "layout: pass its uv-data folder (uv_data= / --uv-data)",
                    )
            net = load_weights(Path(weights))
        self.uv = load_layout(uv_data, model_dir, uv_file, size=net.in_size)
        self.predictor = Predictor(
            net,
            self.uv.kpt_uv,
            self.uv.face_ind,
            device=device,
            batch_size=batch_size,
            exact_crop=True,
        )
        self.detector_weights = detector_weights
        self.all_faces = all_faces
        self._detector: FaceDetector | None = None

    @classmethod
    def from_tf_checkpoint(cls, prefix: Path | str, uv_data: Path | str, **kwargs) -> PRN:
        """PRNet's released TensorFlow checkpoint read directly (no TensorFlow needed)."""
        from model.release import import_tf_checkpoint

        return cls(import_tf_checkpoint(prefix), uv_data=uv_data, **kwargs)

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = FaceDetector(self.detector_weights)
        return self._detector

    def new_detector(self) -> FaceDetector:
        """A detector of its own (dlib's CNN detector is not safe to share across threads)."""
        return FaceDetector(self.detector_weights)

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """The faces the detector keeps (largest first; only the largest unless ``all_faces``)."""
        return select_faces(self.detector(image), self.all_faces)

    def process(
        self,
        image: np.ndarray | Path | str,
        bbox: Sequence[float] | None = None,
        points: np.ndarray | None = None,
    ) -> list[Face]:
        """The faces of one image (a path or an (H, W, 3) uint8 RGB array; one over
        :data:`MAX_SIDE` is detected and cropped shrunk, the results in its own pixels). Raises
        :class:`NoFaceError` when the detector finds none, ``FaceRegionError`` for a box or
        points that cannot give a crop (outside the image, degenerate)."""
        prepared = self.prepare(image, bbox=bbox, points=points)
        return self.finish(prepared, self.predictor.predict_maps(prepared.crops))

    def prepare(
        self,
        image: np.ndarray | Path | str,
        bbox: Sequence[float] | None = None,
        points: np.ndarray | None = None,
        detector: FaceDetector | None = None,
    ) -> PreparedImage:
        """:meth:`process` up to the network: the image read, its faces found (``detector``:
        this one instead of :attr:`detector`, e.g. one per thread) and cropped. No torch work,
        so it can run in worker threads while the network runs."""
        img = read_jpeg(image) if isinstance(image, (str, Path)) else np.asarray(image)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        # A photo over MAX_SIDE is detected and cropped shrunk (demo.py); S: original -> shrunk.
        small, s = shrink_to_max_side(img) if img.dtype == np.uint8 else (img, np.eye(3))
        back = np.linalg.inv(s)
        if bbox is not None or points is not None:
            if bbox is not None and small is not img:
                bbox = _box_through(s, bbox)
            if points is not None and small is not img:
                points = np.array(points, dtype=np.float64)
                points[:, :2] = _apply(s, points[:, :2])
            regions: list[tuple[Sequence[float] | None, np.ndarray | None, FaceBox | None]] = [
                (bbox, points, None)
            ]
        else:
            boxes = (
                self.detect(small)
                if detector is None
                else select_faces(detector(small), self.all_faces)
            )
            if not boxes:
                raise NoFaceError("no face detected")
            regions = [  # cropped in the shrunk image; the face's box in the original pixels
                (b.bbox, None, FaceBox(*_box_through(back, b.bbox), score=b.score)) for b in boxes
            ]
        crops, transforms = [], []
        for b, p, _ in regions:
            c, t = self.predictor.crop(small, bbox=b, points=p)
            crops.append(c)
            transforms.append(t @ s if small is not img else t)  # original -> crop
        return PreparedImage(img, np.stack(crops), transforms, [r[2] for r in regions])

    def finish(self, prepared: PreparedImage, maps: np.ndarray) -> list[Face]:
        """The faces of a :meth:`prepare` d image from its crops' maps (F, S, S, 3) (crop
        pixels, :meth:`model.inference.Predictor.predict_maps`)."""
        return [  # the map alone (Predictor.decode's posmap): the rest is read from it on demand
            Face(prepared.image, map_to_image(m, t), t, self.uv, box)
            for m, t, box in zip(maps, prepared.transforms, prepared.boxes)
        ]

    def process_batch(
        self, images: Sequence[np.ndarray | Path | str]
    ) -> list[list[Face] | Exception]:
        """:meth:`process` for each image; an image that fails gives its exception in its place
        (no face, bad region, unreadable file) and the others go on."""
        out: list[list[Face] | Exception] = []
        for image in images:
            try:
                out.append(self.process(image))
            except (NoFaceError, ValueError, DataError) as exc:
                out.append(exc)
        return out
