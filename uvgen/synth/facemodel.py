"""The embedded procedural 3D morphable face model, in face3d's BFM layout.

:func:`make_face_model` builds a complete :class:`~uvgen.formats.bfm.MorphableModel` (199 shape
and 29 expression components, texture, UV, triangles, mouth triangles, 68 key vertices, segbin)
without the licensed Basel Face Model, deterministically from a seed, at the real model's scale
and orientation (x to the subject's left, y up, z towards the viewer; units about 1e5 per head
width). :func:`make_components` (from :mod:`uvgen.synth.components`) generates components for
any mean face mesh; :func:`make_real_topology_model` puts them on the real BFM topology.
:func:`sample_parameters` draws plausible parameters for either.

Embedded mesh (see :mod:`uvgen.synth.face_grid` and :mod:`uvgen.synth.face_shape`):

* exactly ``n_vertices`` vertices on about sqrt(n) rows over the UV square (u from the subject's
  right ear to the left one, v from the neck up to the forehead); UV = the grid parameters,
  covering [0, 1]^2 exactly once with ``tri`` + ``tri_mouth``;
* ``tri`` triangulates the grid except a slit between the lips; ``tri_mouth`` (at least 8
  triangles, 2 per slit cell) closes it -- its last 7 stand for face3d's appended inner-mouth
  triangles;
* every triangle is wound clockwise seen from the front (and in (u, v) with v up), as in the
  real BFM: the right-hand-rule normal ``(p1 - p0) x (p2 - p0)`` points into the head;
* ``exp_mu`` is the real model's near-constant offset (about (0, -7,700, 900) units) plus a
  slight parting of the lips.

Parameter ranges (``v = shapeMU + expMU + shapePC @ a + expPC @ b``, parameters as stored):
``a ~ N(0, shape_ev^2)`` with shape_ev from 5e5 down to 2e2 (real 300W-LP fits have |a| up to
about 1e6) moves the face by about 2,000 units RMS; ``b ~ N(0, exp_ev^2)`` with exp_ev from 1.8
down to 0.14 (real fits: |b| up to about 4); ``b[0]`` opens the mouth by about 5,000 units per
unit and should be drawn non-negative; ``t ~ N(0, tex_ev^2)`` with tex_ev from 4.6e3 down to 30
changes colours by about 20 of 255. See :mod:`uvgen.synth.components`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uvgen.formats.bfm import MorphableModel, load_topology
from uvgen.synth.components import MOUTH_OPEN, Components, make_components
from uvgen.synth.face_regions import make_segbin
from uvgen.synth.face_shape import face_grid, mean_shape, select_keypoints

__all__ = [
    "make_face_model",
    "make_components",
    "make_real_topology_model",
    "sample_parameters",
    "Components",
    "EXP_MU_OFFSET",
    "MEAN_MOUTH_OPENING",
]

#: Constant part of the embedded model's expMU (the real u_exp.npy is close to this translation).
EXP_MU_OFFSET = np.array([0.0, -7700.0, 900.0])
#: How far (in units of the mouth-open parameter) the mean expression parts the lips.
MEAN_MOUTH_OPENING = 0.16


def make_face_model(n_vertices: int = 5000, seed: int = 0) -> MorphableModel:
    """The embedded face model with exactly ``n_vertices`` (>= 900) vertices.

    The mesh, UV, triangles, key vertices, segbin and mean texture depend only on
    ``n_vertices``; the random (trailing) shape, expression and texture components also on
    ``seed``. Same arguments give bit-identical arrays.
    """
    grid = face_grid(int(n_vertices))
    vertices = mean_shape(grid)
    kpt_ind = select_keypoints(vertices, grid)
    segbin = make_segbin(vertices, kpt_ind)
    comp = make_components(vertices, kpt_ind, segbin, seed, tri=grid.tri)
    n = grid.n_vertices
    exp_mu = np.tile(EXP_MU_OFFSET, n).reshape(-1, 1) + MEAN_MOUTH_OPENING * comp.exp_pc[
        :, MOUTH_OPEN : MOUTH_OPEN + 1
    ].astype(np.float64)
    return MorphableModel(
        shape_mu=vertices.reshape(-1, 1),
        exp_mu=exp_mu,
        tri=grid.tri,
        tri_mouth=grid.tri_mouth,
        kpt_ind=kpt_ind,
        uv=grid.uv,
        segbin=segbin,
        **comp.as_model_fields(),
    )


def make_real_topology_model(topology_dir: str | Path, seed: int = 0) -> MorphableModel:
    """The real BFM topology (``u_shp.npy``, ``u_exp.npy``, ``tri.mat``, ``BFM_UV.mat``,
    ``BFM_info.mat`` in ``topology_dir``, read by :func:`uvgen.formats.bfm.load_topology`) with
    generated components: a test model at real scale. Raises DataError for bad files."""
    topo = load_topology(topology_dir)
    mean = topo.mean_shape.astype(np.float64)
    comp = make_components(mean.reshape(-1, 3), topo.kpt_ind, topo.segbin, seed, tri=topo.tri)
    mesh = {name: getattr(topo, name) for name in ("tri", "tri_mouth", "kpt_ind", "uv", "segbin")}
    return MorphableModel(
        shape_mu=topo.mean_shape, exp_mu=topo.mean_exp, **mesh, **comp.as_model_fields()
    )


def sample_parameters(
    model: MorphableModel, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random plausible (shape_para (199,), exp_para (29,), tex_para (199,)) float64.

    Draws, in this order, ``a = N(0,1) * shape_ev``, ``b = N(0,1) * exp_ev`` with the
    mouth-opening ``b[0]`` made non-negative (a negative one would push the lips through each
    other), and ``t = N(0,1) * tex_ev``.
    """
    shape_ev = np.asarray(model.shape_ev, dtype=np.float64).ravel()
    exp_ev = np.asarray(model.exp_ev, dtype=np.float64).ravel()
    tex_ev = np.asarray(model.tex_ev, dtype=np.float64).ravel()
    shape = rng.standard_normal(shape_ev.shape) * shape_ev
    exp = rng.standard_normal(exp_ev.shape) * exp_ev
    exp[MOUTH_OPEN] = abs(exp[MOUTH_OPEN])
    tex = rng.standard_normal(tex_ev.shape) * tex_ev
    return shape, exp, tex
