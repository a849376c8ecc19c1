"""Low-level file helpers shared by the format modules.

Reading: :func:`load_mat` (MATLAB v5 via scipy), :func:`require_field` / :func:`require_index`
(checked field access), :func:`struct_fields` (a MATLAB struct as a dict), :func:`read_jpeg`,
and :class:`FieldSpec` tables for fixed-layout files (:func:`read_fields` / :func:`pack_fields`).
Writing: :func:`atomic_savemat` and :func:`atomic_save_jpeg` write through
:func:`uvgen.atomic.atomic_output`, so an interrupted writer never leaves a half-written file under
the final name. Every reading problem raises :class:`DataError` naming file and field.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

from uvgen.atomic import atomic_output
from uvgen.formats.errors import DataError, not_a_file_reason, warn_data


def load_mat(path: str | Path, mat_dtype: bool = True) -> dict:
    """All variables of a MATLAB v5 ``.mat`` file, as ``scipy.io.loadmat`` returns them.

    Arrays keep their stored MATLAB shape (no squeezing); structs are (1, 1) structured arrays.
    With ``mat_dtype=True`` (default) arrays come back in their MATLAB class (double -> float64,
    single -> float32, int16 -> int16, ...): MATLAB stores whole-number doubles compactly (real
    AFLW2000-3D ``image00516.mat`` holds an all-zero ``Exp_Para`` as uint8 data, BFM index fields
    are uint16 data of class double), which plain ``loadmat`` returns as the storage type.
    Raises DataError(path, None, ...) for a missing, truncated, corrupt or v7.3 (HDF5) file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, not_a_file_reason(path))
    try:
        return scipy.io.loadmat(path, appendmat=False, mat_dtype=mat_dtype)
    except NotImplementedError as exc:  # scipy raises this for v7.3 (HDF5) files
        raise DataError(path, None, f"unsupported MATLAB file version: {exc}") from exc
    except Exception as exc:  # scipy raises a zoo of types for truncated/corrupt data
        raise DataError(
            path, None, f"cannot read MATLAB file ({type(exc).__name__}: {exc})"
        ) from exc


def _shape_matches(actual: tuple[int, ...], expected: tuple[int | None, ...]) -> bool:
    return len(actual) == len(expected) and all(
        e is None or a == e for a, e in zip(actual, expected)
    )


def require_field(
    mat: Mapping[str, object],
    path: str | Path,
    name: str,
    shape: tuple[int | None, ...] | None,
    dtype_kind: str | None = None,
    finite: bool = True,
) -> np.ndarray:
    """``mat[name]`` as an ndarray, checked; DataError(path, name, ...) when it does not fit.

    Args:
        mat: variables of a loaded file (or :func:`struct_fields` of a struct).
        path: the file, for error messages.
        name: the field name.
        shape: the exact stored shape; ``None`` entries match any length, ``shape=None`` any shape.
        dtype_kind: allowed numpy dtype kinds, e.g. ``"f"`` (float) or ``"iu"`` (integer).
        finite: require every value to be finite (float/complex fields; a non-numeric field fails).
    """
    if name not in mat:
        raise DataError(path, name, "missing field")
    value = mat[name]
    if not isinstance(value, np.ndarray):
        raise DataError(path, name, f"expected an array, found {type(value).__name__}")
    if shape is not None and not _shape_matches(value.shape, tuple(shape)):
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise DataError(path, name, f"wrong shape {value.shape}, expected {want}")
    if dtype_kind is not None and value.dtype.kind not in dtype_kind:
        raise DataError(path, name, f"wrong dtype {value.dtype}, expected kind '{dtype_kind}'")
    if finite:
        kind = value.dtype.kind
        if kind in "fc":
            if not np.isfinite(value).all():
                bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
                raise DataError(path, name, f"{bad} non-finite value(s) (NaN or Inf)")
        elif kind not in "biu":
            raise DataError(path, name, f"expected a numeric array, found dtype {value.dtype}")
    return value


def require_index(
    mat: Mapping[str, object],
    path: str | Path,
    name: str,
    shape: tuple[int | None, ...] | None,
    n: int,
) -> np.ndarray:
    """A 1-based MATLAB index field as int64 **0-based** indices, checked to lie in ``[0, n)``.

    Integer storage of any width is accepted, and so is float storage holding whole numbers.
    """
    value = require_field(mat, path, name, shape, dtype_kind="iuf")
    if value.dtype.kind == "f" and not np.array_equal(value, np.round(value)):
        raise DataError(path, name, "indices are not whole numbers")
    index = value.astype(np.int64) - 1
    if index.size and (index.min() < 0 or index.max() >= n):
        raise DataError(
            path,
            name,
            f"1-based indices out of range [1, {n}]: found {index.min() + 1}..{index.max() + 1}",
        )
    return index


def struct_fields(mat: Mapping[str, object], path: str | Path, name: str) -> dict[str, np.ndarray]:
    """The fields of a (1, 1) MATLAB struct ``mat[name]``, keyed ``"name.field"`` for error
    messages."""
    if name not in mat:
        raise DataError(path, name, "missing struct")
    value = mat[name]
    if not isinstance(value, np.ndarray) or value.dtype.names is None or value.size != 1:
        raise DataError(path, name, "expected a 1x1 MATLAB struct")
    record = value.reshape(-1)[0]
    return {f"{name}.{field}": record[field] for field in value.dtype.names}


def read_jpeg(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (row 0 = top, column 0 = left); grayscale is promoted.

    Raises DataError(path, None, ...) for a missing file and DataError(path, 'image', ...) for one
    that cannot be decoded completely (corrupt or truncated).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, None, "missing image")
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img if img.mode == "RGB" else img.convert("RGB")
            array = np.asarray(rgb, dtype=np.uint8)
    except Exception as exc:
        raise DataError(
            path, "image", f"cannot decode image ({type(exc).__name__}: {exc})"
        ) from exc
    return array


