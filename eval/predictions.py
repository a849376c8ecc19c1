"""One method's predictions on a test set, in ONE common format (in memory and as an HDF5 file).

Every method (PRN, the in-house baselines, other methods read from files by :mod:`eval.external`)
ends up as a :class:`Predictions` (in memory) or a predictions file (read lazily through
:class:`PredictionsFile`); :mod:`eval.evaluate` takes either.

Coordinates: original-image pixels, x right, y down, z depth in the same pixel units (the origin of
z is arbitrary: the metrics shift it). Per image:

* ``landmarks`` (68, 3) float32: the 68 points; a method that gives only (x, y) has z = NaN for
  every image (its 3D metrics are then undefined, never guessed);
* ``dense`` (K, 3) float32: the dense face vertices in the order of the test file's ``uv/face_ind``
  (PRNet's decoding: ``map.reshape(-1, 3)[face_ind]``);
* ``runtime_s``: seconds per image (NaN = unknown).

Either ``landmarks`` or ``dense`` may be absent for a method, not both.

File layout (``<method>.h5``, written atomically through ``<name>.tmp``):

* ``names`` (N,) UTF-8 strings, the test images' names (matched by :func:`name_key`);
* ``landmarks`` (N, 68, 3) float32 (optional); ``dense`` (N, K, 3) float32 (optional; one chunk
  per image, Blosc-LZ4 + shuffle); ``runtime_s`` (N,) float64;
* attributes ``format_version`` (1), ``kind`` = 'predictions', ``method``, ``coordinates`` (the
  sentence above) and free-form string metadata (``meta/<key>``: checkpoint, device, test file...).

Maps to predictions: :func:`eval.decode.decode_maps` turns crop-space UV position maps (the output
of PRN and of the baselines) into landmarks and dense vertices in original-image pixels.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Protocol

import h5py
import hdf5plugin
import numpy as np

from uvgen.atomic import unique_tmp_name
from uvgen.closing import ClosesOnExit
from uvgen.formats.errors import DataError
from uvgen.h5open import open_h5

FORMAT_VERSION = 1
N_LANDMARKS = 68
COORDINATES = "original-image pixels: x right, y down, z depth in pixel units (z origin arbitrary)"
_KIND = "predictions"
_MEM = "<memory>"
_NAME_EXTENSIONS = (".mat", ".jpg", ".jpeg", ".png", ".txt", ".npy", ".pts")


# ----------------------------------------------------------------------------------------------
# Names


def name_key(name: str) -> str:
    """The key images are matched by: the base name without folders and without a known image or
    data extension (.mat .jpg .jpeg .png .txt .npy .pts), so 'AFLW2000/image00002.jpg',
    'image00002.mat' and 'image00002' all match. Other dots are kept."""
    base = PureWindowsPath(PurePosixPath(str(name).strip()).name).name
    for ext in _NAME_EXTENSIONS:
        if base.lower().endswith(ext) and len(base) > len(ext):
            return base[: -len(ext)]
    return base


def method_file_name(method: str) -> str:
    """``<method>.h5`` for a method label of letters, digits, '_', '-', '.', '+' (no folders)."""
    if not method or not all(c.isalnum() or c in "_-.+" for c in method) or method.startswith("."):
        raise ValueError(f"method label {method!r}: use letters, digits, '_', '-', '.', '+' only")
    return f"{method}.h5"


# ----------------------------------------------------------------------------------------------
# Validation (shared by the in-memory class, the writer and the reader)


def _check_names(names: Sequence[str], source: str | Path) -> tuple[str, ...]:
    out = tuple(str(n) for n in names)
    keys = [name_key(n) for n in out]
    seen: set[str] = set()
    for k in keys:
        if k in seen:
            raise DataError(source, "names", f"two images share the name {k!r}")
        seen.add(k)
    if any(not k for k in keys):
        raise DataError(source, "names", "empty image name")
    return out


def check_landmarks(
    arr: np.ndarray, n: int, source: str | Path, field_name: str = "landmarks"
) -> np.ndarray:
    """(n, 68, 3) float32 with finite x, y; z finite everywhere or NaN everywhere (2D-only)."""
    a = np.asarray(arr, dtype=np.float32)
    if a.shape != (n, N_LANDMARKS, 3):
        raise DataError(
            source, field_name, f"expected shape ({n}, {N_LANDMARKS}, 3), got {a.shape}"
        )
    _check_finite_xy(a, source, field_name)
    z = a[..., 2]
    if not (np.all(np.isfinite(z)) or np.all(np.isnan(z))):
        raise DataError(
            source, field_name, "z must be finite for every point or NaN for every point (2D-only)"
        )
    return a


def check_dense(
    arr: np.ndarray,
    n: int,
    source: str | Path,
    k: int | None = None,
    field_name: str = "dense",
    first_row: int = 0,
) -> np.ndarray:
    """(n, K, 3) float32, all finite (K = ``k`` when given)."""
    a = np.asarray(arr, dtype=np.float32)
    if a.ndim != 3 or a.shape[0] != n or a.shape[2] != 3 or (k is not None and a.shape[1] != k):
        want = f"({n}, {'K' if k is None else k}, 3)"
        raise DataError(source, field_name, f"expected shape {want}, got {a.shape}")
    if a.shape[1] == 0:
        raise DataError(source, field_name, "no dense points")
    bad = ~np.isfinite(a).all(axis=(1, 2))
    if bad.any():
        raise DataError(
            source, field_name, f"non-finite values in image row {first_row + int(np.argmax(bad))}"
        )
    return a


def _check_finite_xy(a: np.ndarray, source: str | Path, field_name: str) -> None:
    bad = ~np.isfinite(a[..., :2]).all(axis=(1, 2))
    if bad.any():
        raise DataError(source, field_name, f"non-finite x or y in image row {int(np.argmax(bad))}")


def _check_runtime(runtime_s: np.ndarray | None, n: int, source: str | Path) -> np.ndarray:
    if runtime_s is None:
        return np.full(n, np.nan)
    r = np.asarray(runtime_s, dtype=np.float64)
    if r.shape != (n,):
        raise DataError(source, "runtime_s", f"expected shape ({n},), got {r.shape}")
    if np.any(r[np.isfinite(r)] < 0) or np.any(np.isinf(r)):
        raise DataError(source, "runtime_s", "seconds per image must be >= 0 (NaN = unknown)")
    return r


def _rows_of(rows: np.ndarray | slice, n: int) -> np.ndarray | slice:
    if isinstance(rows, slice):
        return rows
    r = np.asarray(rows, dtype=np.int64)
    if r.size and (r.min() < 0 or r.max() >= n):
        raise IndexError(f"rows outside [0, {n})")
    return r


# ----------------------------------------------------------------------------------------------
# The interface the evaluation reads


class PredictionSet(Protocol):
    """What :mod:`eval.evaluate` needs of a method's predictions (memory or file)."""

    method: str
    names: tuple[str, ...]
    source: str

    @property
    def has_landmarks(self) -> bool: ...

    @property
    def has_landmarks_z(self) -> bool: ...

    @property
    def dense_count(self) -> int | None: ...

    @property
    def runtime_s(self) -> np.ndarray: ...

    def landmarks_rows(self, rows: np.ndarray | slice) -> np.ndarray: ...

    def dense_rows(self, rows: np.ndarray | slice) -> np.ndarray: ...


