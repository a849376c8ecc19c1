"""Per-image metrics of every method against the test file's ground truth (docs/conventions.md
section 6).

Ground truth, per test image of a UV HDF5 file (``uvgen.h5store``, split 'test'):

* 68 points: ``extras/landmarks_gt`` (68, 3), AFLW2000-3D's ``pt3d_68`` in original-image pixels;
* dense: the ground-truth position map at ``uv/face_ind``, taken back to the original image like a
  prediction ((x, y) through the inverse crop transform, z / T[0, 0]): (K, 3) pixels;
* yaw: ``yaw_deg`` (the yaw of ``Pose_Para``), binned on |yaw| by :mod:`eval.tables`.

Metrics per image (unitless fractions; x100 for %), columns :data:`METRICS`:

* ``nme_2d_68``, ``nme_3d_68``: mean 68-point error in (x, y), resp. (x, y, z) after shifting each
  point set to min z = 0, divided by ``sqrt(w*h)`` of the ground-truth 68 points' (x, y) box
  (3DDFA's benchmark);
* ``nme_2d_dense``, ``nme_3d_dense``: the same over the K dense face vertices;
* ``recon_3d_dense``: mean 3D error of the dense vertices after the least-squares rigid alignment
  (rotation + translation, Kabsch; a global scale too when ``recon_scale``) of the prediction onto
  the ground truth with known correspondences (the same face-mask pixels).

Normaliser: the SAME for all five, the 68 ground-truth points' box, as 3DDFA-style benchmarks do
for dense errors too (the dense points' own box would be larger, the face mask reaching beyond the
jaw and the forehead, and would make dense and 68-point numbers incomparable).

Images are matched by name (:func:`eval.predictions.name_key`). A test image without a prediction
gets NaN for every metric (counted as a failure by the CED, left out of the means with a warning);
a prediction for an image not in the test file is reported. Nothing is dropped silently: each
:class:`MethodResult` lists both, and ``on_unmatched='fail'`` turns them into a DataError.

Speed: images are processed in chunks with batched numpy (one SVD of a (B, 3, 3) stack for the
alignment); ``benchmarks/bench_evaluate.py`` measures 2,000 images at PRNet's K = 43,867:
9.4 s from the files (GT maps decoded, predictions read), 2.7 ms/image of it the metric arithmetic
(2-core development machine shared with other jobs).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eval.decode import to_image_batch
from eval.metrics import bbox_size, nme_2d_batch, nme_3d_batch
from eval.pose import POSE_METRICS, angle_errors, pose_from_landmarks
from eval.predictions import N_LANDMARKS, PredictionSet, name_key
from eval.tables import METRICS, per_image_table
from uvgen.closing import ClosesOnExit
from uvgen.formats.errors import DataError
from uvgen.h5open import open_h5

DENSE_METRICS = ("nme_2d_dense", "nme_3d_dense", "recon_3d_dense")
_MEM = "<memory>"


# ----------------------------------------------------------------------------------------------
# Ground truth


@dataclass(eq=False)
class GroundTruth:
    """Ground truth in memory: ``names`` (N,), ``yaw_deg`` (N,), ``landmarks`` (N, 68, 3) and
    optionally ``dense`` (N, K, 3), all in original-image pixels.

    Optional, for the further tables: ``pose_deg`` (N, 3) (pitch, yaw, roll) degrees as stored
    (head pose, :mod:`eval.pose`); ``landmarks_re`` (N, 68, 2) re-annotated landmarks (NaN rows:
    none for that image); ``canonical68`` (68, 3) the model's mean key vertices (pose of methods
    that give landmarks only); ``dense_failures`` {name: reason} images without a dense ground
    truth (their dense rows are NaN: failures in the dense tables, never dropped).
    """

    names: tuple[str, ...]
    yaw_deg: np.ndarray
    landmarks: np.ndarray
    dense: np.ndarray | None = None
    source: str = _MEM
    pose_deg: np.ndarray | None = None
    landmarks_re: np.ndarray | None = None
    canonical68: np.ndarray | None = None
    dense_failures: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        n = len(self.names)
        yaw = np.asarray(self.yaw_deg, dtype=np.float64)
        lm = np.asarray(self.landmarks, dtype=np.float64)
        if yaw.shape != (n,) or not np.all(np.isfinite(yaw)):
            raise DataError(
                self.source, "yaw_deg", f"expected ({n},) finite degrees, got {yaw.shape}"
            )
        if lm.shape != (n, N_LANDMARKS, 3) or not np.all(np.isfinite(lm)):
            raise DataError(
                self.source, "landmarks", f"expected finite ({n}, 68, 3), got {lm.shape}"
            )
        object.__setattr__(self, "yaw_deg", yaw)
        object.__setattr__(self, "landmarks", lm)
        for key, shape in (("pose_deg", (n, 3)), ("landmarks_re", (n, N_LANDMARKS, 2))):
            value = getattr(self, key)
            if value is not None:
                value = np.asarray(value, dtype=np.float64)
                if value.shape != shape:
                    raise DataError(self.source, key, f"expected {shape}, got {value.shape}")
                object.__setattr__(self, key, value)
        if self.dense is not None:
            d = np.asarray(self.dense)
            if d.ndim != 3 or d.shape[0] != n or d.shape[2] != 3:
                raise DataError(self.source, "dense", f"expected ({n}, K, 3), got {d.shape}")
            object.__setattr__(self, "dense", d)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def dense_count(self) -> int | None:
        return None if self.dense is None else int(self.dense.shape[1])

    def dense_rows(self, rows: slice) -> np.ndarray:
        if self.dense is None:
            raise ValueError("no dense ground truth")
        return np.asarray(self.dense[rows], dtype=np.float64)


class GroundTruthFile(GroundTruth, ClosesOnExit):
    """The ground truth of a test-split UV HDF5 file; dense rows are decoded from its maps on
    demand. A context manager (keeps the file open)."""

    def __init__(self, path: str | Path):

        from uvgen.h5store import PositionMapFile

        path = Path(path)
        with PositionMapFile(path) as f:  # validates the layout
            recs = f.records()
            layout = f.uv
            offset = float(f.attrs["posmap_offset"])
            self.uv_size = f.uv_size  # side of the maps (uvgen.uv_size)
        if recs and "landmarks_gt" not in recs[0].extras:
            raise DataError(path, "extras/landmarks_gt", "missing: not a test-split file")
        self.face_ind = np.asarray(layout.face_ind, dtype=np.int64)
        self.kpt_uv = np.asarray(layout.kpt_uv, dtype=np.int64)
        self.transforms = np.array([r.transform for r in recs], dtype=np.float64).reshape(-1, 3, 3)
        super().__init__(
            names=tuple(r.name for r in recs),
            yaw_deg=np.array([r.yaw_deg for r in recs], dtype=np.float64),
            landmarks=np.array([r.extras["landmarks_gt"] for r in recs], dtype=np.float64).reshape(
                -1, 68, 3
            ),
            dense=None,
            source=str(path),
            pose_deg=np.array(
                [(r.pitch_deg, r.yaw_deg, r.roll_deg) for r in recs], dtype=np.float64
            ).reshape(-1, 3),
        )
        # batch reads of the stored maps (uvgen.h5store layout: ``posmaps`` = map - posmap_offset)
        self._h5 = open_h5(path)
        self._posmaps = self._h5["posmaps"]
        self._offset = offset

    @property
    def dense_count(self) -> int | None:
        return int(self.face_ind.size)

    def dense_rows(self, rows: slice) -> np.ndarray:
        """(B, K, 3) float64 ground-truth dense vertices in original-image pixels.

        Reads the stored maps of the rows in one go, keeps the face pixels, adds the storage offset
        back and maps them to the original image (:func:`eval.decode.to_image_batch`)."""
        start, stop, step = rows.indices(len(self))
        stored = (
            self._posmaps[start:stop:step]
            if step == 1
            else self._posmaps[list(range(start, stop, step))]
        )
        pts = stored.reshape(len(stored), -1, 3)[:, self.face_ind].astype(np.float64)
        pts += self._offset
        return to_image_batch(pts, self.transforms[start:stop:step])

    def close(self) -> None:
        self._h5.close()


# ----------------------------------------------------------------------------------------------
# Name matching


@dataclass(frozen=True, eq=False)
class Matching:
    """How a method's predictions line up with the test images.

    ``index`` (N_test,): row of each test image in the predictions, -1 where missing;
    ``missing``: test names without a prediction; ``extra``: predicted names not in the test set;
    both spelled as :func:`name_key` (``image02139``), as every report spells image names.
    """

    index: np.ndarray
    missing: tuple[str, ...]
    extra: tuple[str, ...]

    @property
    def n_matched(self) -> int:
        return int((self.index >= 0).sum())


def match_names(
    test_names: Sequence[str], pred_names: Sequence[str], source: str = _MEM
) -> Matching:
    """Match predictions to test images by :func:`name_key`; duplicate keys -> DataError."""
    pred_keys: dict[str, int] = {}
    for j, n in enumerate(pred_names):
        k = name_key(n)
        if k in pred_keys:
            raise DataError(source, "names", f"two predictions for image {k!r}")
        pred_keys[k] = j
    test_keys = [name_key(n) for n in test_names]
    index = np.array([pred_keys.get(k, -1) for k in test_keys], dtype=np.int64)
    missing = tuple(name_key(n) for n, i in zip(test_names, index) if i < 0)
    test_set = set(test_keys)
    extra = tuple(name_key(n) for n in pred_names if name_key(n) not in test_set)
    return Matching(index, missing, extra)


# ----------------------------------------------------------------------------------------------
# Batched metrics (pure numpy)


def _planes(points: np.ndarray) -> np.ndarray:
    """(B, K, 3) -> contiguous float64 (B, 3, K): coordinate planes, fast for large K."""
    pts = np.asarray(points)
    if pts.ndim != 3 or pts.shape[2] != 3:
        raise DataError(_MEM, "points", f"expected (B, K, 3), got {pts.shape}")
    return np.array(pts.transpose(0, 2, 1), dtype=np.float64, order="C", copy=True)


def _kabsch(pc: np.ndarray, gc: np.ndarray, scale: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rotations R (B, 3, 3) and scales s (B,) minimising sum ||s R pc_k - gc_k||^2 for centred
    planes pc, gc (B, 3, K); proper rotations only (det +1), s = 1 unless ``scale``."""
    h = np.matmul(pc, gc.transpose(0, 2, 1))  # (B, 3, 3) = sum_k pc_k gc_k^T
    u, sv, vt = np.linalg.svd(h)
    v, ut = vt.transpose(0, 2, 1), u.transpose(0, 2, 1)
    d = np.sign(np.linalg.det(np.matmul(v, ut)))
    d[d == 0] = 1.0
    dm = np.stack([np.ones_like(d), np.ones_like(d), d], axis=1)  # (B, 3)
    r = np.matmul(v * dm[:, None, :], ut)  # V diag(1, 1, d) U^T
    s = np.ones(len(pc))
    if scale:
        var = np.einsum("bik,bik->b", pc, pc)
        s = (sv * dm).sum(axis=1) / np.where(var > 0, var, 1.0)
    return r, s


