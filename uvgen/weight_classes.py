"""The loss-weight class of each UV pixel: what a UV file stores (``uv/weight_class``), not the
weights themselves, so that changing a weight re-runs training only (docs/conventions.md
section 5).

Class codes (uint8), in :data:`CLASS_NAMES` order:

====  ==================  ===================================================  ============
code  name                pixels                                               paper weight
====  ==================  ===================================================  ============
0     ``outside``         outside the face mask                                0
1     ``face``            the rest of the face                                 3
2     ``eye_nose_mouth``  eyes, nose and mouth                                 4
3     ``keypoint``        the 68 key-point pixels                              16
====  ==================  ===================================================  ============

Training takes the weights of the classes from ``params.yaml`` (``train.loss_weights``, keyed by
the names above; model.loss.LossWeights). :data:`PAPER_WEIGHTS` (Feng et al. 2018, Fig. 3) are
the defaults and what a file's ``uv/weight_mask`` holds for tools that read weights. No torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CLASS_NAMES = ("outside", "face", "eye_nose_mouth", "keypoint")
OUTSIDE, FACE, EYE_NOSE_MOUTH, KEYPOINT = range(len(CLASS_NAMES))
PAPER_WEIGHTS = (0.0, 3.0, 4.0, 16.0)  # per class code


def weight_classes(weights: np.ndarray) -> np.ndarray:
    """(...) uint8 class codes of (...) weights: the class whose paper weight is nearest; blends
    (PRNet's flat shading) snap to the nearest (11/3 and 22/3 -> eye_nose_mouth)."""
    w = np.asarray(weights, dtype=np.float64)
    levels = np.asarray(PAPER_WEIGHTS)
    return np.abs(w[..., None] - levels).argmin(axis=-1).astype(np.uint8)


def paper_weight_classes(weights: np.ndarray) -> np.ndarray:
    """(...) uint8 class codes of (...) weights that are each exactly one of :data:`PAPER_WEIGHTS`
    (a ``uv/weight_mask`` written before files stored the classes); ValueError naming the first
    other value, which no class can be told from."""
    w = np.asarray(weights, dtype=np.float64)
    known = np.isin(w, PAPER_WEIGHTS)
    if not known.all():
        value = w[~known].flat[0]
        levels = "/".join(f"{v:g}" for v in PAPER_WEIGHTS)
        raise ValueError(f"weight {value:g} is none of the paper's weights {levels}")
    return weight_classes(w)


def class_weights(classes: np.ndarray, per_class: Sequence[float] = PAPER_WEIGHTS) -> np.ndarray:
    """(...) float32 weights of (...) integer class codes: ``per_class[code]`` (one weight per
    class, in :data:`CLASS_NAMES` order; default the paper's)."""
    table = np.asarray(per_class, dtype=np.float32)
    if table.shape != (len(CLASS_NAMES),):
        raise ValueError(f"expected {len(CLASS_NAMES)} class weights, got {table.shape}")
    return table[np.asarray(classes)]


def check_classes(classes: np.ndarray) -> str | None:
    """Why ``classes`` is not a class map (integer dtype, codes < 4), or None when it is."""
    c = np.asarray(classes)
    if not np.issubdtype(c.dtype, np.integer):
        return f"expected integer class codes, got {c.dtype}"
    if c.size and (c.min() < 0 or c.max() >= len(CLASS_NAMES)):
        return f"class codes must be 0..{len(CLASS_NAMES) - 1}, got {c.min()}..{c.max()}"
    return None
