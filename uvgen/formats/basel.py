"""Build face3d's ``BFM.mat`` / ``BFM_info.mat`` / ``BFM_UV.mat`` from the files users download.

What face3d's Matlab script (``examples/Data/BFM/generate.m``) does, in Python:

* ``01_MorphableModel.mat`` (Basel): keep the trimmed vertices ``trimIndex`` of the shape and
  texture means and components; vertex i (1-based) is the three interleaved rows 3i-2, 3i-1, 3i.
  The eigenvalue vectors are kept whole. ``tl`` (the full-mesh triangles) is not used.
* ``model_info.mat`` (3DDFA): ``tri`` and ``keypoints`` are already in the trimmed vertex
  numbering and are taken as they are (``kpt_ind = keypoints``: 1-based trimmed *vertex*
  indices, not rows of the 3n vectors); ``segbin`` is in the full numbering and is trimmed and
  transposed to (4, n); ``segbin_tri`` is transposed; ``symlist`` / ``symlist_tri`` are copied.
* ``Model_Expression.mat`` (3DDFA, already trimmed): ``mu_exp`` / ``w_exp`` / ``sigma_exp`` as they
  are.
* ``Model_tri_mouth.mat`` (3DDFA): ``tri_mouth`` followed by face3d's 7 inner-mouth triangles.
  (face3d's script also means to drop mouth triangle 38, but its ``setdiff`` is taken with the
  wrong variable and removes nothing; we reproduce what it does, so 107 + 7 = 114 triangles.)
* ``BFM_UV.mat`` (3DMMasSTN, full numbering): ``UV[trimIndex]``, then the UV of three trimmed
  vertices is replaced by the mean of its listed neighbours' UV (:data:`UV_FIXES_1BASED`, indices
  in the *trimmed* numbering, as in face3d's script; the real ``fixtures/bfm_topology`` UV holds
  exactly these means).

In memory everything is 0-based (:class:`~uvgen.formats.bfm.MorphableModel`); on disk 1-based.
Every input problem raises :class:`DataError` naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uvgen.formats.bfm import (
    BFM_FILE,
    BFM_INFO_FILE,
    BFM_UV_FILE,
    INNER_MOUTH_TRIANGLES_1BASED,
    N_EXP,
    N_KEYPOINTS,
    N_SHAPE,
    SEGMENT_NAMES,
    MorphableModel,
    save_bfm,
    with_inner_mouth,
)
from uvgen.formats.errors import DataError
from uvgen.formats.matfile import (
    atomic_savemat,
    load_mat,
    require_field,
    require_index,
    struct_fields,
)

#: face3d's UV repair: (vertex, its neighbours), 1-based indices into the trimmed vertices.
UV_FIXES_1BASED: tuple[tuple[int, tuple[int, ...]], ...] = (
    (10032, (10033, 10158)),
    (10155, (10534, 10157, 10661)),
    (10280, (10916, 10286)),
)

#: Fewest trimmed vertices the repair and the inner-mouth triangles need (10,916).
MIN_TRIMMED_VERTICES = max(
    max(max(v, *nb) for v, nb in UV_FIXES_1BASED), int(INNER_MOUTH_TRIANGLES_1BASED.max())
)

N_SEGMENTS = len(SEGMENT_NAMES)


# ---------------------------------------------------------------------------------------------
# Pure array operations
# ---------------------------------------------------------------------------------------------


def interleaved_rows(vertex_index: np.ndarray) -> np.ndarray:
    """(3k,) int64 rows 3i, 3i+1, 3i+2 of each 0-based vertex i (x, y, z of 3n interleaved
    vectors)."""
    v = np.asarray(vertex_index, dtype=np.int64).reshape(-1, 1)
    return (3 * v + np.arange(3, dtype=np.int64)).reshape(-1)


def take_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` with one allocation; a column-major input (as scipy loads MATLAB matrices)
    is gathered column by column and stays column-major, so writing it back needs no copy."""
    if array.ndim == 2 and array.flags.f_contiguous and not array.flags.c_contiguous:
        return np.take(array.T, rows, axis=1).T
    return np.take(array, rows, axis=0)


