"""300W-LP samples: ``FOLDER/NAME.jpg`` (450x450 RGB) beside ``FOLDER/NAME.mat`` (3DDFA fit).

On disk (docs/conventions.md section 1, MATLAB v5): ``Pose_Para`` (1,7) float32, ``Shape_Para``
(199,1) float64, ``Exp_Para`` (29,1) float64, ``pt2d`` (2,68) float64, ``roi`` (1,4) int16,
``Tex_Para`` (199,1) float64, ``Color_Para`` (1,7) float32, ``Illum_Para`` (1,10) float64. Readers
check these shapes exactly and convert to float64 / int64 vectors; writers reproduce shapes and
dtypes exactly. Fields the pipeline does not use (``pt2d``, ``roi``, the appearance fields) are
optional for readers: an unusual variant gives a :class:`~uvgen.formats.errors.DataWarning` and the
sample is kept.

What every 3DDFA fit file shares (AFLW2000-3D's too, uvgen.formats.aflw) lives here: the fit
fields (:data:`FIT_PARAM_SPECS`), the sample base class (:class:`FitSample`) and the generic reader
and writers (:func:`read_fit_file`, :func:`write_fit_file`, :func:`write_fit_sample`).

Scanning is split for speed: :func:`list_300wlp_samples` only lists file names (cheap for 122,450
samples); :func:`read_all` parses them, stopping at the first bad one or collecting rejects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from uvgen.formats.bfm import N_EXP, N_SHAPE
from uvgen.formats.errors import DataError
from uvgen.formats.matfile import (
    FieldSpec,
    atomic_save_jpeg,
    atomic_savemat,
    load_mat,
    pack_fields,
    read_fields,
    read_jpeg,
)
from uvgen.formats.registry import DataSetFormat, register
from uvgen.formats.scan import Reject, list_files
from uvgen.formats.scan import read_all as _read_all

LP300W_FOLDERS = (
    "AFW",
    "HELEN",
    "IBUG",
    "LFPW",
    "AFW_Flip",
    "HELEN_Flip",
    "IBUG_Flip",
    "LFPW_Flip",
)
N_LANDMARKS_68 = 68

#: Fields every 3DDFA fit file has (300W-LP and AFLW2000-3D), at their exact stored layout.
#: The UV build uses the pose, shape and expression only: the appearance fields and ``roi`` are
#: optional for readers (an unusual variant is a DataWarning, never a reject).
FIT_PARAM_SPECS: tuple[FieldSpec, ...] = (
    FieldSpec("Pose_Para", "pose_para", (1, 7), np.dtype(np.float32), "f"),
    FieldSpec("Shape_Para", "shape_para", (N_SHAPE, 1), np.dtype(np.float64), "f"),
    FieldSpec("Exp_Para", "exp_para", (N_EXP, 1), np.dtype(np.float64), "f"),
    FieldSpec("roi", "roi", (1, 4), np.dtype(np.int16), "iu", required=False),
    FieldSpec("Tex_Para", "tex_para", (N_SHAPE, 1), np.dtype(np.float64), "f", required=False),
    FieldSpec("Color_Para", "color_para", (1, 7), np.dtype(np.float32), "f", required=False),
    FieldSpec("Illum_Para", "illum_para", (1, 10), np.dtype(np.float64), "f", required=False),
)
#: 300W-LP's ``pt2d`` (the 68 landmarks) is not used by the build (the training crop comes from the
#: fit's key vertices): optional.
LP300W_SPECS: tuple[FieldSpec, ...] = FIT_PARAM_SPECS + (
    FieldSpec(
        "pt2d", "pt2d", (2, N_LANDMARKS_68), np.dtype(np.float64), "f", vector=False, required=False
    ),
)

#: Writer defaults for the appearance fields (3DDFA's layouts): no texture offset; colour
#: [gain r,g,b, offset r,g,b, contrast] = identity; illumination [ambient r,g,b, directional r,g,b,
#: light angles (2), specular ks, shininess v] = white ambient light only.
DEFAULT_TEX_PARA = np.zeros(N_SHAPE)
DEFAULT_COLOR_PARA = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
DEFAULT_ILLUM_PARA = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 20.0])


class PoseMixin:
    """Pose accessors for a sample with ``pose_para`` = [pitch, yaw, roll, tx, ty, tz, s].

    Angles are radians (3DDFA's convention, rotation ``Rx(pitch) @ Ry(yaw) @ Rz(roll)``,
    docs/conventions.md section 4); ``t`` is in image pixels of the y-up projection frame
    (image row = h - y - 1); ``s`` scales model units to pixels.
    """

    pose_para: np.ndarray

    @property
    def pitch(self) -> float:
        return float(self.pose_para[0])

    @property
    def yaw(self) -> float:
        return float(self.pose_para[1])

    @property
    def roll(self) -> float:
        return float(self.pose_para[2])

    @property
    def translation(self) -> np.ndarray:
        """(3,) float64 [tx, ty, tz]."""
        return np.array(self.pose_para[3:6], dtype=np.float64)

    @property
    def scale(self) -> float:
        return float(self.pose_para[6])

    @property
    def pose_degrees(self) -> np.ndarray:
        """(3,) float64 [pitch, yaw, roll] in degrees."""
        return np.degrees(np.asarray(self.pose_para[:3], dtype=np.float64))

    @property
    def pitch_deg(self) -> float:
        return float(np.degrees(self.pitch))

    @property
    def yaw_deg(self) -> float:
        """Yaw in degrees (what the evaluation bins by; |yaw| can exceed 90)."""
        return float(np.degrees(self.yaw))

    @property
    def roll_deg(self) -> float:
        return float(np.degrees(self.roll))


@dataclass(frozen=True, eq=False)
class FitSample(PoseMixin):
    """What every 3DDFA fit sample holds, 300W-LP's and AFLW2000-3D's (arrays read-only, float64
    unless noted; the subclasses say what ``pt2d`` holds).

    Attributes:
        name: file stem, e.g. ``'IBUG_image_008_1_0'``.
        mat_path, image_path: ``NAME.mat`` and the ``NAME.jpg`` beside it.
        pose_para: (7,) [pitch, yaw, roll (radians), tx, ty, tz, s] (see :class:`PoseMixin`).
        shape_para: (199,) shape coefficients, used as stored (no eigenvalue scaling).
        exp_para: (29,) expression coefficients, used as stored.
        pt2d: (2, n) 2D points in image pixels as stored, row 0 = x (right), row 1 = y (down).
        roi: (4,) int64 face box in pixels as stored (may extend outside the image).
        tex_para: (199,) texture coefficients; color_para: (7,); illum_para: (10,).
        The last four are not used by the pipeline: an unusual variant is kept as stored, or is
        None when missing (with a DataWarning).
    """

    name: str
    mat_path: Path
    image_path: Path
    pose_para: np.ndarray
    shape_para: np.ndarray
    exp_para: np.ndarray
    pt2d: np.ndarray
    roi: np.ndarray
    tex_para: np.ndarray
    color_para: np.ndarray
    illum_para: np.ndarray

    def params(self) -> dict[str, np.ndarray]:
        """The stored fields as keyword arguments for the format's ``write_*_mat`` / ``_sample``."""
        skip = ("name", "mat_path", "image_path")
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

    def load_image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB image (450x450 in 300W-LP and AFLW2000-3D)."""
        return read_jpeg(self.image_path)


@dataclass(frozen=True, eq=False)
class Fit300WLP(FitSample):
    """One 300W-LP sample (:class:`FitSample`); ``pt2d`` is (2, 68): the 68 landmarks."""

    @property
    def folder(self) -> str:
        """The folder the sample is in, e.g. ``'IBUG_Flip'``."""
        return self.mat_path.parent.name

    @property
    def sample_id(self) -> str:
        """``'FOLDER/NAME'``: unique over 300W-LP (a ``_Flip`` sample has its original's name)."""
        return f"{self.folder}/{self.name}"



def image_path_for(mat_path: str | Path) -> Path:
    """The image that belongs to a ``.mat`` file: same directory and stem, suffix ``.jpg``."""
    return Path(mat_path).with_suffix(".jpg")


def check_image_beside(mat_path: Path, check_image: bool) -> Path:
    """The ``.jpg`` beside ``mat_path``; DataError(jpg, None, 'missing image') when absent.

    With ``check_image`` the image is also decoded (slow) so corrupt files are found.
    """
    image_path = image_path_for(mat_path)
    if not image_path.is_file():
        raise DataError(image_path, None, "missing image")
    if check_image:
        read_jpeg(image_path)
    return image_path


def read_fit_file(
    mat_path: str | Path, specs: tuple[FieldSpec, ...], sample_type: type, check_image: bool
) -> Any:
    """``sample_type`` (a :class:`FitSample`) read from the fit file ``mat_path`` with its fields
    ``specs`` (read_fields: DataError naming the file and the field; DataWarning for unusual
    optional ones), after checking that the jpg beside it exists (``check_image``: decodes)."""
    mat_path = Path(mat_path)
    values = read_fields(load_mat(mat_path), mat_path, specs)
    image_path = check_image_beside(mat_path, check_image)
    return sample_type(name=mat_path.stem, mat_path=mat_path, image_path=image_path, **values)


def read_300wlp_mat(mat_path: str | Path, check_image: bool = False) -> Fit300WLP:
    """Parse ``NAME.mat`` and check that ``NAME.jpg`` exists beside it.

    Every field the pipeline uses is checked for its exact stored shape, numeric kind and finite
    values (DataError naming file and field); the others warn (DataWarning) when unusual.
    ``check_image=True`` also decodes the jpg.
    """
    return read_fit_file(mat_path, LP300W_SPECS, Fit300WLP, check_image)


def with_default_appearance(values: dict) -> dict:
    """``values`` with ``tex_para``, ``color_para``, ``illum_para`` that are None set to the
    defaults."""
    values = dict(values)
    for attr, default in (
        ("tex_para", DEFAULT_TEX_PARA),
        ("color_para", DEFAULT_COLOR_PARA),
        ("illum_para", DEFAULT_ILLUM_PARA),
    ):
        if values.get(attr) is None:
            values[attr] = default
    return values


def write_fit_file(
    mat_path: str | Path, specs: tuple[FieldSpec, ...], values: dict[str, Any]
) -> Path:
    """Write a fit ``.mat`` atomically with the exact stored layout of ``specs``; ``values`` are
    keyed by field attribute (appearance fields None or absent: the ``DEFAULT_*`` values).
    ValueError for a missing or unknown field, a wrong size or a non-finite value."""
    unknown = sorted(set(values) - {spec.attr for spec in specs})
    if unknown:
        raise ValueError(f"unknown fields {unknown} for {Path(mat_path).name}")
    mat_path = Path(mat_path)
    atomic_savemat(mat_path, pack_fields(with_default_appearance(values), specs))
    return mat_path


def write_300wlp_mat(mat_path: str | Path, **values: np.ndarray | None) -> Path:
    """Write a 300W-LP ``.mat`` atomically with the exact real shapes and dtypes (module docstring).

    Keywords: ``pose_para``, ``shape_para``, ``exp_para``, ``pt2d``, ``roi`` and optionally
    ``tex_para``, ``color_para``, ``illum_para``. Vectors may be passed in any shape with the
    right size; ``pt2d`` must be (2, 68) pixels. Float32 fields (Pose_Para, Color_Para) are
    rounded to float32. Missing appearance fields get the ``DEFAULT_*`` values. Raises ValueError
    for missing or unknown fields, wrong sizes or non-finite values.
    """
    return write_fit_file(mat_path, LP300W_SPECS, values)


def check_sample_name(name: str) -> None:
    """A sample name must be a plain, visible file stem."""
    if not name or name.startswith(".") or "/" in name or "\\" in name or name != name.strip():
        raise ValueError(f"invalid sample name {name!r}")


def write_fit_sample(
    directory: str | Path,
    name: str,
    image: np.ndarray,
    params: dict[str, Any],
    write_mat: Callable[..., Path],
    read_mat: Callable[[Path], Any],
) -> Any:
    """Write ``directory/NAME.jpg`` (quality 95), then ``directory/NAME.mat`` with
    ``write_mat(path, **params)``, both atomically; return ``read_mat`` of the written file."""
    check_sample_name(name)
    directory = Path(directory)
    atomic_save_jpeg(directory / f"{name}.jpg", image, quality=95)
    return read_mat(write_mat(directory / f"{name}.mat", **params))


def write_300wlp_sample(directory: str | Path, name: str, image: np.ndarray, **params) -> Fit300WLP:
    """Write ``directory/NAME.jpg`` (Pillow, quality 95) then ``directory/NAME.mat``; return the
    sample as read back (so float32 fields carry exactly the stored values).

    ``image`` is (H, W, 3) uint8 RGB (450x450 in 300W-LP); ``params`` are the keyword arguments of
    :func:`write_300wlp_mat` (e.g. ``**fit.params()``). Both files are written atomically and the
    ``.mat`` last, so an interrupted writer leaves at most an orphan ``.jpg``, never a listed
    sample without its image.
    """
    return write_fit_sample(directory, name, image, params, write_300wlp_mat, read_300wlp_mat)


def list_300wlp_samples(root: str | Path) -> list[Path]:
    """Sorted ``.mat`` paths in the eight 300W-LP folders under ``root`` (``landmarks/`` ignored).

    Missing folders are skipped; DataError(root, None, ...) when none of the eight exists.
    Only names are listed (no file is opened).
    """
    root = Path(root)
    present = [root / folder for folder in LP300W_FOLDERS if (root / folder).is_dir()]
    if not present:
        expected = ", ".join(LP300W_FOLDERS)
        raise DataError(root, None, f"no 300W-LP folder found (expected some of {expected})")
    return sorted(path for folder in present for path in list_files(folder, ".mat"))


def read_fit_files(
    paths: Iterable[str | Path],
    collect_rejects: bool = False,
    check_image: bool = False,
    *,
    read_mat: Callable[..., Any],
) -> tuple[list[Any], list[Reject]]:
    """``read_mat(path, check_image=check_image)`` for every path: (samples, rejects), as
    :func:`uvgen.formats.scan.read_all`."""
    return _read_all(paths, lambda p: read_mat(p, check_image=check_image), collect_rejects)


#: :func:`read_300wlp_mat` for every path: ``read_all(paths, collect_rejects=False,
#: check_image=False)`` -> (fits, rejects).
read_all = partial(read_fit_files, read_mat=read_300wlp_mat)


def scan_300wlp(
    root: str | Path, collect_rejects: bool = False, check_image: bool = False
) -> tuple[list[Fit300WLP], list[Reject]]:
    """List and read every sample under ``root``: (fits, rejects)."""
    return read_all(list_300wlp_samples(root), collect_rejects, check_image)


LP300W = register(
    DataSetFormat(
        name="300w_lp",
        description="300W-LP: NAME.jpg + NAME.mat in the eight folders AFW, HELEN, IBUG, LFPW "
        "and their _Flip copies",
        list_samples=list_300wlp_samples,
        read_sample=read_300wlp_mat,
        crop="training",
    )
)
