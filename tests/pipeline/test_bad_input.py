"""Fault injection: every stage entry on bad input ends with one ``error:`` line naming the file
(and the field or key), a non-zero exit status and no traceback.

The stages run in-process through :func:`pipeline.stage.run` (as ``python -m pipeline.X`` does),
on tiny data: a 900-vertex face model and a few synthetic samples, built once. Progress bars
(tqdm) are not counted as lines. One test runs real subprocesses to cover the ``__main__`` blocks.
"""

from __future__ import annotations

import copy
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import yaml

from pipeline.config import DEFAULT_PARAMS
from pipeline.stage import run
from tests.tiny_data import tiny_uvgen_params

ROOT = Path(__file__).resolve().parents[2]
TQDM_LINE = re.compile(r"\d+%\|")


def stderr_lines(text: str) -> list[str]:
    """Non-empty stderr lines, progress-bar redraws left out."""
    lines = []
    for line in text.split("\n"):
        last = line.split("\r")[-1].strip()
        if last and not TQDM_LINE.search(last):
            lines.append(last)
    return lines


def run_stage(capsys, module: str, *argv: str) -> tuple[int, list[str]]:
    """``python -m pipeline.MODULE ARGV`` in-process: (exit status, stderr lines)."""
    main = importlib.import_module(f"pipeline.{module}").main
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run(main, list(argv), with_parent=False)
    code = info.value.code
    return (code if isinstance(code, int) else 1), stderr_lines(capsys.readouterr().err)


def assert_one_line(code: int, lines: list[str], *words: str) -> str:
    assert code not in (0, None), lines
    assert len(lines) == 1, lines
    line = lines[0]
    assert "Traceback" not in line
    for word in words:
        assert word in line, (word, line)
    return line


# ------------------------------------------------------------------------------------ tiny data


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """A 900-vertex model, 3 synthetic 300W-LP and 2 AFLW2000-3D samples, and params for them."""
    from uvgen.formats.bfm import save_bfm
    from uvgen.synth.dataset import write_synthetic_set
    from uvgen.synth.facemodel import make_face_model

    root = tmp_path_factory.mktemp("tiny")
    model_dir = root / "face_model"
    save_bfm(make_face_model(n_vertices=900, seed=0), model_dir)
    write_synthetic_set("300wlp", model_dir, root / "300W_LP", 3, 160, 0, workers=1)
    write_synthetic_set("aflw2000", model_dir, root / "AFLW2000", 2, 160, 0, workers=1)
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    raw["face_model"].update(out_dir=str(model_dir), n_vertices=900)
    raw["uvgen"].update(tiny_uvgen_params(root, model_dir), on_bad_sample="fail")
    for section in ("synth_300wlp", "synth_aflw2000"):
        raw[section].update(out_dir=str(root / section), count=1, image_size=64, workers=1)
    raw["train_common"].update(train_file=str(root / "uv" / "train.h5"), progress=False)
    raw["train"]["out_dir"] = str(root / "train")
    for kind, section in raw["baselines"].items():
        section["out_dir"] = str(root / kind)
    raw["predict"].update(test_file=str(root / "uv" / "test.h5"), out_dir=str(root / "pred"))
    raw["predict"]["methods"] = [
        {"name": "PRN", "kind": "prn", "checkpoint": str(root / "absent.pt")}
    ]
    raw["evaluate"].update(
        test_file=str(root / "uv" / "test.h5"),
        predictions_dir=str(root / "pred"),
        out_dir=str(root / "eval"),
    )
    raw["figures"].update(
        test_file=str(root / "uv" / "test.h5"),
        model_dir=str(model_dir),
        predictions_dir=str(root / "pred"),
        eval_dir=str(root / "eval"),
        out_dir=str(root / "figures"),
    )
    return {"root": root, "raw": raw, "model_dir": model_dir}


