"""The real-data pipeline (real/dvc.yaml, pipeline/real_benchmark.py): its params parse, its stage
runs on the real fixtures with paths relative to the params file, and bad params are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import yaml

from pipeline import real_benchmark
from pipeline.config import load_benchmark_params
from pipeline.typed_yaml import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_params_parse_and_name_every_dvc_variable():
    p = load_benchmark_params(ROOT / "real" / "params.yaml")
    assert p.methods[0].source.endswith("prnet_release.pt") and p.out_dir.name == "aflw2000"
    dvc = (ROOT / "real" / "dvc.yaml").read_text()
    params = yaml.safe_load((ROOT / "real" / "params.yaml").read_text())
    for ref in {r for r in __import__("re").findall(r"\$\{([\w.]+)\}", dvc)}:
        section, key = ref.split(".")
        assert key in params[section], ref


def test_stage_on_the_real_fixtures(aflw_fixture_dir, aflw_wrapped_fixture_dir, tmp_path, capsys):
    data = tmp_path / "AFLW2000"
    data.mkdir()
    for folder in (aflw_fixture_dir, aflw_wrapped_fixture_dir):
        for path in folder.iterdir():
            (data / path.name).symlink_to(path)
    mats = sorted(data.glob("*.mat"))
    gt = np.array([sio.loadmat(m)["pt3d_68"].T for m in mats])
    np.savez(tmp_path / "m.npz", landmarks=gt + 1.0, names=np.array([m.stem for m in mats]))
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "benchmark": {
                    "data_dir": "AFLW2000",  # relative to the params file
                    "out_dir": "results",
                    "methods": [{"name": "shifted", "source": "m.npz"}],
                }
            }
        )
    )
    real_benchmark.main(["--params", str(params)])
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    assert metrics["shifted/n_images"] == 26 and metrics["shifted/n_missing"] == 0
    assert "## 68 landmarks, 2D NME (%)" in capsys.readouterr().out


def test_bad_params_are_one_line_naming_the_key(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump({"benchmark": {"data_dir": "x", "out_dir": "o", "methods": []}})
    )
    with pytest.raises(ConfigError, match="benchmark.methods"):
        load_benchmark_params(params)
    params.write_text(
        yaml.safe_dump({"benchmark": {"data_dir": "x", "out_dir": "o", "methods": [{"name": "a"}]}})
    )
    with pytest.raises(ConfigError, match=r"benchmark.methods\[0\].source"):
        load_benchmark_params(params)
