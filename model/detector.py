"""Face detection for PRNet's demo crop: dlib's HOG frontal-face detector, or its CNN (MMOD) one.

dlib comes from the ``dlib-bin`` wheel (no compiler needed). The HOG detector is built into dlib;
the CNN detector is PRNet's ``Data/net-data/mmod_human_face_detector.dat`` (dlib's model), given
as ``weights``. Both run on the RGB uint8 image with one upsampling step, as PRNet's demo does.

Boxes are :class:`FaceBox` in image pixels: ``left``/``top`` the first pixel inside, ``right``/
``bottom`` dlib's inclusive last pixel (PRNet uses these four numbers as they are).
:func:`check_face_region` (defined in :mod:`model.inference`) is the sanity check every face region
(box or landmarks) passes before it is cropped: a region entirely outside the image or smaller than
``MIN_FACE_PX`` would give a black or empty crop, so it is refused with a one-line
:class:`FaceRegionError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.inference import MIN_FACE_PX, FaceRegionError, check_face_region  # noqa: F401 (re-exported)
from uvgen.formats.errors import DataError

UPSAMPLE = 1  # PRNet's demo: detector(image, 1)


class DetectorUnavailable(RuntimeError):
    """dlib is not installed (the detector is then unavailable; boxes and landmarks still work)."""


@dataclass(frozen=True)
class FaceBox:
    """A detected face: (left, right, top, bottom) pixels and the detector's score."""

    left: float
    right: float
    top: float
    bottom: float
    score: float = 0.0

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(left, right, top, bottom): PRNet's order."""
        return (self.left, self.right, self.top, self.bottom)

    @property
    def area(self) -> float:
        return max(self.right - self.left, 0.0) * max(self.bottom - self.top, 0.0)


def import_dlib() -> Any:
    """The dlib module, or :class:`DetectorUnavailable` with how to get it."""
    try:
        import dlib
    except ImportError:
        raise DetectorUnavailable(
            "the face detector needs dlib: `pip install dlib-bin` "
            "(or give faces with --boxes or 68-landmark .mat files)"
        ) from None
    return dlib


class FaceDetector:
    """dlib's HOG frontal-face detector, or its CNN detector when ``weights`` (an ``.dat`` file
    such as PRNet's ``mmod_human_face_detector.dat``) is given. Call with an (H, W, 3) uint8 RGB
    image (or (H, W) gray) -> faces sorted by area, largest first."""

    def __init__(self, weights: Path | str | None = None, upsample: int = UPSAMPLE):
        dlib = import_dlib()
        self.upsample = int(upsample)
        self.weights = Path(weights) if weights is not None else None
        if self.weights is None:
            self.kind = "hog"
            self._hog = dlib.get_frontal_face_detector()
        else:
            if not self.weights.is_file():
                raise DataError(
                    self.weights,
                    None,
                    "missing face detector file (PRNet ships "
                    "mmod_human_face_detector.dat in Data/net-data)",
                )
            try:
                self._cnn = dlib.cnn_face_detection_model_v1(str(self.weights))
            except RuntimeError as exc:
                raise DataError(
                    self.weights,
                    None,
                    f"not a dlib CNN face detector file ({str(exc).strip().splitlines()[0]})",
                ) from exc
            self.kind = "cnn"

    def __call__(self, image: np.ndarray) -> list[FaceBox]:
        img = np.ascontiguousarray(image)
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
            raise ValueError(
                f"image must be (H, W, 3) or (H, W) uint8, got {img.shape} {img.dtype}"
            )
        if self.kind == "hog":
            rects, scores, _ = self._hog.run(img, self.upsample, 0.0)
            found = zip(rects, scores)
        else:
            found = ((d.rect, d.confidence) for d in self._cnn(img, self.upsample))
        faces = [
            FaceBox(float(r.left()), float(r.right()), float(r.top()), float(r.bottom()), float(s))
            for r, s in found
        ]
        return sorted(faces, key=lambda f: -f.area)


def select_faces(faces: Sequence[FaceBox], all_faces: bool) -> list[FaceBox]:
    """All ``faces`` (largest first), or only the largest one."""
    ordered = sorted(faces, key=lambda f: -f.area)
    return ordered if all_faces else ordered[:1]
