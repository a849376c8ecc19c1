"""A TensorFlow-free reader of TensorFlow's V2 checkpoints ("tensor bundles"), numpy only.

A checkpoint ``PREFIX`` is ``PREFIX.index`` plus the shards ``PREFIX.data-NNNNN-of-MMMMM``.

``PREFIX.index`` is an SSTable (LevelDB's table format):

* footer: the last 48 bytes = the metaindex block handle and the index block handle (each two
  varints: offset, size), zero padding to 40 bytes, then the magic ``0xdb4775248b80fb57`` as a
  little-endian uint64;
* block: ``size`` bytes of entries and restart points, then a 5-byte trailer: the compression
  type (0 = none; the only kind TensorFlow's bundle writer uses) and the masked CRC32C of the
  block plus that type byte (verified here);
* entries: ``varint shared, varint unshared, varint value_len, key[shared:], value``; the key
  shares ``shared`` leading bytes with the previous key (prefix compression, reset at each restart
  point); the block ends with the restart offsets (uint32 each) and their count (uint32);
* the index block maps each data block's last key to its handle; the table's entries, in key
  order, are ``"" -> BundleHeaderProto`` then ``tensor name -> BundleEntryProto``.

Protocol buffers (decoded here with a minimal wire-format reader):

* ``BundleHeaderProto``: 1 num_shards (int32), 2 endianness (0 little, 1 big), 3 version;
* ``BundleEntryProto``: 1 dtype (DataType enum), 2 shape (TensorShapeProto: 2 dim {1 size}),
  3 shard_id, 4 offset, 5 size (bytes in the shard), 6 crc32c (fixed32, masked CRC32C of the
  tensor's bytes), 7 slices (partitioned variables; not supported here).

Shard data: each tensor's raw little-endian bytes at ``offset`` in shard ``shard_id``.
Errors name the file and the variable: :class:`CheckpointError` (a ``DataError``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.crc32c import crc32c, mask
from uvgen.closing import ClosesOnExit
from uvgen.formats.errors import DataError, check_not_lfs_pointer

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5

#: TensorFlow DataType enum -> numpy dtype (little-endian) for the types read here.
DTYPES: dict[int, np.dtype] = {
    1: np.dtype("<f4"),
    2: np.dtype("<f8"),
    3: np.dtype("<i4"),
    4: np.dtype("u1"),
    5: np.dtype("<i2"),
    6: np.dtype("i1"),
    9: np.dtype("<i8"),
    10: np.dtype("?"),
    14: np.dtype("<u2"),  # bfloat16 bits
    17: np.dtype("<u2"),
    19: np.dtype("<f2"),
    22: np.dtype("<u4"),
    23: np.dtype("<u8"),
}
DTYPE_NAMES: dict[int, str] = {
    1: "DT_FLOAT",
    2: "DT_DOUBLE",
    3: "DT_INT32",
    4: "DT_UINT8",
    5: "DT_INT16",
    6: "DT_INT8",
    7: "DT_STRING",
    8: "DT_COMPLEX64",
    9: "DT_INT64",
    10: "DT_BOOL",
    11: "DT_QINT8",
    12: "DT_QUINT8",
    13: "DT_QINT32",
    14: "DT_BFLOAT16",
    15: "DT_QINT16",
    16: "DT_QUINT16",
    17: "DT_UINT16",
    18: "DT_COMPLEX128",
    19: "DT_HALF",
    20: "DT_RESOURCE",
    21: "DT_VARIANT",
    22: "DT_UINT32",
    23: "DT_UINT64",
}
BFLOAT16 = 14


class CheckpointError(DataError):
    """A missing, corrupt or unsupported checkpoint file; names the file and the variable."""


# ----------------------------------------------------------------------------------------------
# Varints and protobuf wire format


def read_varint(
    buf: bytes | memoryview, pos: int, path: Path | str = "?", what: str | None = None
) -> tuple[int, int]:
    """(value, new position) of the base-128 varint at ``pos``."""
    result, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise CheckpointError(path, what, "truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise CheckpointError(path, what, "varint longer than 10 bytes")


def proto_fields(
    buf: bytes, path: Path | str = "?", what: str | None = None
) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each field of a serialised message: varints as int,
    fixed64/fixed32 as unsigned int, length-delimited as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos, path, what)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos, path, what)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise CheckpointError(path, what, "truncated fixed64 field")
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            n, pos = read_varint(buf, pos, path, what)
            if pos + n > len(buf):
                raise CheckpointError(path, what, "truncated length-delimited field")
            value = bytes(buf[pos : pos + n])
            pos += n
        elif wire == 5:
            if pos + 4 > len(buf):
                raise CheckpointError(path, what, "truncated fixed32 field")
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise CheckpointError(
                path, what, f"unsupported protobuf wire type {wire} (field {field})"
            )
        yield field, wire, value


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# ----------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class BundleHeader:
    """``BundleHeaderProto``: number of data shards, byte order, writer version."""

    num_shards: int = 1
    big_endian: bool = False
    producer: int = 0


@dataclass(frozen=True)
class TensorEntry:
    """``BundleEntryProto`` of one variable: where its bytes are and what they are."""

    name: str
    dtype_code: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # masked, as stored; None if the record has none
    num_slices: int = 0

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype_code, f"DataType {self.dtype_code}")

    @property
    def dtype(self) -> np.dtype | None:
        """numpy dtype of the stored bytes (bfloat16 as its uint16 bits); None if unsupported."""
        return DTYPES.get(self.dtype_code)


def parse_header(buf: bytes, path: Path | str) -> BundleHeader:
    num_shards, big, producer = 1, False, 0
    for field, _, value in proto_fields(buf, path, "BundleHeaderProto"):
        if field == 1:
            num_shards = int(value)
        elif field == 2:
            big = int(value) == 1
        elif field == 3:
            for f2, _, v2 in proto_fields(value, path, "BundleHeaderProto.version"):
                if f2 == 1:
                    producer = int(v2)
    return BundleHeader(num_shards, big, producer)


def parse_shape(buf: bytes, path: Path | str, name: str) -> tuple[int, ...]:
    dims = []
    for field, _, value in proto_fields(buf, path, name):
        if field == 2:
            size = -1
            for f2, _, v2 in proto_fields(value, path, name):
                if f2 == 1:
                    size = _int64(int(v2))
            dims.append(size)
        elif field == 3 and value:
            raise CheckpointError(path, name, "shape of unknown rank")
    return tuple(dims)


def parse_entry(name: str, buf: bytes, path: Path | str) -> TensorEntry:
    dtype, shape, shard, offset, size, crc, slices = 0, (), 0, 0, 0, None, 0
    for field, _, value in proto_fields(buf, path, name):
        if field == 1:
            dtype = int(value)
        elif field == 2:
            shape = parse_shape(value, path, name)
        elif field == 3:
            shard = int(value)
        elif field == 4:
            offset = _int64(int(value))
        elif field == 5:
            size = _int64(int(value))
        elif field == 6:
            crc = int(value)
        elif field == 7:
            slices += 1
    return TensorEntry(name, dtype, shape, shard, offset, size, crc, slices)


# ----------------------------------------------------------------------------------------------
# SSTable


def _block_handle(buf: bytes, pos: int, path: Path) -> tuple[int, int, int]:
    offset, pos = read_varint(buf, pos, path, "block handle")
    size, pos = read_varint(buf, pos, path, "block handle")
    return offset, size, pos


def read_block(data: bytes, offset: int, size: int, path: Path, what: str) -> bytes:
    """A block's contents (trailer checked: no compression, masked CRC32C of contents + type)."""
    end = offset + size + BLOCK_TRAILER_SIZE
    if offset < 0 or end > len(data):
        raise CheckpointError(
            path,
            what,
            f"block at {offset} (+{size}) runs past the end of the file "
            f"({len(data)} bytes): truncated index",
        )
    contents = data[offset : offset + size]
    ctype = data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if mask(crc32c(data[offset : offset + size + 1])) != stored:
        raise CheckpointError(
            path, what, f"block CRC32C mismatch at offset {offset}: corrupt index"
        )
    if ctype != 0:
        raise CheckpointError(
            path,
            what,
            f"compressed block (type {ctype}); only uncompressed "
            "tables (what TensorFlow writes) are supported",
        )
    return contents


