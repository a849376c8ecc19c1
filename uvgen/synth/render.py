"""Lambertian rendering of a coloured triangle mesh over a background image, plus random scenery.

Image space throughout: x to the right (column), y down (row), pixel centres at integers, z towards
the viewer (larger z = closer). Colours are RGB floats in [0, 1].
"""

from __future__ import annotations

import numpy as np

from uvgen.raster import Rasterization, rasterize


def face_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(m, 3) unnormalised triangle normals ``(p1 - p0) x (p2 - p0)``; length = twice the area."""
    p0, p1, p2 = (vertices[triangles[:, k]] for k in range(3))
    return np.cross(p1 - p0, p2 - p0)


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(n, 3) unit vertex normals: the area-weighted sum of the adjacent triangles' normals.

    The sign follows the triangles' winding; vertices without a well-defined normal get 0.
    """
    return _vertex_normals(face_normals(vertices, triangles), triangles, len(vertices))


def _vertex_normals(fn: np.ndarray, triangles: np.ndarray, n: int) -> np.ndarray:
    normals = np.stack(
        [
            np.bincount(triangles.ravel(), weights=np.repeat(fn[:, c], 3), minlength=n)
            for c in range(3)
        ],
        axis=1,
    )
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def _unit(v: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(3)
    length = np.linalg.norm(v)
    if not np.isfinite(length) or length == 0:
        raise ValueError(f"{name} must be a finite non-zero 3-vector, got {v}")
    return v / length


def render(
    vertices_img: np.ndarray,
    triangles: np.ndarray,
    colors: np.ndarray,
    light_dir: np.ndarray,
    ambient: float,
    image: np.ndarray,
    diffuse: float | None = None,
) -> tuple[np.ndarray, Rasterization]:
    """Draw a Lambertian-shaded mesh into a copy of ``image`` with a z-buffer.

    Args:
        vertices_img: (n, 3) vertex positions in image pixels (x right, y down, z to the viewer).
        triangles: (m, 3) 0-based vertex indices (either winding).
        colors: (n, 3) per-vertex albedo in [0, 1].
        light_dir: (3,) direction from the surface towards the light, in image space
            ((0, 0, 1) = light from the camera; y negative = from above). Normalised here.
        ambient: ambient light level.
        image: (h, w, 3) background, floats in [0, 1] (clipped to it); not modified.
        diffuse: diffuse light level; None = ``1 - ambient`` (a surface facing the light gets its
            full albedo).

    Returns:
        (h, w, 3) float32 image in [0, 1], and the rasterisation (the largest z wins each pixel).

    Per-vertex normals and albedo are interpolated per pixel; each pixel's colour is
    ``albedo * (ambient + diffuse * max(0, n . l))``. The normals' sign is chosen so that the
    majority of the visible pixels face the viewer (+z), so the mesh winding does not matter.
    """
    vertices = np.asarray(vertices_img, dtype=np.float64)
    tri = np.asarray(triangles)
    albedo = np.asarray(colors, dtype=np.float64)
    background = np.asarray(image)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices_img must be (n, 3), got {vertices.shape}")
    if albedo.shape != vertices.shape:
        raise ValueError(f"colors must be {vertices.shape}, got {albedo.shape}")
    if background.ndim != 3 or background.shape[2] != 3:
        raise ValueError(f"image must be (h, w, 3), got {background.shape}")
    light = _unit(light_dir, "light_dir")
    ambient = float(ambient)
    diffuse = max(0.0, 1.0 - ambient) if diffuse is None else float(diffuse)

    h, w = background.shape[:2]
    raster = rasterize(vertices[:, :2], tri, h, w, depth=vertices[:, 2])
    out = np.clip(background.astype(np.float32), 0.0, 1.0)  # a fresh copy
    if len(raster.pixels) == 0:
        return out, raster

    tri = tri.astype(np.int64)
    fn = face_normals(vertices, tri)
    normals = _vertex_normals(fn, tri, len(vertices))
    if np.sign(fn[raster.tri_of_pixel, 2]).sum() < 0:  # most visible pixels face away: flip
        normals = -normals

    attrs = raster.interpolate_compact(np.hstack([normals, albedo]))
    n_px = attrs[:, :3]
    length = np.linalg.norm(n_px, axis=1, keepdims=True)
    n_px = np.divide(n_px, length, out=np.zeros_like(n_px), where=length > 0)
    lambert = np.maximum(n_px @ light, 0.0)
    shaded = attrs[:, 3:] * (ambient + diffuse * lambert)[:, None]
    out.reshape(-1, 3)[raster.pixels] = np.clip(shaded, 0.0, 1.0)
    return out, raster


def random_light(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A random (light_dir (3,) unit vector, ambient) pair for :func:`render`.

    The direction lies within 70 degrees of the viewing direction (+z), any azimuth; the
    ambient level is uniform in [0.2, 0.6).
    """
    polar = np.deg2rad(70.0) * np.sqrt(rng.random())
    azimuth = 2 * np.pi * rng.random()
    direction = np.array(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)]
    )
    ambient = float(rng.uniform(0.2, 0.6))
    return direction, ambient


def _smooth_noise(h: int, w: int, cell: int, rng: np.random.Generator) -> np.ndarray:
    """(3, h, w) float32 random grid with one value in [0, 1) per ``cell`` pixels, bilinearly
    upsampled."""
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.random((3, gh, gw), dtype=np.float32)

    def interp_matrix(size: int, g: int) -> np.ndarray:
        pos = np.arange(size, dtype=np.float32) / cell
        lo = np.minimum(pos.astype(np.int64), g - 2)
        frac = pos - lo
        mat = np.zeros((size, g), dtype=np.float32)
        mat[np.arange(size), lo] = 1 - frac
        mat[np.arange(size), lo + 1] = frac
        return mat

    return interp_matrix(h, gh) @ grid @ interp_matrix(w, gw).T


def cluttered_background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) float32 random clutter in [0, 1], like a photo's background.

    A colour gradient, smooth colour blotches, 6-24 rectangles and ellipses of random size,
    colour and opacity, and fine grain. Everything is drawn from ``rng``.
    """
    img = np.empty((3, h, w), dtype=np.float32)  # channel-first while drawing: fast inner loops
    angle = 2 * np.pi * rng.random()
    ramp_y = np.linspace(0.0, np.sin(angle), h, dtype=np.float32)[:, None]
    ramp_x = np.linspace(0.0, np.cos(angle), w, dtype=np.float32)[None, :]
    t = ramp_y + ramp_x
    t -= t.min()
    t /= max(float(t.max()), 1e-6)
    c0, c1 = rng.random(3, dtype=np.float32), rng.random(3, dtype=np.float32)
    for c in range(3):
        np.multiply(t, c1[c] - c0[c], out=img[c])
        img[c] += c0[c]

    cell = int(rng.integers(max(h, w) // 16 + 1, max(h, w) // 3 + 2))
    img += (_smooth_noise(h, w, cell, rng) - 0.5) * np.float32(rng.uniform(0.2, 0.8))

    size = max(h, w)
    for _ in range(int(rng.integers(6, 25))):
        bh, bw = (size * np.exp(rng.uniform(np.log(0.04), np.log(0.6), 2))).astype(int) + 2
        y0, x0 = int(rng.integers(-bh // 2, h)), int(rng.integers(-bw // 2, w))
        ys, xs = slice(max(y0, 0), min(y0 + bh, h)), slice(max(x0, 0), min(x0 + bw, w))
        patch = img[:, ys, xs]
        if patch.size == 0:
            continue
        alpha = np.float32(rng.uniform(0.4, 1.0))
        color = rng.random((3, 1, 1), dtype=np.float32)
        if rng.random() < 0.5:  # rectangle
            patch += alpha * (color - patch)
        else:  # ellipse inscribed in the (unclipped) box
            yy = (np.arange(ys.start, ys.stop, dtype=np.float32) - (y0 + (bh - 1) / 2)) / (bh / 2)
            xx = (np.arange(xs.start, xs.stop, dtype=np.float32) - (x0 + (bw - 1) / 2)) / (bw / 2)
            inside = (yy[:, None] ** 2 + xx[None, :] ** 2 <= 1).astype(np.float32)
            patch += (alpha * inside) * (color - patch)

    grain = rng.random((h, w), dtype=np.float32) - np.float32(0.5)
    img += np.float32(rng.uniform(0.0, 0.08)) * grain
    np.clip(img, 0.0, 1.0, out=img)
    return np.ascontiguousarray(img.transpose(1, 2, 0))
