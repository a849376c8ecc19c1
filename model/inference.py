"""PRNet inference: image + face box (or 68 points) -> crop -> position map -> landmarks and
vertices.

Coordinates: original-image pixels (x right, y down, z depth in the same pixel units) and crop
pixels of the S x S network input (S = the crop size, 256 for PRNet). The crop is PRNet's:

* from 68 points (docs/conventions.md section 6): the points' box, ``center`` its middle,
  ``size = int(1.6 * old_size)`` with ``old_size`` the mean of the box's width and height;
* from a detector box (left, right, top, bottom), as PRNet's demo does it:
  ``center = (right - (right-left)/2, bottom - (bottom-top)/2 + 0.14 * old_size)``,
  ``size = int(1.58 * old_size)``;

then ``T = uvgen.geometry.crop_transform`` (original -> crop pixels, a similarity) and the bilinear
warp ``uvgen.crop.warp_to_crop`` (rounded to uint8, like the training crops), or with
``Predictor(exact_crop=True)`` the unrounded float warp PRNet's demo feeds its network (the
Python API and ``prnet predict`` use it). A box or points entirely outside the image, or smaller
than ``MIN_FACE_PX`` a side, raise :class:`FaceRegionError` instead of giving a black crop. The
network's input is the crop / 255 in [0, 1]; its output times ``map_scale(S)`` (S * 1.1) is the map
in crop pixels; back in the original image: ``(x, y) = T^-1 (x, y)`` and ``z = z / T[0, 0]`` (the
scale). Landmarks = ``map[kpt_uv[1], kpt_uv[0]]`` (68, 3); dense vertices =
``map.reshape(-1, 3)[face_ind]`` (K, 3).

Speed: :func:`fold_batchnorm` folds every batch norm that follows a convolution into it (eval
mode), and :class:`Predictor` runs batches (bf16 autocast and channels-last on CUDA).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.checkpoint import load_weights
from model.prnet import Conv2dSame, ConvTranspose2dSame, ConvUnit, PRNet, map_scale, same_padding
from uvgen.crop import warp_float, warp_to_crop
from uvgen.formats.errors import DataError
from uvgen.geometry import CropBox, crop_transform, evaluation_crop_box
from uvgen.h5store import PositionMapFile, UVData

BOX_SHIFT = 0.14  # PRNet's demo: the detector box centre moves down by 0.14 * old_size
BOX_SCALE = 1.58  # ... and the crop side is int(1.58 * old_size)
POINTS_SCALE = 1.6  # crop side from 68 points: int(1.6 * old_size)


# ----------------------------------------------------------------------------------------------
# Geometry (pure numpy)


def box_from_bbox(left: float, right: float, top: float, bottom: float) -> CropBox:
    """PRNet's crop box for a face-detector box, in original-image pixels."""
    old_size = (right - left + bottom - top) / 2.0
    center = (right - (right - left) / 2.0, bottom - (bottom - top) / 2.0 + old_size * BOX_SHIFT)
    return CropBox(
        (float(center[0]), float(center[1])), float(int(old_size * BOX_SCALE)), float(old_size)
    )


def box_from_points(points: np.ndarray) -> CropBox:
    """PRNet's crop box for (68, 2+) points in original-image pixels (docs/conventions.md section
    6)."""
    return evaluation_crop_box(np.asarray(points, dtype=np.float64)[:, :2], POINTS_SCALE)


def crop_box(bbox: Sequence[float] | None = None, points: np.ndarray | None = None) -> CropBox:
    """The crop box from exactly one of ``bbox`` (left, right, top, bottom) or ``points`` (68,
    2+)."""
    if (bbox is None) == (points is None):
        raise ValueError("give exactly one of bbox=(left, right, top, bottom) or points=(68, 2)")
    if bbox is not None:
        left, right, top, bottom = (float(v) for v in bbox)
        return box_from_bbox(left, right, top, bottom)
    return box_from_points(points)


MIN_FACE_PX = 4.0
"""Smallest face box side (pixels) accepted for cropping; below it the crop is meaningless."""
MAX_FACE_FACTOR = 10.0
"""Largest face box side accepted, in multiples of the image's longer side."""


class FaceRegionError(ValueError):
    """A face box or landmark set that cannot give a crop (outside the image, degenerate, NaN)."""


