"""Readers of other methods' prediction files (:mod:`eval.external`): arrays (``.npy`` with a
names file, ``.npz``) and folders of per-image files, each giving image names and arrays in
original-image pixels; bad files raise :class:`~uvgen.formats.errors.DataError` naming the file
and the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io

from eval.predictions import N_LANDMARKS
from uvgen.formats.errors import DataError

# ----------------------------------------------------------------------------------------------
# Small readers


def load_npy(path: Path, field: str | None = None) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(path, field, "file not found") from exc
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(path, field, f"unreadable .npy: {exc}") from exc


def load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError as exc:
        raise DataError(path, None, "file not found") from exc
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(path, None, f"unreadable .npz: {exc}") from exc


def read_names(path: str | Path) -> list[str]:
    """Image names, one per line (blank lines ignored)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise DataError(path, "names", "file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, "names", f"unreadable: {exc}") from exc
    names = [ln.strip() for ln in lines if ln.strip()]
    if not names:
        raise DataError(path, "names", "no names")
    return names


def array_and_names(
    path: Path, keys: Sequence[str], names_path: Path | None
) -> tuple[np.ndarray, list[str], str]:
    """The data array (first of ``keys`` in an npz, or the .npy) and its names."""
    if not path.exists():
        raise DataError(path, None, "file not found")
    if path.suffix.lower() == ".npz":
        z = load_npz(path)
        key = next((k for k in keys if k in z), None)
        if key is None:
            raise DataError(path, keys[0], f"missing array (have {sorted(z)})")
        arr = z[key]
        if "names" in z:
            names = [str(n) for n in np.asarray(z["names"]).ravel()]
        elif names_path is not None:
            names = read_names(names_path)
        else:
            raise DataError(
                path, "names", "no image names: store 'names' in the npz or give a names file"
            )
        return arr, names, key
    if path.suffix.lower() == ".npy":
        arr = load_npy(path, keys[0])
        if names_path is None:
            raise DataError(
                path, "names", "a .npy array needs a names file (one image name per line)"
            )
        return arr, read_names(names_path), keys[0]
    raise DataError(
        path, None, "expected a .npy or .npz array file, or a folder of per-image files"
    )


def check_count(path: Path, field: str, arr: np.ndarray, names: Sequence[str]) -> None:
    if arr.shape[0] != len(names):
        raise DataError(path, field, f"{arr.shape[0]} rows but {len(names)} names")


def _as_landmarks(arr: np.ndarray, path: Path, field: str) -> np.ndarray:
    """(N, 68, D) or (N, D, 68), D in {2, 3} -> (N, 68, 3) float32, z = NaN when D = 2."""
    a = np.asarray(arr)
    if a.ndim != 3 or not np.issubdtype(a.dtype, np.number):
        raise DataError(
            path,
            field,
            f"expected a numeric (N, 68, 2|3) or (N, 2|3, 68) array, got {a.shape} {a.dtype}",
        )
    if a.shape[1] == N_LANDMARKS and a.shape[2] in (2, 3):
        pts = a
    elif a.shape[2] == N_LANDMARKS and a.shape[1] in (2, 3):
        pts = a.transpose(0, 2, 1)
    else:
        raise DataError(path, field, f"expected (N, 68, 2|3) or (N, 2|3, 68), got {a.shape}")
    out = np.full((len(a), N_LANDMARKS, 3), np.nan, np.float32)
    out[..., : pts.shape[2]] = pts
    return finite_rows(out, path, field, xy_only=pts.shape[2] == 2)


def _as_dense(arr: np.ndarray, path: Path, field: str) -> np.ndarray:
    """(N, 3, n) or (N, n, 3) -> (N, n, 3) float32."""
    a = np.asarray(arr)
    if a.ndim != 3 or not np.issubdtype(a.dtype, np.number) or 3 not in a.shape[1:]:
        raise DataError(
            path, field, f"expected a numeric (N, 3, n) or (N, n, 3) array, got {a.shape} {a.dtype}"
        )
    pts = a.transpose(0, 2, 1) if a.shape[1] == 3 else a
    return finite_rows(np.asarray(pts, dtype=np.float32), path, field)


def finite_rows(a: np.ndarray, path: Path, field: str, xy_only: bool = False) -> np.ndarray:
    vals = a[..., :2] if xy_only else a
    bad = ~np.isfinite(vals).all(axis=(1, 2))
    if bad.any():
        raise DataError(path, field, f"non-finite values in row {int(np.argmax(bad))}")
    return a


def _per_image_files(folder: Path, suffix: str, strip: str = "") -> list[tuple[str, Path]]:
    if not folder.is_dir():
        raise DataError(folder, None, "folder not found")
    out = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() == suffix:
            stem = p.stem
            if strip and stem.endswith(strip) and len(stem) > len(strip):
                stem = stem[: -len(strip)]
            out.append((stem, p))
    if not out:
        raise DataError(folder, None, f"no *{suffix} files")
    return out


# ----------------------------------------------------------------------------------------------
# Landmarks and dense readers


def read_landmarks(
    path: str | Path, names_path: str | Path | None = None
) -> tuple[list[str], np.ndarray]:
    """68 points per image from an array file or a folder of text files -> (names, (N, 68, 3)).

    z is NaN for every point when the source has only (x, y)."""
    path = Path(path)
    if path.is_dir():
        names, rows, ncols = [], [], set()
        for name, p in _per_image_files(path, ".txt", strip="_kpt"):
            try:
                a = np.loadtxt(p, dtype=np.float64, ndmin=2)
            except (ValueError, OSError) as exc:
                raise DataError(p, "landmarks", f"unreadable text table: {exc}") from exc
            pts = _as_landmarks(a[None], p, "landmarks")
            ncols.add(int(np.isfinite(pts[0, :, 2]).all()))
            names.append(name)
            rows.append(pts[0])
        if len(ncols) > 1:
            raise DataError(path, "landmarks", "some files have 3 columns and some 2")
        return names, np.stack(rows)
    arr, names, key = array_and_names(
        path, ("landmarks", "pts68", "kpt"), optional_path(names_path)
    )
    check_count(path, key, arr, names)
    return names, _as_landmarks(arr, path, key)


def read_dense(
    path: str | Path, names_path: str | Path | None = None
) -> tuple[list[str], np.ndarray]:
    """Dense vertices per image from an array file or a folder of ``.mat`` files with ``vertex``
    -> (names, (N, n, 3) float32)."""
    path = Path(path)
    if path.is_dir():
        names, rows = [], []
        for name, p in _per_image_files(path, ".mat"):
            try:
                mat = scipy.io.loadmat(p)
            except (ValueError, OSError, NotImplementedError, TypeError) as exc:
                raise DataError(p, None, f"unreadable .mat file: {exc}") from exc
            if "vertex" not in mat:
                raise DataError(p, "vertex", "missing field")
            v = np.asarray(mat["vertex"])
            if v.ndim != 2:
                raise DataError(p, "vertex", f"expected (3, n) or (n, 3), got {v.shape}")
            rows.append(_as_dense(v[None], p, "vertex")[0])
            names.append(name)
        counts = {len(r) for r in rows}
        if len(counts) > 1:
            raise DataError(path, "vertex", f"files differ in vertex count: {sorted(counts)}")
        return names, np.stack(rows)
    arr, names, key = array_and_names(
        path, ("dense", "vertex", "vertices"), optional_path(names_path)
    )
    check_count(path, key, arr, names)
    return names, _as_dense(arr, path, key)


def optional_path(p: str | Path | None) -> Path | None:
    return None if p is None else Path(p)
