"""``prnet evaluate`` (pipeline/benchmark_cli.py): the command end to end on the real fixtures,
one run per output folder, and one-line refusals of bad arguments."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.io as sio

from pipeline import cli
from uvgen.resumable import BuildLockedError, exclusive_lock


@pytest.fixture
def workspace(aflw_fixture_dir, tmp_path):
    mats = sorted(aflw_fixture_dir.glob("*.mat"))
    gt = np.array([sio.loadmat(m)["pt3d_68"].T for m in mats])
    np.savez(
        tmp_path / "m.npz", landmarks=gt[:, :, :2] + 1.5, names=np.array([m.stem for m in mats])
    )
    return aflw_fixture_dir, tmp_path


def test_evaluate_writes_the_report(workspace, capsys):
    data, root = workspace
    code = cli.main(
        [
            "evaluate",
            "--data",
            str(data),
            "--method",
            f"m={root / 'm.npz'}",
            "--out",
            str(root / "o"),
        ]
    )
    assert code == 0
    metrics = json.loads((root / "o" / "metrics.json").read_text())
    assert metrics["m/n_images"] == 17 and "m/nme_3d_68/mean" not in metrics  # 2D only
    assert "| **m** | measured |" in capsys.readouterr().out


def test_a_second_evaluation_into_the_same_folder_stops_at_once(workspace):
    data, root = workspace
    out = root / "o"
    args = ["evaluate", "--data", str(data), "--method", f"m={root / 'm.npz'}", "--out", str(out)]
    with exclusive_lock(out, "evaluation"), pytest.raises(BuildLockedError) as err:
        cli.main(args)
    assert str(err.value) == f"another evaluation of {out} is running (pid {os.getpid()})"
    assert not (out / "metrics.json").exists()


def test_bad_arguments_are_one_line(workspace, capsys):
    data, root = workspace
    with pytest.raises(SystemExit, match="expected NAME=SOURCE"):
        cli.main(["evaluate", "--data", str(data), "--method", "nosource", "--out", str(root)])
    with pytest.raises(SystemExit, match="params need a basis file"):
        cli.main(
            ["evaluate", "--data", str(data), "--method", "a=params=p.npy", "--out", str(root)]
        )
    (root / "afile").write_text("")
    code = cli.main(
        [
            "evaluate",
            "--data",
            str(data),
            "--method",
            f"m={root / 'm.npz'}",
            "--out",
            str(root / "afile"),
        ]
    )
    assert code == 1 and "afile: is a file; --out must be a folder" in capsys.readouterr().err
