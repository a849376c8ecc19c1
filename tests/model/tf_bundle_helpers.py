"""A minimal writer of TensorFlow V2 bundles for tests (the format as model.tf_checkpoint reads it).

It writes the SSTable with prefix-compressed keys and a restart point every ``restart_every``
entries, data blocks of about ``block_size`` bytes, a block index, the footer, masked CRCs; so
tests can make checkpoints TensorFlow would not (other dtypes, other networks, several shards).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from model.crc32c import crc32c, mask
from model.tf_checkpoint import TABLE_MAGIC

NP_TO_TF = {
    np.dtype("<f4"): 1,
    np.dtype("<f8"): 2,
    np.dtype("<i4"): 3,
    np.dtype("<i8"): 9,
    np.dtype("<f2"): 19,
}


def varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_varint(num: int, v: int) -> bytes:
    return varint(num << 3) + varint(v)


def field_bytes(num: int, b: bytes) -> bytes:
    return varint((num << 3) | 2) + varint(len(b)) + b


def entry_proto(
    dtype: int, shape: tuple[int, ...], shard: int, offset: int, size: int, crc: int
) -> bytes:
    shape_pb = b"".join(field_bytes(2, field_varint(1, d)) for d in shape)
    return (
        field_varint(1, dtype)
        + field_bytes(2, shape_pb)
        + (field_varint(3, shard) if shard else b"")
        + (field_varint(4, offset) if offset else b"")
        + field_varint(5, size)
        + varint((6 << 3) | 5)
        + struct.pack("<I", crc)
    )


def _block(entries: list[tuple[bytes, bytes]], restart_every: int) -> bytes:
    out, restarts, prev = bytearray(), [], b""
    for i, (k, v) in enumerate(entries):
        shared = 0
        if i % restart_every == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(k), len(prev)) and k[shared] == prev[shared]:
                shared += 1
        out += varint(shared) + varint(len(k) - shared) + varint(len(v)) + k[shared:] + v
        prev = k
    out += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
    return bytes(out)


def _with_trailer(block: bytes) -> bytes:
    return block + b"\x00" + struct.pack("<I", mask(crc32c(block + b"\x00")))


def write_table(
    path: Path, entries: list[tuple[bytes, bytes]], block_size: int = 512, restart_every: int = 4
) -> None:
    entries = sorted(entries)
    data, index = bytearray(), []
    i = 0
    while i < len(entries):
        chunk, size = [], 0
        while i < len(entries) and (not chunk or size < block_size):
            chunk.append(entries[i])
            size += len(entries[i][0]) + len(entries[i][1]) + 3
            i += 1
        block = _block(chunk, restart_every)
        index.append((chunk[-1][0], varint(len(data)) + varint(len(block))))
        data += _with_trailer(block)
    meta = _block([], 1)
    meta_off = len(data)
    data += _with_trailer(meta)
    idx = _block(index, 1)
    idx_off = len(data)
    data += _with_trailer(idx)
    handles = varint(meta_off) + varint(len(meta)) + varint(idx_off) + varint(len(idx))
    data += handles + bytes(40 - len(handles)) + struct.pack("<Q", TABLE_MAGIC)
    Path(path).write_bytes(bytes(data))


def write_bundle(
    prefix: Path,
    tensors: dict[str, np.ndarray],
    num_shards: int = 1,
    dtype_codes: dict[str, int] | None = None,
    **table_kwargs,
) -> None:
    """``prefix.index`` + ``prefix.data-*``: tensor i goes to shard i % num_shards."""
    shards = [bytearray() for _ in range(num_shards)]
    entries = [(b"", field_varint(1, num_shards) + field_bytes(3, field_varint(1, 1)))]
    for i, (name, value) in enumerate(sorted(tensors.items())):
        arr = np.array(value, order="C")  # (ascontiguousarray would make a 0-d array 1-d)
        raw = arr.tobytes()
        s = i % num_shards
        code = (dtype_codes or {}).get(name, NP_TO_TF.get(arr.dtype.newbyteorder("<"), 1))
        entries.append(
            (
                name.encode(),
                entry_proto(code, arr.shape, s, len(shards[s]), len(raw), mask(crc32c(raw))),
            )
        )
        shards[s] += raw
    write_table(Path(f"{prefix}.index"), entries, **table_kwargs)
    for s, buf in enumerate(shards):
        Path(f"{prefix}.data-{s:05d}-of-{num_shards:05d}").write_bytes(bytes(buf))
