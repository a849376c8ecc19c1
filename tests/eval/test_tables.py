"""Tests for eval.tables: yaw-binned summary, per-image CSV round trip, published numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from eval.tables import (
    PUBLISHED_NME_68,
    PUBLISHED_RECON_NME,
    SUMMARY_COLUMNS,
    per_image_table,
    read_per_image,
    summarise,
    write_per_image,
)
from uvgen.formats.errors import DataError


def _unbalanced() -> pd.DataFrame:
    # bins: 0-30 holds 3 images (0.01, 0.02, 0.03 -> mean 0.02), 30-60 one (0.05), 60-90 one (0.08)
    return per_image_table(
        ["a", "b", "c", "d", "e"],
        [0.0, -30.0, 20.0, 60.0, -95.0],  # edges: 30 -> first bin, 60 -> second, |yaw|>90 -> last
        nme_2d_68=[0.01, 0.02, 0.03, 0.05, 0.08],
        nme_3d_68=[0.02, 0.04, 0.06, 0.10, 0.16],
    )


def test_summary_balanced_mean_vs_all_mean_by_hand():
    s = summarise(_unbalanced())
    assert list(s.columns) == list(SUMMARY_COLUMNS)
    assert list(s.index) == ["nme_2d_68", "nme_3d_68"]
    r = s.loc["nme_2d_68"]
    assert [r["0-30"], r["30-60"], r["60-90"]] == pytest.approx([0.02, 0.05, 0.08])
    assert r["mean"] == pytest.approx(0.05)  # (0.02 + 0.05 + 0.08) / 3
    assert r["all"] == pytest.approx(0.038)  # 0.19 / 5
    assert r["std"] == pytest.approx(math.sqrt(0.0006))  # population std of the bin means
    assert [r["n_0-30"], r["n_30-60"], r["n_60-90"]] == [3, 1, 1]
    assert s["n_0-30"].dtype == np.int64
    assert s.loc["nme_3d_68", "mean"] == pytest.approx(0.10)


def test_summary_percent_and_metric_selection():
    s = summarise(_unbalanced(), metrics=["nme_3d_68"], percent=True)
    assert list(s.index) == ["nme_3d_68"]
    assert s.loc["nme_3d_68", "mean"] == pytest.approx(10.0)
    assert s.loc["nme_3d_68", "all"] == pytest.approx(7.6)
    assert s.loc["nme_3d_68", "n_0-30"] == 3
    with pytest.raises(DataError, match="nope"):
        summarise(_unbalanced(), metrics=["nope"])


def test_summary_empty_bin_warns_and_uses_the_others():
    df = per_image_table(["a", "b"], [5.0, 45.0], nme_2d_68=[0.02, 0.04])
    with pytest.warns(UserWarning, match="60-90"):
        s = summarise(df)
    r = s.loc["nme_2d_68"]
    assert math.isnan(r["60-90"]) and r["n_60-90"] == 0
    assert r["mean"] == pytest.approx(0.03)
    assert r["std"] == pytest.approx(0.01)


def test_summary_leaves_out_failed_images_with_warning():
    df = per_image_table(["a", "b", "c"], [5.0, 45.0, 75.0], nme_2d_68=[0.02, np.nan, 0.06])
    with pytest.warns(UserWarning):
        s = summarise(df)
    r = s.loc["nme_2d_68"]
    assert (
        r["n_30-60"] == 0 and r["all"] == pytest.approx(0.04) and r["mean"] == pytest.approx(0.04)
    )


def test_csv_round_trip(tmp_path):
    df = per_image_table(
        ["image00050", "00081"], [0.93907404, -54.685314], nme_2d_68=[0.0123456789012345, 1 / 3]
    )
    path = write_per_image(df, tmp_path / "out" / "per_image.csv")
    back = read_per_image(path)
    assert list(back.columns) == ["name", "yaw", "nme_2d_68"]
    assert back["name"].tolist() == ["image00050", "00081"]  # leading zeros kept: names are strings
    assert np.array_equal(back["nme_2d_68"].to_numpy(), df["nme_2d_68"].to_numpy())  # exact floats
    assert np.array_equal(back["yaw"].to_numpy(), df["yaw"].to_numpy())


def test_bad_tables_raise_data_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,nme_2d_68\na,0.1\n")
    with pytest.raises(DataError, match="yaw") as exc:
        read_per_image(bad)
    assert exc.value.path == bad
    with pytest.raises(DataError, match="duplicate"):
        per_image_table(["a", "a"], [1.0, 2.0], nme_2d_68=[0.1, 0.2])
    with pytest.raises(DataError):
        per_image_table(["a", "b"], [1.0], nme_2d_68=[0.1, 0.2])
    with pytest.raises(DataError):
        read_per_image(tmp_path / "missing.csv")


def test_published_numbers():
    assert PUBLISHED_NME_68["PRN (ECCV 2018)"] == {
        "0-30": 2.75,
        "30-60": 3.51,
        "60-90": 4.61,
        "mean": 3.62,
    }
    assert PUBLISHED_NME_68["3DDFA (CVPR 2016)"]["mean"] == 5.42
    assert PUBLISHED_NME_68["DeFA (ICCVW 2017)"]["mean"] == 4.50
    assert PUBLISHED_RECON_NME == {"DeFA (ICCVW 2017)": 5.64, "PRN (ECCV 2018)": 3.96}
    # each published balanced mean is the mean of its bins (to rounding) where bins are given
    for vals in PUBLISHED_NME_68.values():
        bins = [vals[b] for b in ("0-30", "30-60", "60-90")]
        if not any(math.isnan(b) for b in bins):
            assert np.mean(bins) == pytest.approx(vals["mean"], abs=0.01)
