"""The TensorFlow-free checkpoint reader: PRNet's real release index, TensorFlow's own checkpoint
(tests/fixtures/tf_golden, written by scripts/make_tf_golden.py with TensorFlow 2.21.0), bundles
written by the test helper, and every kind of damage."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model.prnet import PRNet, count_parameters, tf_variable_map
from model.release import is_optimizer_state
from model.tf_checkpoint import Checkpoint, CheckpointError, normalise_prefix, read_checkpoint
from tests.model.tf_bundle_helpers import write_bundle

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "tf_golden"
RELEASE_DATA_BYTES = 160_290_984  # the release's .data-00000-of-00001 (shared/README.md)


@pytest.fixture(scope="module")
def release_index(request) -> Checkpoint:
    from tests.conftest import FIXTURES

    path = FIXTURES / "prnet_release" / "256_256_resfcn256_weight.index"
    if not path.is_file():
        pytest.skip(f"real-data fixture absent: {path}")
    return Checkpoint(path)


def _tf_shape(torch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """PyTorch OIHW / (in, out, kh, kw) -> TensorFlow's (kh, kw, in, out) / (kh, kw, out, in)."""
    if len(torch_shape) == 4:
        return tuple(torch_shape[i] for i in (2, 3, 1, 0))
    return tuple(torch_shape)


# ----------------------------------------------------------------------------------------------
# PRNet's released index


def test_release_index_holds_every_prnet_variable_with_its_shape(release_index: Checkpoint) -> None:
    ckpt = release_index
    assert ckpt.header.num_shards == 1 and not ckpt.header.big_endian
    model = PRNet(width=16)
    expected = {name: _tf_shape(tuple(t.shape)) for name, t in tf_variable_map(model).items()}
    assert len(expected) == 245
    weights = {n: e for n, e in ckpt.entries.items() if not is_optimizer_state(n)}
    assert set(weights) == set(expected)  # nothing missing, nothing unexpected
    for name, shape in expected.items():
        e = ckpt.entries[name]
        assert e.shape == shape, name
        assert (
            e.dtype_name == "DT_FLOAT"
            and e.size == 4 * int(np.prod(shape))
            and e.crc32c is not None
        )
    trainable = sum(int(np.prod(e.shape)) for n, e in weights.items() if "moving_" not in n)
    assert trainable == count_parameters(model) == 13_353_618
    # the rest are Adam's two slots per trainable variable and the counters
    extras = set(ckpt.entries) - set(weights)
    assert {"beta1_power", "beta2_power"} <= extras
    n_trainable = sum("moving_" not in n for n in weights)
    assert (
        sum(n.endswith("/Adam") for n in extras)
        == sum(n.endswith("/Adam_1") for n in extras)
        == n_trainable
    )
    assert ckpt.entries["resfcn256/Conv/weights/Adam"].shape == (4, 4, 3, 16)


def test_release_index_offsets_tile_the_data_file(release_index: Checkpoint) -> None:
    spans = sorted((e.offset, e.offset + e.size) for e in release_index.entries.values())
    assert spans[0][0] == 0 and spans[-1][1] == RELEASE_DATA_BYTES
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, no overlap


def test_release_data_file_absent_gives_a_missing_shard_error(release_index: Checkpoint) -> None:
    with pytest.raises(
        CheckpointError, match=r"resfcn256/Conv/weights.*missing checkpoint data shard"
    ):
        release_index.read("resfcn256/Conv/weights")


# ----------------------------------------------------------------------------------------------
# TensorFlow's own checkpoint


def test_reads_tensorflows_checkpoint_with_crcs_verified() -> None:
    ckpt = Checkpoint(GOLDEN / "model")
    model = PRNet(width=2, in_size=64)
    for name, t in tf_variable_map(model).items():
        assert ckpt.entries[name].shape == _tf_shape(tuple(t.shape))
    values = ckpt.read_many(ckpt.names())  # every CRC checked
    assert values["global_step"].dtype == np.int64 and values["global_step"].shape == ()
    var = values["resfcn256/resBlock_4/Conv_1/BatchNorm/moving_variance"]
    assert var.dtype == np.float32 and (var > 0).all() and np.ptp(var) > 0  # non-trivial stats
    assert values["resfcn256/Conv/weights/Adam"].shape == (4, 4, 3, 2)