def write_params(tmp_path: Path, tiny: dict, **changes: dict) -> str:
    """The tiny params with ``section={key: value}`` changes, written to tmp_path/params.yaml."""
    raw = copy.deepcopy(tiny["raw"])
    for section, values in changes.items():  # a dotted name: a nested section (baselines.defa)
        node = raw
        for part in section.split("."):
            node = node[part]
        node.update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def corrupt_h5(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    return path


# ------------------------------------------------------------------------------- configuration

# stage argv, a bad value in the section it reads, the key the error must name
BAD_CONFIG = [
    (("make_face_model",), "face_model", {"n_vertices": 900.5}, "face_model.n_vertices"),
    (("make_synth", "300wlp"), "synth_300wlp", {"count": "ten"}, "synth_300wlp.count"),
    (("make_uv", "train"), "uvgen", {"jitter": "false"}, "uvgen.jitter"),
    (("make_uv", "test"), "uvgen", {"task_size": "ten"}, "uvgen.task_size"),
    (("train",), "train_common", {"epochs": 2.7}, "train_common.epochs"),
    (("train",), "train_common", {"augment": "no"}, "train_common.augment"),
    (("train",), "train", {"net_size": "big"}, "train.net_size"),
    (("train_baseline", "defa"), "train_common", {"seed": 0.5}, "train_common.seed"),
    (("train_baseline", "3ddfa"), "baselines.3ddfa", {"width": "wide"}, "baselines.3ddfa.width"),
    (("train_baseline", "mean_map"), "train_common", {}, "baselines.mean_map"),
    (("train_baseline", "nope"), "train_common", {}, "baselines.nope"),
    (("predict",), "predict", {"batch_size": 0}, "predict.batch_size"),
    (
        ("predict",),
        "predict",
        {"methods": [{"name": "TF", "kind": "tf", "checkpoint": "w.pt"}]},
        "predict.methods[0].kind",
    ),
    (("evaluate",), "evaluate", {"on_unmatched": "ignore"}, "evaluate.on_unmatched"),
    (("figures",), "figures", {"dpi": "high"}, "figures.dpi"),
]


@pytest.mark.parametrize("argv, section, change, key", BAD_CONFIG, ids=[c[3] for c in BAD_CONFIG])
def test_bad_config_value(capsys, tmp_path, tiny, argv, section, change, key) -> None:
    params = write_params(tmp_path, tiny, **{section: change})
    code, lines = run_stage(capsys, *argv, "--params", params)
    line = assert_one_line(code, lines, "params.yaml", key)
    assert line.startswith("error: ")


def test_missing_and_unparsable_params_file(capsys, tmp_path) -> None:
    code, lines = run_stage(capsys, "make_face_model", "--params", str(tmp_path / "absent.yaml"))
    assert_one_line(code, lines, "absent.yaml", "no such file")
    bad = tmp_path / "bad.yaml"
    bad.write_text("face_model: {n_vertices: [1, 2}\n")
    code, lines = run_stage(capsys, "make_face_model", "--params", str(bad))
    assert_one_line(code, lines, "bad.yaml", "not valid YAML")


# ----------------------------------------------------------------------------- UV build inputs


def _uv(capsys, tmp_path, tiny, split="train", **uvgen) -> tuple[int, list[str]]:
    params = write_params(tmp_path, tiny, uvgen=uvgen)
    return run_stage(capsys, "make_uv", split, "--params", params)


def test_uv_missing_model(capsys, tmp_path, tiny) -> None:
    code, lines = _uv(capsys, tmp_path, tiny, model_dir=str(tmp_path / "no_model"))
    assert_one_line(code, lines, "no_model/BFM.mat")


def test_uv_corrupt_model_file(capsys, tmp_path, tiny) -> None:
    model = copy_tree(tiny["model_dir"], tmp_path / "model")
    (model / "BFM.mat").write_bytes((model / "BFM.mat").read_bytes()[:3000])
    code, lines = _uv(capsys, tmp_path, tiny, model_dir=str(model))
    assert_one_line(code, lines, "model/BFM.mat")


def test_uv_model_wrong_shape(capsys, tmp_path, tiny) -> None:
    model = copy_tree(tiny["model_dir"], tmp_path / "model")
    scipy.io.savemat(model / "BFM_UV.mat", {"UV": np.zeros((899, 2))})
    code, lines = _uv(capsys, tmp_path, tiny, model_dir=str(model))
    assert_one_line(code, lines, "BFM_UV.mat", "UV", "wrong shape")


def test_uv_missing_source_folder(capsys, tmp_path, tiny) -> None:
    code, lines = _uv(capsys, tmp_path, tiny, train_root=str(tmp_path / "nothing"))
    assert_one_line(code, lines, "nothing")


def _bad_sample(tmp_path: Path, tiny: dict, mutate) -> tuple[Path, Path]:
    """A copy of the synthetic 300W-LP set whose first sample's .mat is changed by ``mutate``."""
    root = copy_tree(tiny["root"] / "300W_LP", tmp_path / "300W_LP")
    mat = sorted(root.rglob("*.mat"))[0]
    mutate(mat)
    return root, mat


def _set_field(name, value):
    def mutate(path: Path) -> None:
        data = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
        if value is None:
            data.pop(name)
        else:
            data[name] = value(data[name]) if callable(value) else value
        scipy.io.savemat(path, data)

    return mutate


def _with_nan(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.flat[3] = np.nan
    return array


BAD_SAMPLES = {
    "corrupt_mat": (lambda p: p.write_bytes(p.read_bytes()[:200]), None),
    "missing_field": (_set_field("Shape_Para", None), "Shape_Para"),
    "wrong_shape": (_set_field("Pose_Para", np.zeros((1, 6), np.float32)), "Pose_Para"),
    "nan": (_set_field("Exp_Para", _with_nan), "Exp_Para"),
    "corrupt_jpg": (
        lambda p: p.with_suffix(".jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg"),
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_SAMPLES))
def test_uv_bad_sample_fails_naming_file_and_field(capsys, tmp_path, tiny, case) -> None:
    mutate, field = BAD_SAMPLES[case]
    root, mat = _bad_sample(tmp_path, tiny, mutate)
    code, lines = _uv(
        capsys, tmp_path, tiny, train_root=str(root), train_out=str(tmp_path / "uv" / "train.h5")
    )
    name = mat.stem
    line = assert_one_line(code, lines, name)
    if field:
        assert field in line
    assert not (tmp_path / "uv" / "train.h5").exists()  # nothing under the final name


# ------------------------------------------------------------------------- training and after


def test_train_missing_file(capsys, tmp_path, tiny) -> None:
    params = write_params(tmp_path, tiny, train_common={"train_file": str(tmp_path / "none.h5")})
    code, lines = run_stage(capsys, "train", "--params", params)
    assert_one_line(code, lines, "none.h5")


def test_train_corrupt_hdf5(capsys, tmp_path, tiny) -> None:
    bad = corrupt_h5(tmp_path / "bad.h5")
    for argv in (("train",), ("train_baseline", "defa")):
        params = write_params(tmp_path, tiny, train_common={"train_file": str(bad)})
        code, lines = run_stage(capsys, *argv, "--params", params)
        assert_one_line(code, lines, "bad.h5")


def test_train_on_test_split(capsys, tmp_path, tiny) -> None:
    test_file = tmp_path / "test.h5"
    with h5py.File(test_file, "w") as f:
        f.attrs["split"] = "test"
    params = write_params(tmp_path, tiny, train_common={"train_file": str(test_file)})
    code, lines = run_stage(capsys, "train", "--params", params)
    assert_one_line(code, lines, "train_common.train_file", "test.h5", "'test' split")


def test_predict_inputs(capsys, tmp_path, tiny) -> None:
    params = write_params(tmp_path, tiny, predict={"test_file": str(tmp_path / "none.h5")})
    assert_one_line(*run_stage(capsys, "predict", "--params", params), "none.h5")
    bad = corrupt_h5(tmp_path / "bad.h5")
    params = write_params(tmp_path, tiny, predict={"test_file": str(bad)})
    assert_one_line(*run_stage(capsys, "predict", "--params", params), "absent.pt")  # checked first


def test_evaluate_and_figures_without_predictions(capsys, tmp_path, tiny) -> None:
    params = write_params(
        tmp_path,
        tiny,
        evaluate={"predictions_dir": str(tmp_path / "nopred")},
        figures={"predictions_dir": str(tmp_path / "nopred")},
    )
    assert_one_line(*run_stage(capsys, "evaluate", "--params", params), "nopred")
    assert_one_line(*run_stage(capsys, "figures", "--params", params))


def test_evaluate_corrupt_manifest(capsys, tmp_path, tiny) -> None:
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "manifest.json").write_text("{not json")
    params = write_params(tmp_path, tiny, evaluate={"predictions_dir": str(pred)})
    assert_one_line(*run_stage(capsys, "evaluate", "--params", params), "manifest.json")


def test_convert_bfm_missing_input(capsys, tmp_path) -> None:
    args = [f"--{k}={tmp_path / k}.mat" for k in ("basel", "info", "expression", "tri-mouth", "uv")]
    code, lines = run_stage(capsys, "convert_bfm", *args, "--out", str(tmp_path / "out"))
    assert_one_line(code, lines, str(tmp_path))


def test_prnet_predict_bad_inputs(capsys, tmp_path) -> None:
    code, lines = run_stage(
        capsys, "cli", "predict", str(tmp_path / "none.jpg"), "--out", str(tmp_path / "o")
    )
    assert_one_line(code, lines, "none.jpg")
    image = tmp_path / "face.jpg"
    image.write_bytes(b"\xff\xd8\xff garbage")
    (tmp_path / "boxes.json").write_text('{"face.jpg": [10, 100, 10, 100]}')
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"not a checkpoint")
    code, lines = run_stage(
        capsys,
        "cli",
        "predict",
        str(image),
        "--out",
        str(tmp_path / "o"),
        "--boxes",
        str(tmp_path / "boxes.json"),
        "--weights",
        str(weights),
    )
    assert_one_line(code, lines)


