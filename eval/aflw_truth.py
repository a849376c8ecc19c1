"""The AFLW2000-3D ground truth read straight from the ``.mat`` files (no UV file, no BFM needed
for the 68-point metrics).

Per image ``imageNNNNN`` (docs/conventions.md section 2), all in original-image pixels (x right,
y down, z depth):

* ``landmarks`` (68, 3): ``pt3d_68`` transposed (3DDFA's ``AFLW2000-3D.pts68.npy``);
* ``yaw_deg``: ``Pose_Para``'s yaw in degrees AS STORED (3DDFA's ``AFLW2000-3D.pose.npy``): the
  yaw bin is |yaw| unwrapped, so image03123's -351 degrees falls in 60-90, as in 3DDFA's code;
* ``pose_deg`` (3,): (pitch, yaw, roll) degrees as stored (head-pose protocol, :mod:`eval.pose`);
* ``landmarks_re`` (68, 2): 3DDFA's re-annotated 2D landmarks, when given (a (N, 2, 68) array in
  the order of ``AFLW2000-3D_crop.list``, i.e. sorted names, or of a names list beside it);
* dense (K, 3), from a test split built by ``uvgen@test`` (its maps at its ``face_ind``, decoded
  as the predictions are, rows matched by name) or else, with a face3d-layout model, the fit's
  vertices (``Shape_Para``,
  ``Exp_Para``, ``Pose_Para`` as stored, docs/conventions.md section 4) drawn into the UV map
  exactly as the ground-truth map is (:func:`eval.external.uv_correspondence`) and taken at the
  face pixels ``face_ind``. An image whose fit cannot give one is a dense failure (NaN row, named
  in ``dense_failures``); it stays in every 68-point table.

A file that cannot give its 68 points or its yaw (missing, unreadable, bad ``pt3d_68`` or
``Pose_Para``) cannot be scored at all: it is listed in ``unreadable`` with the reason, and the
report names it. Nothing is left out silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import sparse

from eval.evaluate import GroundTruth, GroundTruthFile
from uvgen.formats.aflw import AFLW_SPECS, list_aflw_samples
from uvgen.formats.errors import DataError
from uvgen.formats.matfile import load_mat, read_fields
from uvgen.geometry import GeometryError, check_pose, image_vertices

_BY_NAME = {s.disk: s for s in AFLW_SPECS}
SCORE_SPECS = (_BY_NAME["Pose_Para"], _BY_NAME["pt3d_68"])
FIT_SPECS = (_BY_NAME["Shape_Para"], _BY_NAME["Exp_Para"])
CROP_LIST = "AFLW2000-3D_crop.list"


@dataclass(frozen=True, eq=False)
class FitRecord:
    """What one readable file holds: name, image height, pose (7,), and the shape/expression
    parameters (None with ``fit_error`` when they cannot be used)."""

    name: str
    image_height: int
    pose_para: np.ndarray
    pt3d_68: np.ndarray
    shape_para: np.ndarray | None
    exp_para: np.ndarray | None
    fit_error: str = ""


def _image_height(mat_path: Path) -> int:
    from PIL import Image

    for suffix in (".jpg", ".png"):
        p = mat_path.with_suffix(suffix)
        if p.is_file():
            with Image.open(p) as im:
                return int(im.size[1])
    raise DataError(mat_path.with_suffix(".jpg"), None, "missing image beside the .mat file")


def read_record(mat_path: Path, need_height: bool) -> FitRecord:
    """One file -> :class:`FitRecord`; DataError when its 68 points or pose cannot be read."""
    mat = load_mat(mat_path)
    score = read_fields(mat, mat_path, SCORE_SPECS)
    shape = exp = None
    err = ""
    try:
        fit = read_fields(mat, mat_path, FIT_SPECS)
        check_pose(score["pose_para"])
        shape, exp = fit["shape_para"], fit["exp_para"]
    except (DataError, GeometryError) as exc:
        err = str(exc)
    height = _image_height(mat_path) if need_height else 0
    return FitRecord(mat_path.stem, height, score["pose_para"], score["pt3d_68"], shape, exp, err)


@dataclass(eq=False)
class AFLWTruth(GroundTruth):
    """:class:`eval.evaluate.GroundTruth` of an AFLW2000-3D folder (see the module docstring).
    ``unreadable``: (file, reason) of the files that could not be scored."""

    unreadable: tuple[tuple[str, str], ...] = ()
    face_ind: np.ndarray | None = field(default=None, repr=False)
    dense_file: GroundTruthFile | None = field(default=None, repr=False)
    dense_index: np.ndarray | None = field(default=None, repr=False)
    records: tuple[FitRecord, ...] = field(default=(), repr=False)
    correspondence: sparse.csr_matrix | None = field(default=None, repr=False)
    model: object = field(default=None, repr=False)

    @property
    def dense_count(self) -> int | None:
        if self.dense_file is not None:
            return self.dense_file.dense_count
        return None if self.correspondence is None else int(self.correspondence.shape[0])

    def dense_rows(self, rows: slice) -> np.ndarray:
        """(B, K, 3) float64 dense ground truth, NaN rows for the dense failures: from the test
        split's maps (``dense_file``, rows matched by name) or from the fits through the model
        (the vertex products of a chunk run as one matrix product: the basis is read once)."""
        if self.dense_file is not None:
            return self._file_rows(rows)
        if self.correspondence is None or self.model is None:
            raise ValueError("no dense ground truth: give a face3d-layout model")
        recs = self.records[rows]
        k = self.correspondence.shape[0]
        out = np.full((len(recs), k, 3), np.nan)
        ok = [i for i, r in enumerate(recs) if r.shape_para is not None]
        if not ok:
            return out
        basis, mean = self._face_basis()
        params = np.stack(
            [np.concatenate([recs[i].shape_para, recs[i].exp_para]) for i in ok], axis=1
        )
        # model-space face points of the chunk in one float32 product (its rounding, ~1e-5 px, is
        # far below the maps' float16 storage step), then each image's pose and projection
        face = (mean + basis @ params.astype(np.float32)).T.reshape(len(ok), k, 3)
        for j, i in enumerate(ok):
            out[i] = image_vertices(face[j], recs[i].pose_para, recs[i].image_height)
        return out

    def _face_basis(self) -> tuple[np.ndarray, np.ndarray]:
        """The morphable model drawn into the UV map at the face pixels, built once: ([shapePC |
        expPC] (3K, 228), mean (3K, 1)) float32, rows x1 y1 z1 x2 ... The UV correspondence's
        rows are barycentric weights (sum 1), so drawing commutes with the affine pose and
        projection: drawing the basis first gives the same points as drawing posed vertices."""
        if not hasattr(self, "_face_basis_cache"):
            m, c = self.model, self.correspondence
            n = m.shape_mu.size // 3

            def drawn(a: np.ndarray) -> np.ndarray:  # (3n, c) -> (3K, c)
                cols = a.shape[1]
                flat = np.asarray(a, dtype=np.float32).reshape(n, 3 * cols)
                return np.asarray(c @ flat, dtype=np.float32).reshape(-1, cols)

            basis = np.hstack([drawn(m.shape_pc), drawn(m.exp_pc)])
            mean = drawn((m.shape_mu.astype(np.float64) + m.exp_mu).reshape(-1, 1))
            self._face_basis_cache = (np.ascontiguousarray(basis), mean)
        return self._face_basis_cache

    def _file_rows(self, rows: slice) -> np.ndarray:
        index = self.dense_index[rows]  # type: ignore[index]
        out = np.full((len(index), self.dense_count, 3), np.nan)
        have = np.flatnonzero(index >= 0)
        # runs of consecutive file rows, read in one go each
        breaks = np.flatnonzero(np.diff(index[have]) != 1) + 1
        for run in np.split(have, breaks):
            if run.size:
                first = int(index[run[0]])
                out[run] = self.dense_file.dense_rows(slice(first, first + run.size))
        return out


def _reannotated(path: Path, names: list[str], list_path: Path | None) -> np.ndarray:
    """(N, 68, 2) float64 re-annotated points in the order of ``names``; NaN rows for images the
    array does not hold."""
    from eval.external_readers import load_npy
    from eval.predictions import name_key

    arr = np.asarray(load_npy(path, "pts68"), dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1:] not in ((2, 68), (3, 68)):
        raise DataError(path, "pts68", f"expected (N, 2, 68), got {arr.shape}")
    if list_path is None and (path.parent / CROP_LIST).is_file():
        list_path = path.parent / CROP_LIST
    if list_path is not None:
        order = [ln.strip() for ln in Path(list_path).read_text().splitlines() if ln.strip()]
        src = str(list_path)
    elif len(arr) == len(names):
        order, src = sorted(names), "sorted image names"
    else:
        raise DataError(
            path,
            "pts68",
            f"{len(arr)} rows for {len(names)} images: give the names list "
            f"({CROP_LIST}) beside it or with --reannotated-names",
        )
    if len(order) != len(arr):
        raise DataError(path, "pts68", f"{len(arr)} rows but {len(order)} names in {src}")
    index = {name_key(n): i for i, n in enumerate(order)}
    out = np.full((len(names), 68, 2), np.nan)
    for i, n in enumerate(names):
        j = index.get(name_key(n))
        if j is not None:
            out[i] = arr[j, :2].T
    if not np.isfinite(out).all(axis=(1, 2)).any():
        raise DataError(path, "pts68", f"none of its images are in the test set ({src})")
    return out


def read_aflw_truth(
    data_dir: str | Path,
    model_dir: str | Path | None = None,
    face_ind: np.ndarray | None = None,
    reannotated: str | Path | None = None,
    reannotated_names: str | Path | None = None,
    test_file: GroundTruthFile | None = None,
) -> AFLWTruth:
    """Every ``imageNNNNN.mat`` of ``data_dir`` -> :class:`AFLWTruth` (sorted by name).

    ``model_dir``: a face3d-layout model (BFM.mat, BFM_UV.mat, BFM_info.mat) for the dense ground
    truth, at the face pixels ``face_ind`` (default: the model's own UV face mask);
    ``reannotated``: 3DDFA's ``AFLW2000-3D-Reannotated.pts68.npy``; ``test_file``: an open test
    split built by ``uvgen@test`` from this folder, whose maps give the dense ground truth instead
    (an image it does not hold, e.g. one it rejected, is a dense failure named by the report).
    """
    from tqdm import tqdm

    paths = list_aflw_samples(data_dir)
    records: list[FitRecord] = []
    unreadable: list[tuple[str, str]] = []
    for p in tqdm(paths, desc="ground truth", unit="file", leave=False, disable=len(paths) < 200):
        try:
            records.append(read_record(p, need_height=model_dir is not None and test_file is None))
        except (DataError, OSError, ValueError) as exc:
            unreadable.append((p.stem, str(exc)))
    if not records:
        raise DataError(data_dir, None, "no readable AFLW2000-3D file (imageNNNNN.mat)")
    names = [r.name for r in records]
    pose = np.degrees(np.array([r.pose_para[:3] for r in records], dtype=np.float64))
    corr = model = None
    failures: dict[str, str] = {}
    dense_index = None
    if model_dir is not None:
        from uvgen.formats.bfm import load_bfm

        model = load_bfm(Path(model_dir))
    if test_file is not None:
        from eval.predictions import name_key

        rows = {name_key(n): i for i, n in enumerate(test_file.names)}
        dense_index = np.array([rows.get(name_key(n), -1) for n in names], dtype=np.int64)
        failures = {
            n: f"not in the test split {test_file.source}"
            for n, i in zip(names, dense_index)
            if i < 0
        }
        face_ind = test_file.face_ind
    elif model is not None:
        from eval.external import uv_correspondence
        from uvgen.groundtruth import build_uv_layout

        if face_ind is None:  # the model's own face mask (what build_face_uv uses), torch-free
            from uvgen.masks import build_uv_masks

            layout = build_uv_layout(model)
            face = build_uv_masks(model, layout.size, raster=layout.raster).face
            face_ind = np.flatnonzero(face).astype(np.int64)
        corr = uv_correspondence(model.uv, model.full_triangles, face_ind)
        failures = {r.name: r.fit_error for r in records if r.shape_para is None}
    re = None
    if reannotated is not None:
        re = _reannotated(
            Path(reannotated), names, None if reannotated_names is None else Path(reannotated_names)
        )
    return AFLWTruth(
        names=tuple(names),
        yaw_deg=pose[:, 1],
        landmarks=np.array([r.pt3d_68.T for r in records], dtype=np.float64),
        source=str(data_dir),
        pose_deg=pose,
        landmarks_re=re,
        dense_failures=failures,
        canonical68=None if model is None else _mean_keypoints(model),
        unreadable=tuple(unreadable),
        records=tuple(records),
        face_ind=None if face_ind is None else np.asarray(face_ind, dtype=np.int64),
        dense_file=test_file,
        dense_index=dense_index,
        correspondence=corr,
        model=model,
    )


def _mean_keypoints(model) -> np.ndarray:
    """(68, 3) model-space mean shape (+ mean expression) at the model's 68 key vertices."""
    mean = (np.asarray(model.shape_mu, np.float64) + np.asarray(model.exp_mu, np.float64)).reshape(
        -1, 3
    )
    return mean[np.asarray(model.kpt_ind, dtype=np.int64)]
