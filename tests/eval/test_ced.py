"""Tests for eval.ced: CED curve values, exact AUC, and the PNG plot."""

from __future__ import annotations

import numpy as np
import pytest

from eval.ced import ced_auc, ced_curve, plot_ced
from uvgen.formats.errors import DataError


def test_ced_curve_values_and_monotone():
    nme = np.array([0.01, 0.02, 0.02, 0.05, 0.2])
    x, y = ced_curve(nme, max_error=0.10, n_points=11)  # x = 0, 0.01, ..., 0.10
    assert np.allclose(x, np.arange(11) * 0.01)
    assert y.tolist() == pytest.approx([0, 0.2, 0.6, 0.6, 0.6, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8])
    assert np.all(np.diff(y) >= 0)
    _, y_big = ced_curve(nme)
    assert y_big.shape == (1001,) and np.all(np.diff(y_big) >= 0)


def test_ced_auc_exact_step_integral():
    # area = sum over images of (0.10 - e)+ / n, divided by 0.10:
    # (0.09 + 0.08 + 0.08 + 0.05 + 0) / 5 / 0.10 = 0.30 / 0.5 = 0.6
    assert ced_auc([0.01, 0.02, 0.02, 0.05, 0.2]) == pytest.approx(0.6)
    assert ced_auc([0.0, 0.0]) == pytest.approx(1.0)
    assert ced_auc([0.1, 0.3]) == pytest.approx(0.0)
    assert ced_auc([0.025], max_error=0.05) == pytest.approx(0.5)
    # a failed image (NaN) counts as a miss
    assert ced_auc([0.0, np.nan]) == pytest.approx(0.5)
    with pytest.raises(DataError):
        ced_auc([])
    with pytest.raises(DataError):
        ced_auc([-0.01])


def test_plot_ced_writes_png(tmp_path):
    rng = np.random.default_rng(6)
    out = plot_ced(
        {"ours": rng.gamma(4, 0.008, 200), "baseline": rng.gamma(4, 0.012, 200)},
        tmp_path / "sub" / "ced.png",
        title="test",
    )
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_ced_pdf_is_reproducible(tmp_path):
    """The same curves give the same PDF bytes (no creation date): dvc.lock stays reproducible."""
    curves = {"ours": np.random.default_rng(7).gamma(4, 0.008, 50)}
    a = plot_ced(curves, tmp_path / "a.pdf", title="t").read_bytes()
    b = plot_ced(curves, tmp_path / "b.pdf", title="t").read_bytes()
    assert a[:5] == b"%PDF-" and a == b and b"CreationDate" not in a
