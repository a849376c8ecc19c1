"""The embedded procedural face model and the generated components (uvgen.synth.facemodel)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.tri as mtri
import numpy as np
import pytest

from uvgen.formats.bfm import MorphableModel, load_topology
from uvgen.synth.components import MOUTH_OPEN, REFERENCE_N, make_components
from uvgen.synth.face_regions import FaceFrame, mesh_edges
from uvgen.synth.face_shape import face_grid, landmark_targets
from uvgen.synth.facemodel import make_face_model, sample_parameters

N = 5000
REAL_SPAN = np.array([180_069.0, 210_725.0, 148_018.0])  # bounding box of the real BFM mean shape
ARRAYS = (
    "shape_mu",
    "shape_pc",
    "shape_ev",
    "exp_mu",
    "exp_pc",
    "exp_ev",
    "tex_mu",
    "tex_pc",
    "tex_ev",
    "tri",
    "tri_mouth",
    "kpt_ind",
    "uv",
    "segbin",
)


@pytest.fixture(scope="module")
def model() -> MorphableModel:
    return make_face_model(N, seed=0)


@pytest.fixture(scope="module")
def real_model(real_topology_model: MorphableModel) -> MorphableModel:
    """The session-wide real-topology model (tests/conftest.py), built once for all tests."""
    return real_topology_model


def _mean(m: MorphableModel) -> np.ndarray:
    return m.vertices(np.zeros(m.shape_pc.shape[1]), np.zeros(m.exp_pc.shape[1]))


def _uv_signed_area(uv: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = uv[tri[:, 0]], uv[tri[:, 1]], uv[tri[:, 2]]
    return 0.5 * (
        (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    )


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_arrays(model: MorphableModel) -> None:
    again = make_face_model(N, seed=0)
    for name in ARRAYS:
        a, b = getattr(model, name), getattr(again, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name


def test_seed_changes_only_the_random_components(model: MorphableModel) -> None:
    other = make_face_model(N, seed=1)
    assert not np.array_equal(model.shape_pc, other.shape_pc)
    assert not np.array_equal(model.exp_pc, other.exp_pc)
    assert not np.array_equal(model.tex_pc, other.tex_pc)
    # the mesh and the leading (semantic) components do not depend on the seed
    for name in ("shape_mu", "exp_mu", "tex_mu", "tri", "tri_mouth", "kpt_ind", "uv", "segbin"):
        assert np.array_equal(getattr(model, name), getattr(other, name)), name
    np.testing.assert_array_equal(model.shape_pc[:, :18], other.shape_pc[:, :18])
    np.testing.assert_array_equal(model.exp_pc[:, :15], other.exp_pc[:, :15])


# --- layout -----------------------------------------------------------------------------------


def test_fields_shapes_and_dtypes(model: MorphableModel) -> None:
    n = N
    assert model.n_vertices == n
    assert model.shape_mu.shape == model.exp_mu.shape == model.tex_mu.shape == (3 * n, 1)
    assert model.shape_pc.shape == model.tex_pc.shape == (3 * n, 199)
    assert model.exp_pc.shape == (3 * n, 29)
    assert model.shape_pc.dtype == model.exp_pc.dtype == model.tex_pc.dtype == np.float32
    assert model.shape_ev.shape == model.tex_ev.shape == (199, 1)
    assert model.exp_ev.shape == (29, 1)
    assert model.tri.dtype == model.tri_mouth.dtype == model.kpt_ind.dtype == np.int32
    assert model.tri.shape[1] == model.tri_mouth.shape[1] == 3
    assert len(model.tri_mouth) >= 8  # face3d's layout appends 7 inner-mouth triangles
    assert model.kpt_ind.shape == (68,)
    assert model.uv.shape == (n, 2) and model.uv.dtype == np.float64
    assert model.segbin.shape == (4, n) and model.segbin.dtype == np.uint8
    for name in ARRAYS:
        assert np.isfinite(getattr(model, name)).all(), name


@pytest.mark.parametrize("n", [900, 1234, 5000, 20_011, 53_215])
def test_vertex_count_is_exact(n: int) -> None:
    grid = face_grid(n)
    assert grid.n_vertices == n == len(grid.uv)
    assert grid.counts[grid.lip_row] == grid.counts[grid.lip_row + 1]


def test_too_few_vertices_is_rejected() -> None:
    with pytest.raises(ValueError):
        make_face_model(100)


def test_indices_uv_segbin_and_keypoints(model: MorphableModel) -> None:
    n = model.n_vertices
    for tri in (model.tri, model.tri_mouth):
        assert tri.min() >= 0 and tri.max() < n
        assert (np.diff(np.sort(tri, axis=1), axis=1) > 0).all()  # three distinct vertices
    assert model.full_triangles.max() < n
    assert model.uv.min() == 0.0 and model.uv.max() == 1.0
    assert (model.segbin.sum(axis=0) == 1).all()  # one-hot
    assert (model.segbin.sum(axis=1) > 0).all()  # every region present
    kpt = model.kpt_ind
    assert kpt.min() >= 0 and kpt.max() < n and len(np.unique(kpt)) == 68
    nose, eyes, mouth = (model.segbin[i].astype(bool) for i in range(3))
    assert nose[kpt[[30, 31, 33, 35]]].all()
    assert eyes[kpt[36:48]].all()
    assert mouth[kpt[48:68]].all()


def test_uv_triangles_tile_the_square_once(model: MorphableModel) -> None:
    """UV triangles are non-degenerate, all wound the same way (clockwise with v up, like the real
    BFM), and tri + tri_mouth cover every pixel of a 256x256 UV map; tri alone leaves the mouth."""
    full = model.full_triangles
    area = _uv_signed_area(model.uv, full)
    assert (area < 0).all()
    assert np.abs(area).min() > 1e-8
    assert np.isclose(-area.sum(), 1.0)
    px = np.arange(256, dtype=np.float64)
    xx, yy = np.meshgrid(px, px)

    def covered(tri: np.ndarray) -> np.ndarray:
        t = mtri.Triangulation(model.uv[:, 0] * 255, 255 - model.uv[:, 1] * 255, tri)
        return t.get_trifinder()(xx.ravel(), yy.ravel()) >= 0

    assert covered(full).all()
    hole = ~covered(model.tri)
    assert 0 < hole.sum() < 0.01 * hole.size


def test_mouth_triangles_close_the_only_hole(model: MorphableModel) -> None:
    """tri has two boundary loops (outline and mouth); with tri_mouth only the outline remains,
    which is the edge of the UV square."""
    _, boundary = mesh_edges(model.tri)
    edges_full, boundary_full = mesh_edges(model.full_triangles)
    outline = np.unique(edges_full[boundary_full])
    uv = model.uv[outline]
    assert ((uv == 0) | (uv == 1)).any(axis=1).all()
    assert boundary.sum() > boundary_full.sum()
    mouth_vertices = np.unique(model.tri_mouth)
    assert np.isin(model.kpt_ind[60:68], mouth_vertices).all()


def test_front_triangles_face_into_the_head(model: MorphableModel) -> None:
    """Winding as in the real BFM: (p1 - p0) x (p2 - p0) points away from the viewer (-z) on the
    front of the face."""
    v = _mean(model)
    t = model.tri
    normal = np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]])
    front = v[t].mean(axis=1)[:, 2] > 100_000
    assert front.sum() > 100
    assert (normal[front, 2] < 0).mean() > 0.98


# --- geometry ---------------------------------------------------------------------------------


def test_scale_and_extent_match_the_real_mean_face(model: MorphableModel) -> None:
    v = model.shape_mu.reshape(-1, 3)
    span = v.max(0) - v.min(0)
    assert (np.abs(span / REAL_SPAN - 1) < 0.25).all(), span


def test_bounding_box_matches_real_u_shp(model: MorphableModel, bfm_topology_dir: Path) -> None:
    real = np.load(bfm_topology_dir / "u_shp.npy").reshape(-1, 3).astype(np.float64)
    mine = model.shape_mu.reshape(-1, 3)
    span = real.max(0) - real.min(0)
    assert (np.abs(mine.min(0) - real.min(0)) < 0.1 * span).all()
    assert (np.abs(mine.max(0) - real.max(0)) < 0.1 * span).all()


def test_key_points_are_anatomical(model: MorphableModel) -> None:
    k = _mean(model)[model.kpt_ind]
    assert np.argmax(k[:, 2]) == 30  # nose tip is the most forward key point
    eyes_y, nose_y, mouth_y, chin_y = k[36:48, 1].mean(), k[30, 1], k[48:68, 1].mean(), k[8, 1]
    assert eyes_y > nose_y > mouth_y > chin_y
    assert k[17:27, 1].min() > k[36:48, 1].max()  # brows above the eyes
    assert k[62, 1] > k[66, 1]  # upper inner lip above the lower one
    assert k[36:42, 0].max() < k[27, 0] < k[42:48, 0].min()  # eyes either side of the nose
    # close to the anatomical targets they were picked for
    dist = np.linalg.norm(model.shape_mu.reshape(-1, 3)[model.kpt_ind] - landmark_targets(), axis=1)
    assert np.median(dist) < 3000 and dist.max() < 15000


def test_left_right_orientation_matches_real_model(
    model: MorphableModel, bfm_topology_dir: Path
) -> None:
    topo = load_topology(bfm_topology_dir)
    real = topo.mean_shape.reshape(-1, 3)[topo.kpt_ind]
    mine = model.shape_mu.reshape(-1, 3)[model.kpt_ind]
    for a, b in ((0, 16), (36, 45), (48, 54), (39, 42)):
        assert np.sign(mine[a, 0] - mine[b, 0]) == np.sign(real[a, 0] - real[b, 0]) != 0
    assert np.sign(mine[27, 1] - mine[8, 1]) == np.sign(real[27, 1] - real[8, 1])  # y up
    assert np.argmax(mine[:, 2]) == np.argmax(real[:, 2]) == 30  # z towards the viewer


def test_mean_face_texture_has_features(model: MorphableModel) -> None:
    col = model.tex_mu.reshape(-1, 3)
    assert col.min() >= 0 and col.max() <= 255
    k = model.kpt_ind
    forehead = np.argmax(model.shape_mu.reshape(-1, 3)[:, 1] * (model.segbin[3] > 0))
    skin, lips = col[forehead], col[k[[61, 62, 63, 65, 66, 67]]].mean(0)
    assert lips[0] - lips[1] > skin[0] - skin[1] + 20  # lips redder than skin
    assert col[k[19]].sum() < skin.sum() - 100  # brows darker


# --- components ---------------------------------------------------------------------------------


def test_mouth_open_component_parts_the_inner_lips(model: MorphableModel) -> None:
    k = model.kpt_ind
    b = np.zeros(29)
    gaps = []
    for value in (0.0, 1.0, 2.0):
        b[MOUTH_OPEN] = value * model.exp_ev[MOUTH_OPEN, 0]
        v = model.vertices(np.zeros(199), b)
        gaps.append(np.linalg.norm(v[k[62]] - v[k[66]]))
    assert 1500 < gaps[0] < 5000  # slightly parted at rest
    assert gaps[1] - gaps[0] > 5000 and gaps[2] - gaps[1] > 5000
    assert gaps[2] < 40_000


def test_face_width_component_changes_x_span(model: MorphableModel) -> None:
    spans = []
    for sd in (-1.0, 0.0, 1.0):
        a = np.zeros(199)
        a[0] = sd * model.shape_ev[0, 0]
        v = model.vertices(a, np.zeros(29))
        spans.append(np.ptp(v[:, 0]))
    assert spans[0] < spans[1] < spans[2]
    assert 0.02 < spans[2] / spans[1] - 1 < 0.1  # one standard deviation: a few per cent


def test_component_scales(model: MorphableModel) -> None:
    pc = model.shape_pc.astype(np.float64)
    np.testing.assert_allclose(pc.T @ pc, np.eye(199) * N / REFERENCE_N, atol=1e-5)
    tpc = model.tex_pc.astype(np.float64)
    np.testing.assert_allclose(tpc.T @ tpc, np.eye(199) * N / REFERENCE_N, atol=1e-5)
    for ev in (model.shape_ev, model.exp_ev, model.tex_ev):
        assert (ev > 0).all() and (np.diff(ev.ravel()) <= 0).all()
    assert 3e5 < model.shape_ev[0, 0] < 1e6 and 0.5 < model.exp_ev[0, 0] < 3
    # one standard deviation of the leading shape component: a few thousand units
    rms = model.shape_ev[0, 0] * np.sqrt((pc[:, 0] ** 2).mean())
    assert 500 < rms < 5000


def _relative_gradient(model: MorphableModel, pc: np.ndarray) -> np.ndarray:
    """Per column: max over mesh edges (away from the mouth corners) of |change| / edge length,
    in units of the column's largest displacement per interocular distance."""
    v = model.shape_mu.reshape(-1, 3).astype(np.float64)
    frame = FaceFrame.from_mesh(v, model.kpt_ind)
    edges, _ = mesh_edges(model.tri)
    corners = np.zeros(len(v), dtype=bool)
    for i in (48, 54, 60, 64):
        corners |= np.linalg.norm(v - v[model.kpt_ind[i]], axis=1) < 0.1 * frame.iod
    edges = edges[~(corners[edges[:, 0]] | corners[edges[:, 1]])]
    length = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)
    out = []
    for j in range(pc.shape[1]):
        d = pc[:, j].astype(np.float64).reshape(-1, 3)
        step = np.linalg.norm(d[edges[:, 0]] - d[edges[:, 1]], axis=1) / length
        out.append(step.max() * frame.iod / np.linalg.norm(d, axis=1).max())
    return np.array(out)


