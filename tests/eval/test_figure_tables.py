"""Tests for eval.figure_tables: the NME table and the runtime table as images and Markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eval import figure_tables as ft
from tests.tiny_data import DPI, assert_size, make_tiny_run, png_size


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("figure_tables"))


def test_nme_table_figure_size_follows_rows(tmp_path, tiny_run):
    summary = pd.read_csv(tiny_run / "eval" / "nme_table.csv")
    path = ft.nme_table_figure(summary, tmp_path / "t.png", n_images=7, dpi=DPI)
    metrics = [m for m in ft.TABLE_SECTIONS if m in set(summary["metric"])]
    n_rows = len(summary[summary["metric"].isin(metrics)]) + len(metrics)
    w, h = ft.table_size(n_rows, (2.9, 0.8, 0.8, 0.8, 0.8, 0.7, 0.8, 0.8), _table_notes())
    assert_size(path, w, h)
    with pytest.raises(Exception, match="missing column"):
        ft.nme_table_figure(summary.drop(columns=["auc"]), tmp_path / "x.png", dpi=DPI)


def _table_notes() -> tuple[str, ...]:
    # the same two notes nme_table_figure writes (their wrapped line count sets the height)
    return (
        "NME: mean point error / sqrt(w·h) of the ground-truth 68-point (x, y) box, in %. Bins on "
        "|yaw| (60-90° holds |yaw| > 90° too); Mean: mean of the three bin means (the paper's "
        "Mean); "
        "Std: their standard deviation; All: mean over all images; AUC: area under the CED up to "
        "10 % NME.",
        f"{ft.PUBLISHED_MARK} Published on the real AFLW2000-3D (italic, grey), not measured here.",
    )


def test_table_figure_rejects_ragged_rows(tmp_path):
    with pytest.raises(ValueError):
        ft.table_figure(("a", "b"), [ft.TableRow(("1",))], tmp_path / "t.png", (1.0, 1.0), "t")
    path = ft.table_figure(
        ("a", "b"),
        [ft.TableRow(("s",), "section"), ft.TableRow(("1", "2"), "published")],
        tmp_path / "t.png",
        (1.0, 1.0),
        "title",
        notes=("n",),
        dpi=DPI,
    )
    assert_size(path, *ft.table_size(2, (1.0, 1.0), ("n",)))


def test_runtime_table_markdown_and_figure(tmp_path):
    table = ft.runtime_table(
        {"PRN": np.array([0.01, 0.02, np.nan, 0.03]), "X": np.array([np.nan])}, {"PRN": "cuda"}
    )
    prn = table.iloc[0]
    assert (prn["images"], prn["mean_ms"], prn["median_ms"], prn["device"]) == (
        3,
        pytest.approx(20.0),
        pytest.approx(20.0),
        "cuda",
    )
    assert np.isnan(table.iloc[1]["mean_ms"])
    pub = table.iloc[-1]
    assert pub["source"] == "published" and pub["mean_ms"] == 9.8 and pub["device"] == "GTX 1080"
    md = ft.runtime_markdown(table)
    assert (
        "| **PRN** | measured | cuda | 3 | 20.0 | 20.0 |" in md
        and "| *PRN (ECCV 2018)* | published |" in md
    )
    path = ft.runtime_table_figure(table, tmp_path / "rt.png", dpi=DPI)
    assert png_size(path)[0] == round(ft.table_size(3, (2.6, 1.4, 0.9, 1.5, 1.6))[0] * DPI)