class _LandmarkRows:
    """What the in-memory and the file predictions share: ``names``, ``landmarks`` (N, 68, 3) or
    None, ``method`` and ``source`` attributes give the length and the landmark rows."""

    names: tuple[str, ...]
    landmarks: np.ndarray | None
    method: str
    source: str

    def __len__(self) -> int:
        return len(self.names)

    @property
    def has_landmarks(self) -> bool:
        return self.landmarks is not None

    @property
    def has_landmarks_z(self) -> bool:
        return self.landmarks is not None and bool(np.isfinite(self.landmarks[..., 2]).all())

    def landmarks_rows(self, rows: np.ndarray | slice) -> np.ndarray:
        """(B, 68, 3) float32 rows of ``landmarks`` (ValueError when the method has none)."""
        if self.landmarks is None:
            raise ValueError(f"{self.source}: method {self.method!r} has no landmarks")
        return self.landmarks[_rows_of(rows, len(self))]


@dataclass(frozen=True, eq=False)
class Predictions(_LandmarkRows):
    """A method's predictions held in memory (see the module docstring for units and shapes).

    ``names`` (N,); ``landmarks`` (N, 68, 3) or None; ``dense`` (N, K, 3) or None; ``runtime_s``
    (N,) seconds per image or None (unknown); ``meta`` free-form strings; ``source`` the file(s)
    they came from (for messages); ``pose`` (N, 3) the method's own head pose (pitch, yaw, roll)
    in degrees, 300W-LP's convention (NaN rows: none), or None (:mod:`eval.pose`).
    """

    method: str
    names: tuple[str, ...]
    landmarks: np.ndarray | None = None
    dense: np.ndarray | None = None
    runtime: np.ndarray | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    source: str = _MEM
    pose: np.ndarray | None = None

    def __post_init__(self) -> None:
        names = _check_names(self.names, self.source)
        if self.pose is not None:
            pose = np.asarray(self.pose, dtype=np.float64)
            if pose.shape != (len(names), 3):
                raise DataError(
                    self.source, "pose", f"expected ({len(names)}, 3), got {pose.shape}"
                )
            object.__setattr__(self, "pose", pose)
        n = len(names)
        if self.landmarks is None and self.dense is None:
            raise DataError(
                self.source,
                "landmarks",
                f"method {self.method!r}: neither landmarks nor dense points",
            )
        object.__setattr__(self, "names", names)
        if self.landmarks is not None:
            object.__setattr__(self, "landmarks", check_landmarks(self.landmarks, n, self.source))
        if self.dense is not None:
            object.__setattr__(self, "dense", check_dense(self.dense, n, self.source))
        object.__setattr__(self, "runtime", _check_runtime(self.runtime, n, self.source))
        object.__setattr__(self, "meta", {str(k): str(v) for k, v in self.meta.items()})

    @property
    def dense_count(self) -> int | None:
        return None if self.dense is None else int(self.dense.shape[1])

    @property
    def runtime_s(self) -> np.ndarray:
        return self.runtime  # type: ignore[return-value]

    def dense_rows(self, rows: np.ndarray | slice) -> np.ndarray:
        if self.dense is None:
            raise ValueError(f"method {self.method!r} has no dense points")
        return self.dense[_rows_of(rows, len(self))]


