"""Other methods' predictions read from files, as extra rows and curves of the evaluation.

Every reader returns image names and arrays in original-image pixels (x right, y down, z depth);
:func:`load_external` turns an :class:`ExternalSpec` into a :class:`eval.predictions.Predictions`,
which :func:`eval.evaluate.evaluate` matches to the test images by name
(:func:`eval.predictions.name_key`: folders and .mat/.jpg/.png/.txt/.npy extensions ignored).
Missing and extra images are reported there, never dropped silently. Bad files raise
:class:`~uvgen.formats.errors.DataError` naming the file and the field.

Accepted inputs (``ExternalSpec`` fields; at least one of landmarks, dense, params):

* ``landmarks``: 68 points per image, either
    - an array file: ``.npy`` (N, 68, D) or (N, D, 68) with D = 2 or 3, image names from ``names``
      (a text file, one name per line, in array order); or ``.npz`` with ``landmarks`` (same
      shapes) and ``names``;
    - a folder of per-image text files ``<name>.txt`` (or PRNet's ``<name>_kpt.txt``), each a
      68 x D (or D x 68) table that ``numpy.loadtxt`` reads.
  D = 2 (no depth): the 3D metrics of the method are left undefined.
* ``dense``: dense vertices per image, either
    - an array file: ``.npy`` (N, 3, n) or (N, n, 3) with ``names``; or ``.npz`` with ``dense``
      (or ``vertex``) and ``names``;
    - a folder of per-image ``<name>.mat`` files with a ``vertex`` field (3, n) or (n, 3).
  n = K (the test file's ``uv/face_ind`` count): taken as the face vertices in face_ind order.
  Otherwise n must be the vertex count of a morphable model given by ``topology`` (a face3d-layout
  folder: BFM.mat, BFM_UV.mat, BFM_info.mat): the vertices are then drawn into the UV map exactly
  as the ground truth is (``uvgen.masks.uv_rasterization``) and sampled at face_ind.
* ``params``: 3DDFA-style 62-number parameters, ``.npy`` (N, 62) with ``names`` or ``.npz`` with
  ``params``, ``names`` and optionally ``roi_boxes``; decoded with the ``basis`` file
  (:func:`load_basis`) and the crop boxes (``roi_boxes``: a (N, 4) ``.npy`` in the same order, or
  inside the params npz). They give the 68 points (the basis's ``kpt_ind``) and, when the basis
  carries ``uv`` and ``tri`` (or ``topology`` matches its vertex count), the dense face vertices.

When several sources are given they must name the same images (in any order).

Basis file (``.npz``, 3DDFA's layout; vertex arrays interleave x1, y1, z1, x2, ...):

* ``u`` (3n, 1): mean shape (+ mean expression); ``w_shp`` (3n, 40); ``w_exp`` (3n, 10);
* ``param_mean``, ``param_std`` (62,): the whitening of the parameters;
* ``kpt_ind`` (68,): 0-based vertex index of each landmark;
* optional: ``crop_size`` (scalar, default 120), ``flip_y`` (bool, default True), ``uv`` (n, 2) UV
  coordinates in [0, 1] and ``tri`` (M, 3) 0-based triangles (for the dense correspondence).

Decoding (3DDFA's ``reconstruct_vertex`` and ``_predict_vertices``): ``p = params * std + mean``;
``P = p[:12].reshape(3, 4)`` (row-major: s*R | t); ``alpha_shp = p[12:52]``, ``alpha_exp =
p[52:62]``; model vertices ``V = (u + w_shp @ alpha_shp + w_exp @ alpha_exp)`` as (n, 3);
crop-space points ``X = V @ P[:, :3].T + P[:, 3]``; with ``flip_y``, ``y = crop_size + 1 - y``; then
with the crop box (sx, sy, ex, ey) in original-image pixels: ``x = x * (ex - sx) / crop_size + sx``,
``y = y * (ey - sy) / crop_size + sy``, ``z = z * (sx_scale + sy_scale) / 2``. Without crop boxes
the crop IS the image (scale 1, offset 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import scipy.io
from scipy import sparse

from eval.predictions import N_LANDMARKS, Predictions, name_key
from uvgen.formats.errors import DataError

N_PARAMS = 62
N_SHP, N_EXP = 40, 10
DEFAULT_CROP_SIZE = 120.0


# ----------------------------------------------------------------------------------------------
# Spec


@dataclass(frozen=True)
class ExternalSpec:
    """One external method: its label and files (see the module docstring). Paths may be None."""

    name: str
    landmarks: Path | None = None
    dense: Path | None = None
    params: Path | None = None
    basis: Path | None = None
    roi_boxes: Path | None = None
    names: Path | None = None
    topology: Path | None = None
    runtime_ms: float | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("external method: 'name' is required")
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name not in ("name", "runtime_ms") and v is not None and not isinstance(v, Path):
                object.__setattr__(self, f.name, Path(v))
        if self.landmarks is None and self.dense is None and self.params is None:
            raise ValueError(f"external method {self.name!r}: give landmarks, dense or params")
        if self.params is not None and self.basis is None:
            raise ValueError(f"external method {self.name!r}: params need a basis file")

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> ExternalSpec:
        """From a params.yaml mapping; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(
                f"external method: unknown key(s) {sorted(unknown)} (known: {sorted(known)})"
            )
        return cls(**dict(d))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------
