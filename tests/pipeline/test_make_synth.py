"""Stage make_synth: writes only into folders the project made (never a user's), refuses a bad
count before touching anything, one build of a folder at a time, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.make_synth import main
from pipeline.typed_yaml import ConfigError
from uvgen.formats.bfm import save_bfm
from uvgen.resumable import MANIFEST, exclusive_lock
from uvgen.synth.dataset import check_count, write_synthetic_set
from uvgen.synth.facemodel import make_face_model

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model")
    save_bfm(make_face_model(n_vertices=1500, seed=0), path)
    return path


def write_params(path: Path, model_dir: Path, out_dir: Path, count) -> Path:
    with open(PROJECT / "params.yaml") as fh:
        params = yaml.safe_load(fh)
    params["face_model"]["out_dir"] = str(model_dir)
    params["synth_aflw2000"].update(
        {"count": count, "image_size": 160, "out_dir": str(out_dir), "workers": 1}
    )
    path.write_text(yaml.safe_dump(params))
    return path


def run_stage(params: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.make_synth", "aflw2000", "--params", str(params)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("a user's own file")
    (folder / "sub").mkdir()
    (folder / "sub" / "photo.jpg").write_bytes(b"\xff\xd8 not ours")
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_a_users_folder_is_refused_untouched(model_dir, tmp_path):
    folder = user_folder(tmp_path)
    before = listing(folder)
    done = run_stage(write_params(tmp_path / "params.yaml", model_dir, folder, 2))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"refusing to clear {folder}" in lines[0], done.stderr[-2000:]
    assert listing(folder) == before


@pytest.mark.parametrize("count", [-5, 0])
def test_bad_count_names_the_key_and_touches_nothing(model_dir, tmp_path, count, capsys):
    out = tmp_path / "AFLW2000"
    main(["aflw2000", "--params", str(write_params(tmp_path / "p.yaml", model_dir, out, 2))])
    before = listing(out)
    with pytest.raises(ConfigError) as exc:  # one line through pipeline.stage.run
        main(
            ["aflw2000", "--params", str(write_params(tmp_path / "p.yaml", model_dir, out, count))]
        )
    message = str(exc.value)
    assert "synth_aflw2000.count" in message and str(count) in message and "\n" not in message
    assert listing(out) == before  # the earlier set is still there


def test_count_must_be_a_positive_integer():
    for bad in (-5, 0, 2.7, "5", True, None):
        with pytest.raises(ValueError, match="count must be an integer >= 1"):
            check_count(bad)
    assert check_count(3) == 3
    with pytest.raises(ValueError, match="count"):
        write_synthetic_set("aflw2000", Path("unused"), Path("unused"), 2.7, 160, seed=0)


def test_own_folder_resumes_and_is_redone_for_other_settings(model_dir, tmp_path, capsys):
    out = tmp_path / "AFLW2000"
    main(["aflw2000", "--params", str(write_params(tmp_path / "p.yaml", model_dir, out, 3))])
    assert listing(out) == sorted(
        [MANIFEST] + [f"image{k:05d}.{s}" for k in range(3) for s in ("jpg", "mat")]
    )
    (out / "image00002.mat").unlink()  # as if killed before the last sample
    capsys.readouterr()
    main(["aflw2000", "--params", str(write_params(tmp_path / "p.yaml", model_dir, out, 3))])
    assert "resuming" in capsys.readouterr().out and (out / "image00002.mat").exists()
    main(["aflw2000", "--params", str(write_params(tmp_path / "p.yaml", model_dir, out, 2))])
    assert listing(out) == sorted(
        [MANIFEST] + [f"image{k:05d}.{s}" for k in range(2) for s in ("jpg", "mat")]
    )


def test_second_build_of_the_same_folder_refuses(model_dir, tmp_path):
    out = tmp_path / "AFLW2000"
    params = write_params(tmp_path / "p.yaml", model_dir, out, 2)
    with exclusive_lock(out), pytest.raises(SystemExit) as exc:  # another build holds the lock
        main(["aflw2000", "--params", str(params)])
    assert (
        str(exc.value.code)
        == f"synth aflw2000: another build of {out} is running (pid {os.getpid()})"
    )
    assert not out.exists()
