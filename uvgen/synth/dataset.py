"""Synthetic data sets in the exact 300W-LP and AFLW2000-3D on-disk layouts.

Each sample is drawn from the embedded face model with random identity, expression, texture, pose
and light, rendered over a cluttered background into a square image, and written as
``NAME.jpg`` + ``NAME.mat`` whose fit (``Pose_Para``, ``Shape_Para``, ``Exp_Para``) reproduces the
pixels through docs/conventions.md section 4. Sample ``i`` depends only on (seed, i), so a set can
be written in any order, in parallel, and an interrupted run resumes by skipping finished samples
(a sample is finished when its ``.mat`` exists: the ``.jpg`` is written first, both atomically).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from uvgen.formats.aflw import write_aflw_sample
from uvgen.formats.bfm import MorphableModel, load_bfm
from uvgen.formats.lp300w import LP300W_FOLDERS, write_300wlp_sample
from uvgen.geometry import image_vertices
from uvgen.groundtruth import fit_vertices
from uvgen.lifetime import watch_parent
from uvgen.synth.facemodel import sample_parameters
from uvgen.synth.poses import PoseRanges, sample_pose
from uvgen.synth.render import cluttered_background, random_light, render

# iBUG-68 indices standing in for AFLW's 21 points; -1 = not on the model (the ears: stored
# invisible).
AFLW21_FROM_68 = (17, 19, 21, 22, 24, 26, 36, -2, 39, 42, -3, 45, -1, 31, 30, 35, -1, 48, 62, 54, 8)
_EYE_CENTRES = {-2: (37, 38, 40, 41), -3: (43, 44, 46, 47)}


@dataclass(frozen=True)
class SyntheticSample:
    """One drawn sample: the image (h, w, 3) uint8 and its fit, in 300W-LP's conventions."""

    image: np.ndarray
    pose_para: np.ndarray  # (7,) float32 [pitch, yaw, roll (rad), tx, ty, tz, s]
    shape_para: np.ndarray  # (199,) float64
    exp_para: np.ndarray  # (29,) float64
    tex_para: np.ndarray  # (199,) float64
    color_para: np.ndarray  # (7,) float32 [gain r, g, b, offset r, g, b, contrast]
    illum_para: np.ndarray  # (10,) float64 [ambient rgb, direct rgb, theta, phi, ks, v]
    landmarks: np.ndarray  # (68, 3) image pixels of the key vertices: x right, y down, z


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of a set seeded with ``seed``."""
    digest = hashlib.sha256(f"synth:{seed}:{index}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def draw_sample(
    model: MorphableModel,
    image_size: int,
    rng: np.random.Generator,
    ranges: PoseRanges = PoseRanges(),
) -> SyntheticSample:
    """Draw and render one sample of ``model``."""
    shape_para, exp_para, tex_para = sample_parameters(model, rng)
    vertices = fit_vertices(model, shape_para, exp_para)[0]
    pose = sample_pose(vertices, image_size, rng, ranges)
    verts_img = image_vertices(vertices, pose.astype(np.float64), image_size)
    light_dir, ambient = random_light(rng)
    background = cluttered_background(image_size, image_size, rng)
    image, _ = render(
        verts_img, model.full_triangles, model.colors(tex_para), light_dir, ambient, background
    )
    image_u8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    theta = np.arccos(np.clip(light_dir[2], -1.0, 1.0))
    phi = np.arctan2(light_dir[1], light_dir[0])
    illum = np.r_[[ambient] * 3, [1.0 - ambient] * 3, theta, phi, 0.0, 20.0]
    color = np.array([1, 1, 1, 0, 0, 0, 1], dtype=np.float32)
    landmarks = verts_img[model.kpt_ind]
    # Positional, in the field order of SyntheticSample (image, then the 3DDFA fields, landmarks).
    return SyntheticSample(image_u8, pose, shape_para, exp_para, tex_para, color, illum, landmarks)


def landmark_roi(landmarks: np.ndarray) -> np.ndarray:
    """(4,) int16 [x1, y1, x2, y2] box around the landmarks, enlarged like 300W-LP's ``roi``."""
    lo, hi = landmarks[:, :2].min(axis=0), landmarks[:, :2].max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo).max() * 0.75
    return np.rint(np.r_[centre - half, centre + half]).astype(np.int16)


