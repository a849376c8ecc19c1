"""Writers for coloured triangle meshes: Wavefront ``.obj`` (vertex colours, optionally texture
coordinates and a material naming a texture image) and ``.ply`` (binary little-endian or ASCII).

Vertices are written as given (3D points, any frame; :mod:`model.uses` hands over the camera
frame: x right, y up, z towards the viewer). Triangles are 0-based (T, 3) rows in memory and keep
their winding, which viewers read as counter-clockwise = front face; the ``.obj`` file stores them
1-based (``f i j k``), the ``.ply`` 0-based (``3 i j k``). Colours are RGB, floats in [0, 1] or
uint8; ``.obj`` gets ``v x y z r g b`` with floats in [0, 1] (the extension MeshLab, Blender and
Open3D read), ``.ply`` gets ``red green blue`` uchar properties. Files appear atomically.

Everything is formatted in bulk (rows of ``%.6f`` floats as digit columns of one character array,
other rows by one ``%`` over a repeated row template, binary as ``tobytes`` of a structured
array): no per-vertex Python. The text is the same as ``numpy.savetxt`` with the same
formats would write. The face (and texture-coordinate) lines depend on the UV layout only, so
they are formatted once and reused for every mesh of that layout.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np

from uvgen.atomic import atomic_output
from uvgen.raster import finite_points


def _check(
    vertices: np.ndarray, triangles: np.ndarray, colors: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    v = finite_points(vertices, 3, "vertices")
    if np.asarray(vertices).dtype == np.float32:
        v = np.asarray(vertices)  # checked; kept float32: the same values, a faster exact text
    t = np.asarray(triangles)
    if t.size == 0:
        t = t.reshape(0, 3).astype(np.int64)
    if t.ndim != 2 or t.shape[1] != 3 or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"triangles must be an (m, 3) integer array, got {t.dtype} {t.shape}")
    t = t.astype(np.int64, copy=False)
    if t.size and (t.min() < 0 or t.max() >= len(v)):
        raise ValueError(f"triangle indices must lie in [0, {len(v)})")
    c = None
    if colors is not None:
        c = np.asarray(colors)
        if c.shape != v.shape:
            raise ValueError(f"colors must be {v.shape}, got {c.shape}")
        if c.dtype != np.uint8:  # uint8 stays as it is (its text is looked up, its PLY is it)
            c = np.clip(c.astype(np.float64), 0.0, 1.0)
    return v, t, c


#: "%.6f " of k / 255 for k = 0..255, 9 bytes each: the text of a uint8 colour channel.
_CHANNEL_TEXT = np.frombuffer(
    "".join(f"{k / 255.0:.6f} " for k in range(256)).encode("ascii"), np.uint8
).reshape(256, 9)


def _vertex_lines(v: np.ndarray, c: np.ndarray | None) -> bytes | np.ndarray:
    """The ``v x y z [r g b]`` lines (``%.6f``; uint8 colours as k / 255): bytes, or a 1-D uint8
    array of them (a file's ``write`` takes either)."""
    if c is None:
        return _table(v, "v %.6f %.6f %.6f")
    if c.dtype != np.uint8:
        return _table(np.hstack([v, c]), "v %.6f %.6f %.6f %.6f %.6f %.6f")
    rgb = np.take(_CHANNEL_TEXT, c, axis=0).reshape(len(c), -1)  # "r g b " per row: a lookup
    rgb[:, -1] = ord("\n")
    if _fits_fixed(v, 6):
        return _fixed_table(v, 6, b"v ", rgb)
    return _table(np.hstack([v, c / 255.0]), "v %.6f %.6f %.6f %.6f %.6f %.6f")


def _table(rows: np.ndarray, fmt: str) -> bytes:
    """``fmt % row`` + newline for every row of ``rows`` (n, c), formatted in one call; rows of
    floats all written ``%.Nf`` (after an optional literal prefix such as ``"v "``) go through
    :func:`_fixed_table`, the same bytes without formatting each value in Python."""
    rows = np.asarray(rows)
    if not len(rows):
        return b""
    fixed = _FIXED_ROW.fullmatch(fmt)
    if fixed and fmt.count("%") == rows.shape[1] and rows.dtype.kind == "f":
        decimals = int(fixed.group(2))
        if _fits_fixed(rows, decimals):
            return _fixed_table(rows, decimals, fixed.group(1).encode("ascii")).tobytes()
    values = rows.ravel().tolist()  # Python floats / ints, as savetxt formats them
    return ((fmt + "\n") * len(rows) % tuple(values)).encode("ascii")


#: A row format of floats only: an optional literal prefix, then ``%.Nf`` fields joined by spaces.
_FIXED_ROW = re.compile(r"([^%]*)%\.(\d)f(?: %\.\2f)*")
#: "0000" .. "9999" as one 4-byte word each: digits are looked up four at a time, by a 1-D take.
_DIGITS4 = np.frombuffer("".join(f"{k:04d}" for k in range(10000)).encode(), np.uint32)
#: The same words with leading zeros as NUL bytes ("%4d", spaces as NUL), for a word with no
#: non-zero digit above it: the lowest word of a number (0 -> "\0\0\00").
_LEADING4 = np.frombuffer(
    "".join(f"{k:4d}" for k in range(10000)).replace(" ", "\0").encode(), np.uint32
)
#: Three tables of 10,000 words in one: zero-padded, leading NULs for the lowest word, and
#: leading NULs for a higher word (whose 0 is four NULs).
_WORDS = np.concatenate([_DIGITS4, _LEADING4, _LEADING4])
_WORDS[20000] = 0


def _fits_fixed(rows: np.ndarray, decimals: int) -> bool:
    """Whether :func:`_fixed_table` formats ``rows`` exactly (every |value| < 2**50 / 10**d)."""
    return bool(np.abs(rows).max() < 2.0**50 / 10.0**decimals)


def _digits(a: np.ndarray, n: int, drop_leading: bool = False) -> np.ndarray:
    """(..., n) ASCII digits of the non-negative int64 values ``a`` < 10**n, zero-padded, or with
    ``drop_leading`` the leading zeros as NUL bytes (a value's last digit always kept)."""
    words = []
    for k in range(-(-n // 4)):  # least significant four digits first
        a, low = np.divmod(a, 10000)
        if drop_leading:  # nothing above this word: the NUL-padded tables
            low += np.where(a > 0, 0, 10000 if k == 0 else 20000)
        words.append(np.take(_WORDS, low))
    return np.stack(words[::-1], axis=-1).view(np.uint8)[..., -n:]


def _fixed_table(
    rows: np.ndarray, decimals: int, prefix: bytes, suffix: np.ndarray | None = None
) -> np.ndarray:
    """The bytes (1-D uint8) of ``prefix`` then each value of a row as ``"%.{decimals}f"``
    joined by spaces, a newline per row: Python's text (the exact binary value correctly
    rounded, half to even; ``-`` kept on -0.0 and on what rounds to zero) for finite values
    under 2**50 / 10**decimals.
    ``suffix`` (n, k) uint8: text that ends each row instead of the newline (after a space).
    Neither ``prefix`` nor ``suffix`` may hold a NUL byte (NULs mark the bytes to drop)."""
    x = np.asarray(rows)
    # A float32 value (24-bit significand) times 10**d = 2**d * 5**d (5**12 < 2**28) needs at
    # most 52 bits: exact in float64 for d <= 12, so rint rounds the exact value (half to even).
    exact = x.dtype == np.float32 and decimals <= 12
    x = x.astype(np.float64, copy=False)
    n, c = x.shape
    scaled = x * 10.0**decimals
    q = np.rint(scaled)
    if not exact:
        # Rounding the exact binary value may differ from rounding the (rounded) product only
        # where the product lies within its rounding error (<= 2**-53 of it) of a half: those
        # few exactly.
        near = np.abs(np.abs(scaled - q) - 0.5) <= np.abs(scaled) * 4.5e-16
        for i in zip(*np.nonzero(near)):
            q[i] = int(Decimal(float(x[i])).scaleb(decimals).to_integral_value(ROUND_HALF_EVEN))
    whole, frac = np.divmod(np.abs(q).astype(np.int64), 10**decimals)  # exact: q < 2**50
    n_int = len(str(int(whole.max())))
    width = 1 + n_int + (decimals + 1 if decimals else 0) + 1  # sign, digits, '.', separator
    head = len(prefix)
    tail = 0 if suffix is None else suffix.shape[1]
    # Fixed-width rows in which every byte to drop (a plus sign, leading zeros) is NUL, dropped by
    # one mask at the end. numpy compacts without the GIL, so two writer threads overlap
    # (bytes.replace, about 1 ms faster alone for a face's mesh, holds the GIL and was slower on
    # two threads); the array is written as it is, without a copy to bytes.
    slot = np.zeros(width, dtype=np.uint8)  # one value: sign, whole part, '.', fraction, ' '
    if decimals:
        slot[1 + n_int] = ord(".")
    slot[-1] = ord(" ")
    row = np.concatenate([np.frombuffer(prefix, dtype=np.uint8), np.tile(slot, c)])
    if suffix is None:
        row[-1] = ord("\n")
    line = np.empty((n, head + c * width + tail), dtype=np.uint8)
    line[:, : head + c * width] = row  # the constant bytes, one broadcast copy
    out = line[:, head : head + c * width].reshape(n, c, width)
    out[..., 0] = np.signbit(x) * np.uint8(ord("-"))
    out[..., 1 : 1 + n_int] = _digits(whole, n_int, drop_leading=True)
    if decimals:
        out[..., 2 + n_int : -1] = _digits(frac, decimals)
    if suffix is not None:
        line[:, head + c * width :] = suffix
    return line[line != 0]


_BLOCKS: OrderedDict[tuple[str, str, tuple[int, ...]], tuple[np.ndarray, bytes]] = OrderedDict()


def _table_cached(source: np.ndarray, fmt: str, rows=lambda a: a) -> bytes:
    """:func:`_table` of ``rows(source)``, remembered for the last few ``source`` arrays (a copy
    of each, compared element by element on every call): the face and texture-coordinate lines
    of one UV layout are the same for every face written (thread-safe: a race only formats
    twice)."""
    return _per_layout(source, fmt, lambda a: _table(rows(a), fmt))


def _per_layout(source: np.ndarray, kind: str, build: Callable[[np.ndarray], bytes]) -> bytes:
    """``build(source)`` remembered under ``kind`` for the last few ``source`` arrays: see
    :func:`_table_cached`."""
    source = np.asarray(source)
    key = (kind, source.dtype.str, source.shape)
    hit = _BLOCKS.get(key)
    if hit is not None and np.array_equal(hit[0], source):
        return hit[1]
    data = build(source)
    _BLOCKS[key] = (source.copy(), data)
    while len(_BLOCKS) > 8:
        _BLOCKS.popitem(last=False)
    return data


def _ply_faces(triangles: np.ndarray) -> bytes:
    """Binary PLY face records: uchar 3, then three little-endian int32 indices."""
    face_rec = np.empty(len(triangles), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    face_rec["n"] = 3
    face_rec["i"] = triangles
    return face_rec.tobytes()


def write_obj(
    path: str | Path,
    vertices: np.ndarray,
    triangles: np.ndarray,
    colors: np.ndarray | None = None,
    texcoords: np.ndarray | None = None,
    texture: str | Path | None = None,
) -> Path:
    """Write ``v x y z [r g b]`` lines then ``f i j k`` lines (1-based indices); returns the path.

    ``texcoords`` (K, 2) in [0, 1] (u right, v up from the image's bottom edge): also ``vt u v``
    lines, one per vertex, and faces ``f i/i j/j k/k``. ``texture``: the texture image's path;
    writes ``PATH.mtl`` (stem of ``path``) with one material whose ``map_Kd`` is that image
    (relative to the ``.obj``'s folder when it lies there), and the ``.obj`` names it
    (``mtllib`` / ``usemtl``).
    """
    v, t, c = _check(vertices, triangles, colors)
    path = Path(path)
    uvs = None
    if texcoords is not None:
        uvs = np.asarray(texcoords, dtype=np.float64)
        if uvs.shape != (len(v), 2) or not np.all(np.isfinite(uvs)):
            raise ValueError(f"texcoords must be finite ({len(v)}, 2), got {uvs.shape}")
    vert = _vertex_lines(v, c)
    head = f"# {len(v)} vertices, {len(t)} triangles\n"
    if texture is not None:
        mtl = path.with_suffix(".mtl")
        tex = Path(texture)
        tex_name = tex.name if tex.parent.resolve() == path.parent.resolve() else str(tex)
        with atomic_output(mtl) as fh:
            fh.write(
                f"newmtl face\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\nmap_Kd {tex_name}\n".encode()
            )
        head += f"mtllib {mtl.name}\nusemtl face\n"
    if uvs is None:
        faces = _table_cached(t, "f %d %d %d", lambda a: a + 1)
    else:
        faces = _table_cached(t, "f %d/%d %d/%d %d/%d", lambda a: np.repeat(a + 1, 2, axis=1))
    with atomic_output(path) as fh:
        fh.write(head.encode("ascii"))
        fh.write(vert)
        if uvs is not None:
            fh.write(_table_cached(uvs, "vt %.6f %.6f"))
        fh.write(faces)
    return path


def write_ply(
    path: str | Path,
    vertices: np.ndarray,
    triangles: np.ndarray,
    colors: np.ndarray | None = None,
    binary: bool = True,
) -> Path:
    """Write a PLY: ``vertex`` elements (float x y z [, uchar red green blue]) and ``face``
    elements (``vertex_indices``, 3 per face, 0-based); binary little-endian (float32 / uint8 /
    int32) by default, ASCII with ``binary=False``; returns the path."""
    v, t, c = _check(vertices, triangles, colors)
    path = Path(path)
    header = [
        "ply",
        "format binary_little_endian 1.0" if binary else "format ascii 1.0",
        f"element vertex {len(v)}",
        "property float x",
        "property float y",
        "property float z",
    ]
    if c is not None:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(t)}", "property list uchar int vertex_indices", "end_header"]
    rgb = c if c is None or c.dtype == np.uint8 else np.clip(np.rint(c * 255.0), 0, 255)
    if binary:
        fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
        fields += [] if rgb is None else [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        vert_rec = np.empty(len(v), dtype=fields)
        for k, name in enumerate("xyz"):
            vert_rec[name] = v[:, k]
        if rgb is not None:
            for k, name in enumerate(("red", "green", "blue")):
                vert_rec[name] = rgb[:, k]
        vert, faces = vert_rec.tobytes(), _per_layout(t, "ply binary faces", _ply_faces)
    else:
        if rgb is None:
            vert = _table(v, "%.6f %.6f %.6f")
        else:
            vert = _table(np.hstack([v, rgb]), "%.6f %.6f %.6f %d %d %d")
        faces = _table_cached(t, "3 %d %d %d")
    with atomic_output(path) as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(vert)
        fh.write(faces)
    return path