def fix_uv(uv: np.ndarray) -> np.ndarray:
    """(n, 2) float64 copy of trimmed UV with face3d's three vertices set to their neighbours'
    mean."""
    out = np.array(uv, dtype=np.float64)
    for vertex, neighbours in UV_FIXES_1BASED:
        out[vertex - 1] = out[np.asarray(neighbours) - 1].mean(axis=0)
    return out


def _one_hot_segments(segbin_rows: np.ndarray, path: Path, field: str) -> np.ndarray:
    """(n, 4) 0/1 rows (one per vertex) as (4, n) uint8; DataError unless one-hot."""
    if not np.isin(segbin_rows, (0, 1)).all() or not (segbin_rows.sum(axis=1) == 1).all():
        raise DataError(path, field, "not one-hot: each (kept) row must be in exactly one segment")
    return np.ascontiguousarray(segbin_rows.T, dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Readers (one per input file)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ModelInfo3DDFA:
    """3DDFA's ``model_info.mat``, checked, 0-based (n trimmed vertices, m triangles).

    Attributes:
        path: the file (for error messages).
        trim_index: (n,) int64 vertex of the full Basel model kept as trimmed vertex i.
        kpt_ind: (68,) int32 trimmed vertex of each iBUG-68 landmark.
        tri: (m, 3) int32 face triangles (trimmed numbering).
        segbin: (N, 4) segment rows (nose, eyes, mouth, rest) in the full numbering, or None.
        segbin_tri: (4, m) uint8 one-hot triangle segments (stored (m, 4)), or None when absent.
        symlist: (2, k) int64 pairs of mirror-symmetric trimmed vertices, or None.
        symlist_tri: (2, k') int64 pairs of mirror-symmetric triangles, or None.
    """

    path: Path
    trim_index: np.ndarray
    kpt_ind: np.ndarray
    tri: np.ndarray
    segbin: np.ndarray | None
    segbin_tri: np.ndarray | None
    symlist: np.ndarray | None
    symlist_tri: np.ndarray | None

    @property
    def n_vertices(self) -> int:
        return len(self.trim_index)


def read_model_info(path: str | Path) -> ModelInfo3DDFA:
    """Read 3DDFA's ``model_info.mat``: ``trimIndex`` (n, 1), ``keypoints`` (1, 68), ``tri`` (3, m)
    required; ``segbin`` (N, 4), ``segbin_tri`` (m, 4), ``symlist`` / ``symlist_tri`` (2, k)
    optional.

    Indices are 1-based on disk; ``trimIndex`` must be distinct and n >= 10,916 (face3d's fixed
    indices). ``segbin``'s row count N is checked against the Basel file later.
    """
    path = Path(path)
    mat = load_mat(path)
    trim = require_index(mat, path, "trimIndex", (None, 1), np.iinfo(np.int64).max)[:, 0]
    n = len(trim)
    if n < MIN_TRIMMED_VERTICES:
        raise DataError(
            path,
            "trimIndex",
            f"{n} vertices; face3d's trimmed model needs at least "
            f"{MIN_TRIMMED_VERTICES} (its UV repair and inner-mouth triangles index them)",
        )
    if len(np.unique(trim)) != n:
        raise DataError(path, "trimIndex", "repeated vertex indices")
    kpt = require_index(mat, path, "keypoints", (1, N_KEYPOINTS), n)[0].astype(np.int32)
    tri = np.ascontiguousarray(require_index(mat, path, "tri", (3, None), n).T, dtype=np.int32)
    m = len(tri)

    segbin = None
    if "segbin" in mat:
        segbin = require_field(mat, path, "segbin", (None, N_SEGMENTS), "biuf")
    segbin_tri = None
    if "segbin_tri" in mat:
        seg_tri = require_field(mat, path, "segbin_tri", (m, N_SEGMENTS), "biuf")
        segbin_tri = _one_hot_segments(seg_tri, path, "segbin_tri")
    symlist = require_index(mat, path, "symlist", (2, None), n) if "symlist" in mat else None
    symlist_tri = (
        require_index(mat, path, "symlist_tri", (2, None), m) if "symlist_tri" in mat else None
    )
    return ModelInfo3DDFA(
        path=path,
        trim_index=trim,
        kpt_ind=kpt,
        tri=tri,
        segbin=segbin,
        segbin_tri=segbin_tri,
        symlist=symlist,
        symlist_tri=symlist_tri,
    )


def read_expression(path: str | Path, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3DDFA's ``Model_Expression.mat`` for n trimmed vertices: ``mu_exp`` (3n, 1), ``w_exp``
    (3n, 29), ``sigma_exp`` (29, 1), floats as stored."""
    path = Path(path)
    mat = load_mat(path)
    mu = require_field(mat, path, "mu_exp", (3 * n, 1), "f")
    pc = require_field(mat, path, "w_exp", (3 * n, N_EXP), "f")
    ev = require_field(mat, path, "sigma_exp", (N_EXP, 1), "f")
    return mu, pc, ev


def read_tri_mouth(path: str | Path, n: int) -> np.ndarray:
    """3DDFA's ``Model_tri_mouth.mat``: ``tri_mouth`` (3, k) 1-based -> (k, 3) int32 0-based."""
    path = Path(path)
    tri = require_index(load_mat(path), path, "tri_mouth", (3, None), n)
    return np.ascontiguousarray(tri.T, dtype=np.int32)


def read_full_uv(path: str | Path) -> np.ndarray:
    """3DMMasSTN's ``BFM_UV.mat``: ``UV`` (N, 2) floats for the full Basel vertices."""
    path = Path(path)
    return require_field(load_mat(path), path, "UV", (None, 2), "f")


_BASEL_TRIMMED = ("shapeMU", "shapePC", "texMU", "texPC")


def read_basel_trimmed(path: str | Path, info: ModelInfo3DDFA) -> tuple[dict[str, np.ndarray], int]:
    """The Basel ``01_MorphableModel.mat`` cut down to ``info.trim_index``.

    Checks ``shapeMU`` / ``texMU`` (3N, 1), ``shapePC`` / ``texPC`` (3N, 199), ``shapeEV`` /
    ``texEV`` (199, 1) and that ``trimIndex`` lies in [1, N]. Returns those six arrays (means and
    components trimmed to 3n rows, dtypes as stored, float32 in the real file), the Basel
    ``segbin`` (N, 4) under key ``"segbin"`` when model_info has none (face3d uses model_info's),
    and N. The full components are
    released as soon as each is trimmed, so at most one full matrix is held beside the result.
    """
    path = Path(path)
    mat = load_mat(path)
    shape_mu = require_field(mat, path, "shapeMU", (None, 1), "f")
    if shape_mu.shape[0] % 3:
        raise DataError(path, "shapeMU", f"length {shape_mu.shape[0]} is not a multiple of 3")
    n_full = shape_mu.shape[0] // 3
    del shape_mu
    shapes = {
        "shapeMU": (3 * n_full, 1),
        "shapePC": (3 * n_full, N_SHAPE),
        "shapeEV": (N_SHAPE, 1),
        "texMU": (3 * n_full, 1),
        "texPC": (3 * n_full, N_SHAPE),
        "texEV": (N_SHAPE, 1),
    }
    for name, shape in shapes.items():
        require_field(mat, path, name, shape, "f")
    top = int(info.trim_index.max())
    if top >= n_full:
        raise DataError(
            info.path, "trimIndex", f"vertex {top + 1} beyond the {n_full} vertices of {path.name}"
        )

    rows = interleaved_rows(info.trim_index)
    out: dict[str, np.ndarray] = {"shapeEV": mat.pop("shapeEV"), "texEV": mat.pop("texEV")}
    for name in _BASEL_TRIMMED:
        out[name] = take_rows(mat.pop(name), rows)  # the full array is freed here
    if info.segbin is None and "segbin" in mat:  # only needed when model_info has none
        out["segbin"] = require_field(mat, path, "segbin", (n_full, N_SEGMENTS), "biuf")
    return out, n_full


# ---------------------------------------------------------------------------------------------
# Conversion and output
# ---------------------------------------------------------------------------------------------


def _trimmed_segbin(
    info: ModelInfo3DDFA, basel: Mapping[str, np.ndarray], basel_path: Path, n_full: int
) -> np.ndarray:
    """(4, n) uint8: ``segbin(trimIndex, :)'`` from model_info (face3d's) or else from the Basel
    file."""
    if info.segbin is not None:
        path, field, segbin = info.path, "segbin", info.segbin
        if segbin.shape[0] != n_full:
            raise DataError(
                path, field, f"{segbin.shape[0]} rows, expected one per Basel vertex ({n_full})"
            )
    elif "segbin" in basel:
        path, field, segbin = basel_path, "segbin", basel["segbin"]
    else:
        raise DataError(
            info.path, "segbin", f"missing field (and no segbin in {basel_path.name} either)"
        )
    return _one_hot_segments(segbin[info.trim_index], path, field)


def _trimmed_uv(
    uv_full: np.ndarray, info: ModelInfo3DDFA, uv_path: Path, n_full: int
) -> np.ndarray:
    """(n, 2) float64 ``UV[trimIndex]`` with face3d's repair, checked to lie in [0, 1]."""
    if uv_full.shape[0] != n_full:
        raise DataError(
            uv_path, "UV", f"{uv_full.shape[0]} rows, expected one per Basel vertex ({n_full})"
        )
    uv = fix_uv(uv_full[info.trim_index])
    if uv.min() < 0.0 or uv.max() > 1.0:
        raise DataError(
            uv_path, "UV", f"kept UV coordinates outside [0, 1]: {uv.min()}..{uv.max()}"
        )
    return uv


def convert_basel(
    morphable_model_mat: str | Path,
    model_info_mat: str | Path,
    expression_mat: str | Path,
    tri_mouth_mat: str | Path,
    uv_mat: str | Path,
) -> MorphableModel:
    """The trimmed BFM in face3d's layout (n = 53,215 vertices for the real files), 0-based in
    memory.

    Args:
        morphable_model_mat: Basel ``01_MorphableModel.mat`` (N = 53,490 vertices).
        model_info_mat: 3DDFA's ``model_info.mat`` (``trimIndex``, ``keypoints``, ``tri``,
            ``segbin``).
        expression_mat: 3DDFA's ``Model_Expression.mat`` (``mu_exp``, ``w_exp``, ``sigma_exp``).
        tri_mouth_mat: 3DDFA's ``Model_tri_mouth.mat`` (``tri_mouth``).
        uv_mat: 3DMMasSTN's ``BFM_UV.mat`` (``UV`` (N, 2)).

    The small files are read and checked first, the Basel file (about 260 MB) last.
    Raises DataError naming file and field for a missing or corrupt file or field, a wrong shape,
    a non-finite value, an index out of range or files that disagree.
    """
    info = read_model_info(model_info_mat)
    n = info.n_vertices
    exp_mu, exp_pc, exp_ev = read_expression(expression_mat, n)
    tri_mouth = read_tri_mouth(tri_mouth_mat, n)
    uv_full = read_full_uv(uv_mat)
    basel_path = Path(morphable_model_mat)
    basel, n_full = read_basel_trimmed(basel_path, info)
    return MorphableModel(
        shape_mu=basel["shapeMU"],
        shape_pc=basel["shapePC"],
        shape_ev=basel["shapeEV"],
        exp_mu=exp_mu,
        exp_pc=exp_pc,
        exp_ev=exp_ev,
        tex_mu=basel["texMU"],
        tex_pc=basel["texPC"],
        tex_ev=basel["texEV"],
        tri=info.tri,
        tri_mouth=with_inner_mouth(tri_mouth),
        kpt_ind=info.kpt_ind,
        uv=_trimmed_uv(uv_full, info, Path(uv_mat), n_full),
        segbin=_trimmed_segbin(info, basel, basel_path, n_full),
    )


def _one_based(index: np.ndarray) -> np.ndarray:
    """0-based indices as 1-based uint16 (as face3d's files) or int32 when they do not fit."""
    one = np.asarray(index, dtype=np.int64) + 1
    dtype = np.uint16 if one.size == 0 or one.max() <= np.iinfo(np.uint16).max else np.int32
    return one.astype(dtype)


def face3d_info_fields(model: MorphableModel, info: ModelInfo3DDFA | None) -> dict[str, np.ndarray]:
    """The ``model_info`` fields face3d's script writes beyond :func:`save_bfm`'s, as stored on
    disk.

    ``tri_mouth`` is the model's whole list (face3d stores the same list in both files); with
    ``info``, ``trimIndex`` (n, 1) is the real one and ``symlist`` (2, k), ``symlist_tri`` (2, k')
    and ``segbin_tri`` (4, m) are copied when present. (face3d's ``face_contour*``, ``nose_hole*``
    and ``parallel*`` fields come from other 3DDFA files and are not produced.)
    """
    fields = {"tri_mouth": _one_based(model.tri_mouth).T}
    if info is None:
        return fields
    if info.n_vertices != model.n_vertices or len(info.tri) != len(model.tri):
        raise ValueError(
            f"{info.path} describes {info.n_vertices} vertices / {len(info.tri)} triangles, "
            f"the model has {model.n_vertices} / {len(model.tri)}"
        )
    fields["trimIndex"] = _one_based(info.trim_index).reshape(-1, 1)
    if info.symlist is not None:
        fields["symlist"] = _one_based(info.symlist)
    if info.symlist_tri is not None:
        fields["symlist_tri"] = _one_based(info.symlist_tri)
    if info.segbin_tri is not None:
        fields["segbin_tri"] = info.segbin_tri
    return fields


# face3d's order of model_info's fields (those we produce).
_INFO_ORDER = (
    "kpt_ind",
    "trimIndex",
    "symlist",
    "symlist_tri",
    "segbin",
    "segbin_tri",
    "tri_mouth",
    "uv_coords",
)


def write_face3d_bfm(
    model: MorphableModel, out_dir: str | Path, model_info_mat: str | Path | None = None
) -> list[Path]:
    """Write ``BFM.mat``, ``BFM_info.mat`` and ``BFM_UV.mat`` into ``out_dir`` (created if needed).

    :func:`~uvgen.formats.bfm.save_bfm` writes the three files; ``BFM_info.mat`` is then completed
    with :func:`face3d_info_fields` (from ``model_info_mat`` when given), so it holds what
    face3d's script stores there. Each file is replaced atomically. Returns the three paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = read_model_info(model_info_mat) if model_info_mat is not None else None
    extra = face3d_info_fields(model, info)
    save_bfm(model, out_dir)
    info_path = out_dir / BFM_INFO_FILE
    saved = struct_fields(load_mat(info_path, mat_dtype=False), info_path, "model_info")
    fields = {key.split(".", 1)[1]: value for key, value in saved.items()}
    fields.update(extra)
    ordered = {k: fields.pop(k) for k in _INFO_ORDER if k in fields}
    ordered.update(fields)
    atomic_savemat(info_path, {"model_info": ordered})
    return [out_dir / BFM_FILE, info_path, out_dir / BFM_UV_FILE]
