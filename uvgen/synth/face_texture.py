"""Procedural albedo for any face mesh in BFM orientation: a mean skin texture and its variations.

Colours are RGB in [0, 255] per vertex (face3d's texMU layout once flattened). Features are
painted in the frontal (x, y) projection, on the front of the face only, from the key vertices:
lips inside the outer-lip contour (kpt 48-59), eyes inside the eye contours (36-41, 42-47: white
with an iris and pupil, dark lash lines), brows along 17-21 and 22-26, nostrils beside kpt 33,
shading round the eye sockets, flushed cheeks and a slightly darker neck.
"""

from __future__ import annotations

import numpy as np

from uvgen.synth.face_regions import FaceFrame, cosine_patterns, gaussian, smoothstep

SKIN = np.array([208.0, 162.0, 138.0])
LIPS = np.array([172.0, 92.0, 88.0])
BROWS = np.array([72.0, 52.0, 42.0])
SCLERA = np.array([232.0, 226.0, 220.0])
IRIS = np.array([92.0, 64.0, 44.0])
PUPIL = np.array([18.0, 12.0, 12.0])
LASHES = np.array([58.0, 44.0, 40.0])
NOSTRIL = np.array([84.0, 52.0, 48.0])


def _inside_polygon(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """(n,) bool: even-odd rule for the points (n, 2) and a closed polygon (k, 2)."""
    x, y = xy[:, 0], xy[:, 1]
    inside = np.zeros(len(xy), dtype=bool)
    for (x1, y1), (x2, y2) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y1 > y) != (y2 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_at)
    return inside


def _polyline_distance(xy: np.ndarray, line: np.ndarray, samples: int = 64) -> np.ndarray:
    """(n,) distance from each point (n, 2) to a polyline (k, 2), via dense samples along it."""
    seg = np.linspace(0.0, len(line) - 1, samples)
    i = np.minimum(seg.astype(int), len(line) - 2)
    t = (seg - i)[:, None]
    pts = line[i] * (1 - t) + line[i + 1] * t
    d = np.full(len(xy), np.inf)
    for p in pts:
        d = np.minimum(d, np.hypot(xy[:, 0] - p[0], xy[:, 1] - p[1]))
    return d


def _soft_polygon(xy: np.ndarray, polygon: np.ndarray, edge: float) -> np.ndarray:
    """(n,) 1 well inside the polygon, 0 well outside, blending over ``edge`` either side of its
    border (0.5 on it)."""
    inside = _inside_polygon(xy, polygon)
    d = _polyline_distance(xy, np.vstack([polygon, polygon[:1]]), samples=16 * len(polygon))
    return np.where(inside, 0.5 + 0.5 * smoothstep(d / edge), 0.5 - 0.5 * smoothstep(d / edge))


def feature_masks(v: np.ndarray, f: FaceFrame) -> dict[str, np.ndarray]:
    """(n,) soft masks in [0, 1]: lips, brows, sclera, iris, pupil, lashes, nostrils, sockets."""
    iod = f.iod
    xy = v[:, :2]
    k = f.kpt[:, :2]
    front = f.front(v, 0.75)
    lips = _soft_polygon(xy, k[48:60], 0.015 * iod) * front
    brow_dist = np.minimum(
        _polyline_distance(xy, k[17:22] - [0, 0.025 * iod]),
        _polyline_distance(xy, k[22:27] - [0, 0.025 * iod]),
    )
    brows = (1.0 - smoothstep((brow_dist - 0.025 * iod) / (0.02 * iod))) * front
    eyes = np.zeros(len(v))
    iris = np.zeros(len(v))
    pupil = np.zeros(len(v))
    lashes = np.zeros(len(v))
    for lo, centre in ((36, f.eye_r), (42, f.eye_l)):
        contour = k[lo : lo + 6]
        eye = _inside_polygon(xy, contour).astype(np.float64)
        r = np.hypot(xy[:, 0] - centre[0], xy[:, 1] - centre[1])
        eyes += eye
        iris += eye * (1.0 - smoothstep((r - 0.075 * iod) / (0.01 * iod)))
        pupil += eye * (1.0 - smoothstep((r - 0.03 * iod) / (0.008 * iod)))
        d = _polyline_distance(xy, np.vstack([contour, contour[:1]]))
        lashes += (1.0 - smoothstep((d - 0.006 * iod) / (0.01 * iod))) * (1.0 - eye)
    nostrils = np.zeros(len(v))
    for a, b in ((31, 32), (34, 35)):
        c = 0.5 * (k[a] + k[b]) + [0.0, 0.015 * iod]
        nostrils += np.exp(
            -0.5
            * (((xy[:, 0] - c[0]) / (0.04 * iod)) ** 2 + ((xy[:, 1] - c[1]) / (0.022 * iod)) ** 2)
        )
    sockets = gaussian(v, f.eye_r, 0.22 * iod, 0.16 * iod) + gaussian(
        v, f.eye_l, 0.22 * iod, 0.16 * iod
    )
    front_eyes = f.front(v, 0.6)
    return {
        "lips": lips,
        "brows": brows,
        "sclera": np.clip(eyes, 0, 1) * front_eyes,
        "iris": np.clip(iris, 0, 1) * front_eyes,
        "pupil": np.clip(pupil, 0, 1) * front_eyes,
        "lashes": np.clip(lashes, 0, 1) * front_eyes,
        "nostrils": np.clip(nostrils, 0, 1) * f.front(v, 0.45),
        "sockets": np.clip(sockets, 0, 1) * front,
    }