# Small readers


def _load_npy(path: Path, field: str | None = None) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError as exc:
        raise DataError(path, field, "file not found") from exc
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(path, field, f"unreadable .npy: {exc}") from exc


def _load_npz(path: Path) -> dict[str, np.ndarray]:
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


def _array_and_names(
    path: Path, keys: Sequence[str], names_path: Path | None
) -> tuple[np.ndarray, list[str], str]:
    """The data array (first of ``keys`` in an npz, or the .npy) and its names."""
    if not path.exists():
        raise DataError(path, None, "file not found")
    if path.suffix.lower() == ".npz":
        z = _load_npz(path)
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
        arr = _load_npy(path, keys[0])
        if names_path is None:
            raise DataError(
                path, "names", "a .npy array needs a names file (one image name per line)"
            )
        return arr, read_names(names_path), keys[0]
    raise DataError(
        path, None, "expected a .npy or .npz array file, or a folder of per-image files"
    )


def _check_count(path: Path, field: str, arr: np.ndarray, names: Sequence[str]) -> None:
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
    return _finite_rows(out, path, field, xy_only=pts.shape[2] == 2)


def _as_dense(arr: np.ndarray, path: Path, field: str) -> np.ndarray:
    """(N, 3, n) or (N, n, 3) -> (N, n, 3) float32."""
    a = np.asarray(arr)
    if a.ndim != 3 or not np.issubdtype(a.dtype, np.number) or 3 not in a.shape[1:]:
        raise DataError(
            path, field, f"expected a numeric (N, 3, n) or (N, n, 3) array, got {a.shape} {a.dtype}"
        )
    pts = a.transpose(0, 2, 1) if a.shape[1] == 3 else a
    return _finite_rows(np.asarray(pts, dtype=np.float32), path, field)


def _finite_rows(a: np.ndarray, path: Path, field: str, xy_only: bool = False) -> np.ndarray:
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
    arr, names, key = _array_and_names(path, ("landmarks", "pts68", "kpt"), _opt(names_path))
    _check_count(path, key, arr, names)
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
    arr, names, key = _array_and_names(path, ("dense", "vertex", "vertices"), _opt(names_path))
    _check_count(path, key, arr, names)
    return names, _as_dense(arr, path, key)


def _opt(p: str | Path | None) -> Path | None:
    return None if p is None else Path(p)


# ----------------------------------------------------------------------------------------------
# 3DDFA-style parameters


@dataclass(frozen=True, eq=False)
class Basis:
    """A 3DDFA-style linear basis (see the module docstring); arrays as stored, checked."""

    u: np.ndarray  # (3n,) float64
    w_shp: np.ndarray  # (3n, 40)
    w_exp: np.ndarray  # (3n, 10)
    param_mean: np.ndarray  # (62,)
    param_std: np.ndarray  # (62,)
    kpt_ind: np.ndarray  # (68,) int64, 0-based
    crop_size: float = DEFAULT_CROP_SIZE
    flip_y: bool = True
    uv_coords: np.ndarray | None = None  # (n, 2) per-vertex UV coordinates in [0, 1] (npz key 'uv')
    tri: np.ndarray | None = None  # (M, 3) 0-based

    @property
    def n_vertices(self) -> int:
        return self.u.size // 3


