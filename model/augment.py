"""On-device training augmentation, as in the PRNet paper (section 8 of docs/conventions.md).

Coordinates: crop pixels with pixel centres at integers 0..W-1 (x right) and 0..H-1 (y down);
position maps store (x, y, z) in those pixels (z depth). A geometric augmentation is one 2x3 affine
``A`` per sample mapping an original crop pixel (x, y) to the augmented crop pixel
``A @ [x, y, 1]``: a rotation by theta and a uniform scale s about the crop centre
((W-1)/2, (H-1)/2), then a shift t:  ``p' = s R(theta) (p - c) + c + t`` with
``R = [[cos, -sin], [sin, cos]]`` (positive theta turns clockwise on screen, since y points down).

* the image is resampled through the inverse of ``A`` (bilinear, zeros outside);
* the position map keeps its UV layout; the (x, y) it stores go through ``A`` and z is multiplied
  by the scale s (= sqrt|det A[:, :2]|), so min z stays 0 and the map stays consistent with the
  image, as the crop step does it (section 4).

Then a per-channel colour scale (clamped to [0, 1]) and, with some probability, one rectangle of
noise texture per image (occlusion; the map is unchanged). All randomness comes from the given
``torch.Generator`` (put it on the images' device for speed; draws are moved to that device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation ranges; defaults from the paper where it gives them.

    rotation_deg: angle uniform in [-rotation_deg, rotation_deg] (paper: 45).
    scale_range: uniform scale factor (paper: 0.9..1.2).
    shift_frac: shift per axis uniform in +-shift_frac * side (paper: "translation"; ours 10 %).
    color_range: per-channel multiplier (paper: 0.6..1.4).
    occlusion_prob: probability that an image gets a noise-texture rectangle (our choice).
    occlusion_size: rectangle height and width, each uniform in this fraction of the side.
    noise_cell_px: the noise is drawn on a grid of this cell size and bilinearly upsampled.
    """

    rotation_deg: float = 45.0
    scale_range: tuple[float, float] = (0.9, 1.2)
    shift_frac: float = 0.1
    color_range: tuple[float, float] = (0.6, 1.4)
    occlusion_prob: float = 0.5
    occlusion_size: tuple[float, float] = (0.1, 0.5)
    noise_cell_px: int = 4


def _uniform(
    shape: tuple[int, ...],
    low: float,
    high: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """Uniform draws in [low, high) from ``generator`` (on its device), returned on ``device``."""
    gen_device = generator.device if generator is not None else device
    u = torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float64)
    return (low + (high - low) * u).to(device)


def make_affine(
    angle_rad: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """(B,) angles, (B,) scales, (B, 2) shifts in pixels -> (B, 2, 3) float64 affines (see module
    doc).

    size = (H, W); the rotation/scale centre is ((W-1)/2, (H-1)/2).
    """
    h, w = size
    c = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], dtype=torch.float64, device=angle_rad.device)
    cos, sin = torch.cos(angle_rad).double(), torch.sin(angle_rad).double()
    s = scale.double()
    lin = torch.stack(
        [torch.stack([s * cos, -s * sin], -1), torch.stack([s * sin, s * cos], -1)], -2
    )
    trans = c - (lin @ c) + shift.double()
    return torch.cat([lin, trans.unsqueeze(-1)], dim=-1)


