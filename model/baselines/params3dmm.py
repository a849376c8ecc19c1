"""Parameter targets of the two baselines, their whitening, and decoding back to crop-space
vertices.

Frames (uvgen.geometry): model space = BFM units (x to the subject's left, y up, z to the viewer);
crop space = pixels of the 256x256 crop (x right, y down, z depth scaled like x, min z = 0 over the
mesh). Every parameter below lives in 256-crop pixels whatever resolution the network sees.

The camera of a sample. ``uvgen.groundtruth.crop_affine`` composes pose, image axis and crop into
``crop = V @ M.T + o`` (V model-space vertices, M (3,3), o (3,)), before the z min-shift. M is
computed from the record (``pose_para``, ``transform``). The record does not store the original
image height, which o depends on, so o is read off the stored map instead: a map pixel holds
``sum_j b_j (M V_j + o)`` for its triangle's vertices V_j and barycentric weights b_j (summing to
1), so ``o = P - M sum_j b_j V_j`` at any covered pixel; we take the median over a few hundred face
pixels and reject the sample (DataError) when the residual shows that model and file disagree.
Read this way o already holds the z min-shift: ``V @ M.T + o`` *is* the ground truth's crop
vertices (its min z is 0), with nothing left to shift.

Parameter vectors (:class:`ParamSpec`):

* 3DDFA (62): the 3x4 camera ``[M | o]`` row-major (12: m00 m01 m02 o0, m10 ..., m20 m21 m22 o2),
  then shape coefficients 0..39 and expression coefficients 0..9 as stored (no eigenvalue
  scaling): the leading components, the rest truncated to 0.
* DeFA (236): the 2x4 weak-perspective camera = the first two rows of ``[M | o]`` (8), then all 199
  shape and 29 expression coefficients. Its depth row is not regressed: decoding uses
  ``m2 = -(m0 x m1) / sqrt(|m0| |m1|)`` -- for the true camera ``M / (s * crop scale)`` is
  orthogonal with determinant -1 (the image y flip), so this is exactly the scaled third rotation
  row -- and ``o2 = 0`` followed by the z min-shift.

Decoding (:func:`decode_params_to_crop_vertices`): vertices of the (truncated) coefficients, then
``V @ M.T + o`` and ``z -= min z`` over all vertices, as the ground truth is made (section 4); then
:func:`position_maps` draws them into UV position maps with the model's UV layout, so the baselines'
landmarks and dense vertices come out of exactly PRN's map decoding.

Whitening (:class:`Whitening`): each entry minus its training-set mean, over its standard deviation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from uvgen.formats.bfm import N_EXP, N_SHAPE, MorphableModel
from uvgen.formats.errors import DataError
from uvgen.groundtruth import UVLayout, crop_affine
from uvgen.h5store import PositionMapFile

AFFINE = "affine3x4"
WEAK = "weak2x4"


@dataclass(frozen=True)
class ParamSpec:
    """Layout of a parameter vector: camera block, then ``n_shape`` and ``n_exp`` coefficients."""

    name: str
    camera: str  # AFFINE (12 numbers) or WEAK (8)
    n_shape: int
    n_exp: int

    def __post_init__(self) -> None:
        if self.camera not in (AFFINE, WEAK):
            raise ValueError(f"camera must be {AFFINE!r} or {WEAK!r}, got {self.camera!r}")
        if not (0 <= self.n_shape <= N_SHAPE and 0 <= self.n_exp <= N_EXP):
            raise ValueError(f"n_shape/n_exp out of range: {self.n_shape}, {self.n_exp}")

    @property
    def camera_dim(self) -> int:
        return 12 if self.camera == AFFINE else 8

    @property
    def dim(self) -> int:
        return self.camera_dim + self.n_shape + self.n_exp

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "camera": self.camera,
            "n_shape": self.n_shape,
            "n_exp": self.n_exp,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ParamSpec:
        return cls(str(d["name"]), str(d["camera"]), int(d["n_shape"]), int(d["n_exp"]))


SPEC_3DDFA = ParamSpec("3ddfa", AFFINE, 40, 10)
SPEC_DEFA = ParamSpec("defa", WEAK, N_SHAPE, N_EXP)
SPECS = {"3ddfa": SPEC_3DDFA, "defa": SPEC_DEFA}


# ----------------------------------------------------------------------------------------------
# The exact crop-space fit of each sample


@dataclass(frozen=True)
class CropFits:
    """Ground-truth fits of N samples in crop space (float64).

    M (N,3,3), o (N,3): ``crop = V @ M.T + o`` gives the ground truth's crop vertices (min z = 0).
    shape (N,199), exp (N,29): all coefficients as stored. landmarks (N,68,3) float32: the stored
    map at the key points' UV pixels (PRN's landmark decoding of the ground truth), crop pixels.
    """

    M: np.ndarray
    o: np.ndarray
    shape: np.ndarray
    exp: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.M)

    def take(self, idx: np.ndarray | Sequence[int]) -> CropFits:
        idx = np.asarray(idx, dtype=np.int64)
        return CropFits(
            self.M[idx], self.o[idx], self.shape[idx], self.exp[idx], self.landmarks[idx]
        )


@dataclass(frozen=True)
class PixelSampler:
    """Barycentric access to chosen UV pixels:
    ``value = sum_j bary[:, j] * vertex_value[ids[:, j]]``.

    pixels (P,) flat indices (row * W + col); vertex_ids (P,3) int64; bary (P,3) float64.
    """

    pixels: np.ndarray
    vertex_ids: np.ndarray
    bary: np.ndarray

    @classmethod
    def at(cls, layout: UVLayout, flat_pixels: np.ndarray) -> PixelSampler:
        """The sampler of ``flat_pixels``; each must be covered by the layout's raster."""
        raster = layout.raster
        flat = np.asarray(flat_pixels, dtype=np.int64).ravel()
        rows = np.searchsorted(raster.pixels, flat)
        rows = np.minimum(rows, len(raster.pixels) - 1)
        if not np.array_equal(raster.pixels[rows], flat):
            raise ValueError(
                f"{int((raster.pixels[rows] != flat).sum())} UV pixels are not covered by the mesh"
            )
        return cls(
            flat, raster.vertex_ids[rows].astype(np.int64), raster.bary[rows].astype(np.float64)
        )

    @classmethod
    def keypoints(cls, layout: UVLayout, kpt_uv: np.ndarray) -> PixelSampler:
        """The 68 key-point pixels ``kpt_uv`` (2,68) (row 0 = column, row 1 = row)."""
        kpt = np.asarray(kpt_uv, dtype=np.int64)
        return cls.at(layout, kpt[1] * layout.size + kpt[0])

    def sample(self, vertices: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """(..., n, 3) per-vertex positions -> (..., P, 3) values at the pixels (as the map
        holds)."""
        if isinstance(vertices, torch.Tensor):
            ids = torch.as_tensor(self.vertex_ids, device=vertices.device)
            w = torch.as_tensor(self.bary, device=vertices.device, dtype=vertices.dtype)
            picked = vertices[..., ids, :]  # (..., P, 3 vertices, 3 coords)
            return (picked * w[..., None]).sum(dim=-2)
        return np.einsum(
            "...pjc,pj->...pc", np.asarray(vertices)[..., self.vertex_ids, :], self.bary
        )


def fit_pixels(layout: UVLayout, face_ind: np.ndarray, count: int = 256) -> np.ndarray:
    """``count`` face pixels evenly spread over the face-mask pixels that the mesh covers."""
    covered = np.intersect1d(np.asarray(face_ind, dtype=np.int64), layout.raster.pixels)
    if len(covered) == 0:
        raise ValueError("no face pixel is covered by the model's UV layout")
    pick = np.unique(
        np.linspace(0, len(covered) - 1, min(count, len(covered))).round().astype(np.int64)
    )
    return covered[pick]


def camera_linear(pose_para: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """M (3,3) of ``crop = V @ M.T + o`` (independent of the image height)."""
    return crop_affine(pose_para, 0, transform)[0]


def read_crop_fits(
    path: Path,
    model: MorphableModel,
    layout: UVLayout,
    indices: Sequence[int] | None = None,
    tol_px: float = 0.5,
    n_pixels: int = 256,
) -> CropFits:
    """The :class:`CropFits` of the samples ``indices`` (default all) of a UV HDF5 file.

    Reads the records and the stored maps (see the module docstring for o). Raises DataError
    (``posmaps``) when the map does not follow from the record and ``model`` (median residual above
    ``tol_px``: a different model, or a corrupt file).
    """
    path = Path(path)
    with PositionMapFile(path) as f:
        uv = f.uv
        records = f.records()
        idx = np.arange(len(f)) if indices is None else np.asarray(indices, dtype=np.int64)
        pix = PixelSampler.at(layout, fit_pixels(layout, uv.face_ind, n_pixels))
        kpt = np.asarray(uv.kpt_uv, dtype=np.int64)
        n = len(idx)
        M = np.empty((n, 3, 3))
        o = np.empty((n, 3))
        shape = np.empty((n, N_SHAPE))
        exp = np.empty((n, N_EXP))
        landmarks = np.empty((n, kpt.shape[1], 3), np.float32)
        ids = np.unique(pix.vertex_ids)
        local = np.searchsorted(ids, pix.vertex_ids)
        local_pix = PixelSampler(pix.pixels, local, pix.bary)
        rows3 = (3 * ids[:, None] + np.arange(3)).ravel()
        mu = model.shape_mu[rows3, 0].astype(np.float64) + model.exp_mu[rows3, 0].astype(np.float64)
        spc = model.shape_pc[rows3].astype(np.float64)
        epc = model.exp_pc[rows3].astype(np.float64)
        rr, cc = np.divmod(pix.pixels, layout.size)
        for k, i in enumerate(idx):
            rec = records[int(i)]
            posmap = f.posmap(int(i))
            M[k] = camera_linear(rec.pose_para, rec.transform)
            shape[k], exp[k] = rec.shape_para, rec.exp_para
            v = (mu + spc @ rec.shape_para + epc @ rec.exp_para).reshape(-1, 3)
            q = local_pix.sample(v) @ M[k].T
            diff = posmap[rr, cc].astype(np.float64) - q
            o[k] = np.median(diff, axis=0)
            resid = np.median(np.abs(diff - o[k]).max(axis=1))
            if not resid <= tol_px:
                raise DataError(
                    path,
                    "posmaps",
                    f"sample {int(i)} ({rec.name}): the map is {resid:.3g} px "
                    f"from the record's fit under this model (model_dir mismatch?)",
                )
            landmarks[k] = posmap[kpt[1], kpt[0]]
    return CropFits(M, o, shape, exp, landmarks)


# ----------------------------------------------------------------------------------------------
# Vectors <-> (camera, coefficients)


def _xp(a):
    return torch if isinstance(a, torch.Tensor) else np


def encode(spec: ParamSpec, M, o, shape, exp):
    """(N, spec.dim) parameter vectors from cameras M (N,3,3), o (N,3) and full coefficients.

    numpy or torch in, the same out. Coefficients beyond ``n_shape``/``n_exp`` are dropped.
    """
    xp = _xp(M)
    cam = (
        xp.concatenate([M, o[:, :, None]], axis=2)
        if xp is np
        else torch.cat([M, o[:, :, None]], dim=2)
    )
    rows = 3 if spec.camera == AFFINE else 2
    cam = cam[:, :rows].reshape(len(M), rows * 4)
    parts = [cam, shape[:, : spec.n_shape], exp[:, : spec.n_exp]]
    return np.concatenate(parts, axis=1) if xp is np else torch.cat(parts, dim=1)


def encode_fits(spec: ParamSpec, fits: CropFits) -> np.ndarray:
    """(N, spec.dim) float64 target vectors of :class:`CropFits`."""
    return encode(spec, fits.M, fits.o, fits.shape, fits.exp)


def split_params(spec: ParamSpec, p):
    """(B, dim) -> (camera (B, 12|8), shape (B, n_shape), exp (B, n_exp))."""
    c, s = spec.camera_dim, spec.n_shape
    return p[:, :c], p[:, c : c + s], p[:, c + s : c + s + spec.n_exp]


def camera_from_params(spec: ParamSpec, cam):
    """(B, 12|8) camera block -> M (B,3,3), o (B,3); torch or numpy.

    Weak perspective: ``m2 = -(m0 x m1) / sqrt(|m0| |m1|)``, ``o2 = 0`` (see the module docstring).
    """
    xp = _xp(cam)
    b = cam.shape[0]
    if spec.camera == AFFINE:
        p = cam.reshape(b, 3, 4)
        return p[:, :, :3], p[:, :, 3]
    p = cam.reshape(b, 2, 4)
    m0, m1 = p[:, 0, :3], p[:, 1, :3]
    if xp is np:
        norm = np.sqrt(np.linalg.norm(m0, axis=1) * np.linalg.norm(m1, axis=1))[:, None]
        m2 = -np.cross(m0, m1) / np.maximum(norm, 1e-30)
        o = np.concatenate([p[:, :, 3], np.zeros((b, 1), p.dtype)], axis=1)
        return np.stack([m0, m1, m2], axis=1), o
    norm = torch.sqrt(m0.norm(dim=1) * m1.norm(dim=1)).clamp_min(1e-30)[:, None]
    m2 = -torch.linalg.cross(m0, m1) / norm
    o = torch.cat([p[:, :, 3], p.new_zeros(b, 1)], dim=1)
    return torch.stack([m0, m1, m2], dim=1), o


# ----------------------------------------------------------------------------------------------
# The morphable model as a (torch) linear basis


class VertexBasis:
    """Mean and the leading components of a morphable model on k vertices, as torch tensors.

    ``vertices(shape (B,S), exp (B,E)) -> (B,k,3)`` model-space vertices
    ``mean + shape @ shape_pc + exp @ exp_pc``; ``gram`` (S+E,3,3) = per component
    ``sum_k A_k A_k^T`` over the vertices (for WPDC's sensitivities).
    """

    def __init__(
        self,
        model: MorphableModel,
        n_shape: int,
        n_exp: int,
        vertex_ids: np.ndarray | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        n = model.n_vertices
        ids = np.arange(n) if vertex_ids is None else np.asarray(vertex_ids, dtype=np.int64)
        rows = (3 * ids[:, None] + np.arange(3)).ravel()
        mean = model.shape_mu[rows, 0].astype(np.float64) + model.exp_mu[rows, 0].astype(np.float64)
        self.vertex_ids = ids
        self.k = len(ids)
        self.n_shape, self.n_exp = n_shape, n_exp
        self.mean = torch.as_tensor(mean, dtype=dtype, device=device)  # (3k,)
        # (S, 3k) row per component: one matrix product decodes a batch
        self.shape_pc = torch.as_tensor(
            np.ascontiguousarray(model.shape_pc[rows, :n_shape].T), dtype=dtype, device=device
        )
        self.exp_pc = torch.as_tensor(
            np.ascontiguousarray(model.exp_pc[rows, :n_exp].T), dtype=dtype, device=device
        )

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def vertices(self, shape: torch.Tensor, exp: torch.Tensor) -> torch.Tensor:
        flat = (
            self.mean
            + shape.to(self.mean.dtype) @ self.shape_pc
            + exp.to(self.mean.dtype) @ self.exp_pc
        )
        return flat.reshape(len(shape), self.k, 3)

    def gram(self) -> torch.Tensor:
        """(S+E, 3, 3) ``sum over vertices of A A^T`` of each component's (k, 3) displacement A."""
        comps = torch.cat([self.shape_pc, self.exp_pc]).to(torch.float64).reshape(-1, self.k, 3)
        return torch.einsum("ski,skj->sij", comps, comps)


def crop_vertices_torch(
    spec: ParamSpec, params: torch.Tensor, basis: VertexBasis, shift_z: bool = False
) -> torch.Tensor:
    """(B, dim) raw parameters -> (B, k, 3) crop-space positions of the basis's vertices.

    ``shift_z``: subtract the min z over these vertices (the ground truth's convention when the
    basis holds all vertices).
    """
    cam, a, b = split_params(spec, params)
    M, o = camera_from_params(spec, cam)
    v = basis.vertices(a, b)
    pos = v @ M.transpose(1, 2).to(v.dtype) + o[:, None, :].to(v.dtype)
    if shift_z:
        pos = torch.cat(
            [pos[..., :2], pos[..., 2:] - pos[..., 2:].amin(dim=1, keepdim=True)], dim=-1
        )
    return pos


class LandmarkDecoder:
    """Raw parameters -> the 68 landmarks exactly as PRN decodes them from a map (``map[kv, ku]``).

    Only the vertices of the triangles under the 68 key-point UV pixels are decoded (at most 204),
    then interpolated with the pixels' barycentric weights: equal to drawing the whole map and
    reading it at ``kpt_uv``, without the map. z is not min-shifted (use it for x, y only).
    """

    def __init__(
        self,
        spec: ParamSpec,
        model: MorphableModel,
        layout: UVLayout,
        kpt_uv: np.ndarray,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ):
        full = PixelSampler.keypoints(layout, kpt_uv)
        ids = np.unique(full.vertex_ids)
        self.spec = spec
        self.sampler = PixelSampler(full.pixels, np.searchsorted(ids, full.vertex_ids), full.bary)
        self.basis = VertexBasis(model, spec.n_shape, spec.n_exp, ids, dtype=dtype, device=device)

    def __call__(self, params: torch.Tensor) -> torch.Tensor:
        """(B, dim) raw parameters -> (B, 68, 3) crop pixels."""
        return self.sampler.sample(crop_vertices_torch(self.spec, params, self.basis))


def decode_params_to_crop_vertices(
    params: np.ndarray, spec: ParamSpec, model: MorphableModel | VertexBasis, shift_z: bool = True
) -> np.ndarray:
    """Raw (unwhitened) parameters (B, dim) or (dim,) -> crop-space vertices (B, n, 3) or (n, 3).

    ``model``: the morphable model (all n vertices, float64) or a prepared :class:`VertexBasis`.
    With ``shift_z`` (default) z is shifted so that its minimum over the vertices is 0, as the
    ground truth is; then the (n, 3) arrays go straight into ``UVLayout.position_map``.
    """
    p = np.asarray(params, dtype=np.float64)
    single = p.ndim == 1
    p = np.atleast_2d(p)
    if p.shape[1] != spec.dim:
        raise ValueError(f"{spec.name} parameters must have {spec.dim} entries, got {p.shape[1]}")
    basis = (
        model
        if isinstance(model, VertexBasis)
        else VertexBasis(model, spec.n_shape, spec.n_exp, dtype=torch.float64)
    )
    with torch.no_grad():
        out = (
            crop_vertices_torch(
                spec,
                torch.as_tensor(p, dtype=basis.mean.dtype, device=basis.device),
                basis,
                shift_z,
            )
            .cpu()
            .numpy()
        )
    return out[0] if single else out


def position_maps(layout: UVLayout, crop_vertices: np.ndarray) -> np.ndarray:
    """(B, n, 3) crop-space vertices -> (B, S, S, 3) float32 UV position maps (background 0).

    The batch version of ``UVLayout.position_map``: one sparse product for all B samples.
    """
    v = np.asarray(crop_vertices, dtype=np.float32)
    b, n, _ = v.shape
    mat = layout.raster.sampling_matrix(np.float32)
    out = np.asarray(mat @ v.transpose(1, 0, 2).reshape(n, b * 3))
    return np.ascontiguousarray(out.reshape(layout.size, layout.size, b, 3).transpose(2, 0, 1, 3))


# ----------------------------------------------------------------------------------------------
# Whitening and augmentation


@dataclass(frozen=True)
class Whitening:
    """Per-entry ``(p - mean) / std`` of parameter vectors (D,), float64.

    An entry that does not vary in the training set (std 0, or below 1e-9 of its |mean|) gets
    std = |mean| (or 1 when the mean is 0 too), so its whitened value stays finite.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, targets: np.ndarray) -> Whitening:
        t = np.asarray(targets, dtype=np.float64)
        if t.ndim != 2 or len(t) == 0:
            raise ValueError(f"targets must be (N, D) with N > 0, got {t.shape}")
        mean, std = t.mean(axis=0), t.std(axis=0)
        flat = (std == 0) | (std <= 1e-9 * np.abs(mean))
        std = np.where(flat, np.where(mean != 0, np.abs(mean), 1.0), std)
        return cls(mean, std)

    def whiten(self, p):
        if isinstance(p, torch.Tensor):
            return (p - p.new_tensor(self.mean)) / p.new_tensor(self.std)
        return (np.asarray(p) - self.mean) / self.std

    def unwhiten(self, p):
        if isinstance(p, torch.Tensor):
            return p * p.new_tensor(self.std) + p.new_tensor(self.mean)
        return np.asarray(p) * self.std + self.mean

    def to_state(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Whitening:
        return cls(
            np.asarray(state["mean"], dtype=np.float64), np.asarray(state["std"], dtype=np.float64)
        )


def _lift(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B,2,3) similarity -> its (B,2,2) linear part, (B,2) shift and (B,) scale sqrt|det|."""
    lin, t = A[:, :, :2], A[:, :, 2]
    return lin, t, torch.sqrt(torch.abs(torch.linalg.det(lin)))


def augment_camera(
    M: torch.Tensor, o: torch.Tensor, A: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The camera after a crop augmentation ``p' = A @ [x, y, 1]``, ``z' = s z`` (model.augment).

    ``M' = L M``, ``o' = L o + [t, 0]`` with ``L = [[A_lin, 0], [0, s]]``: the decoded vertices
    move exactly as model.augment.transform_maps moves the map (min z stays 0).
    """
    lin, t, s = _lift(A.to(M.dtype))
    L = torch.zeros(len(M), 3, 3, dtype=M.dtype, device=M.device)
    L[:, :2, :2] = lin
    L[:, 2, 2] = s
    o2 = (L @ o[:, :, None])[:, :, 0] + torch.cat([t, t.new_zeros(len(t), 1)], dim=1)
    return L @ M, o2


def augment_points(points: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """(B,K,3) crop points through the augmentation: (x, y) -> A (x, y, 1), z -> s z."""
    lin, t, s = _lift(A.to(points.dtype))
    xy = points[..., :2] @ lin.transpose(1, 2) + t[:, None, :]
    return torch.cat([xy, points[..., 2:] * s[:, None, None]], dim=-1)


def model_dir_of(path: Path) -> Path:
    """The ``model_dir`` recorded in a UV file's ``params`` attribute (relative to the cwd)."""
    with PositionMapFile(Path(path)) as f:
        try:
            params = json.loads(f.attrs["params"])
            return Path(params["model_dir"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                path, "params", f"no model_dir in the file's params attribute ({err})"
            ) from err


__all__ = [
    "ParamSpec",
    "SPEC_3DDFA",
    "SPEC_DEFA",
    "SPECS",
    "AFFINE",
    "WEAK",
    "CropFits",
    "PixelSampler",
    "read_crop_fits",
    "fit_pixels",
    "camera_linear",
    "encode",
    "encode_fits",
    "split_params",
    "camera_from_params",
    "VertexBasis",
    "LandmarkDecoder",
    "crop_vertices_torch",
    "decode_params_to_crop_vertices",
    "position_maps",
    "Whitening",
    "augment_camera",
    "augment_points",
    "model_dir_of",
]
