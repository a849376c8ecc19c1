"""AFLW2000-3D samples: ``imageNNNNN.jpg`` (450x450 RGB) beside ``imageNNNNN.mat``.

On disk (docs/conventions.md section 2): the 3DDFA fit fields of 300W-LP (:data:`FIT_PARAM_SPECS`,
same shapes and dtypes) plus ``pt2d`` (2,21) float64 (AFLW's 21 points; x = -1 marks an invisible
one) and ``pt3d_68`` (3,68) float32 (the 68 landmarks in image pixels: x right, y down, z depth).

The test split uses the fit (pose, shape, expression) and ``pt3d_68``; ``pt2d``, ``roi`` and the
appearance fields are optional for the reader. Real files vary: ``image01198``, ``image02899`` and
``image03189`` store ``pt2d`` as (2, 23); they are read with a DataWarning, never rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from uvgen.formats.errors import DataError
from uvgen.formats.lp300w import (
    FIT_PARAM_SPECS,
    N_LANDMARKS_68,
    FitSample,
    read_fit_file,
    read_fit_files,
    write_fit_file,
    write_fit_sample,
)
from uvgen.formats.matfile import FieldSpec
from uvgen.formats.registry import DataSetFormat, register
from uvgen.formats.scan import Reject, list_files

N_AFLW_POINTS = 21
AFLW_NAME = re.compile(r"image\d{5}\.mat")

AFLW_SPECS: tuple[FieldSpec, ...] = FIT_PARAM_SPECS + (
    FieldSpec(
        "pt2d", "pt2d", (2, N_AFLW_POINTS), np.dtype(np.float64), "f", vector=False, required=False
    ),
    FieldSpec("pt3d_68", "pt3d_68", (3, N_LANDMARKS_68), np.dtype(np.float32), "f", vector=False),
)


@dataclass(frozen=True, eq=False)
class AFLWSample(FitSample):
    """One AFLW2000-3D sample (:class:`~uvgen.formats.lp300w.FitSample`; yaw for binning =
    ``yaw_deg``), with:

        pt2d: (2, 21) AFLW's 21 points in image pixels (x right, y down). An invisible point has
            x = -1 (its y is then not meaningful: 452 in the real files); see ``visible_2d``.
            Not used by the pipeline: a few real files hold (2, 23), kept as stored; None when
            the field is missing.
        pt3d_68: (3, 68) float64 the 68 ground-truth landmarks in image pixels: x right, y down,
            z depth.
    """

    pt3d_68: np.ndarray

    @property
    def visible_2d(self) -> np.ndarray:
        """(21,) bool: which of the AFLW points are visible (x != -1); (n,) for a (2, n) variant."""
        return self.pt2d[0] != -1


def read_aflw_mat(mat_path: str | Path, check_image: bool = False) -> AFLWSample:
    """Parse ``imageNNNNN.mat`` and check that the jpg beside it exists (``check_image=True`` also
    decodes it). Fields the pipeline uses are checked (exact shapes, numeric kinds, finite values;
    DataError naming file and field); unusual variants of the others give a DataWarning."""
    return read_fit_file(mat_path, AFLW_SPECS, AFLWSample, check_image)


#: :func:`read_aflw_mat` for every path: ``read_all(paths, collect_rejects=False,
#: check_image=False)`` -> (samples, rejects).
read_all = partial(read_fit_files, read_mat=read_aflw_mat)


def write_aflw_mat(mat_path: str | Path, **values: np.ndarray | None) -> Path:
    """Write an AFLW2000-3D ``.mat`` atomically with the exact real shapes and dtypes.

    Keywords: those of :func:`uvgen.formats.lp300w.write_300wlp_mat` with ``pt2d`` (2, 21)
    (-1 = invisible), plus ``pt3d_68`` (3, 68) pixels (stored as float32).
    """
    return write_fit_file(mat_path, AFLW_SPECS, values)


def write_aflw_sample(directory: str | Path, name: str, image: np.ndarray, **params) -> AFLWSample:
    """Write ``NAME.jpg`` (quality 95) then ``NAME.mat`` atomically; return the sample as read back.

    ``params`` are the keyword arguments of :func:`write_aflw_mat` (e.g. ``**sample.params()``).
    """
    return write_fit_sample(directory, name, image, params, write_aflw_mat, read_aflw_mat)


def list_aflw_samples(root: str | Path, any_name: bool = False) -> list[Path]:
    """Sorted ``imageNNNNN.mat`` paths directly in ``root`` (``any_name``: every ``.mat``, for a
    reader that rejects the others by :func:`check_aflw_name`); DataError(root, None, ...) when the
    directory is missing or holds no ``imageNNNNN.mat``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, None, "missing directory")
    listed = list_files(root, ".mat")
    paths = [p for p in listed if AFLW_NAME.fullmatch(p.name)]
    if not paths:
        raise DataError(root, None, "no AFLW2000-3D samples (imageNNNNN.mat)")
    return listed if any_name else paths


def check_aflw_name(path: Path) -> None:
    """DataError unless ``path`` is named ``imageNNNNN.mat`` (the name the evaluation matches)."""
    if not AFLW_NAME.fullmatch(path.name):
        raise DataError(path, None, "not named imageNNNNN.mat as AFLW2000-3D's files are")


def scan_aflw(
    root: str | Path, collect_rejects: bool = False, check_image: bool = False
) -> tuple[list[AFLWSample], list[Reject]]:
    """List and read every sample in ``root``: (samples, rejects)."""
    return read_all(list_aflw_samples(root), collect_rejects, check_image)


def read_aflw_sample(path: Path) -> AFLWSample:
    """One AFLW2000-3D sample as the UV build reads it: named ``imageNNNNN.mat`` (the name the
    evaluation matches by), then :func:`read_aflw_mat`."""
    check_aflw_name(path)
    return read_aflw_mat(path)


AFLW2000_3D = register(
    DataSetFormat(
        name="aflw2000_3d",
        description="AFLW2000-3D: imageNNNNN.jpg + imageNNNNN.mat (pt3d_68) in one folder",
        list_samples=partial(list_aflw_samples, any_name=True),
        read_sample=read_aflw_sample,
        crop="evaluation",
    )
)
