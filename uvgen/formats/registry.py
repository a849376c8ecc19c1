"""Data set formats by name: how the UV build lists, reads and crops the samples of a folder.

A format is one :class:`DataSetFormat`, registered by the module that reads it
(``register(DataSetFormat(...))`` at its end): ``300w_lp`` in :mod:`uvgen.formats.lp300w` and
``aflw2000_3d`` in :mod:`uvgen.formats.aflw`. ``params.yaml`` names the format of each split
(``uvgen.train_format``, ``uvgen.test_format``). Adding a data set is one new module in
``uvgen/formats/`` that registers its format (every module there is imported on the first lookup,
in the stage and in each dask worker alike) plus its name in ``params.yaml``;
docs/uv_ground_truth.md says how.

The crop decides what a sample becomes (docs/conventions.md section 4):

* ``training``: the box of the model's key vertices projected by the fit, 1.5x, with the seeded
  jitter (300W-LP's training crop);
* ``evaluation``: the box of the sample's 68 ground-truth points (``pt3d_68``, stored as
  ``extras/landmarks_gt``), 1.6x, no jitter (PRNet's AFLW2000-3D test protocol).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uvgen.plugins import Registry

CROPS = ("training", "evaluation")
DEFAULT_FORMATS = {"train": "300w_lp", "test": "aflw2000_3d"}
"""The format of each split when none is named (``uvgen.train_format``, ``uvgen.test_format``)."""


@dataclass(frozen=True)
class DataSetFormat:
    """``list_samples(root)``: every sample's fit file under ``root`` (sorted; an entry that
    is not a readable sample is listed too, and rejected with a reason when read).
    ``read_sample(path)``: the fit of one sample, a :class:`~uvgen.formats.lp300w.FitSample`
    (``pose_para``, ``shape_para``, ``exp_para``, ``image_path``; with the ``evaluation`` crop also
    ``pt3d_68`` (3, 68) image pixels), raising :class:`~uvgen.formats.errors.DataError` naming the
    file and field. ``crop``: one of :data:`CROPS`."""

    name: str
    description: str
    list_samples: Callable[[Path], list[Path]]
    read_sample: Callable[[Path], Any]
    crop: str

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"format {self.name!r}: crop must be one of {CROPS}: {self.crop!r}")

    def sample_keys(self, root: Path) -> list[str]:
        """The samples' paths relative to ``root`` (their names in the HDF5 file), in the order
        ``list_samples`` gives (sorted: a sample's row in the vertex products follows it)."""
        root = Path(root)
        return [p.relative_to(root).as_posix() for p in self.list_samples(root)]


FORMATS: Registry[DataSetFormat] = Registry("uvgen.formats", "data set format", lambda f: f.name)
register = FORMATS.register
format_names = FORMATS.names
get_format = FORMATS.get


def format_of_split(split: str, data_format: str = "") -> DataSetFormat:
    """The format named ``data_format``, or the split's default (:data:`DEFAULT_FORMATS`)."""
    return get_format(data_format or DEFAULT_FORMATS[split])