# --------------------------------------------------------------------- the entry's own behaviour


def test_debug_shows_the_traceback(capsys, tmp_path, tiny, monkeypatch) -> None:
    params = write_params(tmp_path, tiny, train_common={"epochs": 2.7})
    main = importlib.import_module("pipeline.train").main
    from pipeline.typed_yaml import ConfigError

    with pytest.raises(
        ConfigError
    ):  # --debug: the exception goes through (Python prints the traceback)
        run(main, ["--params", params, "--debug"], with_parent=False)
    monkeypatch.setenv("PRNET_DEBUG", "1")
    with pytest.raises(ConfigError):
        run(main, ["--params", params], with_parent=False)


def _python(*args: str) -> subprocess.CompletedProcess:
    """``python ARGS`` in the project root: its exit status and output (text)."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_subprocess_entries(tmp_path, tiny) -> None:
    """The real ``python -m`` entry and the ``prnet`` console script: one line, status,
    traceback."""
    params = write_params(tmp_path, tiny, train_common={"epochs": 2.7})
    done = _python("-m", "pipeline.make_face_model", "--params", params)
    params2 = write_params(tmp_path, tiny, face_model={"seed": "zero"})
    done = _python("-m", "pipeline.make_face_model", "--params", params2)
    assert done.returncode == 1 and done.stderr.strip().splitlines() == [
        f"error: {params2}: face_model.seed: expected an integer, got 'zero' (a string)"
    ]
    debug = _python("-m", "pipeline.make_face_model", "--params", params2, "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ConfigError" in debug.stderr
    console = _python(
        "-c",
        "from pipeline.console import prnet; prnet()",
        "predict",
        str(tmp_path / "none.jpg"),
        "--out",
        str(tmp_path / "o"),
    )
    assert console.returncode == 1 and len(console.stderr.strip().splitlines()) == 1
    assert "none.jpg" in console.stderr and "Traceback" not in console.stderr
    usage = _python(
        "-c",
        "from pipeline.console import prnet; prnet()",
        "predict",
        str(tmp_path / "none.jpg"),
        "--batch-size",
        "0",
    )
    # Exit statuses by convention: 1 for an error in the data or files, 2 for usage alone.
    assert usage.returncode == 2 and len(usage.stderr.strip().splitlines()) == 1
    assert "--batch-size must be >= 1" in usage.stderr


def test_real_aflw_variants_are_built_with_a_warning(
    capsys, tmp_path, tiny, aflw_fixture_dir
) -> None:
    """All 17 real AFLW2000-3D fixtures (read in place) reach the test file, with on_bad_sample:
    fail; image01198's (2, 23) pt2d is one warning line, not a reject."""
    from uvgen.h5store import PositionMapFile

    out = tmp_path / "uv" / "test.h5"
    params = write_params(
        tmp_path, tiny, uvgen={"test_root": str(aflw_fixture_dir), "test_out": str(out)}
    )
    code, lines = run_stage(capsys, "make_uv", "test", "--params", params)
    assert code == 0, lines
    warned = [line for line in lines if line.startswith("warning:")]
    assert len(warned) == 1 and "image01198.mat: pt2d" in warned[0] and "(2, 23)" in warned[0]
    with PositionMapFile(out) as f:
        assert len(f) == 17 and "image01198.mat" in f.names
    assert (tmp_path / "uv" / "test_rejects.csv").read_text().strip().count("\n") == 0
