"""HDF5 storage of the UV ground truth: one file per split, written as shards then merged.

Layout (the same per-sample layout in a shard and in the final file; N samples, H = W = S, the
UV size: 256 by default, ``uvgen.uv_size``):

* ``images``     (N,H,W,3) uint8, the input crops; one chunk per sample (1,H,W,3).
* ``posmaps``    (N,H,W,3) float16 or float32, the UV position maps in crop pixels (x right,
  y down, z depth >= 0) stored as ``posmap - posmap_offset``; one chunk per sample.
* ``names``, ``sources`` (N,) variable-length UTF-8 strings.
* ``shape_para`` (N,199), ``exp_para`` (N,29), ``pose_para`` (N,7) = [pitch, yaw, roll, tx, ty, tz,
  s], ``transform`` (N,3,3) (original image pixels -> crop pixels), ``jitter`` (N,3) = (r1, r2, r3),
  ``yaw_deg``/``pitch_deg``/``roll_deg`` (N,): all float64.
* ``extras/<name>`` (N, ...): optional fixed-shape per-sample arrays, e.g. ``landmarks_gt`` (N,68,3)
  float32 in original image pixels (test split).
* attributes ``format_version`` (1), ``posmap_offset``, ``posmap_dtype``, ``compression`` and
  ``posmap_compression`` (the codecs), ``posmap_lossy_values`` (number of map values stored
  coarser than 1/8 px) and ``kind`` ('shard' | 'dataset').

The final file adds ``uv/weight_class`` (H,W) uint8 (the loss-weight class of each pixel: 0
outside, 1 face, 2 eye_nose_mouth, 3 keypoint; uvgen.weight_classes), ``uv/weight_mask`` (H,W)
float32 (the paper's weights of those classes, 0 / 3 / 4 / 16, for tools that read weights;
training takes the weights from its params), ``uv/face_mask`` (H,W) uint8 (0/1), ``uv/kpt_uv``
(2,68) int32 (row 0 = column, row 1 = row), ``uv/face_ind`` (K,) int64 (flat indices of the
face-mask pixels) and the attributes ``model_checksum``, ``params`` (JSON), ``split`` and
``uv_size`` (S; absent in files written before it, which are all 256: read as the maps' side).
Files written before ``uv/weight_class`` existed hold ``uv/weight_mask`` alone: their classes are
read back from its values, which must each be one of the paper's weights.

Storage options and the position-map codec (float16 or float32, compression): uvgen.h5codec;
writing shards and merging them: uvgen.h5write; validating and reading: here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from uvgen.closing import ClosesOnExit
from uvgen.formats.errors import DataError
from uvgen.h5codec import POSMAP_DTYPES, decode_posmap
from uvgen.h5open import open_h5
from uvgen.weight_classes import CLASS_NAMES, check_classes, class_weights, paper_weight_classes

FORMAT_VERSION = 1
SPLITS = ("train", "test")
N_KEYPOINTS = 68

# Per-sample record datasets: name -> (shape per sample, dtype); strings have shape ().
_STRING_FIELDS = {"name": "names", "source": "sources"}
_ARRAY_FIELDS: dict[str, tuple[int, ...]] = {
    "shape_para": (199,),
    "exp_para": (29,),
    "pose_para": (7,),
    "transform": (3, 3),
    "jitter": (3,),
    "yaw_deg": (),
    "pitch_deg": (),
    "roll_deg": (),
}
_EXTRAS = "extras"
_UV = "uv"
_FILE_ATTRS = (
    "format_version",
    "model_checksum",
    "params",
    "split",
    "posmap_offset",
    "posmap_dtype",
)


@dataclass(eq=False)
class SampleRecord:
    """Per-sample metadata stored beside the image and the position map.

    ``transform`` maps original image pixels (x right, y down, homogeneous) to crop pixels;
    ``pose_para`` is 300W-LP's [pitch, yaw, roll, tx, ty, tz, s] (radians); ``jitter`` the three
    uniform draws (r1, r2, r3) of the crop jitter; angles in degrees. ``extras`` holds optional
    fixed-shape arrays, e.g. ``landmarks_gt`` (68,3) float32 in original image pixels.
    """

    name: str
    source: str
    shape_para: np.ndarray
    exp_para: np.ndarray
    pose_para: np.ndarray
    transform: np.ndarray
    jitter: np.ndarray
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def without_fit(
        cls, name: str, source: str, transform: np.ndarray, **given: Any
    ) -> SampleRecord:
        """A record for data that has no 3DMM fit (toy and benchmark files): zero parameters,
        jitter draws 0.5, angles 0 degrees; ``given`` sets any field (e.g. ``yaw_deg``,
        ``extras``)."""
        blank = dict(shape_para=np.zeros(199), exp_para=np.zeros(29), pose_para=np.zeros(7))
        angles = dict(yaw_deg=0.0, pitch_deg=0.0, roll_deg=0.0)
        values = {**blank, "jitter": np.full(3, 0.5), **angles, **given}
        return cls(name=name, source=source, transform=transform, **values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SampleRecord):
            return NotImplemented
        if (self.name, self.source) != (other.name, other.source):
            return False
        if any(not np.array_equal(getattr(self, k), getattr(other, k)) for k in _ARRAY_FIELDS):
            return False
        if self.extras.keys() != other.extras.keys():
            return False
        return all(
            self.extras[k].dtype == other.extras[k].dtype
            and np.array_equal(self.extras[k], other.extras[k])
            for k in self.extras
        )


@dataclass(frozen=True, eq=False)
class UVData:
    """The UV-space data shared by every sample of a file (H = W = the file's UV size).

    weight_class: (H,W) uint8 loss-weight class codes (uvgen.weight_classes: 0 outside, 1 face,
    2 eye_nose_mouth, 3 keypoint). face_mask: (H,W) bool. kpt_uv: (2,68) int32 UV pixel of each key
    point, row 0 = column, row 1 = row. face_ind: (K,) int64 flat indices (row * W + col) of the
    face-mask pixels.
    """

    weight_class: np.ndarray
    face_mask: np.ndarray
    kpt_uv: np.ndarray
    face_ind: np.ndarray

    @property
    def weight_mask(self) -> np.ndarray:
        """(H,W) float32 the paper's loss weights (16 / 4 / 3 / 0) of the classes."""
        return class_weights(self.weight_class)


# ---------------------------------------------------------------------------------------------
# Validation


def _open(path: Path) -> h5py.File:
    """The file open for reading; every failure is a :class:`DataError` naming ``path``."""
    try:
        return open_h5(path)
    except IsADirectoryError as exc:
        raise DataError(path, None, "is a directory, expected an HDF5 file") from exc
    except FileNotFoundError as exc:
        raise DataError(path, None, "no such file") from exc


def _attr(f: h5py.File, path: Path, name: str) -> Any:
    if name not in f.attrs:
        raise DataError(path, name, "missing attribute")
    value = f.attrs[name]
    return value.decode() if isinstance(value, bytes) else value


def _dataset(f: h5py.File, path: Path, name: str) -> h5py.Dataset:
    obj = f.get(name)
    if not isinstance(obj, h5py.Dataset):
        raise DataError(path, name, "missing dataset")
    return obj


def _check_samples(f: h5py.File, path: Path) -> int:
    """Check the per-sample layout (shard or final file); return the sample count."""
    version = _attr(f, path, "format_version")
    if int(version) != FORMAT_VERSION:
        raise DataError(
            path, "format_version", f"unsupported version {version} (expected {FORMAT_VERSION})"
        )
    posmap_dtype = _attr(f, path, "posmap_dtype")
    if posmap_dtype not in POSMAP_DTYPES:
        raise DataError(path, "posmap_dtype", f"unknown value {posmap_dtype!r}")
    offset = float(_attr(f, path, "posmap_offset"))
    if not np.isfinite(offset):
        raise DataError(path, "posmap_offset", f"non-finite value {offset}")
    images = _dataset(f, path, "images")
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise DataError(
            path, "images", f"expected (N,H,W,3) uint8, got {images.shape} {images.dtype}"
        )
    n = images.shape[0]
    posmaps = _dataset(f, path, "posmaps")
    if posmaps.shape != images.shape or posmaps.dtype != np.dtype(posmap_dtype):
        raise DataError(
            path,
            "posmaps",
            f"expected {images.shape} {posmap_dtype}, got {posmaps.shape} {posmaps.dtype}",
        )
    expected = {d: (n,) for d in _STRING_FIELDS.values()}
    expected.update({k: (n, *s) for k, s in _ARRAY_FIELDS.items()})
    for name, shape in expected.items():
        shape_on_disk = _dataset(f, path, name).shape
        if shape_on_disk != shape:
            raise DataError(
                path, name, f"expected shape {shape} for {n} samples, got {shape_on_disk}"
            )
    extras = f.get(_EXTRAS, {})
    for key in extras:
        dset = _dataset(f, path, f"{_EXTRAS}/{key}")
        if dset.shape[:1] != (n,):
            raise DataError(path, f"{_EXTRAS}/{key}", f"expected {n} rows, got shape {dset.shape}")
    return n


def _weight_class(f: h5py.File, path: Path, hw: tuple[int, int]) -> np.ndarray:
    """(H,W) uint8 class codes: ``uv/weight_class``, or for an older file the classes of its
    ``uv/weight_mask`` values (each must be one of the paper's weights); DataError otherwise."""
    g = f.get(_UV)
    name = "weight_class" if isinstance(g, h5py.Group) and "weight_class" in g else "weight_mask"
    dset = _dataset(f, path, f"{_UV}/{name}")
    if dset.shape != hw:
        raise DataError(path, f"{_UV}/{name}", f"expected shape {hw}, got {dset.shape}")
    values = dset[...]
    if name == "weight_mask":
        try:
            return paper_weight_classes(values)
        except ValueError as exc:
            raise DataError(path, f"{_UV}/{name}", f"{exc}: no weight class") from exc
    problem = check_classes(values)
    if problem:
        raise DataError(path, f"{_UV}/{name}", f"{problem} ({', '.join(CLASS_NAMES)})")
    return values.astype(np.uint8)


def _check_uv(f: h5py.File, path: Path, hw: tuple[int, int]) -> None:
    h, w = hw
    _weight_class(f, path, hw)
    shapes = {"face_mask": (h, w), "kpt_uv": (2, N_KEYPOINTS)}
    for name, shape in shapes.items():
        got = _dataset(f, path, f"{_UV}/{name}").shape
        if got != shape:
            raise DataError(path, f"{_UV}/{name}", f"expected shape {shape}, got {got}")
    kpt = f[f"{_UV}/kpt_uv"][...]
    if kpt.min() < 0 or kpt[0].max() >= w or kpt[1].max() >= h:
        raise DataError(path, f"{_UV}/kpt_uv", f"key points outside the {w}x{h} UV map")
    face_ind = _dataset(f, path, f"{_UV}/face_ind")
    if face_ind.ndim != 1:
        raise DataError(path, f"{_UV}/face_ind", f"expected (K,), got {face_ind.shape}")
    ind = face_ind[...]
    if ind.size and (ind.min() < 0 or ind.max() >= h * w):
        raise DataError(path, f"{_UV}/face_ind", f"flat indices outside [0, {h * w})")


def _check_file(f: h5py.File, path: Path) -> int:
    n = _check_samples(f, path)
    for name in _FILE_ATTRS:
        _attr(f, path, name)
    split = _attr(f, path, "split")
    if split not in SPLITS:
        raise DataError(path, "split", f"expected one of {SPLITS}, got {split!r}")
    try:
        json.loads(_attr(f, path, "params"))
    except (TypeError, ValueError) as exc:
        raise DataError(path, "params", f"not a JSON string: {exc}") from exc
    hw = f["images"].shape[1:3]
    if "uv_size" in f.attrs:
        size = f.attrs["uv_size"]
        if not np.issubdtype(np.asarray(size).dtype, np.integer) or (size, size) != hw:
            raise DataError(path, "uv_size", f"is {size!r} but the maps are {hw[0]}x{hw[1]}")
    _check_uv(f, path, hw)
    return n


def validate_file(path: Path) -> None:
    """Check a merged file: every dataset and attribute present, consistent lengths and shapes.

    Raises DataError(path, field, reason) naming the first problem found.
    """
    path = Path(path)
    with _open(path) as f:
        _check_file(f, path)


def read_shard_names(path: Path) -> list[str]:
    """The sample names of a finished shard (or merged file), in order; DataError if unreadable."""
    path = Path(path)
    with _open(path) as f:
        _check_samples(f, path)
        return list(f["names"].asstr()[...])


# ---------------------------------------------------------------------------------------------
# Reading


def _read_records(f: h5py.File, start: int = 0, stop: int | None = None) -> list[SampleRecord]:
    stop = f["images"].shape[0] if stop is None else stop
    names = f["names"].asstr()[start:stop]
    sources = f["sources"].asstr()[start:stop]
    arrays = {k: f[k][start:stop] for k in _ARRAY_FIELDS}
    extras = {k: f[_EXTRAS][k][start:stop] for k in f.get(_EXTRAS, {})}
    out = []
    for j in range(stop - start):
        scalars = {
            k: (float(arrays[k][j]) if _ARRAY_FIELDS[k] == () else arrays[k][j]) for k in arrays
        }
        out.append(
            SampleRecord(
                name=str(names[j]),
                source=str(sources[j]),
                extras={k: v[j] for k, v in extras.items()},
                **scalars,
            )
        )
    return out


class PositionMapFile(ClosesOnExit):
    """Read-only access to a merged file (validated on opening); a context manager.

    ``image(i)`` (H,W,3) uint8; ``posmap(i)`` (H,W,3) float32 crop pixels (offset added back).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._f = _open(self.path)
        try:
            self._n = _check_file(self._f, self.path)
            self._offset = float(self._f.attrs["posmap_offset"])
        except BaseException:
            self._f.close()
            raise

    def __len__(self) -> int:
        return self._n

    def close(self) -> None:
        self._f.close()

    def image(self, i: int) -> np.ndarray:
        return self._f["images"][self._index(i)]

    def posmap(self, i: int) -> np.ndarray:
        return decode_posmap(self._f["posmaps"][self._index(i)], self._offset)

    def record(self, i: int) -> SampleRecord:
        i = self._index(i)
        return _read_records(self._f, i, i + 1)[0]

    def records(self) -> list[SampleRecord]:
        """All records in order (the metadata only; no images or maps)."""
        return _read_records(self._f)

    @property
    def names(self) -> list[str]:
        return list(self._f["names"].asstr()[...])

    @property
    def uv_size(self) -> int:
        """Side S of the S x S maps and crops: the ``uv_size`` attribute; files written before it
        existed (all 256 x 256) read as their maps' side, i.e. 256."""
        if "uv_size" in self._f.attrs:
            return int(self._f.attrs["uv_size"])
        return int(self._f["images"].shape[1])

    @property
    def uv(self) -> UVData:
        g = self._f[_UV]
        hw = self._f["images"].shape[1:3]
        return UVData(
            weight_class=_weight_class(self._f, self.path, hw),
            face_mask=g["face_mask"][...].astype(bool),
            kpt_uv=g["kpt_uv"][...],
            face_ind=g["face_ind"][...],
        )

    @property
    def attrs(self) -> dict[str, Any]:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self._f.attrs.items()}

    @property
    def params(self) -> dict:
        """The ``params`` attribute, parsed from JSON."""
        return json.loads(self.attrs["params"])

    def _index(self, i: int) -> int:
        i = int(i)
        if not -self._n <= i < self._n:
            raise IndexError(f"sample {i} out of range for {self._n} samples in {self.path}")
        return i % self._n