def _cheeks(v: np.ndarray, f: FaceFrame) -> np.ndarray:
    y = f.nose_tip[1] - 0.1 * f.iod
    return (
        gaussian(v, [f.x0 - 0.55 * f.iod, y], 0.22 * f.iod, 0.2 * f.iod)
        + gaussian(v, [f.x0 + 0.55 * f.iod, y], 0.22 * f.iod, 0.2 * f.iod)
    ) * f.front(v, 1.0)


def _neck(v: np.ndarray, f: FaceFrame) -> np.ndarray:
    return smoothstep((f.chin[1] - v[:, 1]) / (0.3 * f.iod))


def texture_mean(v: np.ndarray, f: FaceFrame, segbin: np.ndarray | None = None) -> np.ndarray:
    """(n, 3) float64 mean albedo in [0, 255]. With ``segbin`` (4, n: nose, eyes, mouth, rest)
    the lips are painted only in the mouth region, eyes and brows only in the eye region and the
    nostrils only in the nose region."""
    m = feature_masks(v, f)
    if segbin is not None:
        nose, eyes, mouth = (np.asarray(segbin[i]) > 0 for i in range(3))
        m["lips"] = m["lips"] * mouth
        for name in ("brows", "sclera", "iris", "pupil", "lashes"):
            m[name] = m[name] * eyes
        m["nostrils"] = m["nostrils"] * nose
    col = np.tile(SKIN, (len(v), 1))
    col += np.outer(_cheeks(v, f), [14.0, -6.0, -4.0])
    col *= (1.0 - 0.12 * m["sockets"])[:, None]
    col *= (1.0 - 0.08 * _neck(v, f))[:, None]

    def paint(mask: np.ndarray, colour: np.ndarray) -> None:
        col[:] = col * (1.0 - mask[:, None]) + colour * mask[:, None]

    paint(m["lips"], LIPS)
    paint(0.85 * m["brows"], BROWS)
    paint(m["nostrils"], NOSTRIL)
    paint(m["sclera"], SCLERA)
    paint(m["iris"], IRIS)
    paint(m["pupil"], PUPIL)
    paint(0.8 * m["lashes"], LASHES)
    return np.clip(col, 0.0, 255.0)


def texture_fields(v: np.ndarray, f: FaceFrame) -> np.ndarray:
    """(n, 3, 10) colour variations (unnormalised), most variable first: brightness, top-to-bottom
    gradient, redness, beard shade, eye shadow, left-to-right gradient, olive tone, lip colour,
    brow darkness, cheek flush."""
    m = feature_masks(v, f)
    n = len(v)
    one = np.ones(n)
    y = (v[:, 1] - f.nose_tip[1]) / f.iod
    x = (v[:, 0] - f.x0) / f.iod
    beard = smoothstep((f.nose_tip[1] - 0.2 * f.iod - v[:, 1]) / (0.4 * f.iod)) * (
        1.0 - _neck(v, f)
    )
    skin = 1.0 - np.clip(m["lips"] + m["sclera"] + m["brows"], 0, 1)
    grey = [1.0, 1.0, 1.0]
    fields = [
        np.outer(one, grey),
        np.outer(y, grey),
        np.outer(skin, [1.0, -0.3, -0.5]),
        np.outer(beard * skin, grey),
        np.outer(m["sockets"], grey),
        np.outer(x, grey),
        np.outer(skin, [0.3, 0.5, -0.8]),
        np.outer(m["lips"], [1.0, 0.2, 0.3]),
        np.outer(m["brows"], grey),
        np.outer(_cheeks(v, f), [1.0, 0.0, 0.0]),
    ]
    return np.stack(fields, axis=2)


def colour_fields(
    v: np.ndarray, count: int, rng: np.random.Generator, chroma: float = 0.2
) -> np.ndarray:
    """(n, 3, count) smooth random albedo patterns: one spatial pattern each (low-frequency
    cosines of x and y, mixed in blocks by ``rng``) times a near-grey colour (grey plus a random
    tint of relative size ``chroma``)."""
    patterns = cosine_patterns(v, count, rng)
    grey = np.ones(3) / np.sqrt(3.0)
    tint = rng.standard_normal((count, 3))
    tint -= np.outer(tint @ grey, grey)
    tint /= np.linalg.norm(tint, axis=1, keepdims=True)
    colours = grey + chroma * tint
    return patterns[:, None, :] * colours.T[None, :, :]