# ----------------------------------------------------------------------------------------------
# Writing


def _blosc() -> dict:
    return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE))


class PredictionsWriter:
    """Stream a method's predictions into a predictions file, batch by batch (a context manager).

    ``n`` images named ``names``; ``dense_count`` K (None: no dense points); ``landmarks``: whether
    landmarks are written. Call :meth:`write` for consecutive row ranges; the file appears under
    its final name only when the block exits normally with every row written.
    """

    def __init__(
        self,
        path: str | Path,
        method: str,
        names: Sequence[str],
        dense_count: int | None,
        landmarks: bool = True,
        meta: Mapping[str, str] | None = None,
    ):
        self.path = Path(path)
        self.method = method
        self.names = _check_names(names, self.path)
        self.n = len(self.names)
        self.dense_count = dense_count
        self.with_landmarks = landmarks
        if not landmarks and dense_count is None:
            raise DataError(self.path, "landmarks", "neither landmarks nor dense points to write")
        self.meta = {str(k): str(v) for k, v in (meta or {}).items()}
        self._tmp = unique_tmp_name(self.path)
        self._f: h5py.File | None = None
        self._written = np.zeros(self.n, dtype=bool)

    def __enter__(self) -> PredictionsWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = h5py.File(self._tmp, "w")
        self._f = f
        f.create_dataset(
            "names", data=np.array(self.names, dtype=object), dtype=h5py.string_dtype()
        )
        if self.with_landmarks:
            f.create_dataset("landmarks", shape=(self.n, N_LANDMARKS, 3), dtype=np.float32)
        if self.dense_count is not None:
            k = int(self.dense_count)
            f.create_dataset(
                "dense",
                shape=(self.n, k, 3),
                dtype=np.float32,
                chunks=(1, k, 3) if self.n else None,
                **(_blosc() if self.n else {}),
            )
        f.create_dataset("runtime_s", data=np.full(self.n, np.nan))
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["kind"] = _KIND
        f.attrs["method"] = self.method
        f.attrs["coordinates"] = COORDINATES
        grp = f.create_group("meta")
        for key, value in self.meta.items():
            grp.attrs[key] = value
        return self

    def write(
        self,
        start: int,
        landmarks: np.ndarray | None = None,
        dense: np.ndarray | None = None,
        runtime_s: np.ndarray | float | None = None,
    ) -> None:
        """Rows ``start .. start+B`` (B from whichever array is given); arrays as in the module
        doc."""
        if self._f is None:
            raise RuntimeError("use PredictionsWriter as a context manager")
        b = len(landmarks) if landmarks is not None else (len(dense) if dense is not None else None)
        if b is None:
            raise ValueError("nothing to write")
        stop = start + b
        if not 0 <= start <= stop <= self.n:
            raise IndexError(f"rows {start}..{stop} outside [0, {self.n})")
        if self.with_landmarks:
            if landmarks is None:
                raise DataError(self.path, "landmarks", "landmarks required for every batch")
            self._f["landmarks"][start:stop] = check_landmarks(landmarks, b, self.path)
        if self.dense_count is not None:
            if dense is None:
                raise DataError(self.path, "dense", "dense points required for every batch")
            self._f["dense"][start:stop] = check_dense(
                dense, b, self.path, self.dense_count, first_row=start
            )
        if runtime_s is not None:
            r = np.broadcast_to(np.asarray(runtime_s, dtype=np.float64), (b,))
            self._f["runtime_s"][start:stop] = _check_runtime(np.array(r), b, self.path)
        self._written[start:stop] = True

    def __exit__(self, exc_type, exc, tb) -> None:
        f, self._f = self._f, None
        try:
            if f is not None:
                f.close()
            if exc_type is None:
                if not self._written.all():
                    raise DataError(
                        self.path,
                        "names",
                        f"{int((~self._written).sum())} of {self.n} rows never written",
                    )
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()


