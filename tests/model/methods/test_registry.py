"""model.methods.registry: the built-in methods, lookups and registration errors."""

from __future__ import annotations

import pytest

from model.baselines.train_baseline import BaselineConfig
from model.methods.registry import Method, get_method, method_kinds, register
from model.train import TrainConfig


def test_the_built_in_methods() -> None:
    assert {"prn", "3ddfa", "defa", "mean_map"} <= set(method_kinds())
    assert get_method("prn").train_config is TrainConfig
    for kind in ("3ddfa", "defa"):
        method = get_method(kind)
        assert method.trains and method.train_config is BaselineConfig
        assert dict(method.train_given) == {"kind": kind}
    assert not get_method("mean_map").trains


def test_lookup_and_registration_errors() -> None:
    with pytest.raises(KeyError, match="unknown method kind 'tf' .known: .*prn"):
        get_method("tf")
    with pytest.raises(ValueError, match="already registered"):
        register(Method("prn", "another PRN", get_method("mean_map").predict_maps))
    with pytest.raises(ValueError, match="train_config and train, or neither"):
        Method("half", "trains without a configuration", lambda *a: iter(()), train=print)