def random_affine(
    batch: int,
    generator: torch.Generator | None,
    params: AugmentConfig,
    size: tuple[int, int] = (256, 256),
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw ``batch`` random rotation/scale/shift affines (B, 2, 3), float64, in crop pixels."""
    device = (
        torch.device(device)
        if device is not None
        else (generator.device if generator is not None else torch.device("cpu"))
    )
    h, w = size
    r = _uniform((batch, 4), 0.0, 1.0, generator, device)
    angle = math.radians(params.rotation_deg) * (2 * r[:, 0] - 1)
    lo, hi = params.scale_range
    scale = lo + (hi - lo) * r[:, 1]
    side = torch.tensor([w, h], dtype=torch.float64, device=device)
    shift = params.shift_frac * side * (2 * r[:, 2:4] - 1)
    return make_affine(angle, scale, shift, size)


def invert_affine(A: torch.Tensor) -> torch.Tensor:
    """Inverse of (B, 2, 3) affines."""
    lin_inv = torch.linalg.inv(A[:, :, :2])
    return torch.cat([lin_inv, -(lin_inv @ A[:, :, 2:])], dim=-1)


def apply_affine(A: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply (B, 2, 3) affines to (B, N, 2) pixel points -> (B, N, 2)."""
    A = A.to(points.dtype)
    return points @ A[:, :, :2].transpose(1, 2) + A[:, :, 2].unsqueeze(1)


def warp_images(images: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Warp float images (B, C, H, W) so that pixel p moves to A @ p (bilinear, zeros outside).

    Each output pixel p' samples the input at A^-1 p'; with pixel centres at integers,
    normalised coordinates are x_n = 2 x / (W - 1) - 1, i.e. grid_sample(align_corners=True).
    """
    b, _, h, w = images.shape
    to_norm = torch.tensor(
        [[2.0 / (w - 1), 0.0, -1.0], [0.0, 2.0 / (h - 1), -1.0], [0.0, 0.0, 1.0]],
        dtype=torch.float64,
        device=images.device,
    )
    inv = invert_affine(A.to(device=images.device, dtype=torch.float64))
    inv3 = torch.cat([inv, to_norm[2:].expand(b, 1, 3)], dim=1)
    theta = (to_norm @ inv3 @ torch.linalg.inv(to_norm))[:, :2]
    grid = F.affine_grid(theta.to(images.dtype), [b, images.shape[1], h, w], align_corners=True)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def transform_maps(maps: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Apply A to the positions a (B, 3, H, W) map stores: (x, y) -> A @ (x, y, 1), z -> s * z.

    s = sqrt|det A[:, :2]| (the similarity's scale). The UV layout does not move.
    """
    A = A.to(device=maps.device, dtype=torch.float64)
    lin, trans = A[:, :, :2].to(maps.dtype), A[:, :, 2].to(maps.dtype)
    scale = torch.sqrt(torch.abs(torch.linalg.det(A[:, :, :2]))).to(maps.dtype)
    xy = torch.einsum("bij,bjhw->bihw", lin, maps[:, :2]) + trans[:, :, None, None]
    z = maps[:, 2:3] * scale[:, None, None, None]
    return torch.cat([xy, z], dim=1)


def random_color_factors(
    batch: int,
    generator: torch.Generator | None,
    color_range: tuple[float, float],
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """(B, 3) per-channel colour multipliers, uniform in color_range."""
    return _uniform(
        (batch, 3), color_range[0], color_range[1], generator, torch.device(device)
    ).float()


def color_scale(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Multiply each channel of (B, 3, H, W) images in [0, 1] by (B, 3) factors; clamp to [0, 1]."""
    f = factors.to(device=images.device, dtype=images.dtype)[:, :, None, None]
    return (images * f).clamp_(0.0, 1.0)


def occlude(
    images: torch.Tensor,
    generator: torch.Generator | None,
    prob: float,
    size_range: tuple[float, float] = (0.1, 0.5),
    noise_cell_px: int = 4,
) -> torch.Tensor:
    """With probability ``prob`` per image, fill one random axis-aligned rectangle with noise
    texture.

    Rectangle height/width are uniform in size_range times H/W, placed uniformly inside the image.
    The texture is uniform [0, 1) noise on a (H / cell, W / cell) grid, bilinearly upsampled.
    """
    b, c, h, w = images.shape
    dev = images.device
    r = _uniform((b, 5), 0.0, 1.0, generator, dev)
    cells = (max(1, math.ceil(h / noise_cell_px)), max(1, math.ceil(w / noise_cell_px)))
    noise = _uniform((b, c) + cells, 0.0, 1.0, generator, dev).to(images.dtype)
    texture = F.interpolate(noise, size=(h, w), mode="bilinear", align_corners=False)
    lo, hi = size_range
    rh, rw = (lo + (hi - lo) * r[:, 0]) * h, (lo + (hi - lo) * r[:, 1]) * w
    y0, x0 = r[:, 2] * (h - rh), r[:, 3] * (w - rw)
    apply = r[:, 4] < prob
    ys = torch.arange(h, device=dev, dtype=torch.float64)
    xs = torch.arange(w, device=dev, dtype=torch.float64)
    in_y = (ys[None] >= y0[:, None]) & (ys[None] < (y0 + rh)[:, None])  # (B, H)
    in_x = (xs[None] >= x0[:, None]) & (xs[None] < (x0 + rw)[:, None])  # (B, W)
    mask = (in_y[:, :, None] & in_x[:, None, :] & apply[:, None, None]).unsqueeze(1)
    return torch.where(mask, texture, images)


def augment_batch(
    images_uint8: torch.Tensor,
    maps: torch.Tensor,
    generator: torch.Generator | None,
    config: AugmentConfig = AugmentConfig(),
    return_affine: bool = False,
):
    """Augment a training batch on its device.

    images_uint8: (B, H, W, 3) crops with values 0..255 (uint8, or any dtype holding those values).
    maps: (B, H, W, 3) position maps in crop pixels (x right, y down, z depth).
    Returns images float32 (B, 3, H, W) in [0, 1] and maps (B, 3, H, W) (channels-last strided views
    are fine), plus the (B, 2, 3) float64 affines if ``return_affine``. Draw order from the
    generator: affines, colour factors, occlusion.
    """
    if images_uint8.dim() != 4 or images_uint8.shape[-1] != 3:
        raise ValueError(f"images must be (B, H, W, 3), got {tuple(images_uint8.shape)}")
    if maps.shape != images_uint8.shape:
        raise ValueError(
            f"maps shape {tuple(maps.shape)} != images shape {tuple(images_uint8.shape)}"
        )
    b, h, w, _ = images_uint8.shape
    dev = images_uint8.device
    images = images_uint8.permute(0, 3, 1, 2).to(torch.float32) / 255.0
    maps_chw = maps.permute(0, 3, 1, 2)
    if not maps_chw.is_floating_point():
        maps_chw = maps_chw.to(torch.float32)
    A = random_affine(b, generator, config, size=(h, w), device=dev)
    images = warp_images(images, A)
    maps_out = transform_maps(maps_chw, A)
    images = color_scale(images, random_color_factors(b, generator, config.color_range, dev))
    if config.occlusion_prob > 0:
        images = occlude(
            images, generator, config.occlusion_prob, config.occlusion_size, config.noise_cell_px
        )
    if return_affine:
        return images, maps_out, A
    return images, maps_out
