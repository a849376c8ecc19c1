"""The Basel Face Model in face3d's layout: ``BFM.mat`` + ``BFM_UV.mat`` + ``BFM_info.mat``.

On disk (conventions section 3) indices are 1-based and arrays are column-major MATLAB shapes.
In memory (:class:`MorphableModel`) indices are 0-based and triangles are rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_SHAPE = 199
N_EXP = 29
N_KEYPOINTS = 68
SEGMENT_NAMES = ("nose", "eyes", "mouth", "rest")


@dataclass(frozen=True)
class MorphableModel:
    """A 3D morphable model with n vertices, in BFM units (about 1e5 per head width).

    Model space: x to the subject's left (image right in a frontal view), y up, z towards the
    viewer. Vectors of length 3n interleave x1, y1, z1, x2, ...

    Attributes:
        shape_mu: (3n, 1) mean shape.
        shape_pc: (3n, 199) shape components (used with parameters as stored, no eigenvalue scaling).
        shape_ev: (199, 1) shape standard deviations.
        exp_mu: (3n, 1) mean expression offset (added to the mean shape).
        exp_pc: (3n, 29) expression components.
        exp_ev: (29, 1) expression standard deviations.
        tex_mu: (3n, 1) mean albedo, r1, g1, b1, r2, ... in [0, 255].
        tex_pc: (3n, 199) texture components.
        tex_ev: (199, 1) texture standard deviations.
        tri: (m, 3) int32, 0-based vertex indices of the face triangles.
        tri_mouth: (k, 3) int32, 0-based, the inner-mouth triangles (the 7 appended ones included).
        kpt_ind: (68,) int32, 0-based vertex index of each iBUG-68 landmark.
        uv: (n, 2) float64 UV coordinates in [0, 1] (u right, v up).
        segbin: (4, n) uint8 one-hot segmentation rows: nose, eyes, mouth, rest.
    """

    shape_mu: np.ndarray
    shape_pc: np.ndarray
    shape_ev: np.ndarray
    exp_mu: np.ndarray
    exp_pc: np.ndarray
    exp_ev: np.ndarray
    tex_mu: np.ndarray
    tex_pc: np.ndarray
    tex_ev: np.ndarray
    tri: np.ndarray
    tri_mouth: np.ndarray
    kpt_ind: np.ndarray
    uv: np.ndarray
    segbin: np.ndarray

    @property
    def n_vertices(self) -> int:
        return self.shape_mu.shape[0] // 3

    @property
    def full_triangles(self) -> np.ndarray:
        """(m + k, 3) int32: ``tri`` followed by ``tri_mouth`` (the mesh that is rendered and mapped)."""
        return np.vstack([self.tri, self.tri_mouth]).astype(np.int32)

    def vertices(self, shape_para: np.ndarray, exp_para: np.ndarray) -> np.ndarray:
        """(n, 3) float64 model-space vertices: ``shapeMU + expMU + shapePC @ a + expPC @ b``."""
        shape_para = np.asarray(shape_para, dtype=np.float64).reshape(-1, 1)
        exp_para = np.asarray(exp_para, dtype=np.float64).reshape(-1, 1)
        v = (
            self.shape_mu.astype(np.float64)
            + self.exp_mu.astype(np.float64)
            + self.shape_pc @ shape_para
            + self.exp_pc @ exp_para
        )
        return v.reshape(-1, 3)

    def colors(self, tex_para: np.ndarray) -> np.ndarray:
        """(n, 3) float64 per-vertex albedo in [0, 1]: ``(texMU + texPC @ t) / 255`` clipped."""
        tex_para = np.asarray(tex_para, dtype=np.float64).reshape(-1, 1)
        c = (self.tex_mu.astype(np.float64) + self.tex_pc @ tex_para).reshape(-1, 3) / 255.0
        return np.clip(c, 0.0, 1.0)