def check_face_region(
    left: float,
    right: float,
    top: float,
    bottom: float,
    width: int,
    height: int,
    what: str = "face box",
) -> None:
    """Raise :class:`FaceRegionError` unless the region is finite, at least ``MIN_FACE_PX`` and
    at most ``MAX_FACE_FACTOR`` times the image's longer side on each side, and overlaps the
    (width x height) image."""
    values = np.array([left, right, top, bottom], dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise FaceRegionError(f"{what} has non-finite coordinates {values.tolist()}")
    w, h = right - left, bottom - top
    if w < MIN_FACE_PX or h < MIN_FACE_PX:
        raise FaceRegionError(
            f"{what} is degenerate ({w:g} x {h:g} px; at least {MIN_FACE_PX:g} px a side needed)"
        )
    if max(w, h) > MAX_FACE_FACTOR * max(width, height):
        raise FaceRegionError(
            f"{what} is too large ({w:g} x {h:g} px; at most {MAX_FACE_FACTOR:g} times the "
            f"{width}x{height} image's longer side)"
        )
    if right < 0 or bottom < 0 or left > width - 1 or top > height - 1:
        raise FaceRegionError(
            f"{what} [left {left:g}, right {right:g}, top {top:g}, bottom {bottom:g}] "
            f"lies entirely outside the {width}x{height} image"
        )


def check_region(
    image_shape: Sequence[int],
    bbox: Sequence[float] | None = None,
    points: np.ndarray | None = None,
) -> None:
    """Raise :class:`FaceRegionError` (one line) when the box (left, right, top, bottom)
    or the 68 points' box lies entirely outside the image or is degenerate: such a region would
    be cropped to a black or empty input."""
    h, w = int(image_shape[0]), int(image_shape[1])
    if bbox is not None:
        left, right, top, bottom = (float(v) for v in bbox)
        check_face_region(left, right, top, bottom, w, h, "face box")
    elif points is not None:
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] < 2 or not np.all(np.isfinite(pts[:, :2])):
            raise FaceRegionError(f"landmarks must be finite (N, 2+) pixels, got shape {pts.shape}")
        check_face_region(
            pts[:, 0].min(),
            pts[:, 0].max(),
            pts[:, 1].min(),
            pts[:, 1].max(),
            w,
            h,
            "landmarks' box",
        )


