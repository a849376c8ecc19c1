"""Tests for the `figures` stage (pipeline/figures.py) end to end on a tiny test file, tiny
predictions and their evaluation (tests/tiny_figures.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from eval import figures as fg
from pipeline.figures import load_figures_params, run
from tests.tiny_data import assert_size, figure_settings, make_tiny_run
from uvgen.resumable import BuildLockedError, exclusive_lock


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("figures"))


def test_stage_writes_every_figure(tiny_run):
    written = run(figure_settings(tiny_run))
    out = tiny_run / "figures"
    names = {p.name for p in written}
    assert names == {
        "uv_space.png",
        "uv_space.pdf",
        "weight_mask.png",
        "weight_mask.pdf",
        "ced.png",
        "ced.pdf",
        "nme_table.png",
        "qualitative.png",
        "runtime.md",
        "runtime.png",
    }
    for p in written:
        assert p.parent == out and p.stat().st_size > 0
    assert_size(out / "uv_space.png", 12.0, 8.0)
    assert_size(out / "weight_mask.png", 10.0, 5.4)
    assert_size(out / "ced.png", *fg.ced_figure_size(4, 2))
    # qualitative: ground truth + 2 methods, 4 rows spread over |yaw|
    assert_size(out / "qualitative.png", 0.55 + 3 * 2.0, 0.45 + 4 * 2.0)
    md = (out / "runtime.md").read_text()
    assert (
        "**PRN**" in md
        and "**DeFA**" in md
        and "| 20.0 | 20.0 |" in md
        and "*PRN (ECCV 2018)*" in md
    )
    assert "cpu, batch 4" in md


def test_stage_without_pdfs_and_named_sample(tiny_run):
    settings = figure_settings(
        tiny_run, out_dir=tiny_run / "nopdf", pdf=False, uv_sample="image00003"
    )
    written = run(settings)
    assert not any(p.suffix == ".pdf" for p in written)
    assert not list((tiny_run / "nopdf").glob("*.pdf"))


def test_stage_needs_the_evaluate_outputs(tiny_run, tmp_path):
    from uvgen.formats.errors import DataError

    with pytest.raises(DataError, match="per_image.csv"):
        run(figure_settings(tiny_run, eval_dir=tmp_path, out_dir=tmp_path / "out"))


def test_params_section_loads():
    p = load_figures_params()
    assert p.out_dir == Path("data/figures") and p.qualitative_rows >= 1 and p.pdf
    with pytest.raises(ValueError, match="ced_axis_max"):
        figure_settings(Path("."), ced_axis_max=0.05)


def test_a_second_run_into_the_same_folder_stops_at_once(tmp_path):
    p = figure_settings(tmp_path)
    with exclusive_lock(p.out_dir, "figures run"), pytest.raises(BuildLockedError) as err:
        run(p)
    assert str(err.value) == f"another figures run of {p.out_dir} is running (pid {os.getpid()})"
    assert not p.out_dir.exists()