MAT_HEADER_BYTES = 116
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, written by uvgen"


def atomic_savemat(path: str | Path, variables: Mapping[str, object]) -> None:
    """Write a MATLAB v5 file (uncompressed) atomically; dicts become MATLAB structs.

    Arrays are written at the shape they have (pass 2-D arrays to control MATLAB's shape).
    """
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, dict(variables), do_compression=False, oned_as="column")
    data = bytearray(buffer.getvalue())
    # scipy stamps the creation time into the 116-byte text header; a fixed header makes the
    # bytes a function of the content alone (reruns must not change DVC's hashes).
    data[:MAT_HEADER_BYTES] = MAT_HEADER.ljust(MAT_HEADER_BYTES, b" ")
    with atomic_output(path) as handle:
        handle.write(bytes(data))


def atomic_save_jpeg(path: str | Path, image: np.ndarray, quality: int = 95) -> None:
    """Write an (H, W, 3) uint8 RGB image as JPEG (Pillow, given quality) atomically."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    with atomic_output(path) as handle:
        Image.fromarray(image).save(handle, format="JPEG", quality=quality)


@dataclass(frozen=True)
class FieldSpec:
    """One numeric field of a fixed-layout ``.mat`` file.

    ``disk`` is the MATLAB variable name, ``attr`` the Python attribute, ``shape``/``dtype`` the
    exact stored shape and dtype (what writers produce), ``kind`` the dtype kinds readers accept.
    In memory, fields with ``vector=True`` are flattened to 1-D; others keep the stored shape.
    Floats are float64 in memory, integers int64.

    ``required=False`` marks a field the pipeline does not use: readers accept an unusual variant
    of it (missing, another shape, non-finite values) with a :class:`DataWarning` instead of
    rejecting the sample (see :func:`read_fields`). Writers always write the exact layout.
    """

    disk: str
    attr: str
    shape: tuple[int, ...]
    dtype: np.dtype
    kind: str
    vector: bool = True
    required: bool = True

    @property
    def memory_shape(self) -> tuple[int, ...]:
        return (int(np.prod(self.shape)),) if self.vector else self.shape

    def memory_dtype(self) -> type:
        return np.int64 if np.dtype(self.dtype).kind in "iu" else np.float64


def read_fields(
    mat: Mapping[str, object], path: str | Path, specs: Iterable[FieldSpec]
) -> dict[str, np.ndarray | None]:
    """Every spec'd field of a loaded file, checked (exact shape, kind, finite) and converted to
    its in-memory form, keyed by ``attr``. Arrays are returned read-only.

    A required field that does not fit raises DataError (the sample cannot be used). An optional
    one (``required=False``) that does not fit gives a :class:`DataWarning` naming file, field and
    variant, and is kept as stored (numbers as float64 / int64, vectors flattened) or, when
    missing or not numeric, ``None``.
    """
    out: dict[str, np.ndarray | None] = {}
    for spec in specs:
        try:
            value = require_field(mat, path, spec.disk, spec.shape, spec.kind)
        except DataError as err:
            if spec.required:
                raise
            out[spec.attr] = _optional_as_stored(mat, path, spec, err.reason)
            continue
        array = np.array(value, dtype=spec.memory_dtype()).reshape(spec.memory_shape)
        array.setflags(write=False)
        out[spec.attr] = array
    return out


def _optional_as_stored(
    mat: Mapping[str, object], path: str | Path, spec: FieldSpec, reason: str
) -> np.ndarray | None:
    """An optional field that failed its check: warn, then keep it as stored when it is numeric."""
    value = mat.get(spec.disk)
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        warn_data(
            path, spec.disk, f"{reason}; kept as stored (the pipeline does not use this field)"
        )
        dtype = np.float64 if value.dtype.kind == "f" else spec.memory_dtype()  # NaN stays NaN
        array = np.array(value, dtype=dtype)
        array = array.reshape(-1) if spec.vector else array
        array.setflags(write=False)
        return array
    warn_data(path, spec.disk, f"{reason}; left out (the pipeline does not use this field)")
    return None


def pack_fields(values: Mapping[str, object], specs: Iterable[FieldSpec]) -> dict[str, np.ndarray]:
    """In-memory values (keyed by ``attr``) as the arrays a writer stores (keyed by ``disk``).

    Vectors may be given in any shape with the right number of elements; matrices must have the
    stored shape. Values must be finite and, for integer fields, whole numbers in the dtype's range.
    Raises ValueError (a programming error, not bad input data) otherwise.
    """
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        if spec.attr not in values:
            raise ValueError(f"missing value for {spec.attr} ({spec.disk})")
        value = np.asarray(values[spec.attr])
        if value.dtype.kind not in "biuf":
            raise ValueError(f"{spec.attr}: expected numbers, got dtype {value.dtype}")
        if spec.vector:
            if value.size != int(np.prod(spec.shape)):
                size = int(np.prod(spec.shape))
                raise ValueError(f"{spec.attr}: expected {size} values, got shape {value.shape}")
        elif value.shape != spec.shape:
            raise ValueError(f"{spec.attr}: expected shape {spec.shape}, got {value.shape}")
        if not np.isfinite(value).all():
            raise ValueError(f"{spec.attr}: non-finite values")
        dtype = np.dtype(spec.dtype)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            whole = np.array_equal(value, np.round(value))
            if not whole or value.min() < info.min or value.max() > info.max:
                raise ValueError(f"{spec.attr}: values must be whole numbers within {dtype} range")
        out[spec.disk] = value.astype(dtype).reshape(spec.shape)
    return out
