"""Tests for eval.figures (every figure: a non-empty PNG of the documented size) and the `figures`
stage (pipeline/figures.py) end to end on a tiny test file, tiny predictions and their evaluation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from eval import figures as fg
from eval.evaluate import GroundTruthFile, evaluate
from eval.predictions import Predictions, decode_maps, to_image_batch, write_predictions
from eval.report import write_report
from pipeline.config import FiguresParams, load_figures_params
from pipeline.figures import pick_sample, run, yaw_label
from uvgen.h5store import SampleRecord, StorageOptions, UVData, merge_shards, write_shard

DPI = 40
S = 48  # crop and UV map side of the tiny test file
YAWS = np.array([2.0, -15.0, 33.0, -48.0, 62.0, -80.0, 95.0])


def _png_size(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 0
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def _assert_size(path: Path, width_in: float, height_in: float, dpi: int = DPI) -> None:
    w, h = _png_size(path)
    assert abs(w - width_in * dpi) <= 1 and abs(h - height_in * dpi) <= 1, (w, h, width_in * dpi, height_in * dpi)


# ----------------------------------------------------------------------------------------------
# A tiny test split in the real layout: a disc-shaped face in UV, maps = a moved UV grid + a bump


def _uv() -> UVData:
    c = (S - 1) / 2
    vv, uu = np.mgrid[0:S, 0:S].astype(np.float64)
    r2 = ((uu - c) ** 2 + (vv - c) ** 2) / (0.45 * S) ** 2
    face = r2 <= 1.0
    grid = np.linspace(0.3 * S, 0.7 * S, 9)
    kx, ky = np.meshgrid(grid, grid[:8])
    kpt = np.stack([kx.ravel()[:68], ky.ravel()[:68]]).round().astype(np.int32)
    weights = np.where(face, 3.0, 0.0)
    weights[r2 <= 0.3] = 4.0
    weights[kpt[1], kpt[0]] = 16.0
    return UVData(weights.astype(np.float32), face, kpt, np.flatnonzero(face).astype(np.int64))


def _maps(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = (S - 1) / 2
    vv, uu = np.mgrid[0:S, 0:S].astype(np.float64)
    r2 = ((uu - c) ** 2 + (vv - c) ** 2) / (0.45 * S) ** 2
    maps = np.empty((n, S, S, 3), np.float32)
    for k in range(n):
        ang, s = np.radians(rng.uniform(-20, 20)), rng.uniform(0.7, 0.9)
        lin = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        off = np.array([c, c]) - lin @ np.array([c, c])
        maps[k, ..., 0] = lin[0, 0] * uu + lin[0, 1] * vv + off[0]
        maps[k, ..., 1] = lin[1, 0] * uu + lin[1, 1] * vv + off[1]
        maps[k, ..., 2] = s * 0.2 * S * np.clip(1.0 - r2, 0.0, None)
    return maps


def _transform(k: int) -> np.ndarray:
    """original -> crop: scale 0.5 and a shift (a 96-pixel original image around each crop)."""
    return np.array([[0.5, 0.0, -10.0 - k], [0.0, 0.5, -12.0 + k], [0.0, 0.0, 1.0]])


def _write_test_file(path: Path) -> Path:
    n = len(YAWS)
    uv = _uv()
    maps = _maps(n)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (n, S, S, 3), dtype=np.uint8)
    t = np.stack([_transform(k) for k in range(n)])
    lm_crop = maps.reshape(n, -1, 3)[:, uv.kpt_uv[1].astype(np.int64) * S + uv.kpt_uv[0]]
    lm = to_image_batch(lm_crop, t).astype(np.float32)
    recs = [SampleRecord(name=f"image{k:05d}.mat", source=f"test/image{k:05d}.mat", shape_para=np.zeros(199),
                         exp_para=np.zeros(29), pose_para=np.zeros(7), transform=t[k], jitter=np.full(3, 0.5),
                         yaw_deg=float(YAWS[k]), pitch_deg=0.0, roll_deg=0.0, extras={"landmarks_gt": lm[k]})
            for k in range(n)]
    shard = path.with_name(path.name + ".shard000.h5")
    write_shard(shard, images, maps, recs, StorageOptions(posmap_dtype="float32", compression="none"))
    merge_shards([shard], path, uv, {"model_checksum": "tiny", "params": {}, "split": "test"})
    shard.unlink()
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Test file + predictions of two methods (ground truth + noise; 'DeFA' misses one image)
    + the evaluate stage's report files."""
    root = tmp_path_factory.mktemp("figures")
    test_file = _write_test_file(root / "test.h5")
    uv, n = _uv(), len(YAWS)
    t = np.stack([_transform(k) for k in range(n)])
    names = tuple(f"image{k:05d}.mat" for k in range(n))
    pred_dir = root / "predictions"
    entries = []
    for j, (method, noise, rows) in enumerate((("PRN", 0.5, np.arange(n)), ("DeFA", 1.5, np.arange(n - 1)))):
        maps = _maps(n) + np.random.default_rng(10 + j).normal(0, noise, (n, S, S, 3)).astype(np.float32)
        lm, dense = decode_maps(maps[rows], t[rows], uv.kpt_uv, uv.face_ind)
        preds = Predictions(method, tuple(names[r] for r in rows), lm, dense, np.full(len(rows), 0.02 * (j + 1)),
                            meta={"device": "cpu", "batch_size": "4"})
        write_predictions(pred_dir / f"{method}.h5", preds)
        entries.append({"name": method, "kind": "prn", "checkpoint": "-", "file": f"{method}.h5",
                        "n_images": len(rows), "device": "cpu"})
    (pred_dir / "manifest.json").write_text(json.dumps({"test_file": str(test_file), "methods": entries,
                                                        "skipped": []}))
    from eval.predictions import PredictionsFile

    files = [PredictionsFile(pred_dir / e["file"]) for e in entries]
    with GroundTruthFile(test_file) as gt, pytest.warns(UserWarning):
        results = evaluate(gt, files)
    for f in files:
        f.close()
    write_report(results, root / "eval", figures=False)
    return root