def rigid_align_batch(pred: np.ndarray, gt: np.ndarray, scale: bool = False) -> np.ndarray:
    """Batched Kabsch/Umeyama: each ``pred[b]`` (K, 3) aligned onto ``gt[b]`` -> (B, K, 3).

    Least squares over proper rotations (det +1), translation and, with ``scale``, a factor > 0;
    the same solution as :func:`eval.metrics.rigid_transform`, one SVD of a (B, 3, 3) stack.
    """
    p, g = _planes(pred), _planes(gt)
    mp, mg = p.mean(axis=2, keepdims=True), g.mean(axis=2, keepdims=True)
    r, s = _kabsch(p - mp, g - mg, scale)
    aligned = np.matmul(r, p - mp) * s[:, None, None] + mg
    return aligned.transpose(0, 2, 1)


def dense_errors(
    pred: np.ndarray, gt: np.ndarray, normaliser: np.ndarray, recon_scale: bool = False
) -> dict[str, np.ndarray]:
    """Dense metrics of B images: {'nme_2d_dense', 'nme_3d_dense', 'recon_3d_dense': (B,)}.

    pred, gt (B, K, 3) pixels; normaliser (B,) pixels. The values equal
    :func:`eval.metrics.nme_2d_batch`, :func:`eval.metrics.nme_3d_batch` (each set shifted to
    min z = 0) and the mean error after :func:`rigid_align_batch`; computed on (B, 3, K) planes
    sharing one difference array (the large-K path; ~5x fewer passes over the data).
    """
    p, g = _planes(pred), _planes(gt)
    if p.shape != g.shape:
        raise DataError(_MEM, "pred", f"shape {pred.shape} does not match gt shape {gt.shape}")
    if not (np.isfinite(p).all() and np.isfinite(g).all()):
        raise DataError(_MEM, "pred", "non-finite dense points")
    norm = np.broadcast_to(np.asarray(normaliser, dtype=np.float64), (len(p),))
    if not (np.isfinite(norm).all() and (norm > 0).all()):
        raise DataError(_MEM, "normaliser", "must be finite and > 0 (degenerate ground-truth box?)")
    d = p - g
    sq = d[:, 0] ** 2
    sq += d[:, 1] ** 2
    nme2 = np.sqrt(sq).mean(axis=1) / norm
    dz = d[:, 2] - (p[:, 2].min(axis=1) - g[:, 2].min(axis=1))[:, None]  # both shifted to min z = 0
    sq += dz**2
    nme3 = np.sqrt(sq).mean(axis=1) / norm
    p -= p.mean(axis=2, keepdims=True)
    g -= g.mean(axis=2, keepdims=True)
    r, s = _kabsch(p, g, recon_scale)
    e = np.matmul(r, p)
    if recon_scale:
        e *= s[:, None, None]
    e -= g
    recon = np.sqrt(np.einsum("bik,bik->bk", e, e)).mean(axis=1) / norm
    return {"nme_2d_dense": nme2, "nme_3d_dense": nme3, "recon_3d_dense": recon}


