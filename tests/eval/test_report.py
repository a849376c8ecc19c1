"""Tests for eval.report: the tables (published rows marked), the flat metrics JSON, the wide CED
CSV and the figures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval.evaluate import GroundTruth, evaluate
from eval.predictions import Predictions
from eval.report import (
    PUBLISHED,
    ced_table,
    metrics_json,
    summary_table,
    write_report,
)
from eval.tables import read_per_image

PROJECT = Path(__file__).resolve().parents[2]


def _results():
    """Two methods on 6 images whose 68 points span 40 x 90 px (normaliser 60): 'A' is off by
    (3, 4) px everywhere (NME 5/60 = 8.33 %), 'B' by (0.36, 0.48) (0.6 px: 1 %), landmarks only,
    and B misses image 5 and predicts an extra one."""
    rng = np.random.default_rng(0)
    n, k = 6, 50
    lm = np.stack(
        [
            np.column_stack(
                [rng.uniform(10, 50, 68), rng.uniform(20, 110, 68), rng.uniform(0, 9, 68)]
            )
            for _ in range(n)
        ]
    )
    lm[:, 0, :2], lm[:, 1, :2] = (10, 20), (50, 110)
    dense = rng.uniform(0, 100, (n, k, 3))
    names = tuple(f"image{i:05d}.mat" for i in range(n))
    gt = GroundTruth(names, np.array([0, 10, 45, 50, 70, 100.0]), lm, dense)
    a = Predictions("A", names, lm + [3, 4, 0], dense + [3, 4, 0], np.full(n, 0.05))
    b = Predictions(
        "B", (*names[:5], "extra.jpg"), np.concatenate([lm[:5], lm[:1]]) + [0.36, 0.48, 0], None
    )
    with pytest.warns(UserWarning):
        return evaluate(gt, [a, b])


def test_summary_has_measured_and_marked_published_rows():
    s = summary_table(_results())
    two_d = s[s["metric"] == "nme_2d_68"]
    assert list(two_d["method"])[:2] == ["A", "B"]
    assert set(two_d.loc[two_d["source"] == PUBLISHED, "method"]) == {
        "3DDFA (CVPR 2016)",
        "DeFA (ICCVW 2017)",
        "PRN (ECCV 2018)",
    }
    a = two_d[two_d["method"] == "A"].iloc[0]
    assert a["mean"] == pytest.approx(500 / 60) and a["all"] == pytest.approx(500 / 60)
    assert a["n_images"] == 6 and a["ms_per_image"] == pytest.approx(50.0)
    b = two_d[two_d["method"] == "B"].iloc[0]
    assert (
        b["n_images"] == 5
        and b["n_missing"] == 1
        and b["n_extra"] == 1
        and math.isnan(b["ms_per_image"])
    )
    prn = two_d[two_d["method"] == "PRN (ECCV 2018)"].iloc[0]
    assert (prn["0-30"], prn["mean"], prn["ms_per_image"]) == (2.75, 3.62, 9.8)
    recon = s[s["metric"] == "recon_3d_dense"]
    assert list(recon["method"]) == ["A", "DeFA (ICCVW 2017)", "PRN (ECCV 2018)"]
    assert recon.iloc[1:]["mean"].tolist() == [5.64, 3.96]
    assert "B" not in set(s.loc[s["metric"] == "nme_3d_dense", "method"])  # no dense: no row


def test_auc_of_known_errors():
    s = summary_table(_results())
    row = s[(s["metric"] == "nme_2d_68") & (s["method"] == "A")].iloc[0]
    assert row["auc"] == pytest.approx((0.10 - 5 / 60) / 0.10)  # every image at 8.33 % of 10 %
    row = s[(s["metric"] == "nme_2d_68") & (s["method"] == "B")].iloc[0]
    assert row["auc"] == pytest.approx(5 / 6 * (0.10 - 0.01) / 0.10)  # the missing image is a miss


def test_metrics_json_is_flat_and_in_percent():
    js = metrics_json(summary_table(_results()))
    assert all(isinstance(v, (int, float)) or v is None for v in js.values())
    assert js["A/nme_2d_68/mean"] == pytest.approx(500 / 60, abs=1e-5)
    assert js["B/nme_2d_68/all"] == pytest.approx(1.0, abs=1e-5)
    assert js["B/n_missing"] == 1 and js["B/n_extra"] == 1 and js["A/n_images"] == 6
    assert js["B/ms_per_image"] is None and "B/nme_3d_dense/mean" not in js
    assert not any(
        k.startswith(("3DDFA", "PRN (")) for k in js
    )  # published numbers are not metrics


def test_wide_ced_table():
    ced = ced_table(_results(), "nme_2d_68", n_points=101)
    assert list(ced.columns) == ["nme", "A", "B"]
    assert (
        ced["nme"].iloc[0] == 0 and ced["nme"].iloc[-1] == pytest.approx(10.0) and len(ced) == 101
    )
    at = ced.set_index("nme")
    assert at.loc[8.3, "A"] == 0 and at.loc[8.4, "A"] == 1  # every A image at 8.33 %
    assert at.loc[0.9, "B"] == 0 and at.loc[1.1, "B"] == pytest.approx(5 / 6)  # one B image missing
    assert list(ced_table(_results(), "recon_3d_dense").columns) == ["nme", "A"]


def test_write_report_files(tmp_path):
    files = write_report(
        _results(), tmp_path / "eval", test_file="test.h5", notes=["C: not evaluated"]
    )
    md = files.markdown.read_text()
    assert "| *PRN (ECCV 2018)* | published | 2.75 | 3.51 | 4.61 | 3.62 |" in md
    assert "| *3DDFA (CVPR 2016)* | published | 3.78 | 4.54 | 7.93 | 5.42 |" in md
    assert "| **A** | measured | 8.33 |" in md and "C: not evaluated" in md and "`extra`" in md
    csv = pd.read_csv(files.table_csv)
    assert {"metric", "method", "source", "mean", "all"} <= set(csv.columns)
    assert set(csv.loc[csv["source"] == "published", "method"]) >= {
        "PRN (ECCV 2018)",
        "DeFA (ICCVW 2017)",
    }
    js = json.loads(files.metrics_json.read_text())
    assert all(not isinstance(v, (dict, list)) for v in js.values())
    per_image = read_per_image(files.per_image_csv)
    assert list(per_image.columns[:3]) == ["name", "yaw", "A/nme_2d_68"] and len(per_image) == 6
    unmatched = pd.read_csv(files.unmatched_csv)
    assert unmatched.to_dict("records") == [
        {"method": "B", "name": "image00005", "status": "missing"},
        {"method": "B", "name": "extra", "status": "extra"},
    ]
    assert set(files.ced_csv) == {"nme_2d_68", "nme_3d_68", "recon_3d_dense"}
    assert pd.read_csv(files.ced_csv["nme_2d_68"]).columns.tolist() == ["nme", "A", "B"]
    pngs = [p for p in files.figures if p.suffix == ".png"]
    pdfs = [p for p in files.figures if p.suffix == ".pdf"]
    assert len(pngs) == len(pdfs) == 3
    assert pngs[0].read_bytes()[:4] == b"\x89PNG" and pdfs[0].read_bytes()[:5] == b"%PDF-"


def test_ced_keeps_requested_empty_columns():
    ced = ced_table(_results(), "recon_3d_dense", columns=["PRN", "A", "B"])
    assert list(ced.columns) == ["nme", "PRN", "A", "B"]
    assert ced["PRN"].isna().all() and ced["B"].isna().all() and ced["A"].notna().all()