def _params(root: Path, **kw) -> FiguresParams:
    base = dict(test_file=root / "test.h5", model_dir=None, predictions_dir=root / "predictions",
                eval_dir=root / "eval", out_dir=root / "figures", uv_sample=None, uv_sample_yaw=25.0,
                qualitative_rows=4, qualitative_max_yaw=90.0, max_error=0.1, ced_axis_max="auto", dpi=DPI,
                pdf=True)
    base.update(kw)
    return FiguresParams(**base)


# ----------------------------------------------------------------------------------------------
# The stage


def test_stage_writes_every_figure(tiny_run):
    written = run(_params(tiny_run))
    out = tiny_run / "figures"
    names = {p.name for p in written}
    assert names == {"uv_space.png", "uv_space.pdf", "weight_mask.png", "weight_mask.pdf", "ced.png", "ced.pdf",
                     "nme_table.png", "qualitative.png", "runtime.md", "runtime.png"}
    for p in written:
        assert p.parent == out and p.stat().st_size > 0
    _assert_size(out / "uv_space.png", 12.0, 8.0)
    _assert_size(out / "weight_mask.png", 10.0, 5.4)
    _assert_size(out / "ced.png", *fg.ced_figure_size(4, 2))
    # qualitative: ground truth + 2 methods, 4 rows spread over |yaw|
    _assert_size(out / "qualitative.png", 0.55 + 3 * 2.0, 0.45 + 4 * 2.0)
    md = (out / "runtime.md").read_text()
    assert "**PRN**" in md and "**DeFA**" in md and "| 20.0 | 20.0 |" in md and "*PRN (ECCV 2018)*" in md
    assert "cpu, batch 4" in md


def test_stage_without_pdfs_and_named_sample(tiny_run):
    written = run(_params(tiny_run, out_dir=tiny_run / "nopdf", pdf=False, uv_sample="image00003"))
    assert not any(p.suffix == ".pdf" for p in written)
    assert not list((tiny_run / "nopdf").glob("*.pdf"))


