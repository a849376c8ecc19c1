"""Methods by name: what builds, trains (if it trains) and predicts each method of the benchmark.

A method kind is one :class:`Method`, registered by the module that implements it
(``register(Method(...))`` at its end): ``prn`` in :mod:`model.methods.prn`, ``3ddfa`` and ``defa``
in :mod:`model.methods.baselines`, ``mean_map`` in :mod:`model.methods.mean_map`. Every module of
``model/methods/`` is imported on the first lookup, so adding a method is one new module there plus
its keys in ``params.yaml``: a section ``baselines.KIND`` (its training settings; the shared ones
come from ``train_common``) and an entry ``{name, kind, checkpoint}`` in ``predict.methods``.
docs/training.md says how.

Prediction contract: ``predict_maps(checkpoint, test_file, batch_size, device)`` yields crop-space
UV position maps, float32 (B, S, S, 3) with S the test file's ``uv_size``, in crop pixels (x right,
y down, pixel centres at integers; z depth), for the test file's crops in file order; the predict
stage decodes every method's maps identically (``eval.decode.decode_maps``).

Training contract: ``train_config`` is a frozen dataclass deriving from
:class:`model.train_settings.TrainCommon` (the shared data, holdout, budget, schedule,
augmentation and runtime fields) plus the method's own fields, at least ``out_dir``;
``train(cfg)`` trains and writes ``cfg.out_dir / "model.pt"``, the ``checkpoint`` that
``predict_maps`` reads. ``train_given`` are fields fixed by the kind (not read from params),
``train_optional`` those a params section may leave out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uvgen.plugins import Registry

MapPredictor = Callable[[Path, Path, int, str], Iterator[np.ndarray]]
"""(checkpoint, test_file, batch_size, device) -> float32 (B, S, S, 3) maps, file order."""


@dataclass(frozen=True)
class Method:
    """One method kind; see the module docstring for the contracts."""

    kind: str
    description: str
    predict_maps: MapPredictor
    train_config: type | None = None
    train: Callable[[Any], Any] | None = None
    train_given: Mapping[str, Any] = field(default_factory=dict)
    train_optional: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.train_config is None) != (self.train is None):
            raise ValueError(f"method {self.kind!r}: give both train_config and train, or neither")

    @property
    def trains(self) -> bool:
        """Whether the method has a training stage."""
        return self.train is not None


METHODS: Registry[Method] = Registry("model.methods", "method kind", lambda m: m.kind)
register = METHODS.register
unregister = METHODS.unregister
method_kinds = METHODS.names
get_method = METHODS.get