def map_to_image(map_crop: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Position map(s) in crop pixels (..., 3) -> original-image pixels.

    ``transform`` (3, 3) original -> crop (a similarity, no shear): (x, y) go through its
    inverse, z is divided by ``T[0, 0]`` (PRNet's convention; = the scale for an unrotated crop).
    """
    t = np.asarray(transform, dtype=np.float64)
    inv = np.linalg.inv(t)
    m = np.asarray(map_crop, dtype=np.float64)
    out = np.empty(m.shape, dtype=np.float32)  # float64 results rounded once, as astype would
    out[..., :2] = m[..., :2] @ inv[:2, :2].T + inv[:2, 2]
    out[..., 2:] = m[..., 2:3] / t[0, 0]
    return out


def landmarks_from_map(posmap: np.ndarray, kpt_uv: np.ndarray) -> np.ndarray:
    """(68, 3) = ``posmap[kv, ku]`` with ``kpt_uv`` (2, 68): row 0 = column ku, row 1 = row kv."""
    kpt = np.asarray(kpt_uv, dtype=np.int64)
    return np.asarray(posmap)[kpt[1], kpt[0]]


def vertices_from_map(posmap: np.ndarray, face_ind: np.ndarray) -> np.ndarray:
    """(K, 3) = ``posmap.reshape(-1, 3)[face_ind]`` (flat row-major indices of the face pixels)."""
    return np.asarray(posmap).reshape(-1, 3)[np.asarray(face_ind, dtype=np.int64)]


# ----------------------------------------------------------------------------------------------
# Batch-norm folding


class _FoldedConv(nn.Module):
    """A 'SAME' conv or transposed conv with a bias: ``conv(x) * gamma' + beta'`` of a folded BN."""

    def __init__(self, conv: Conv2dSame | ConvTranspose2dSame, bn: nn.BatchNorm2d):
        super().__init__()
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias.detach() - bn.running_mean * scale
        self.transposed = isinstance(conv, ConvTranspose2dSame)
        w = conv.weight.detach()
        # conv weight (out, in, k, k); transposed-conv weight (in, out, k, k): scale the out axis
        w = w * (scale[None, :, None, None] if self.transposed else scale[:, None, None, None])
        self.weight = nn.Parameter(w, requires_grad=False)
        self.bias = nn.Parameter(shift, requires_grad=False)
        self.kernel_size, self.stride = conv.kernel_size, conv.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size, self.stride
        if self.transposed:
            out_h, out_w = x.shape[-2] * s, x.shape[-1] * s
            top, _, _ = same_padding(out_h, k, s)
            left, _, _ = same_padding(out_w, k, s)
            y = F.conv_transpose2d(x, self.weight, self.bias, stride=s, padding=(top, left))
            y = y[..., :out_h, :out_w]
            if (
                y.shape[-2] < out_h or y.shape[-1] < out_w
            ):  # kernel < stride only; bias fills the gap
                y = F.pad(
                    y - self.bias[:, None, None], (0, out_w - y.shape[-1], 0, out_h - y.shape[-2])
                )
                y = y + self.bias[:, None, None]
            return y
        top, bottom, _ = same_padding(x.shape[-2], k, s)
        left, right, _ = same_padding(x.shape[-1], k, s)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, stride=s, padding=(top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, stride=s)


class _FoldedUnit(nn.Module):
    def __init__(self, unit: ConvUnit):
        super().__init__()
        self.conv = _FoldedConv(unit.conv, unit.bn)
        self.act = unit.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


def fold_batchnorm(model: PRNet) -> PRNet:
    """An eval-only copy of ``model`` with each conv -> BN pair merged into one biased conv.

    Equal to ``model.eval()`` up to float rounding. The batch norm after a residual sum stays (it
    follows a sum, not a single convolution).
    """
    folded = copy.deepcopy(model).eval()
    folded.stem = _FoldedUnit(folded.stem)
    for block in folded.encoder:
        block.conv1 = _FoldedUnit(block.conv1)
        block.conv2 = _FoldedUnit(block.conv2)
    folded.decoder = nn.Sequential(*[_FoldedUnit(u) for u in folded.decoder])
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


# ----------------------------------------------------------------------------------------------
# Predictor


@dataclass(frozen=True)
class Prediction:
    """One face: ``landmarks`` (68, 3) and ``vertices`` (K, 3) in original-image pixels,
    ``posmap`` (S, S, 3) the whole map in original-image pixels, ``transform`` (3, 3) original ->
    crop pixels, ``crop`` (S, S, 3) the network input times 255 (uint8, or float32 with
    ``Predictor(exact_crop=True)``)."""

    landmarks: np.ndarray
    vertices: np.ndarray
    posmap: np.ndarray
    transform: np.ndarray
    crop: np.ndarray


def check_same_size(weights: Path | str, in_size: int, uv_file: Path | str, uv_size: int) -> None:
    """DataError naming ``weights`` unless its network's crops (``in_size``) have the UV size
    ``uv_size`` of ``uv_file`` (maps and crops share their side)."""
    if int(in_size) != int(uv_size):
        raise DataError(
            weights,
            "in_size",
            f"the network takes {in_size}x{in_size} crops, but {uv_file} holds "
            f"{uv_size}x{uv_size} maps and crops (uv_size)",
        )


class Predictor:
    """Batched PRNet inference on one device.

    model: a trained PRNet (its batch norms are folded, eval mode). kpt_uv (2, 68), face_ind (K,):
    the UV layout (e.g. ``PositionMapFile(path).uv``). device: 'auto' | 'cpu' | 'cuda[:N]'.
    amp: 'bf16' (CUDA only) or 'none'. batch_size: crops per forward pass (default 1 on the CPU,
    where larger batches are no faster per image since the 256x256 activations leave the cache,
    and 128 on CUDA) exact_crop: float crops (see :meth:`crop`).
    """

    def __init__(
        self,
        model: PRNet,
        kpt_uv: np.ndarray,
        face_ind: np.ndarray,
        device: str = "auto",
        amp: str = "bf16",
        batch_size: int | None = None,
        fold: bool = True,
        exact_crop: bool = False,
    ):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.in_size = model.in_size
        net = fold_batchnorm(model) if fold else copy.deepcopy(model).eval()
        # channels-last is faster on both devices for this network (CPU: 2x on the 256x256 layers)
        self.channels_last = True
        net = net.to(self.device)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.use_amp = self.device.type == "cuda" and amp == "bf16"
        self.kpt_uv = np.asarray(kpt_uv, dtype=np.int64)
        self.face_ind = np.asarray(face_ind, dtype=np.int64)
        self.batch_size = batch_size or (128 if self.device.type == "cuda" else 1)
        self.exact_crop = exact_crop

    @classmethod
    def from_files(cls, weights: Path, uv_source: Path | UVData, **kwargs) -> Predictor:
        """From ``model.pt`` (or a checkpoint) and the UV layout of a UV HDF5 file (or a UVData).

        The file's UV size must be the network's crop size (DataError naming the weights)."""
        net = load_weights(Path(weights))
        uv = uv_source
        if not isinstance(uv, UVData):
            with PositionMapFile(Path(uv_source)) as f:
                uv, size = f.uv, f.uv_size
            check_same_size(weights, net.in_size, uv_source, size)
        return cls(net, uv.kpt_uv, uv.face_ind, **kwargs)

    @torch.inference_mode()
    def predict_maps(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """(B, S, S, 3) uint8 (or float32 0..255) crops -> (B, S, S, 3) float32 position maps in
        crop pixels. The crops are left as they are."""
        crops_t = torch.as_tensor(crops)
        if (
            crops_t.dim() != 4
            or crops_t.shape[-1] != 3
            or crops_t.shape[1:3] != (self.in_size, self.in_size)
        ):
            raise ValueError(
                f"crops must be (B, {self.in_size}, {self.in_size}, 3), got {tuple(crops_t.shape)}"
            )
        out = []
        for start in range(0, len(crops_t), self.batch_size):
            out.append(self.predict_maps_tensor(crops_t[start : start + self.batch_size]).cpu())
        if not out:
            return np.zeros((0, self.in_size, self.in_size, 3), np.float32)
        return torch.cat(out).numpy()

    @torch.inference_mode()
    def predict_maps_tensor(self, crops: torch.Tensor) -> torch.Tensor:
        """One forward pass: (B, S, S, 3) uint8 crops (any device) -> (B, S, S, 3) float32 maps in
        crop pixels, left on the predictor's device (a strided view of channels-last memory)."""
        x = crops.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div(255.0)
        x = x.contiguous(
            memory_format=torch.channels_last if self.channels_last else torch.contiguous_format
        )
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            y = self.net(x)
        return (y.float() * map_scale(self.in_size)).permute(0, 2, 3, 1)

    def crop(
        self,
        image: np.ndarray,
        bbox: Sequence[float] | None = None,
        points: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(crop (S, S, 3), transform (3, 3)) of one face; see the module docstring. The crop is
        uint8 (rounded, like the training crops), or float32 on the 0..255 scale unrounded with
        ``exact_crop`` (PRNet's demo warps the image / 255 as floats). Raises FaceRegionError for
        a box or points entirely outside the image or degenerate."""
        img = np.asarray(image)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
        check_region(img.shape, bbox, points)
        t = crop_transform(crop_box(bbox, points), self.in_size)
        if self.exact_crop:  # PRNet's demo: the float image warped bilinearly, nothing rounded
            return warp_float(img, t, self.in_size), t
        return warp_to_crop(img, t, self.in_size), t

    def decode(self, map_crop: np.ndarray, transform: np.ndarray, crop: np.ndarray) -> Prediction:
        """A crop-pixel map -> :class:`Prediction` in original-image pixels."""
        posmap = map_to_image(map_crop, transform)
        return Prediction(
            landmarks_from_map(posmap, self.kpt_uv),
            vertices_from_map(posmap, self.face_ind),
            posmap,
            transform,
            crop,
        )

    def predict(
        self,
        images: Sequence[np.ndarray],
        bboxes: Sequence[Sequence[float]] | None = None,
        points: Sequence[np.ndarray] | None = None,
    ) -> list[Prediction]:
        """One face per image, given by its detector box or its 68 points; batched forward
        passes."""
        if (bboxes is None) == (points is None):
            raise ValueError("give exactly one of bboxes or points")
        faces = bboxes if bboxes is not None else points
        if len(faces) != len(images):
            raise ValueError(f"{len(images)} images but {len(faces)} faces")
        crops, transforms = [], []
        for k, image in enumerate(images):
            c, t = self.crop(
                image,
                bbox=bboxes[k] if bboxes is not None else None,
                points=points[k] if points is not None else None,
            )
            crops.append(c)
            transforms.append(t)
        if not crops:
            return []
        maps = self.predict_maps(np.stack(crops))
        return [self.decode(m, t, c) for m, t, c in zip(maps, transforms, crops)]

    def predict_one(
        self,
        image: np.ndarray,
        bbox: Sequence[float] | None = None,
        points: np.ndarray | None = None,
    ) -> Prediction:
        """:meth:`predict` for a single image."""
        return self.predict(
            [image],
            bboxes=None if bbox is None else [bbox],
            points=None if points is None else [points],
        )[0]