def test_stage_needs_the_evaluate_outputs(tiny_run, tmp_path):
    from uvgen.formats.errors import DataError

    with pytest.raises(DataError, match="per_image.csv"):
        run(_params(tiny_run, eval_dir=tmp_path, out_dir=tmp_path / "out"))


def test_params_section_loads():
    p = load_figures_params()
    assert p.out_dir == Path("data/figures") and p.qualitative_rows >= 1 and p.pdf
    with pytest.raises(ValueError, match="ced_axis_max"):
        _params(Path("."), ced_axis_max=0.05)


def test_pick_sample_and_yaw_label():
    names = ["a/image00001.jpg", "image00002.mat", "image00003"]
    assert pick_sample(names, np.array([5.0, -31.0, 60.0]), None, 25.0) == 1
    assert pick_sample(names, np.zeros(3), "image00003.jpg", 25.0) == 2
    assert yaw_label(-0.4) == "yaw 0°" and yaw_label(47.4) == "yaw +47°" and yaw_label(-12.6) == "yaw -13°"


# ----------------------------------------------------------------------------------------------
# The functions one by one


def test_uv_space_figure_fills_holes_and_writes_png_and_pdf(tmp_path):
    maps = _maps(1)[0]
    maps[10, 20] = 0.0  # an uncovered pixel inside the map
    crop = np.random.default_rng(0).integers(0, 255, (S, S, 3), dtype=np.uint8)
    path = fg.uv_space_figure(crop, maps, tmp_path / "uv.png", title="t", dpi=DPI)
    _assert_size(path, 12.0, 8.0)
    assert path.with_suffix(".pdf").stat().st_size > 0


def test_fill_holes_uses_the_neighbours_mean():
    pm = np.zeros((5, 5, 3))
    pm[1:4, 1:4] = np.arange(9, dtype=np.float64).reshape(3, 3, 1) + [0, 10, 20]
    pm[2, 2] = 0.0
    mask = np.any(pm != 0, axis=-1)
    assert not mask[2, 2]
    filled, m = fg.fill_holes(pm, mask)
    assert m[2, 2] and not m[0, 0]
    ring = [0, 1, 2, 3, 5, 6, 7, 8]
    np.testing.assert_allclose(filled[2, 2], np.mean(ring) + np.array([0, 10, 20]))
    assert pm[2, 2, 0] == 0.0  # input untouched


def test_normalise_channels_maps_each_channel_to_unit_range():
    pm = np.random.default_rng(0).uniform(-50, 300, (6, 6, 3))
    mask = np.ones((6, 6), bool)
    mask[0, 0] = False
    rgb = fg.normalise_channels(pm, mask)
    assert np.allclose(rgb[mask].min(axis=0), 0) and np.allclose(rgb[mask].max(axis=0), 1)
    assert np.all(rgb[0, 0] == 0)


def test_weight_mask_figure(tmp_path):
    uv = _uv()
    path = fg.weight_mask_figure(uv.weight_mask, uv.face_mask, tmp_path / "w.png", uv.kpt_uv, dpi=DPI)
    _assert_size(path, 10.0, 5.4)
    path = fg.weight_mask_figure(uv.weight_mask, uv.face_mask, tmp_path / "w2.png", pdf=False, dpi=DPI)
    assert not path.with_suffix(".pdf").exists()


def test_ced_figure_panels_and_missing_metrics(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"name": [f"i{k}" for k in range(20)], "yaw": rng.uniform(-90, 90, 20),
                       "A/nme_2d_68": rng.uniform(0, 0.1, 20), "A/nme_3d_68": rng.uniform(0, 0.1, 20),
                       "B/nme_2d_68": np.r_[rng.uniform(0, 0.1, 19), np.nan]})
    assert fg.per_image_methods(df) == ["A", "B"]
    _assert_size(fg.ced_figure(df, tmp_path / "ced.png", dpi=DPI), *fg.ced_figure_size(4, 2))
    one = fg.ced_figure(df, tmp_path / "one.png", panels={"nme_2d_68": "2D"}, pdf=False, dpi=DPI)
    _assert_size(one, 5.4, 0.6 + 4.2 + 2 * 0.2)


