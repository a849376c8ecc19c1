"""The Basel Face Model in face3d's layout: ``BFM.mat`` + ``BFM_UV.mat`` + ``BFM_info.mat``.

On disk (docs/conventions.md section 3) indices are 1-based and arrays are column-major MATLAB
shapes. In memory (:class:`MorphableModel`) indices are 0-based and triangles are rows.
:func:`load_bfm` / :func:`save_bfm` read and write the three files; :func:`load_topology` reads the
real topology pieces (mean shape and expression, triangles, UV, segmentation; no components).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uvgen.formats.errors import DataError, read_whole_file, warn_data
from uvgen.formats.matfile import (
    atomic_savemat,
    load_mat,
    require_field,
    require_index,
    struct_fields,
)

N_SHAPE = 199
N_EXP = 29
N_KEYPOINTS = 68
SEGMENT_NAMES = ("nose", "eyes", "mouth", "rest")


class _TriangleMesh:
    """What a model with a mean shape (the (3n, 1) field named by ``_MEAN_FIELD``) and the
    triangles ``tri`` and ``tri_mouth`` gives: the vertex count and the mesh that is rendered."""

    _MEAN_FIELD: str
    tri: np.ndarray
    tri_mouth: np.ndarray

    @property
    def n_vertices(self) -> int:
        return getattr(self, self._MEAN_FIELD).shape[0] // 3

    @property
    def full_triangles(self) -> np.ndarray:
        """(m + k, 3) int32: ``tri`` followed by ``tri_mouth`` (the mesh that is rendered and
        mapped)."""
        return np.vstack([self.tri, self.tri_mouth]).astype(np.int32)


@dataclass(frozen=True)
class MorphableModel(_TriangleMesh):
    """A 3D morphable model with n vertices, in BFM units (about 1e5 per head width).

    Model space: x to the subject's left (image right in a frontal view), y up, z towards the
    viewer. Vectors of length 3n interleave x1, y1, z1, x2, ...

    Attributes:
        shape_mu: (3n, 1) mean shape.
        shape_pc: (3n, 199) shape components (used with parameters as stored, no eigenvalue
            scaling).
        shape_ev: (199, 1) shape standard deviations.
        exp_mu: (3n, 1) mean expression offset (added to the mean shape).
        exp_pc: (3n, 29) expression components.
        exp_ev: (29, 1) expression standard deviations.
        tex_mu: (3n, 1) mean albedo, r1, g1, b1, r2, ... in [0, 255].
        tex_pc: (3n, 199) texture components.
        tex_ev: (199, 1) texture standard deviations.
            (The EVs and the texture are None when a loaded file lacked them: the UV build does
            not need them; see :data:`OPTIONAL_MODEL_FIELDS`.)
        tri: (m, 3) int32, 0-based vertex indices of the face triangles.
        tri_mouth: (k, 3) int32, 0-based, the inner-mouth triangles (the 7 appended ones included).
        kpt_ind: (68,) int32, 0-based vertex index of each iBUG-68 landmark.
        uv: (n, 2) float64 UV coordinates in [0, 1] (u right, v up).
        segbin: (4, n) uint8 one-hot segmentation rows: nose, eyes, mouth, rest.
    """

    _MEAN_FIELD = "shape_mu"

    shape_mu: np.ndarray
    shape_pc: np.ndarray
    shape_ev: np.ndarray
    exp_mu: np.ndarray
    exp_pc: np.ndarray
    exp_ev: np.ndarray
    tex_mu: np.ndarray
    tex_pc: np.ndarray
    tex_ev: np.ndarray
    tri: np.ndarray
    tri_mouth: np.ndarray
    kpt_ind: np.ndarray
    uv: np.ndarray
    segbin: np.ndarray

    def vertices(self, shape_para: np.ndarray, exp_para: np.ndarray) -> np.ndarray:
        """(n, 3) float64 model-space vertices: ``shapeMU + expMU + shapePC @ a + expPC @ b``."""
        shape_para = np.asarray(shape_para, dtype=np.float64).reshape(-1, 1)
        exp_para = np.asarray(exp_para, dtype=np.float64).reshape(-1, 1)
        v = (
            self.shape_mu.astype(np.float64)
            + self.exp_mu.astype(np.float64)
            + self.shape_pc @ shape_para
            + self.exp_pc @ exp_para
        )
        return v.reshape(-1, 3)

    def colors(self, tex_para: np.ndarray) -> np.ndarray:
        """(n, 3) float64 per-vertex albedo in [0, 1]: ``(texMU + texPC @ t) / 255`` clipped."""
        if self.tex_mu is None or self.tex_pc is None:
            raise ValueError("this morphable model has no texture (texMU / texPC were left out)")
        tex_para = np.asarray(tex_para).reshape(-1, 1).astype(self.tex_pc.dtype)
        c = (self.tex_mu + self.tex_pc @ tex_para).reshape(-1, 3).astype(np.float64) / 255.0
        return np.clip(c, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Reading and writing face3d's files
# ---------------------------------------------------------------------------------------------

BFM_FILE = "BFM.mat"
BFM_UV_FILE = "BFM_UV.mat"
BFM_INFO_FILE = "BFM_info.mat"

#: The 7 inner-mouth triangles face3d appends to ``tri_mouth`` (1-based rows of vertex indices).
INNER_MOUTH_TRIANGLES_1BASED = np.array(
    [
        [6420, 6542, 6664],
        [6420, 6294, 6167],
        [6167, 6297, 6420],
        [6167, 6297, 6296],
        [6167, 6296, 6295],
        [6167, 6295, 6039],
        [6168, 6295, 6039],
    ],
    dtype=np.int32,
)
N_INNER_MOUTH = len(INNER_MOUTH_TRIANGLES_1BASED)

#: Model fields the UV build does not use (texture, and the standard deviations, which only the
#: synthetic-data sampler needs): :func:`load_bfm` leaves an unusual one out with a DataWarning.
OPTIONAL_MODEL_FIELDS = frozenset({"shape_ev", "exp_ev", "tex_mu", "tex_pc", "tex_ev"})

_MODEL_FLOATS = (  # (struct field, attribute, number of columns; None = the (3n, 1) means)
    ("shapeMU", "shape_mu", None),
    ("shapePC", "shape_pc", N_SHAPE),
    ("shapeEV", "shape_ev", N_SHAPE),
    ("expMU", "exp_mu", None),
    ("expPC", "exp_pc", N_EXP),
    ("expEV", "exp_ev", N_EXP),
    ("texMU", "tex_mu", None),
    ("texPC", "tex_pc", N_SHAPE),
    ("texEV", "tex_ev", N_SHAPE),
)


def with_inner_mouth(tri_mouth: np.ndarray) -> np.ndarray:
    """(k + 7, 3) int32: 0-based mouth triangles followed by
    :data:`INNER_MOUTH_TRIANGLES_1BASED` - 1."""
    rows = np.asarray(tri_mouth, dtype=np.int32).reshape(-1, 3)
    return np.vstack([rows, INNER_MOUTH_TRIANGLES_1BASED - 1])


def _float_array(value: np.ndarray) -> np.ndarray:
    """Floats keep float32/float64 (PCs stay float32 in memory); anything else becomes float64."""
    return value if value.dtype in (np.float32, np.float64) else value.astype(np.float64)


def _triangles(fields: dict, path: Path, name: str, n: int) -> np.ndarray:
    """A (3, m) 1-based MATLAB triangle field as (m, 3) int32 0-based rows."""
    return np.ascontiguousarray(require_index(fields, path, name, (3, None), n).T).astype(np.int32)


def _read_uv(path: Path, n: int | None) -> np.ndarray:
    """``UV`` of BFM_UV.mat: (n, 2) float64 in [0, 1]."""
    uv = require_field(load_mat(path), path, "UV", (n, 2), "f").astype(np.float64)
    if uv.size and (uv.min() < 0.0 or uv.max() > 1.0):
        raise DataError(path, "UV", f"UV coordinates outside [0, 1]: {uv.min()}..{uv.max()}")
    return uv


def _read_info(path: Path, n: int, uv: np.ndarray) -> dict[str, np.ndarray | None]:
    """segbin (4, n) uint8 one-hot (required); kpt_ind (68,), tri_mouth (k, 3) 0-based (or None).

    ``model_info.uv_coords``, when present, should equal BFM_UV.mat's ``UV`` (DataWarning
    otherwise).
    """
    info = struct_fields(load_mat(path), path, "model_info")
    segbin = require_field(info, path, "model_info.segbin", (len(SEGMENT_NAMES), n), "biuf")
    if not np.isin(segbin, (0, 1)).all() or not (segbin.sum(axis=0) == 1).all():
        raise DataError(
            path, "model_info.segbin", "not one-hot: each vertex must be in exactly one segment"
        )
    out: dict[str, np.ndarray | None] = {"segbin": segbin.astype(np.uint8)}
    out.update(kpt_ind=None, tri_mouth=None)
    if "model_info.kpt_ind" in info:
        kpt = require_index(info, path, "model_info.kpt_ind", (1, N_KEYPOINTS), n)
        out["kpt_ind"] = kpt[0].astype(np.int32)
    if "model_info.tri_mouth" in info:
        out["tri_mouth"] = _triangles(info, path, "model_info.tri_mouth", n)
    if "model_info.uv_coords" in info:
        uv_coords = require_field(info, path, "model_info.uv_coords", (n, 2), "f")
        if not np.array_equal(uv_coords, uv):  # the build uses BFM_UV.mat's UV
            warn_data(
                path, "model_info.uv_coords", f"differs from UV in {BFM_UV_FILE}, which is used"
            )
    return out


def load_bfm(directory: str | Path) -> MorphableModel:
    """Read face3d's ``BFM.mat``, ``BFM_UV.mat`` and ``BFM_info.mat`` from ``directory``.

    Shapes are checked exactly (docs/conventions.md section 3), values finite, 1-based indices in
    range, for every field the UV build uses; the :data:`OPTIONAL_MODEL_FIELDS` (texture, standard
    deviations) are None with a DataWarning when missing or malformed, and ``model_info.uv_coords``
    differing from ``BFM_UV.mat`` is a DataWarning (``UV`` is used). Otherwise
    and the files consistent with each other (n, ``kpt_ind``; info's ``tri_mouth`` equals the
    model's without its last 7 triangles, or all of it). Float arrays keep their stored float32 /
    float64 dtype; indices become 0-based int32. ``tri_mouth`` is the model's as stored.
    Raises DataError naming file and field.
    """
    directory = Path(directory)
    path = directory / BFM_FILE
    model = struct_fields(load_mat(path), path, "model")
    shape_mu = require_field(model, path, "model.shapeMU", (None, 1), "f")
    if shape_mu.shape[0] % 3:
        raise DataError(path, "model.shapeMU", f"length {shape_mu.shape[0]} is not a multiple of 3")
    n = shape_mu.shape[0] // 3
    arrays: dict[str, np.ndarray] = {}
    for field, attr, cols in _MODEL_FLOATS:
        shape = (
            (3 * n, 1) if cols is None else ((cols, 1) if field.endswith("EV") else (3 * n, cols))
        )
        try:
            arrays[attr] = _float_array(require_field(model, path, f"model.{field}", shape, "f"))
        except DataError as err:
            if attr not in OPTIONAL_MODEL_FIELDS:
                raise
            warn_data(path, err.field, f"{err.reason}; left out (the UV build does not use it)")
            arrays[attr] = None
    tri = _triangles(model, path, "model.tri", n)
    tri_mouth = _triangles(model, path, "model.tri_mouth", n)
    kpt_ind = require_index(model, path, "model.kpt_ind", (1, N_KEYPOINTS), n)[0].astype(np.int32)

    uv = _read_uv(directory / BFM_UV_FILE, n)
    info_path = directory / BFM_INFO_FILE
    info = _read_info(info_path, n, uv)
    if info["kpt_ind"] is not None and not np.array_equal(info["kpt_ind"], kpt_ind):
        raise DataError(
            info_path, "model_info.kpt_ind", f"differs from model.kpt_ind in {BFM_FILE}"
        )
    info_mouth = info["tri_mouth"]
    without_inner = tri_mouth[: len(tri_mouth) - N_INNER_MOUTH]
    if info_mouth is not None and not (
        np.array_equal(info_mouth, without_inner) or np.array_equal(info_mouth, tri_mouth)
    ):
        raise DataError(
            info_path, "model_info.tri_mouth", f"inconsistent with model.tri_mouth in {BFM_FILE}"
        )
    return MorphableModel(
        tri=tri, tri_mouth=tri_mouth, kpt_ind=kpt_ind, uv=uv, segbin=info["segbin"], **arrays
    )


def _index_dtype(n: int) -> type:
    """uint16 (as face3d's files store indices) while 1-based indices fit, else int32."""
    return np.uint16 if n <= np.iinfo(np.uint16).max else np.int32


def _check_model(model: MorphableModel) -> None:
    """Shapes and index ranges of an in-memory model; ValueError when inconsistent."""
    n = model.n_vertices
    if model.shape_mu.shape != (3 * n, 1):
        raise ValueError(f"shape_mu must be (3n, 1), got {model.shape_mu.shape}")
    for _, attr, cols in _MODEL_FLOATS:
        value = getattr(model, attr)
        if value is None and attr in OPTIONAL_MODEL_FIELDS:
            continue
        want = (
            (3 * n, 1) if cols is None else ((cols, 1) if attr.endswith("_ev") else (3 * n, cols))
        )
        if value.shape != want or value.dtype.kind != "f":
            raise ValueError(f"{attr} must be float {want}, got {value.dtype} {value.shape}")
    for attr in ("tri", "tri_mouth"):
        value = getattr(model, attr)
        if value.ndim != 2 or value.shape[1] != 3:
            raise ValueError(f"{attr} must be (m, 3), got {value.shape}")
    if len(model.tri_mouth) < N_INNER_MOUTH:
        raise ValueError(
            f"tri_mouth must end with the {N_INNER_MOUTH} inner-mouth triangles, "
            f"has {len(model.tri_mouth)} rows"
        )
    if model.kpt_ind.shape != (N_KEYPOINTS,):
        raise ValueError(f"kpt_ind must be ({N_KEYPOINTS},), got {model.kpt_ind.shape}")
    for attr in ("tri", "tri_mouth", "kpt_ind"):
        value = getattr(model, attr)
        if value.size and (value.min() < 0 or value.max() >= n):
            raise ValueError(f"{attr} indices out of range [0, {n})")
    if model.uv.shape != (n, 2):
        raise ValueError(f"uv must be (n, 2), got {model.uv.shape}")
    if model.segbin.shape != (len(SEGMENT_NAMES), n):
        raise ValueError(f"segbin must be (4, n), got {model.segbin.shape}")


def save_bfm(model: MorphableModel, directory: str | Path) -> None:
    """Write ``model`` as face3d's ``BFM.mat``, ``BFM_UV.mat`` and ``BFM_info.mat`` in
    ``directory``.

    MATLAB shapes and field names as face3d's (docs/conventions.md section 3), 1-based indices
    stored as uint16 (as the real files) or int32 when n > 65535; floats keep their in-memory dtype
    (float32 for PCs and means as face3d's, float64 stays float64, so :func:`load_bfm` round-trips
    exactly).
    ``BFM_info.mat`` holds ``kpt_ind``, ``trimIndex`` (1..n: the model is already trimmed),
    ``segbin``, ``tri_mouth`` (the model's without its last 7 inner-mouth triangles) and
    ``uv_coords``. Uncompressed, each file written atomically. Raises ValueError for an
    inconsistent model.
    """
    _check_model(model)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = model.n_vertices
    idx = _index_dtype(n)

    def one_based_t(tri: np.ndarray) -> np.ndarray:
        return (np.asarray(tri, dtype=np.int64) + 1).T.astype(idx)

    kpt = (np.asarray(model.kpt_ind, dtype=np.int64) + 1).reshape(1, -1).astype(idx)
    struct = {
        field: _float_array(getattr(model, attr))
        for field, attr, _ in _MODEL_FLOATS
        if getattr(model, attr) is not None
    }
    struct.update(tri=one_based_t(model.tri), tri_mouth=one_based_t(model.tri_mouth), kpt_ind=kpt)
    atomic_savemat(directory / BFM_FILE, {"model": struct})
    uv = np.asarray(model.uv, dtype=np.float64)
    atomic_savemat(directory / BFM_UV_FILE, {"UV": uv})
    info = {
        "kpt_ind": kpt,
        "trimIndex": np.arange(1, n + 1).reshape(-1, 1).astype(idx),
        "segbin": np.asarray(model.segbin, dtype=np.uint8),
        "tri_mouth": one_based_t(model.tri_mouth[: len(model.tri_mouth) - N_INNER_MOUTH]),
        "uv_coords": uv,
    }
    atomic_savemat(directory / BFM_INFO_FILE, {"model_info": info})


# ---------------------------------------------------------------------------------------------
# The real topology pieces (no principal components)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Topology(_TriangleMesh):
    """The trimmed BFM's real topology (0-based indices, triangles as rows).

    Attributes:
        mean_shape: (3n, 1) mean shape as stored (float32), BFM units, interleaved x1, y1, z1, ...
        mean_exp: (3n, 1) mean expression offset (float32).
        tri: (m, 3) int32 face triangles (m = 105,840 for the real model).
        tri_mouth: (k, 3) int32 mouth triangles: info's ``tri_mouth`` followed by the 7
            :data:`INNER_MOUTH_TRIANGLES_1BASED` (unless loaded with ``append_inner_mouth=False``).
        kpt_ind: (68,) int32 vertex of each iBUG-68 landmark.
        uv: (n, 2) float64 UV coordinates in [0, 1] (u right, v up).
        segbin: (4, n) uint8 one-hot rows: nose, eyes, mouth, rest.
    """

    _MEAN_FIELD = "mean_shape"

    mean_shape: np.ndarray
    mean_exp: np.ndarray
    tri: np.ndarray
    tri_mouth: np.ndarray
    kpt_ind: np.ndarray
    uv: np.ndarray
    segbin: np.ndarray


def _load_npy(path: Path) -> np.ndarray:
    return read_whole_file(path, lambda p: np.load(p, allow_pickle=False), ".npy file")


def _require_npy_vector(path: Path, n3: int | None) -> np.ndarray:
    value = require_field({path.stem: _load_npy(path)}, path, path.stem, (n3, 1), "f")
    return _float_array(value)


def load_topology(directory: str | Path, append_inner_mouth: bool = True) -> Topology:
    """Read ``u_shp.npy``, ``u_exp.npy``, ``tri.mat``, ``BFM_UV.mat`` and ``BFM_info.mat``.

    n comes from ``u_shp.npy`` (3n, 1); every other piece must agree with it. ``kpt_ind`` and
    ``tri_mouth`` come from ``BFM_info.mat``; with ``append_inner_mouth`` (the project's convention,
    docs/conventions.md section 3) the 7 inner-mouth triangles are appended to info's ``tri_mouth``.
    Raises DataError naming file and field.
    """
    directory = Path(directory)
    shp_path = directory / "u_shp.npy"
    mean_shape = _require_npy_vector(shp_path, None)
    if mean_shape.shape[0] % 3:
        raise DataError(shp_path, None, f"length {mean_shape.shape[0]} is not a multiple of 3")
    n = mean_shape.shape[0] // 3
    mean_exp = _require_npy_vector(directory / "u_exp.npy", 3 * n)
    tri_path = directory / "tri.mat"
    tri = _triangles(load_mat(tri_path), tri_path, "tri", n)
    uv = _read_uv(directory / BFM_UV_FILE, n)
    info_path = directory / BFM_INFO_FILE
    info = _read_info(info_path, n, uv)
    for name in ("kpt_ind", "tri_mouth"):
        if info[name] is None:
            raise DataError(info_path, f"model_info.{name}", "missing field")
    tri_mouth = info["tri_mouth"]
    if append_inner_mouth:
        need = int(INNER_MOUTH_TRIANGLES_1BASED.max())
        if need > n:
            raise DataError(
                info_path, "model_info.tri_mouth", f"inner-mouth triangles need n >= {need}"
            )
        tri_mouth = with_inner_mouth(tri_mouth)
    return Topology(
        mean_shape=mean_shape,
        mean_exp=mean_exp,
        tri=tri,
        tri_mouth=tri_mouth,
        kpt_ind=info["kpt_ind"],
        uv=uv,
        segbin=info["segbin"],
    )