def write_predictions(path: str | Path, preds: Predictions) -> Path:
    """Write an in-memory :class:`Predictions` as a predictions file (atomic)."""
    with PredictionsWriter(
        path,
        preds.method,
        preds.names,
        preds.dense_count,
        landmarks=preds.has_landmarks,
        meta=preds.meta,
    ) as w:
        if len(preds):
            w.write(0, preds.landmarks, preds.dense, preds.runtime_s)
    return Path(path)


# ----------------------------------------------------------------------------------------------
# Reading


class PredictionsFile(_LandmarkRows, ClosesOnExit):
    """A predictions file opened read-only and validated; dense points are read on demand.

    A context manager. ``names``, ``landmarks`` (loaded, may be None), ``runtime_s``, ``meta`` and
    ``method`` are attributes; :meth:`dense_rows` reads (and checks) rows of ``dense``;
    :meth:`load` gives an in-memory :class:`Predictions`.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.source = str(self.path)
        if not self.path.is_file():
            raise DataError(self.path, None, "predictions file not found")
        self._f = open_h5(self.path)
        try:
            self._validate()
        except BaseException:
            self._f.close()
            raise

    def _validate(self) -> None:
        f, p = self._f, self.path
        for key in ("format_version", "kind", "method"):
            if key not in f.attrs:
                raise DataError(p, key, "missing attribute (not a predictions file?)")
        if _str(f.attrs["kind"]) != _KIND:
            raise DataError(p, "kind", f"expected {_KIND!r}, got {_str(f.attrs['kind'])!r}")
        if int(f.attrs["format_version"]) != FORMAT_VERSION:
            raise DataError(p, "format_version", f"unsupported version {f.attrs['format_version']}")
        self.method = _str(f.attrs["method"])
        if "names" not in f:
            raise DataError(p, "names", "missing dataset")
        self.names = _check_names(f["names"].asstr()[...], p)
        n = len(self.names)
        self.landmarks = check_landmarks(f["landmarks"][...], n, p) if "landmarks" in f else None
        if "dense" in f:
            d = f["dense"]
            if d.ndim != 3 or d.shape[0] != n or d.shape[2] != 3 or d.shape[1] == 0:
                raise DataError(p, "dense", f"expected shape ({n}, K, 3), got {d.shape}")
        if self.landmarks is None and "dense" not in f:
            raise DataError(p, "landmarks", "neither landmarks nor dense points")
        if "runtime_s" not in f:
            raise DataError(p, "runtime_s", "missing dataset")
        self._runtime = _check_runtime(f["runtime_s"][...], n, p)
        self.meta = {k: _str(v) for k, v in f["meta"].attrs.items()} if "meta" in f else {}

    def close(self) -> None:
        self._f.close()

    @property
    def dense_count(self) -> int | None:
        return int(self._f["dense"].shape[1]) if "dense" in self._f else None

    @property
    def runtime_s(self) -> np.ndarray:
        return self._runtime

    def dense_rows(self, rows: np.ndarray | slice) -> np.ndarray:
        """(B, K, 3) float32 rows of ``dense`` (any order, repeats allowed); non-finite ->
        DataError."""
        if "dense" not in self._f:
            raise ValueError(f"{self.path}: no dense points")
        d = self._f["dense"]
        r = _rows_of(rows, len(self))
        if isinstance(r, slice):
            out, first = d[r], r.start or 0
        else:
            uniq, inv = np.unique(r, return_inverse=True)
            if uniq.size and uniq[-1] - uniq[0] + 1 == uniq.size:  # a contiguous block: one slice
                block = d[int(uniq[0]) : int(uniq[-1]) + 1]
            else:
                block = d[uniq] if uniq.size else np.zeros((0, *d.shape[1:]), np.float32)
            out, first = block[inv.ravel()], 0
        return check_dense(out, len(out), self.path, first_row=first)

    def load(self) -> Predictions:
        """Everything in memory as a :class:`Predictions`."""
        dense = self.dense_rows(slice(None)) if self.dense_count is not None else None
        return Predictions(
            self.method, self.names, self.landmarks, dense, self._runtime, self.meta, self.source
        )


def read_predictions(path: str | Path) -> Predictions:
    """Read a whole predictions file into memory (validated)."""
    with PredictionsFile(path) as f:
        return f.load()


def _str(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