def test_ced_axis_limit_widens_only_for_inaccurate_methods(tmp_path):
    good = pd.DataFrame({"name": list("abcdefghij"), "yaw": np.zeros(10),
                         "A/nme_2d_68": np.linspace(0.01, 0.05, 10), "B/nme_2d_68": np.full(10, 0.5)})
    assert fg.ced_axis_limit(good, max_error=0.1) == 0.1  # the best method (A) fits the protocol's axis
    bad = good.assign(**{"A/nme_2d_68": np.linspace(0.1, 0.22, 10), "A/nme_3d_68": np.full(10, np.nan)})
    assert fg.ced_axis_limit(bad, max_error=0.1) == pytest.approx(0.25)  # 90 % quantile 0.22 -> 0.25
    assert fg.ced_axis_limit(bad.assign(**{"A/nme_2d_68": np.full(10, 3.0), "B/nme_2d_68": np.full(10, 2.0)}), max_error=0.1) == 1.0  # capped
    path = fg.ced_figure(bad, tmp_path / "wide.png", x_max=0.25, pdf=False, dpi=DPI)
    _assert_size(path, *fg.ced_figure_size(4, 2))


def test_nme_table_figure_size_follows_rows(tmp_path, tiny_run):
    summary = pd.read_csv(tiny_run / "eval" / "nme_table.csv")
    path = fg.nme_table_figure(summary, tmp_path / "t.png", n_images=7, dpi=DPI)
    metrics = [m for m in fg.TABLE_SECTIONS if m in set(summary["metric"])]
    n_rows = len(summary[summary["metric"].isin(metrics)]) + len(metrics)
    w, h = fg.table_size(n_rows, (2.9, 0.8, 0.8, 0.8, 0.8, 0.7, 0.8, 0.8), _table_notes())
    _assert_size(path, w, h)
    with pytest.raises(Exception, match="missing column"):
        fg.nme_table_figure(summary.drop(columns=["auc"]), tmp_path / "x.png", dpi=DPI)


def _table_notes() -> tuple[str, ...]:
    # the same two notes nme_table_figure writes (their wrapped line count sets the height)
    return ("NME: mean point error / sqrt(w·h) of the ground-truth 68-point (x, y) box, in %. Bins on "
            "|yaw| (60-90° holds |yaw| > 90° too); Mean: mean of the three bin means (the paper's Mean); "
            "Std: their standard deviation; All: mean over all images; AUC: area under the CED up to 10 % NME.",
            f"{fg.PUBLISHED_MARK} Published on the real AFLW2000-3D (italic, grey), not measured here.")


def test_table_figure_rejects_ragged_rows(tmp_path):
    with pytest.raises(ValueError):
        fg.table_figure(("a", "b"), [fg.TableRow(("1",))], tmp_path / "t.png", (1.0, 1.0), "t")
    path = fg.table_figure(("a", "b"), [fg.TableRow(("s",), "section"), fg.TableRow(("1", "2"), "published")],
                           tmp_path / "t.png", (1.0, 1.0), "title", notes=("n",), dpi=DPI)
    _assert_size(path, *fg.table_size(2, (1.0, 1.0), ("n",)))


def test_select_by_yaw_spans_the_range():
    yaw = np.array([1.0, -3.0, 20.0, -41.0, 55.0, 70.0, -88.0, 91.0, 10.0])
    rows = fg.select_by_yaw(yaw, 4, 90.0)
    assert len(set(rows.tolist())) == 4
    assert np.all(np.diff(np.abs(yaw[rows])) >= 0)
    assert abs(yaw[rows[0]]) <= 1.0 and abs(yaw[rows[-1]]) >= 88.0
    only = fg.select_by_yaw(yaw, 3, 90.0, candidates=np.abs(yaw) < 50)
    assert set(only.tolist()) <= {0, 1, 2, 3, 8} and len(only) == 3
    assert len(fg.select_by_yaw(yaw[:2], 6)) == 2