def image_metrics(
    gt_landmarks: np.ndarray,
    pred_landmarks: np.ndarray | None = None,
    gt_dense: np.ndarray | None = None,
    pred_dense: np.ndarray | None = None,
    recon_scale: bool = False,
) -> dict[str, np.ndarray]:
    """The metrics of B images -> {metric: (B,)}, only those the inputs allow.

    gt_landmarks (B, 68, 3) sets the normaliser of every metric (its (x, y) box's sqrt(w*h));
    pred_landmarks (B, 68, 3) (z all NaN = 2D only: no ``nme_3d_68``); gt_dense, pred_dense
    (B, K, 3). Pixels in, fractions out.
    """
    g68 = np.asarray(gt_landmarks, dtype=np.float64)
    norm = np.atleast_1d(bbox_size(g68))
    out: dict[str, np.ndarray] = {}
    if pred_landmarks is not None:
        p68 = np.asarray(pred_landmarks, dtype=np.float64)
        out["nme_2d_68"] = nme_2d_batch(p68[..., :2], g68, norm)
        if np.isfinite(p68[..., 2]).all():
            out["nme_3d_68"] = nme_3d_batch(p68, g68, norm)
    if pred_dense is not None and gt_dense is not None:
        gd, pd_ = np.asarray(gt_dense), np.asarray(pred_dense)
        ok = np.isfinite(gd).all(axis=(1, 2)) & np.isfinite(pd_).all(axis=(1, 2))
        vals = {k: np.full(len(g68), np.nan) for k in DENSE_METRICS}
        if ok.any():  # a missing dense ground truth (or prediction) is a failure, not dropped
            for k, v in dense_errors(pd_[ok], gd[ok], norm[ok], recon_scale).items():
                vals[k][ok] = v
        out.update(vals)
    return out


