"""The bulk text formatting of model/mesh_io.py: Python's ``%`` text, byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from model.mesh_io import _table, write_obj


def _python(rows: np.ndarray, fmt: str) -> bytes:
    return "".join(fmt % tuple(r) + "\n" for r in rows.tolist()).encode("ascii")


EDGES = np.array(
    [0.0, -0.0, 0.5e-6, -0.5e-6, 1.5e-6, 2.5e-6, 123456789.1234565, -1e-9, 1e-7, 999.9999995]
    + [-999.9999995, 9.9999995, 0.1234565, 99999999.7, -9.99999999e8, 1e9, 1e15, 0.125, -2.5]
    + [0.0005, 0.0015, 1e-300, 4503599627.370495]
)


@pytest.mark.parametrize("decimals", [0, 1, 3, 6])
@pytest.mark.parametrize("prefix", ["", "v ", "vt "])
def test_float_rows_are_pythons_text(decimals, prefix) -> None:
    rng = np.random.default_rng(decimals)
    cases = [
        EDGES.reshape(-1, 1),
        rng.normal(200, 100, (5000, 6)),
        rng.uniform(-1, 1, (3000, 2)) * 10.0**-decimals,
        np.round(rng.normal(0, 100, (3000, 3)), decimals) + 0.5 * 10.0**-decimals,  # halves
        rng.normal(0, 1e6, (500, 3)),
    ]
    for rows in cases:
        fmt = prefix + " ".join([f"%.{decimals}f"] * rows.shape[1])
        assert _table(rows, fmt) == _python(rows, fmt)


@pytest.mark.parametrize("decimals", [0, 3, 6, 12])
def test_float32_rows_are_pythons_text(decimals) -> None:
    """float32 rows skip the near-half check (their scaled value is exact in float64): the text
    of every value, exact halves (dyadic, so representable) and the extremes included."""
    rng = np.random.default_rng(decimals)
    halves = (2 * rng.integers(0, 50, 200) + 1) * 5**decimals / 2.0 / 10.0**decimals
    cases = [
        EDGES[np.abs(EDGES) < 1e9].astype(np.float32).reshape(-1, 1),
        rng.normal(200, 100, (5000, 3)).astype(np.float32),
        np.concatenate([halves, -halves]).astype(np.float32).reshape(-1, 2),
        (rng.uniform(-1, 1, (2000, 3)) * 10.0 ** -min(decimals, 6)).astype(np.float32),
        np.float32([[np.finfo(np.float32).tiny, -np.finfo(np.float32).eps, 2.0**24]]),
    ]
    for rows in cases:
        assert np.array_equal(halves.astype(np.float32), halves)  # the halves are exact
        fmt = "v " + " ".join([f"%.{decimals}f"] * rows.shape[1])
        assert _table(rows, fmt) == _python(rows.astype(np.float64), fmt)


def test_mixed_and_integer_rows_are_pythons_text() -> None:
    rng = np.random.default_rng(1)
    ints = rng.integers(-5, 100000, (2000, 6))
    assert _table(ints, "f %d/%d %d/%d %d/%d") == _python(ints, "f %d/%d %d/%d %d/%d")
    mixed = np.hstack([rng.normal(0, 100, (500, 3)), rng.integers(0, 255, (500, 3))])
    assert _table(mixed, "%.6f %.6f %.6f %d %d %d") == _python(mixed, "%.6f %.6f %.6f %d %d %d")


def test_obj_faces_reused_across_meshes_of_one_layout(tmp_path) -> None:
    rng = np.random.default_rng(2)
    tri = rng.integers(0, 50, (80, 3))
    for k in range(3):  # the cached face lines, then the same bytes as a fresh format
        v = rng.normal(0, 10, (50, 3))
        write_obj(tmp_path / f"m{k}.obj", v, tri)
        text = (tmp_path / f"m{k}.obj").read_bytes()
        assert text.endswith(_python(tri + 1, "f %d %d %d"))
        assert _python(v, "v %.6f %.6f %.6f") in text
    # another layout of the same shape, and the first one changed in place: never a stale cache
    other = rng.integers(0, 50, (80, 3))
    for k, faces in enumerate((other, tri)):
        faces[0] = (k, k + 1, k + 2)
        write_obj(tmp_path / "n.obj", rng.normal(0, 10, (50, 3)), faces)
        assert (tmp_path / "n.obj").read_bytes().endswith(_python(faces + 1, "f %d %d %d"))


@pytest.mark.parametrize("scale", [300.0, 1e12])  # the bulk path, and the fallback past 2**50
def test_obj_uint8_colours_are_k_over_255(tmp_path, scale) -> None:
    rng = np.random.default_rng(3)
    v = rng.normal(0, scale, (400, 3))
    c = rng.integers(0, 256, (400, 3), dtype=np.uint8)
    c[:2] = [[0, 0, 0], [255, 255, 255]]
    text = write_obj(tmp_path / "c.obj", v, np.zeros((0, 3), int), c).read_bytes()
    assert text.endswith(_python(np.hstack([v, c / 255.0]), "v %.6f %.6f %.6f %.6f %.6f %.6f"))
    assert text == write_obj(tmp_path / "f.obj", v, np.zeros((0, 3), int), c / 255.0).read_bytes()


def test_binary_ply_faces_reused_only_for_the_same_layout(tmp_path) -> None:
    from model.mesh_io import write_ply

    rng = np.random.default_rng(4)
    tri = rng.integers(0, 50, (80, 3))
    other = rng.integers(0, 50, (80, 3))
    for k, faces in enumerate((tri, other, tri, tri)):
        if k == 3:
            faces[0] = (7, 8, 9)  # changed in place: never a stale cache
        data = write_ply(tmp_path / "m.ply", rng.normal(0, 10, (50, 3)), faces).read_bytes()
        records = np.frombuffer(data[-len(faces) * 13 :], dtype=[("n", "u1"), ("i", "<i4", (3,))])
        assert np.all(records["n"] == 3) and np.array_equal(records["i"], faces)