def load_basis(path: str | Path) -> Basis:
    """Read and check a basis ``.npz`` (keys in the module docstring)."""
    path = Path(path)
    z = _load_npz(path)

    def need(key: str, shape: tuple[int | None, ...]) -> np.ndarray:
        if key not in z:
            raise DataError(path, key, "missing array")
        a = np.asarray(z[key])
        if a.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape)):
            raise DataError(
                path,
                key,
                f"expected shape {tuple('n' if s is None else s for s in shape)}, got {a.shape}",
            )
        if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
            raise DataError(path, key, "must be finite numbers")
        return a

    u = need("u", (None, 1)) if np.ndim(z.get("u")) == 2 else need("u", (None,))
    n3 = u.shape[0]
    if n3 % 3 or n3 == 0:
        raise DataError(path, "u", f"length {n3} is not a positive multiple of 3")
    w_shp = need("w_shp", (n3, N_SHP)).astype(np.float64)
    w_exp = need("w_exp", (n3, N_EXP)).astype(np.float64)
    mean = (
        need("param_mean", (N_PARAMS,)).astype(np.float64)
        if np.ndim(z.get("param_mean")) == 1
        else need("param_mean", (1, N_PARAMS)).astype(np.float64).ravel()
    )
    std = (
        need("param_std", (N_PARAMS,)).astype(np.float64)
        if np.ndim(z.get("param_std")) == 1
        else need("param_std", (1, N_PARAMS)).astype(np.float64).ravel()
    )
    kpt = need("kpt_ind", (N_LANDMARKS,))
    if not np.issubdtype(kpt.dtype, np.integer) or kpt.min() < 0 or kpt.max() >= n3 // 3:
        raise DataError(
            path, "kpt_ind", f"expected 0-based integer vertex indices in [0, {n3 // 3})"
        )
    crop = float(z["crop_size"]) if "crop_size" in z else DEFAULT_CROP_SIZE
    if not (np.isfinite(crop) and crop > 0):
        raise DataError(path, "crop_size", f"must be > 0, got {crop}")
    flip = bool(z["flip_y"]) if "flip_y" in z else True
    uv_coords = tri = None
    if ("uv" in z) != ("tri" in z):
        raise DataError(path, "uv" if "uv" not in z else "tri", "uv and tri go together")
    if "uv" in z:
        uv_coords = need("uv", (n3 // 3, 2)).astype(np.float64)
        tri = need("tri", (None, 3))
        if not np.issubdtype(tri.dtype, np.integer) or tri.min() < 0 or tri.max() >= n3 // 3:
            raise DataError(path, "tri", "expected 0-based integer vertex indices")
        tri = tri.astype(np.int64)
    return Basis(
        u.astype(np.float64).ravel(),
        w_shp,
        w_exp,
        mean,
        std,
        kpt.astype(np.int64),
        crop,
        flip,
        uv_coords,
        tri,
    )


def decode_params(
    params: np.ndarray,
    basis: Basis,
    roi_boxes: np.ndarray | None = None,
    vertex_index: np.ndarray | None = None,
) -> np.ndarray:
    """3DDFA-style whitened parameters (N, 62) -> vertices (N, n or len(vertex_index), 3) float64
    in original-image pixels (module docstring). ``roi_boxes`` (N, 4) = (sx, sy, ex, ey) pixels;
    None = the crop is the image. ``vertex_index``: decode only these vertices (e.g. kpt_ind)."""
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != N_PARAMS:
        raise ValueError(f"params must be (N, {N_PARAMS}), got {p.shape}")
    p = p * basis.param_std + basis.param_mean
    cam = p[:, :12].reshape(-1, 3, 4)
    rows = np.arange(basis.u.size).reshape(-1, 3)
    if vertex_index is not None:
        rows = rows[np.asarray(vertex_index, dtype=np.int64)]
    r = rows.ravel()
    model = (
        basis.u[r][None] + p[:, 12:52] @ basis.w_shp[r].T + p[:, 52:62] @ basis.w_exp[r].T
    )  # (N, 3m)
    v = model.reshape(len(p), -1, 3)
    pts = np.einsum("nij,nkj->nki", cam[:, :, :3], v) + cam[:, None, :, 3]
    if basis.flip_y:
        pts[..., 1] = basis.crop_size + 1.0 - pts[..., 1]
    if roi_boxes is not None:
        roi = np.asarray(roi_boxes, dtype=np.float64)
        if roi.shape != (len(p), 4):
            raise ValueError(f"roi_boxes must be ({len(p)}, 4), got {roi.shape}")
        sx = (roi[:, 2] - roi[:, 0]) / basis.crop_size
        sy = (roi[:, 3] - roi[:, 1]) / basis.crop_size
        pts[..., 0] = pts[..., 0] * sx[:, None] + roi[:, 0, None]
        pts[..., 1] = pts[..., 1] * sy[:, None] + roi[:, 1, None]
        pts[..., 2] *= ((sx + sy) / 2.0)[:, None]
    return pts


def read_params(
    path: str | Path, names_path: str | Path | None = None, roi_path: str | Path | None = None
) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(names, params (N, 62), roi_boxes (N, 4) or None) from a .npy/.npz (module docstring)."""
    path = Path(path)
    arr, names, key = _array_and_names(path, ("params", "param"), _opt(names_path))
    a = np.asarray(arr)
    if a.ndim != 2 or a.shape[1] != N_PARAMS or not np.issubdtype(a.dtype, np.number):
        raise DataError(path, key, f"expected numeric (N, {N_PARAMS}), got {a.shape} {a.dtype}")
    _check_count(path, key, a, names)
    a = _finite_rows(a.astype(np.float64)[:, None, :], path, key)[:, 0]
    roi = None
    if roi_path is not None:
        roi_path = Path(roi_path)
        roi, src, field = _load_npy(roi_path, "roi_boxes"), roi_path, "roi_boxes"
    elif path.suffix.lower() == ".npz":
        z = _load_npz(path)
        roi, src, field = z.get("roi_boxes"), path, "roi_boxes"
    if roi is not None:
        roi = np.asarray(roi, dtype=np.float64)
        if roi.shape != (len(a), 4) or not np.all(np.isfinite(roi)):
            raise DataError(
                src, field, f"expected finite ({len(a)}, 4) boxes (sx, sy, ex, ey), got {roi.shape}"
            )
        if np.any(roi[:, 2] <= roi[:, 0]) or np.any(roi[:, 3] <= roi[:, 1]):
            raise DataError(src, field, "each box needs ex > sx and ey > sy")
    return names, a, roi


# ----------------------------------------------------------------------------------------------
# Dense correspondence: n model vertices -> the K face pixels of the UV map


def uv_correspondence(
    uv_coords: np.ndarray, triangles: np.ndarray, face_ind: np.ndarray, size: int = 256
) -> sparse.csr_matrix:
    """Sparse (K, n) matrix: row k interpolates the n vertices at face pixel ``face_ind[k]`` of the
    UV map drawn like the ground truth (earliest triangle wins, face3d's 2-px border)."""
    from uvgen.masks import uv_rasterization

    mesh = SimpleNamespace(
        uv=np.asarray(uv_coords, dtype=np.float64),
        full_triangles=np.asarray(triangles, dtype=np.int64),
    )
    matrix = uv_rasterization(mesh, size).sampling_matrix()
    return matrix[np.asarray(face_ind, dtype=np.int64)].tocsr()


def model_correspondence(
    model_dir: str | Path, face_ind: np.ndarray, size: int = 256
) -> sparse.csr_matrix:
    """:func:`uv_correspondence` of a face3d-layout morphable model folder (its per-vertex UV
    coordinates and triangles)."""
    from uvgen.formats.bfm import load_bfm

    model = load_bfm(Path(model_dir))
    return uv_correspondence(model.uv, model.full_triangles, face_ind, size)


def to_face_vertices(
    dense: np.ndarray,
    face_count: int,
    correspondence: sparse.csr_matrix | None,
    source: Path | str,
    field: str = "dense",
) -> np.ndarray:
    """(N, n, 3) -> (N, K, 3) float32: as is when n = K, else through ``correspondence`` (K, n)."""
    n = dense.shape[1]
    if n == face_count:
        return dense
    if correspondence is None or correspondence.shape[1] != n:
        have = (
            ""
            if correspondence is None
            else f"; the topology has {correspondence.shape[1]} vertices"
        )
        raise DataError(
            source,
            field,
            f"{n} points per image: expected {face_count} (the test file's face_ind)"
            f" or the vertex count of the morphable model given as 'topology'{have}",
        )
    flat = dense.transpose(1, 0, 2).reshape(n, -1)  # (n, N*3)
    out = np.asarray(correspondence @ flat.astype(np.float64))
    return out.reshape(face_count, len(dense), 3).transpose(1, 0, 2).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# A whole external method


def _reorder(names: Sequence[str], ref: Sequence[str], source: Path, field: str) -> np.ndarray:
    """Indices that put ``names`` in the order of ``ref`` (the same set of images needed)."""
    pos = {name_key(n): i for i, n in enumerate(names)}
    ref_keys = [name_key(n) for n in ref]
    missing = [n for n, k in zip(ref, ref_keys) if k not in pos]
    extra = sorted(set(pos) - set(ref_keys))
    if missing or extra or len(pos) != len(names):
        raise DataError(
            source,
            field,
            f"names differ from the method's other source: missing {missing[:3]},"
            f" extra {extra[:3]} (all sources of one method must list the same images)",
        )
    return np.array([pos[k] for k in ref_keys], dtype=np.int64)


def load_external(
    spec: ExternalSpec, face_count: int, face_ind: np.ndarray | None = None, size: int = 256
) -> Predictions:
    """Read an external method's files into :class:`Predictions` (original-image pixels).

    ``face_count`` K = the test file's ``face_ind`` size (``face_ind`` itself is needed when dense
    points come as model vertices and must be drawn into the UV map).
    """
    names: list[str] | None = None
    landmarks = dense = None
    sources: list[str] = []
    corr: sparse.csr_matrix | None = None

    def correspondence(n_needed: int, basis: Basis | None = None) -> sparse.csr_matrix | None:
        nonlocal corr
        if n_needed == face_count:
            return None
        if face_ind is None:
            return None
        if basis is not None and basis.uv_coords is not None and basis.n_vertices == n_needed:
            return uv_correspondence(basis.uv_coords, basis.tri, face_ind, size)
        if spec.topology is not None and corr is None:
            corr = model_correspondence(spec.topology, face_ind, size)
        return corr

    if spec.params is not None:
        basis = load_basis(spec.basis)  # type: ignore[arg-type]
        names, params, roi = read_params(spec.params, spec.names, spec.roi_boxes)
        landmarks = decode_params(params, basis, roi, basis.kpt_ind).astype(np.float32)
        c = correspondence(basis.n_vertices, basis)
        if basis.n_vertices == face_count or c is not None:
            verts = decode_params(params, basis, roi).astype(np.float32)
            dense = to_face_vertices(verts, face_count, c, spec.params, "params")
        sources.append(str(spec.params))
    if spec.landmarks is not None:
        lm_names, lm = read_landmarks(spec.landmarks, spec.names)
        if names is None:
            names, landmarks = lm_names, lm
        else:
            landmarks = lm[_reorder(lm_names, names, spec.landmarks, "landmarks")]
        sources.append(str(spec.landmarks))
    if spec.dense is not None:
        d_names, d = read_dense(spec.dense, spec.names)
        d = to_face_vertices(d, face_count, correspondence(d.shape[1]), spec.dense)
        if names is None:
            names, dense = d_names, d
        else:
            dense = d[_reorder(d_names, names, spec.dense, "dense")]
        sources.append(str(spec.dense))
    runtime = (
        None if spec.runtime_ms is None else np.full(len(names), float(spec.runtime_ms) / 1000.0)
    )
    return Predictions(
        spec.name,
        tuple(names),
        landmarks,
        dense,
        runtime,  # type: ignore[arg-type]
        {"source": "external file(s)"},
        " + ".join(sources),
    )