def test_to_crop_inverts_to_image():
    t = np.array([[0.8, 0.1, -5.0], [-0.1, 0.8, 7.0], [0, 0, 1.0]])
    pts = np.random.default_rng(0).uniform(0, 100, (10, 3))
    np.testing.assert_allclose(fg.to_crop(to_image_batch(pts[None], t[None])[0], t), pts, atol=1e-9)


def test_shade_mesh_faces_the_light():
    from model.uses import uv_grid_triangles

    yy, xx = np.mgrid[0:8, 0:8].astype(np.float64)
    flat = np.stack([xx.ravel() * 4 + 2, yy.ravel() * 4 + 2, np.zeros(64)], axis=1)  # a plane facing the viewer
    tri = uv_grid_triangles(np.ones((8, 8), bool))
    n = fg.vertex_normals(flat, tri)
    np.testing.assert_allclose(n, np.tile([0, 0, 1.0], (64, 1)), atol=1e-12)
    shade, mask = fg.shade_mesh(flat, tri, 40, 40, light=(0, 0, 1))
    assert mask[10, 10] and not mask[39, 39]
    assert np.allclose(shade[mask], 1.0)


def test_qualitative_figure(tmp_path):
    from model.uses import uv_grid_triangles

    uv = _uv()
    maps = _maps(3)
    crops = np.random.default_rng(0).integers(0, 255, (3, S, S, 3), dtype=np.uint8)
    lm = maps.reshape(3, -1, 3)[:, uv.kpt_uv[1].astype(np.int64) * S + uv.kpt_uv[0]]
    dense = maps.reshape(3, -1, 3)[:, uv.face_ind]
    cols = {fg.GROUND_TRUTH: (lm, dense), "PRN": (lm + 1, dense + 1), "X": (lm, None)}
    path = fg.qualitative_figure(crops, cols, uv_grid_triangles(uv.face_mask), tmp_path / "q.png",
                                 row_labels=["a", "b", "c"], nme={"PRN": np.array([0.01, np.nan, 0.03])}, dpi=DPI)
    _assert_size(path, 0.55 + 3 * 2.0, 0.45 + 3 * 2.0)
    cell = fg.overlay_cell(crops[0], lm[0], dense[0], uv_grid_triangles(uv.face_mask), "#d62728")
    assert cell.shape == (2 * S, 2 * S, 3) and cell.dtype == np.uint8
    assert not np.array_equal(cell, fg.overlay_cell(crops[0], None, None, None, "#d62728"))


def test_method_colors_are_stable():
    c = fg.method_colors(["Ground truth", "PRN", "Foo", "3DDFA", "Bar"])
    assert c["PRN"] == fg.METHOD_COLORS["PRN"] and c["Ground truth"] == fg.GROUND_TRUTH_COLOR
    assert c["Foo"] != c["Bar"]


def test_runtime_table_markdown_and_figure(tmp_path):
    table = fg.runtime_table({"PRN": np.array([0.01, 0.02, np.nan, 0.03]), "X": np.array([np.nan])},
                             {"PRN": "cuda"})
    prn = table.iloc[0]
    assert (prn["images"], prn["mean_ms"], prn["median_ms"], prn["device"]) == (3, pytest.approx(20.0),
                                                                                 pytest.approx(20.0), "cuda")
    assert np.isnan(table.iloc[1]["mean_ms"])
    pub = table.iloc[-1]
    assert pub["source"] == "published" and pub["mean_ms"] == 9.8 and pub["device"] == "GTX 1080"
    md = fg.runtime_markdown(table)
    assert "| **PRN** | measured | cuda | 3 | 20.0 | 20.0 |" in md and "| *PRN (ECCV 2018)* | published |" in md
    path = fg.runtime_table_figure(table, tmp_path / "rt.png", dpi=DPI)
    assert _png_size(path)[0] == round(fg.table_size(3, (2.6, 1.4, 0.9, 1.5, 1.6))[0] * DPI)
