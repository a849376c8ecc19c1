"""The UV stages' script (pipeline/make_uv.py): what it checks before the build."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline import make_uv
from pipeline.config import DEFAULT_PARAMS
from uvgen.formats.errors import DataError


def test_an_output_that_is_a_folder_is_named_with_its_key(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS.read_text())
    raw["uvgen"]["test_out"] = str(tmp_path / "test.h5")
    (tmp_path / "test.h5").mkdir()
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw))
    with pytest.raises(DataError) as err:
        make_uv.main(["test", "--params", str(params)])
    assert str(err.value) == (
        f"{tmp_path / 'test.h5'}: is a folder; an output file is expected here "
        f"({params}: uvgen.test_out)"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "test.h5"]