def test_components_are_finite_and_smooth(model: MorphableModel) -> None:
    for pc in (model.shape_pc, model.exp_pc, model.tex_pc):
        assert np.isfinite(pc).all()
    # a tear (neighbours moving apart by the full amount) would score iod / edge ~ 17 here;
    # the smooth fields stay below about 10
    assert _relative_gradient(model, model.shape_pc[:, :40]).max() < 12
    assert _relative_gradient(model, model.exp_pc).max() < 12


def test_sample_parameters(model: MorphableModel) -> None:
    rng = np.random.default_rng(3)
    shape, exp, tex = sample_parameters(model, rng)
    assert shape.shape == (199,) and exp.shape == (29,) and tex.shape == (199,)
    assert exp[MOUTH_OPEN] >= 0
    again = sample_parameters(model, np.random.default_rng(3))
    for x, y in zip((shape, exp, tex), again):
        np.testing.assert_array_equal(x, y)
    mean = _mean(model)
    k = model.kpt_ind
    for _ in range(10):
        a, b, t = sample_parameters(model, rng)
        assert b[MOUTH_OPEN] >= 0
        v = model.vertices(a, b)
        assert 200 < np.sqrt(((model.vertices(a, np.zeros(29)) - mean) ** 2).mean()) < 10_000
        assert v[k[62], 1] > v[k[66], 1]  # lips never cross
        colours = model.tex_mu + model.tex_pc @ t.reshape(-1, 1)
        assert ((colours >= 0) & (colours <= 255)).mean() > 0.8


