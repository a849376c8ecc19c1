"""Fixtures of the tests of model.uses and the modules built on it."""

from __future__ import annotations

import pytest

from model.uses import build_face_uv
from uvgen.groundtruth import build_uv_layout


@pytest.fixture(scope="module")
def setup(embedded_model):
    layout = build_uv_layout(embedded_model)
    return embedded_model, layout, build_face_uv(embedded_model, layout=layout)