def _reannotated_nme(pred68: np.ndarray, gt_re: np.ndarray) -> np.ndarray:
    """2D NME (B,) against re-annotated (B, 68, 2) points, normalised by their own box; NaN where
    an image has no re-annotation."""
    out = np.full(len(gt_re), np.nan)
    ok = np.isfinite(gt_re).all(axis=(1, 2))
    if ok.any():
        out[ok] = nme_2d_batch(np.asarray(pred68)[ok, :, :2], gt_re[ok])
    return out


# ----------------------------------------------------------------------------------------------
# Evaluation of methods


@dataclass(frozen=True, eq=False)
class MethodResult:
    """One method on the test set.

    ``per_image``: :mod:`eval.tables` layout (name, yaw, then every metric of :data:`METRICS`;
    fractions, NaN where the image is missing or the method cannot give the metric);
    ``metrics``: the metrics the method gives; ``matching``; ``runtime_s``: mean seconds per
    matched image (NaN = unknown); ``source``: where the predictions came from.
    """

    method: str
    per_image: pd.DataFrame
    metrics: tuple[str, ...]
    matching: Matching
    runtime_s: float
    source: str
    meta: dict[str, str] = field(default_factory=dict)


def _method_metrics(preds: PredictionSet, gt: GroundTruth) -> tuple[str, ...]:
    out: list[str] = []
    gt_dense_count = gt.dense_count
    if preds.has_landmarks:
        out += ["nme_2d_68", *(["nme_3d_68"] if preds.has_landmarks_z else [])]
        if gt.landmarks_re is not None:
            out.append("nme_2d_68_re")
    if preds.dense_count is not None and gt_dense_count is not None:
        if preds.dense_count != gt_dense_count:
            raise DataError(
                preds.source,
                "dense",
                f"{preds.dense_count} points per image; the ground truth's face_ind has "
                f"{gt_dense_count}",
            )
        out += list(DENSE_METRICS)
    if gt.pose_deg is not None and (
        _pose_of(preds) is not None
        or (preds.has_landmarks and preds.has_landmarks_z and gt.canonical68 is not None)
    ):
        out += list(POSE_METRICS)
    return tuple(out)