def aflw21_points(landmarks: np.ndarray) -> np.ndarray:
    """(2, 21) AFLW-style 2D points from the 68 landmarks; -1 marks invisible points."""
    pts = np.full((2, 21), -1.0)
    for j, k in enumerate(AFLW21_FROM_68):
        if k >= 0:
            pts[:, j] = landmarks[k, :2]
        elif k in _EYE_CENTRES:
            pts[:, j] = landmarks[list(_EYE_CENTRES[k]), :2].mean(axis=0)
    return pts


def lp300w_name(index: int) -> tuple[str, str]:
    """(folder, NAME) of synthetic sample ``index``: round-robin over the eight 300W-LP folders."""
    folder = LP300W_FOLDERS[index % len(LP300W_FOLDERS)]
    return folder, f"{folder}_synth_{index:06d}_0"


def aflw_name(index: int) -> str:
    return f"image{index:05d}"


def _write_one(task: tuple[str, Path, Path, int, int, int]) -> None:
    layout, model_dir, out_dir, image_size, seed, index = task
    model = _cached_model(model_dir)
    if layout == "300wlp":
        folder, name = lp300w_name(index)
        target_dir = out_dir / folder
    else:
        name, target_dir = aflw_name(index), out_dir
    if (target_dir / f"{name}.mat").exists():
        return
    s = draw_sample(model, image_size, sample_rng(seed, index))
    common = dict(
        pose_para=s.pose_para,
        shape_para=s.shape_para,
        exp_para=s.exp_para,
        tex_para=s.tex_para,
        color_para=s.color_para,
        illum_para=s.illum_para,
        roi=landmark_roi(s.landmarks),
    )
    if layout == "300wlp":
        write_300wlp_sample(target_dir, name, s.image, pt2d=s.landmarks[:, :2].T, **common)
    else:
        write_aflw_sample(
            target_dir,
            name,
            s.image,
            pt2d=aflw21_points(s.landmarks),
            pt3d_68=s.landmarks.T,
            **common,
        )


_MODEL_CACHE: dict[Path, MorphableModel] = {}


def _cached_model(model_dir: Path) -> MorphableModel:
    if model_dir not in _MODEL_CACHE:
        _MODEL_CACHE[model_dir] = load_bfm(model_dir)
    return _MODEL_CACHE[model_dir]


def check_count(count: object, name: str = "count") -> int:
    """``count`` as a sample count: an integer >= 1 (not a bool, float or string); ValueError
    naming ``name`` otherwise."""
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {count!r}")
    return int(count)


def write_synthetic_set(
    layout: str,
    model_dir: Path,
    out_dir: Path,
    count: int,
    image_size: int,
    seed: int,
    workers: int = 1,
) -> None:
    """Write ``count`` (>= 1) samples in the ``layout`` ('300wlp' or 'aflw2000') under ``out_dir``.

    Finished samples are skipped, so an interrupted run resumes where it stopped. Files already in
    ``out_dir`` are left alone (clearing is the caller's:
    ``uvgen.resumable.prepare_resumable_dir``).
    Pool workers exit when this process dies (``uvgen.lifetime``).
    """
    if layout not in ("300wlp", "aflw2000"):
        raise ValueError(f"unknown layout {layout!r}")
    count = check_count(count)
    out_dir = Path(out_dir)
    if layout == "300wlp":
        for folder in LP300W_FOLDERS:
            (out_dir / folder).mkdir(parents=True, exist_ok=True)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(layout, Path(model_dir), out_dir, image_size, seed, i) for i in range(count)]
    desc = f"synthetic {layout}"
    if workers <= 1:
        for task in tqdm(tasks, desc=desc, unit="sample"):
            _write_one(task)
        return
    with ProcessPoolExecutor(
        max_workers=workers, initializer=watch_parent, initargs=(os.getpid(),)
    ) as pool:
        for _ in tqdm(
            pool.map(_write_one, tasks, chunksize=8), total=len(tasks), desc=desc, unit="sample"
        ):
            pass