# --- the real topology with generated components --------------------------------------------


def test_real_topology_model(real_model: MorphableModel, bfm_topology_dir: Path) -> None:
    n = 53_215
    m = real_model
    assert m.n_vertices == n
    assert m.shape_pc.shape == m.tex_pc.shape == (3 * n, 199) and m.shape_pc.dtype == np.float32
    assert m.exp_pc.shape == (3 * n, 29) and m.exp_pc.dtype == np.float32
    assert m.tex_mu.shape == (3 * n, 1) and m.tex_mu.min() >= 0 and m.tex_mu.max() <= 255
    assert len(m.tri) == 105_840 and len(m.tri_mouth) == 121
    for pc in (m.shape_pc, m.exp_pc, m.tex_pc):
        assert np.isfinite(pc).all()
    pc = m.shape_pc[:, :20].astype(np.float64)
    np.testing.assert_allclose(pc.T @ pc, np.eye(20), atol=1e-5)
    k = m.kpt_ind
    b = np.zeros(29)
    rest = m.vertices(np.zeros(199), b)
    b[MOUTH_OPEN] = m.exp_ev[MOUTH_OPEN, 0]
    open_ = m.vertices(np.zeros(199), b)
    gap = lambda v: np.linalg.norm(v[k[62]] - v[k[66]])  # noqa: E731
    assert gap(open_) - gap(rest) > 5000
    assert abs(open_[k[62], 1] - rest[k[62], 1]) < 1000  # the upper lip stays
    assert _relative_gradient(m, m.exp_pc[:, :15]).max() < 12


