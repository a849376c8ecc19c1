"""Tests for eval.figures: the UV figures and the CED curves (each a non-empty PNG of the
documented size), and the helpers they use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eval import figures as fg
from tests.tiny_data import DPI, S, assert_size, tiny_layout, tiny_maps


def test_uv_space_figure_fills_holes_and_writes_png_and_pdf(tmp_path):
    maps = tiny_maps(1)[0]
    maps[10, 20] = 0.0  # an uncovered pixel inside the map
    crop = np.random.default_rng(0).integers(0, 255, (S, S, 3), dtype=np.uint8)
    path = fg.uv_space_figure(crop, maps, tmp_path / "uv.png", title="t", dpi=DPI)
    assert_size(path, 12.0, 8.0)
    pdf = path.with_suffix(".pdf").read_bytes()
    again = fg.uv_space_figure(crop, maps, tmp_path / "again.png", title="t", dpi=DPI)
    assert pdf[:5] == b"%PDF-" and again.with_suffix(".pdf").read_bytes() == pdf  # no date in it


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
    layout = tiny_layout()
    path = fg.weight_mask_figure(
        layout.weight_mask, layout.face_mask, tmp_path / "w.png", layout.kpt_uv, dpi=DPI
    )
    assert_size(path, 10.0, 5.4)
    path = fg.weight_mask_figure(
        layout.weight_mask, layout.face_mask, tmp_path / "w2.png", pdf=False, dpi=DPI
    )
    assert not path.with_suffix(".pdf").exists()


def test_ced_figure_panels_and_missing_metrics(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "name": [f"i{k}" for k in range(20)],
            "yaw": rng.uniform(-90, 90, 20),
            "A/nme_2d_68": rng.uniform(0, 0.1, 20),
            "A/nme_3d_68": rng.uniform(0, 0.1, 20),
            "B/nme_2d_68": np.r_[rng.uniform(0, 0.1, 19), np.nan],
        }
    )
    assert fg.per_image_methods(df) == ["A", "B"]
    assert_size(fg.ced_figure(df, tmp_path / "ced.png", dpi=DPI), *fg.ced_figure_size(4, 2))
    one = fg.ced_figure(df, tmp_path / "one.png", panels={"nme_2d_68": "2D"}, pdf=False, dpi=DPI)
    assert_size(one, 5.4, 0.6 + 4.2 + 2 * 0.2)


def test_ced_axis_limit_widens_only_for_inaccurate_methods(tmp_path):
    good = pd.DataFrame(
        {
            "name": list("abcdefghij"),
            "yaw": np.zeros(10),
            "A/nme_2d_68": np.linspace(0.01, 0.05, 10),
            "B/nme_2d_68": np.full(10, 0.5),
        }
    )
    assert (
        fg.ced_axis_limit(good, max_error=0.1) == 0.1
    )  # the best method (A) fits the protocol's axis
    bad = good.assign(
        **{"A/nme_2d_68": np.linspace(0.1, 0.22, 10), "A/nme_3d_68": np.full(10, np.nan)}
    )
    assert fg.ced_axis_limit(bad, max_error=0.1) == pytest.approx(
        0.25
    )  # 90 % quantile 0.22 -> 0.25
    assert (
        fg.ced_axis_limit(
            bad.assign(**{"A/nme_2d_68": np.full(10, 3.0), "B/nme_2d_68": np.full(10, 2.0)}),
            max_error=0.1,
        )
        == 1.0
    )  # capped
    path = fg.ced_figure(bad, tmp_path / "wide.png", x_max=0.25, pdf=False, dpi=DPI)
    assert_size(path, *fg.ced_figure_size(4, 2))


def test_method_colors_are_stable():
    c = fg.method_colors(["Ground truth", "PRN", "Foo", "3DDFA", "Bar"])
    assert c["PRN"] == fg.METHOD_COLORS["PRN"] and c["Ground truth"] == fg.GROUND_TRUTH_COLOR
    assert c["Foo"] != c["Bar"]