def test_prefix_forms() -> None:
    p = GOLDEN / "model"
    assert normalise_prefix(f"{p}.index") == p == normalise_prefix(f"{p}.data-00000-of-00001")


# ----------------------------------------------------------------------------------------------
# Bundles of other shapes (helper writer): shards, blocks, prefix compression, dtypes


def test_round_trip_several_shards_blocks_and_dtypes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {
        f"net/layer_{i:03d}/kernel": rng.normal(size=(i % 5 + 1, 3)).astype(np.float32)
        for i in range(60)
    }
    tensors["net/double"] = rng.normal(size=(2, 2))
    tensors["net/half"] = rng.normal(size=(7,)).astype(np.float16)
    tensors["net/count"] = np.array(12345, dtype=np.int64)
    tensors["net/big"] = rng.normal(size=(40, 50)).astype(
        np.float32
    )  # > 4096 bytes: lane-parallel CRC
    write_bundle(tmp_path / "ck", tensors, num_shards=3, block_size=200, restart_every=3)
    got = read_checkpoint(tmp_path / "ck")
    assert set(got) == set(tensors)
    for name, value in tensors.items():
        assert got[name].dtype == value.dtype and np.array_equal(got[name], value), name
    assert Checkpoint(tmp_path / "ck").header.num_shards == 3


def test_unsupported_dtype_names_the_variable(tmp_path: Path) -> None:
    write_bundle(
        tmp_path / "ck", {"a/strings": np.zeros(4, np.float32)}, dtype_codes={"a/strings": 7}
    )
    with pytest.raises(CheckpointError, match=r"a/strings.*unsupported dtype DT_STRING"):
        Checkpoint(tmp_path / "ck").read("a/strings")


# ----------------------------------------------------------------------------------------------
# Damage


@pytest.fixture()
def golden_copy(tmp_path: Path) -> Path:
    for f in GOLDEN.glob("model.*"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / "model"


def test_flipped_byte_in_the_data_gives_a_crc_error_naming_the_variable(golden_copy: Path) -> None:
    ckpt = Checkpoint(golden_copy)
    name = "resfcn256/resBlock_7/Conv_1/weights"
    e = ckpt.entries[name]
    data = Path(f"{golden_copy}.data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[e.offset + e.size // 2] ^= 0x10
    data.write_bytes(bytes(raw))
    ckpt = Checkpoint(golden_copy)
    with pytest.raises(
        CheckpointError, match=rf"data-00000-of-00001 \[field '{name}'\]: CRC32C mismatch"
    ):
        ckpt.read(name)
    assert ckpt.read(name, verify=False).shape == e.shape  # readable when asked not to verify
    ckpt.read("resfcn256/resBlock_7/Conv/weights")  # its neighbours are intact


def test_truncated_data_file(golden_copy: Path) -> None:
    data = Path(f"{golden_copy}.data-00000-of-00001")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    ckpt = Checkpoint(golden_copy)
    last = max(ckpt.entries.values(), key=lambda e: e.offset)
    with pytest.raises(CheckpointError, match=rf"{last.name}.*truncated data"):
        ckpt.read(last.name)


def test_missing_shard_and_missing_index(golden_copy: Path) -> None:
    Path(f"{golden_copy}.data-00000-of-00001").unlink()
    with pytest.raises(
        CheckpointError,
        match=r"model.data-00000-of-00001 \[field 'resfcn256/Conv/weights'\]: "
        r"missing checkpoint data shard",
    ):
        Checkpoint(golden_copy).read("resfcn256/Conv/weights")
    with pytest.raises(CheckpointError, match="missing checkpoint index file"):
        Checkpoint(golden_copy.with_name("nothing"))


def test_damaged_index_is_refused(golden_copy: Path) -> None:
    index = Path(f"{golden_copy}.index")
    raw = bytearray(index.read_bytes())
    raw[100] ^= 0x01  # inside the first data block
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="block CRC32C mismatch"):
        Checkpoint(golden_copy)
    raw[100] ^= 0x01
    raw[-1] ^= 0xFF  # the magic
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="bad magic"):
        Checkpoint(golden_copy)
    index.write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(CheckpointError):
        Checkpoint(golden_copy)