def block_entries(block: bytes, path: Path, what: str) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) of each entry of a block, keys rebuilt from their shared prefixes."""
    if len(block) < 4:
        raise CheckpointError(path, what, "block shorter than its restart count")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise CheckpointError(path, what, f"bad restart count {num_restarts}")
    restarts = struct.unpack_from(f"<{num_restarts}I", block, limit)
    if any(r > limit for r in restarts):
        raise CheckpointError(path, what, "restart point past the entries")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = read_varint(block, pos, path, what)
        unshared, pos = read_varint(block, pos, path, what)
        vlen, pos = read_varint(block, pos, path, what)
        if shared > len(key) or pos + unshared + vlen > limit:
            raise CheckpointError(path, what, f"corrupt block entry at {pos}")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + vlen]
        pos += vlen


def table_entries(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) of an SSTable file, in key order."""
    path = Path(path)
    check_not_lfs_pointer(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(path, None, "missing checkpoint index file") from None
    except OSError as exc:
        raise CheckpointError(path, None, f"cannot read ({exc})") from exc
    if len(data) < FOOTER_SIZE:
        raise CheckpointError(
            path, "footer", f"file of {len(data)} bytes is shorter than the 48-byte footer"
        )
    footer = data[-FOOTER_SIZE:]
    magic = struct.unpack_from("<Q", footer, 40)[0]
    if magic != TABLE_MAGIC:
        raise CheckpointError(
            path, "footer", f"bad magic {magic:#018x}: not a TensorFlow checkpoint index"
        )
    _, _, pos = _block_handle(footer, 0, path)  # metaindex (unused by bundles)
    idx_off, idx_size, _ = _block_handle(footer, pos, path)
    index = read_block(data, idx_off, idx_size, path, "index block")
    for _, handle in block_entries(index, path, "index block"):
        off, size, _ = _block_handle(handle, 0, path)
        block = read_block(data, off, size, path, "data block")
        yield from block_entries(block, path, "data block")


# ----------------------------------------------------------------------------------------------
# Bundle


def shard_path(prefix: Path | str, shard: int, num_shards: int) -> Path:
    """``PREFIX.data-NNNNN-of-MMMMM``."""
    return Path(f"{prefix}.data-{shard:05d}-of-{num_shards:05d}")


def normalise_prefix(prefix: Path | str) -> Path:
    """The checkpoint prefix from a prefix, its ``.index`` or one of its ``.data-*`` files."""
    s = str(prefix)
    if s.endswith(".index"):
        return Path(s[: -len(".index")])
    if ".data-" in Path(s).name:
        return Path(s[: s.rindex(".data-")])
    return Path(s)


class Checkpoint(ClosesOnExit):
    """A V2 checkpoint opened for reading: ``entries`` (name -> :class:`TensorEntry`) and
    :meth:`read` of single variables (CRC verified by default)."""

    def __init__(self, prefix: Path | str):
        self.prefix = normalise_prefix(prefix)
        self.index_path = Path(f"{self.prefix}.index")
        self.header = BundleHeader()
        self.entries: dict[str, TensorEntry] = {}
        seen_header = False
        for key, value in table_entries(self.index_path):
            if key == b"":
                self.header = parse_header(value, self.index_path)
                seen_header = True
                continue
            try:
                name = key.decode("utf-8")
            except UnicodeDecodeError:
                raise CheckpointError(
                    self.index_path, repr(key), "variable name is not UTF-8"
                ) from None
            self.entries[name] = parse_entry(name, value, self.index_path)
        if not seen_header:
            raise CheckpointError(
                self.index_path, "BundleHeaderProto", "no bundle header: not a V2 checkpoint"
            )
        if self.header.big_endian:
            raise CheckpointError(
                self.index_path, "BundleHeaderProto", "big-endian checkpoints are not supported"
            )
        self._mmaps: dict[int, np.memmap] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return sorted(self.entries)

    def shard(self, shard_id: int) -> Path:
        return shard_path(self.prefix, shard_id, self.header.num_shards)

    def _shard_bytes(self, entry: TensorEntry) -> np.ndarray:
        if not 0 <= entry.shard_id < self.header.num_shards:
            raise CheckpointError(
                self.index_path,
                entry.name,
                f"shard {entry.shard_id} outside 0..{self.header.num_shards - 1}",
            )
        if entry.shard_id not in self._mmaps:
            path = self.shard(entry.shard_id)
            if not path.is_file():
                raise CheckpointError(path, entry.name, "missing checkpoint data shard")
            check_not_lfs_pointer(path)
            if os.path.getsize(path) == 0:
                self._mmaps[entry.shard_id] = np.zeros(0, np.uint8)
            else:
                self._mmaps[entry.shard_id] = np.memmap(path, dtype=np.uint8, mode="r")
        return self._mmaps[entry.shard_id]

    def read(self, name: str, verify: bool = True) -> np.ndarray:
        """The variable ``name`` as a numpy array of its shape (bfloat16 widened to float32)."""
        entry = self.entries.get(name)
        if entry is None:
            raise CheckpointError(self.index_path, name, "no such variable in the checkpoint")
        if entry.num_slices:
            raise CheckpointError(
                self.index_path, name, "partitioned (sliced) variables are not supported"
            )
        dtype = entry.dtype
        if dtype is None:
            raise CheckpointError(self.index_path, name, f"unsupported dtype {entry.dtype_name}")
        count = int(np.prod(entry.shape, dtype=np.int64)) if entry.shape else 1
        if any(d < 0 for d in entry.shape) or count * dtype.itemsize != entry.size:
            raise CheckpointError(
                self.index_path,
                name,
                f"{entry.size} bytes do not hold a {entry.dtype_name} "
                f"tensor of shape {list(entry.shape)}",
            )
        data = self._shard_bytes(entry)
        path = self.shard(entry.shard_id)
        if entry.offset < 0 or entry.offset + entry.size > data.size:
            raise CheckpointError(
                path,
                name,
                f"truncated data: needs bytes {entry.offset}..{entry.offset + entry.size},"
                f" the file has {data.size}",
            )
        raw = np.array(data[entry.offset : entry.offset + entry.size])  # a copy, off the memmap
        if verify and entry.crc32c is not None and mask(crc32c(raw)) != entry.crc32c:
            raise CheckpointError(path, name, "CRC32C mismatch: the variable's bytes are corrupt")
        arr = raw.view(dtype).reshape(entry.shape)
        if entry.dtype_code == BFLOAT16:
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        return arr

    def read_many(self, names: Iterable[str], verify: bool = True) -> dict[str, np.ndarray]:
        return {n: self.read(n, verify) for n in names}

    def close(self) -> None:
        self._mmaps.clear()


def read_checkpoint(
    prefix: Path | str, names: Iterable[str] | None = None, verify: bool = True
) -> dict[str, np.ndarray]:
    """Variables of a checkpoint (all, or ``names``) as numpy arrays, CRCs verified."""
    with Checkpoint(prefix) as ckpt:
        return ckpt.read_many(ckpt.names() if names is None else names, verify)
