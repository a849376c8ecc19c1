"""PRNet's released model without TensorFlow: its checkpoint -> a PyTorch PRNet, and its UV data.

* :func:`import_tf_checkpoint`: a TensorFlow V2 checkpoint of the authors' graph (e.g.
  ``256_256_resfcn256_weight``) -> :class:`model.prnet.PRNet`, read by
  :mod:`model.tf_checkpoint` (CRC-verified; Adam slots and counters are never read). The width is
  inferred from the stem kernel ``resfcn256/Conv/weights`` (4, 4, 3, width); every variable of
  :func:`model.prnet.tf_variable_map` at that width must be present with its shape.
* :func:`load_uv_data`: PRNet's own ``Data/uv-data`` folder (``uv_kpt_ind.txt``,
  ``face_ind.txt``, ``canonical_vertices.npy``) -> :class:`model.uses.FaceUV`, the layout its
  network was trained with (the real BFM's UV map). PRNet's ``canonical_vertices.npy`` has y
  pointing down; it is flipped to the model space's y up here.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from model.checkpoint import read_torch_file
from model.prnet import TF_SCOPE, PRNet, load_tf_weights, tf_variable_map
from model.tf_checkpoint import Checkpoint, CheckpointError
from model.uses import FaceUV, rigid_pixels, uv_grid_triangles
from uvgen.formats.errors import DataError
from uvgen.resumable import check_output_file

RELEASE_IN_SIZE = 256
STEM = f"{TF_SCOPE}/Conv/weights"
#: Names of optimizer state and counters, which an inference import skips.
_EXTRA = re.compile(
    r"(^|/)(Adam(_\d+)?|Momentum|RMSProp(_\d+)?|ExponentialMovingAverage)$"
    r"|^(beta[12]_power(_\d+)?|global_step)$"
)
_FLOAT_CODES = {1, 2, 14, 19}  # float, double, bfloat16, half
UV_FILES = ("uv_kpt_ind.txt", "face_ind.txt", "canonical_vertices.npy")


def is_optimizer_state(name: str) -> bool:
    """True for Adam/Momentum slots, beta powers and global_step (not network weights)."""
    return bool(_EXTRA.search(name))


def _examples(names: list[str], k: int = 3) -> str:
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(names[:k]) + more


def infer_width(ckpt: Checkpoint) -> int:
    """PRNet's width from the stem kernel's shape (4, 4, 3, width)."""
    entry = ckpt.entries.get(STEM)
    if entry is None:
        nets = sorted(n for n in ckpt.entries if not is_optimizer_state(n))
        raise CheckpointError(
            ckpt.index_path,
            STEM,
            "not a PRNet (resfcn256) checkpoint: no stem kernel; "
            f"it holds {len(nets)} variables, e.g. {_examples(nets)}",
        )
    if len(entry.shape) != 4 or entry.shape[:3] != (4, 4, 3) or entry.shape[3] < 1:
        raise CheckpointError(
            ckpt.index_path, STEM, f"shape {list(entry.shape)}, expected [4, 4, 3, width]"
        )
    return int(entry.shape[3])


def import_tf_checkpoint(
    prefix: Path | str, in_size: int = RELEASE_IN_SIZE, verify: bool = True
) -> PRNet:
    """A PRNet (eval mode) filled from the TensorFlow checkpoint ``prefix`` (see module docstring).

    Raises :class:`CheckpointError` (one line, naming the file and variable) for a missing index
    or shard, truncated data, a CRC mismatch, a non-float variable, another network's checkpoint
    (its missing and unexpected variables listed) or a shape that does not fit.
    """
    with Checkpoint(prefix) as ckpt:
        width = infer_width(ckpt)
        model = PRNet(width=width, in_size=in_size)
        targets = tf_variable_map(model)
        present = {n for n in ckpt.entries if not is_optimizer_state(n)}
        missing = sorted(set(targets) - present)
        unexpected = sorted(present - set(targets))
        if missing or unexpected:
            raise CheckpointError(
                ckpt.index_path,
                None,
                f"not PRNet's graph at width {width}: "
                f"{len(missing)} variables missing ({_examples(missing) or 'none'}), "
                f"{len(unexpected)} unexpected ({_examples(unexpected) or 'none'})",
            )
        arrays = {}
        for name, target in targets.items():
            entry = ckpt.entries[name]
            if entry.dtype_code not in _FLOAT_CODES:
                raise CheckpointError(
                    ckpt.index_path,
                    name,
                    f"unsupported dtype {entry.dtype_name} for a weight "
                    "(expected a floating-point type)",
                )
            want = tuple(target.shape)
            got = (
                entry.shape
                if len(entry.shape) != 4
                else tuple(entry.shape[i] for i in (3, 2, 0, 1))
            )
            if got != want:
                raise CheckpointError(
                    ckpt.index_path,
                    name,
                    f"shape {list(entry.shape)} does not fit PRNet at width {width}",
                )
            arrays[name] = ckpt.read(name, verify=verify).astype(np.float32)
    load_tf_weights(model, arrays)
    return model.eval()


def import_weights_file(prefix: Path | str, out: Path | str) -> PRNet:
    """:func:`import_tf_checkpoint` and write the project's weights file (``save_weights``
    format; ``meta.source = "tensorflow"``, ``meta.uv_layout = "prnet"``: it needs PRNet's UV
    data)."""
    from model.checkpoint import save_weights

    check_output_file(out)
    model = import_tf_checkpoint(prefix)
    save_weights(
        Path(out),
        model,
        meta={"source": "tensorflow", "checkpoint": Path(str(prefix)).name, "uv_layout": "prnet"},
    )
    return model


def weights_meta(path: Path | str) -> dict:
    """The ``meta`` dict of a weights file (empty for checkpoints without one)."""
    meta = read_torch_file(path).get("meta")
    return dict(meta) if isinstance(meta, dict) else {}


# ----------------------------------------------------------------------------------------------
# PRNet's uv-data folder


def load_uv_data(folder: Path | str, size: int = 256) -> FaceUV:
    """:class:`FaceUV` from PRNet's ``uv-data`` folder: key points ``uv_kpt_ind.txt`` (2, 68),
    face pixels ``face_ind.txt`` (flat row-major indices), canonical face
    ``canonical_vertices.npy`` (K, 3; y flipped to point up). Raises DataError naming the file."""
    from uvgen.masks import load_prnet_face_ind, load_prnet_kpt_uv

    folder = Path(folder)
    for name in UV_FILES:
        if not (folder / name).is_file():
            raise DataError(
                folder / name,
                None,
                f"missing file of PRNet's uv-data folder (needs {', '.join(UV_FILES)})",
            )
    kpt_uv = np.asarray(load_prnet_kpt_uv(folder / "uv_kpt_ind.txt"), dtype=np.int64)
    face_ind = np.asarray(load_prnet_face_ind(folder / "face_ind.txt"), dtype=np.int64)
    if kpt_uv.shape != (2, 68) or kpt_uv.min() < 0 or kpt_uv.max() >= size:
        raise DataError(
            folder / "uv_kpt_ind.txt", None, f"expected (2, 68) pixels in 0..{size - 1}"
        )
    if (
        face_ind.ndim != 1
        or len(face_ind) == 0
        or face_ind.min() < 0
        or face_ind.max() >= size * size
        or np.any(np.diff(face_ind) <= 0)
    ):
        raise DataError(
            folder / "face_ind.txt",
            None,
            f"expected ascending flat indices in 0..{size * size - 1}",
        )
    try:
        canonical = np.load(folder / "canonical_vertices.npy").astype(np.float64)
    except (OSError, ValueError) as exc:
        raise DataError(
            folder / "canonical_vertices.npy", None, f"not a .npy array ({exc})"
        ) from exc
    if canonical.shape != (len(face_ind), 3) or not np.isfinite(canonical).all():
        raise DataError(
            folder / "canonical_vertices.npy",
            None,
            f"expected ({len(face_ind)}, 3) finite values, got {canonical.shape}",
        )
    mask = np.zeros(size * size, dtype=bool)
    mask[face_ind] = True
    mask = mask.reshape(size, size)
    empty = np.zeros(0, dtype=np.int64)
    return FaceUV(
        face_mask=mask,
        kpt_uv=kpt_uv,
        face_ind=face_ind,
        triangles=uv_grid_triangles(mask),
        canonical=canonical * [1.0, -1.0, 1.0],
        rigid=rigid_pixels(face_ind, kpt_uv, size),
        gaps=empty,
        gap_sources=np.zeros((0, 4), np.int64),
        gap_weights=np.zeros((0, 4)),
    )