def test_make_components_without_triangles_on_real_topology(bfm_topology_dir: Path) -> None:
    """The geometric stand-in for the jaw (no triangles given) still opens the mouth."""
    topo = load_topology(bfm_topology_dir)
    mean = topo.mean_shape.reshape(-1, 3).astype(np.float64)
    comp = make_components(mean, topo.kpt_ind, topo.segbin, seed=0, n_shape=30, n_exp=16)
    shape_pc, shape_ev, exp_pc, exp_ev, tex_mu, tex_pc, tex_ev = comp
    n = len(mean)
    assert shape_pc.shape == tex_pc.shape == (3 * n, 30) and exp_pc.shape == (3 * n, 16)
    assert shape_ev.shape == tex_ev.shape == (30, 1) and exp_ev.shape == (16, 1)
    assert tex_mu.shape == (3 * n, 1)
    move = exp_pc[:, MOUTH_OPEN].reshape(-1, 3)
    k = topo.kpt_ind
    assert move[k[66], 1] < -3000 and abs(move[k[62], 1]) < 1000


@pytest.mark.parametrize("n_vertices", [900, 5000, 53215])
def test_uv_layout_covers_every_pixel_under_face3ds_rule(n_vertices: int) -> None:
    """With the project's rasteriser (face3d's half-open rule) no UV pixel is left empty: a regular
    grid with lines through pixel centres would leave whole rows uncovered."""
    from uvgen.groundtruth import build_uv_layout

    layout = build_uv_layout(make_face_model(n_vertices=n_vertices, seed=0))
    assert layout.raster.mask.all()