def _pose_of(preds: PredictionSet) -> np.ndarray | None:
    """The method's own (N, 3) pose in degrees (pitch, yaw, roll), if it gives one."""
    pose = getattr(preds, "pose", None)
    return None if pose is None else np.asarray(pose, dtype=np.float64)


def _rows(idx: np.ndarray) -> np.ndarray | slice:
    """A slice when the rows are consecutive (fast reads), else the index array."""
    if idx.size and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def evaluate(
    gt: GroundTruth,
    methods: Sequence[PredictionSet],
    chunk: int = 64,
    recon_scale: bool = False,
    on_unmatched: str = "report",
) -> list[MethodResult]:
    """Every method's per-image metrics against ``gt``, one pass over the ground truth in chunks.

    ``on_unmatched``: 'report' (warn; missing images get NaN) or 'fail' (DataError naming the
    predictions' source and the first unmatched names).
    """
    if on_unmatched not in ("report", "fail"):
        raise ValueError(f"on_unmatched must be 'report' or 'fail', got {on_unmatched!r}")
    labels = [m.method for m in methods]
    if len(set(labels)) != len(labels):
        raise ValueError(f"method labels must be unique, got {labels}")
    n = len(gt)
    plans = []
    for m in methods:
        avail = _method_metrics(m, gt)
        match = match_names(gt.names, m.names, m.source)
        if match.missing or match.extra:
            msg = (
                f"{m.method} ({m.source}): {len(match.missing)} test image(s) without a prediction"
                f"{_first(match.missing)}, {len(match.extra)} prediction(s) for images not in the "
                "test set"
                f"{_first(match.extra)}"
            )
            if on_unmatched == "fail":
                raise DataError(m.source, "names", msg)
            warnings.warn(msg, stacklevel=2)
        cols = {k: np.full(n, np.nan) for k in (*METRICS, *POSE_METRICS)}
        plans.append((m, avail, match, cols))
    need_dense = any(set(DENSE_METRICS) & set(avail) for _, avail, _, _ in plans)

    for start in range(0, n, max(1, int(chunk))):
        sl = slice(start, min(n, start + max(1, int(chunk))))
        g68 = gt.landmarks[sl]
        gdense = gt.dense_rows(sl) if need_dense else None
        for m, avail, match, cols in plans:
            idx = match.index[sl]
            ok = idx >= 0
            if not ok.any():
                continue
            rows = _rows(idx[ok])
            where = np.arange(sl.start, sl.stop)[ok]
            pred68 = m.landmarks_rows(rows) if m.has_landmarks else None
            use_dense = "nme_2d_dense" in avail
            res = image_metrics(
                g68[ok],
                pred68,
                gdense[ok] if use_dense else None,
                m.dense_rows(rows) if use_dense else None,
                recon_scale=recon_scale,
            )
            if "nme_2d_68_re" in avail:
                res["nme_2d_68_re"] = _reannotated_nme(pred68, gt.landmarks_re[sl][ok])
            if POSE_METRICS[0] in avail:
                own = _pose_of(m)
                pose = (
                    own[idx[ok]] if own is not None else pose_from_landmarks(pred68, gt.canonical68)  # type: ignore[arg-type]
                )
                errors = angle_errors(pose, gt.pose_deg[sl][ok])  # type: ignore[index]
                res.update({k: errors[:, i] for i, k in enumerate(POSE_METRICS)})
            for key, vals in res.items():
                cols[key][where] = vals

    out = []
    for m, avail, match, cols in plans:
        table = per_image_table([name_key(n) for n in gt.names], gt.yaw_deg, **cols)
        matched = match.index[match.index >= 0]
        rt = m.runtime_s[matched] if matched.size else np.array([np.nan])
        runtime = float(np.nanmean(rt)) if np.isfinite(rt).any() else float("nan")
        meta = dict(getattr(m, "meta", {}) or {})
        out.append(MethodResult(m.method, table, avail, match, runtime, m.source, meta))
    return out


def _first(names: Sequence[str], k: int = 3) -> str:
    if not names:
        return ""
    more = ", ..." if len(names) > k else ""
    return " (" + ", ".join(names[:k]) + more + ")"


def combined_per_image(results: Sequence[MethodResult]) -> pd.DataFrame:
    """One wide per-image table: name, yaw, then ``<method>/<metric>`` for each method's metrics
    (fractions). Valid input for :func:`eval.tables.summarise` and
    :func:`eval.tables.write_per_image`."""
    if not results:
        raise ValueError("no results")
    base = results[0].per_image[["name", "yaw"]].copy()
    for r in results:
        if list(r.per_image["name"]) != list(base["name"]):
            raise ValueError(f"{r.method}: per-image rows differ from {results[0].method}'s")
        for metric in r.metrics:
            base[f"{r.method}/{metric}"] = r.per_image[metric].to_numpy()
    return base
