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

Readers of the array and folder inputs: :mod:`eval.external_readers`; the 3DDFA-style
parameters, their basis file and decoding: :mod:`eval.external_params`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from scipy import sparse

from eval.external_params import Basis, decode_params, load_basis, params_pose, read_params
from eval.external_readers import read_dense, read_landmarks
from eval.predictions import Predictions, name_key
from uvgen.formats.errors import DataError

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
    pose = None

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
        pose = params_pose(params, basis)
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
        pose,
    )
