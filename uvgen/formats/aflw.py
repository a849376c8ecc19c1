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
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from uvgen.formats.errors import DataError
from uvgen.formats.lp300w import (
    FIT_PARAM_SPECS,
    N_LANDMARKS_68,
    PoseMixin,
    check_image_beside,
    check_sample_name,
    with_default_appearance,
)
from uvgen.formats.matfile import (
    FieldSpec,
    atomic_save_jpeg,
    atomic_savemat,
    load_mat,
    pack_fields,
    read_fields,
    read_jpeg,
)
from uvgen.formats.scan import Reject, list_files
from uvgen.formats.scan import read_all as _read_all

N_AFLW_POINTS = 21
AFLW_NAME = re.compile(r"image\d{5}\.mat")

AFLW_SPECS: tuple[FieldSpec, ...] = FIT_PARAM_SPECS + (
    FieldSpec(
        "pt2d", "pt2d", (2, N_AFLW_POINTS), np.dtype(np.float64), "f", vector=False, required=False
    ),
    FieldSpec("pt3d_68", "pt3d_68", (3, N_LANDMARKS_68), np.dtype(np.float32), "f", vector=False),
)


@dataclass(frozen=True, eq=False)
class AFLWSample(PoseMixin):
    """One AFLW2000-3D sample (arrays read-only, float64 unless noted).

    Attributes:
        name: file stem, e.g. ``'image00050'``.
        mat_path, image_path: ``NAME.mat`` and the ``NAME.jpg`` beside it.
        pose_para: (7,) [pitch, yaw, roll (radians), tx, ty, tz, s]; yaw for binning = ``yaw_deg``.
        shape_para: (199,), exp_para: (29,) model coefficients, used as stored.
        pt2d: (2, 21) AFLW's 21 points in image pixels (x right, y down). An invisible point has
            x = -1 (its y is then not meaningful: 452 in the real files); see ``visible_2d``.
            Not used by the pipeline: a few real files hold (2, 23), kept as stored; None when
            the field is missing.
        pt3d_68: (3, 68) the 68 ground-truth landmarks in image pixels: x right, y down, z depth.
        roi: (4,) int64 face box as stored; tex_para (199,), color_para (7,), illum_para (10,).
    """

    name: str
    mat_path: Path
    image_path: Path
    pose_para: np.ndarray
    shape_para: np.ndarray
    exp_para: np.ndarray
    pt2d: np.ndarray
    pt3d_68: np.ndarray
    roi: np.ndarray
    tex_para: np.ndarray
    color_para: np.ndarray
    illum_para: np.ndarray

    def params(self) -> dict[str, np.ndarray]:
        """The stored fields as keyword arguments for :func:`write_aflw_mat` / ``_sample``."""
        skip = ("name", "mat_path", "image_path")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    @property
    def visible_2d(self) -> np.ndarray:
        """(21,) bool: which of the AFLW points are visible (x != -1); (n,) for a (2, n) variant."""
        return self.pt2d[0] != -1

    def load_image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB image (450x450)."""
        return read_jpeg(self.image_path)


def read_aflw_mat(mat_path: str | Path, check_image: bool = False) -> AFLWSample:
    """Parse ``imageNNNNN.mat`` and check that the jpg beside it exists (``check_image=True`` also
    decodes it). Fields the pipeline uses are checked (exact shapes, numeric kinds, finite values;
    DataError naming file and field); unusual variants of the others give a DataWarning."""
    mat_path = Path(mat_path)
    values = read_fields(load_mat(mat_path), mat_path, AFLW_SPECS)
    image_path = check_image_beside(mat_path, check_image)
    return AFLWSample(name=mat_path.stem, mat_path=mat_path, image_path=image_path, **values)


def write_aflw_mat(
    mat_path: str | Path,
    *,
    pose_para: np.ndarray,
    shape_para: np.ndarray,
    exp_para: np.ndarray,
    pt2d: np.ndarray,
    pt3d_68: np.ndarray,
    roi: np.ndarray,
    tex_para: np.ndarray | None = None,
    color_para: np.ndarray | None = None,
    illum_para: np.ndarray | None = None,
) -> Path:
    """Write an AFLW2000-3D ``.mat`` atomically with the exact real shapes and dtypes.

    ``pt2d`` must be (2, 21) (-1 = invisible), ``pt3d_68`` (3, 68) pixels (stored as float32).
    Other arguments as :func:`uvgen.formats.lp300w.write_300wlp_mat`.
    """
    values = with_default_appearance(
        dict(
            pose_para=pose_para,
            shape_para=shape_para,
            exp_para=exp_para,
            pt2d=pt2d,
            pt3d_68=pt3d_68,
            roi=roi,
            tex_para=tex_para,
            color_para=color_para,
            illum_para=illum_para,
        )
    )
    mat_path = Path(mat_path)
    atomic_savemat(mat_path, pack_fields(values, AFLW_SPECS))
    return mat_path


def write_aflw_sample(directory: str | Path, name: str, image: np.ndarray, **params) -> AFLWSample:
    """Write ``NAME.jpg`` (quality 95) then ``NAME.mat`` atomically; return the sample as read back.

    ``params`` are the keyword arguments of :func:`write_aflw_mat` (e.g. ``**sample.params()``).
    """
    check_sample_name(name)
    directory = Path(directory)
    atomic_save_jpeg(directory / f"{name}.jpg", image, quality=95)
    mat_path = write_aflw_mat(directory / f"{name}.mat", **params)
    return read_aflw_mat(mat_path)


def list_aflw_samples(root: str | Path) -> list[Path]:
    """Sorted ``imageNNNNN.mat`` paths directly in ``root``; DataError(root, None, ...) when the
    directory is missing or holds none."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, None, "missing directory")
    paths = [p for p in list_files(root, ".mat") if AFLW_NAME.fullmatch(p.name)]
    if not paths:
        raise DataError(root, None, "no AFLW2000-3D samples (imageNNNNN.mat)")
    return paths


def read_all(
    paths: Iterable[str | Path], collect_rejects: bool = False, check_image: bool = False
) -> tuple[list[AFLWSample], list[Reject]]:
    """:func:`read_aflw_mat` for every path: (samples, rejects); see
    :func:`uvgen.formats.scan.read_all`."""
    return _read_all(paths, lambda p: read_aflw_mat(p, check_image=check_image), collect_rejects)


def scan_aflw(
    root: str | Path, collect_rejects: bool = False, check_image: bool = False
) -> tuple[list[AFLWSample], list[Reject]]:
    """List and read every sample in ``root``: (samples, rejects)."""
    return read_all(list_aflw_samples(root), collect_rejects, check_image)
