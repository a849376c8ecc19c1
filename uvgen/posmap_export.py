"""Export a UV HDF5 file in the layout existing training code reads.

``face3d`` layout (face3d's ``examples/8_generate_posmap_300WLP.py``): per sample, in one folder,
``NAME.jpg`` (the (S, S, 3) crop) and ``NAME.npy`` (the (S, S, 3) float32 position map in crop
pixels: x right, y down, z depth >= 0; background 0). NAME is the sample name's file stem (its
``.mat`` / image suffix dropped); a name with folders (``AFW/AFW_1_1_0.mat``) keeps them under
the output folder, since 300W-LP's flipped subsets reuse their originals' stems. The ``.npy`` is
exactly :meth:`uvgen.h5store.PositionMapFile.posmap` (the stored values, offset added back in
float32); face3d's third file, ``NAME_posmap.jpg`` (a JPEG picture of the map, for viewing
only), is not written.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from uvgen.atomic import atomic_output
from uvgen.formats.errors import DataError
from uvgen.formats.matfile import atomic_save_jpeg
from uvgen.h5store import PositionMapFile

LAYOUTS = ("face3d",)
_SUFFIXES = {".mat", ".jpg", ".jpeg", ".png"}


def export_stem(name: str) -> PurePosixPath:
    """The output path without suffix of a sample name: its folders kept, a ``.mat`` / image
    suffix dropped (``AFW/AFW_1_1_0.mat`` -> ``AFW/AFW_1_1_0``). ValueError for a name that is
    empty, absolute or climbs out with ``..``."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or not path.name:
        raise ValueError(f"sample name {name!r} cannot be an output path")
    return path.with_suffix("") if path.suffix.lower() in _SUFFIXES else path


def export_posmaps(
    h5_path: str | Path,
    out_dir: str | Path,
    layout: str = "face3d",
    jpeg_quality: int = 95,
    progress: Callable[[int], None] | None = None,
) -> list[Path]:
    """Write every sample of the UV file ``h5_path`` into ``out_dir`` in ``layout`` (see the
    module docstring); each file atomically. Returns the ``.npy`` paths in sample order.

    Raises DataError (file, 'names') when two samples would get the same output path or a name
    cannot be one, and ValueError for an unknown layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    h5_path, out_dir = Path(h5_path), Path(out_dir)
    with PositionMapFile(h5_path) as f:
        names = f.names
        stems = []
        for name in names:
            try:
                stems.append(export_stem(name))
            except ValueError as exc:
                raise DataError(h5_path, "names", str(exc)) from None
        seen: dict[PurePosixPath, str] = {}
        for name, stem in zip(names, stems):
            if stem in seen:
                raise DataError(
                    h5_path,
                    "names",
                    f"samples {seen[stem]!r} and {name!r} would both be written to {stem}.npy",
                )
            seen[stem] = name
        written = []
        for i, stem in enumerate(stems):
            base = out_dir / stem
            base.parent.mkdir(parents=True, exist_ok=True)
            atomic_save_jpeg(base.with_name(base.name + ".jpg"), f.image(i), quality=jpeg_quality)
            npy = base.with_name(base.name + ".npy")
            buf = io.BytesIO()
            np.save(buf, np.ascontiguousarray(f.posmap(i), dtype=np.float32))
            with atomic_output(npy) as fh:
                fh.write(buf.getvalue())
            written.append(npy)
            if progress is not None:
                progress(1)
    return written
