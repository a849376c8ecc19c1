"""Typed reading of YAML sections into frozen dataclasses (pipeline.config's sections).

:func:`read_section` builds a dataclass from its YAML mapping, driven by the field types alone (one
mechanism for every section), and accepts nothing it would have to guess:

* ``bool``: a YAML boolean (``true`` / ``false``); the string ``"false"`` is an error, not True.
* ``int``: a YAML integer; ``2.7`` (or ``3.0``) is an error, never truncated. ``float``: any
  finite number (integers accepted). ``str``: a string. ``Path``: a string, as a path.
* ``Literal[...]``: one of the listed values (enumerations). ``X | None``: ``null`` or an X.
* ``list`` / ``tuple[X, ...]`` / ``dict``: a YAML sequence / mapping (elements checked when typed);
  a dataclass type: a nested mapping, read the same way.
* Unknown and missing keys are errors (fields with defaults may be left out).

Every problem raises :class:`ConfigError`, one line naming the file and the key, e.g.
``params.yaml: train_common.epochs: expected an integer, got 2.7``. YAML is read as YAML 1.2 reads
numbers (as DVC does): ``1e-4`` is a float.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad configuration value: ``SOURCE: KEY: REASON`` on one line (KEY may be a section)."""

    def __init__(self, source: str | Path, key: str | None, reason: str):
        self.source = str(source)
        self.key = key
        self.reason = reason
        super().__init__(
            f"{self.source}: {reason}" if key is None else f"{self.source}: {key}: {reason}"
        )


def display_path(path: str | Path) -> str:
    """``path`` as a user would type it: relative to the working directory when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with YAML 1.2's floats: ``1e-4`` and ``1E5`` are numbers, as in DVC."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                  |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                  |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                  |[-+]?\.(?:inf|Inf|INF)
                  |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a params file. A missing file raises FileNotFoundError; bad YAML
    or a non-mapping ConfigError naming the file (and the line)."""
    path = Path(path)
    with open(path) as fh:
        try:
            raw = yaml.load(fh, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ConfigError(
                display_path(path), None, f"not valid YAML{where}: {problem}"
            ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            display_path(path), None, "expected a mapping of sections at the top level"
        )
    return raw


_KIND_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a path (a string)",
    type(None): "null",
    list: "a list",
    tuple: "a list",
    dict: "a mapping",
    Any: "any value",
}


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    if origin in (list, tuple):
        return "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(hint):
        return "a mapping"
    return _KIND_NAMES.get(hint, getattr(hint, "__name__", str(hint)))


def got(value: Any) -> str:
    if isinstance(value, str):
        return f"{value!r} (a string)"
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return "null" if value is None else repr(value)


def read_value(value: Any, hint: Any, key: str, source: str = "params.yaml") -> Any:
    """``value`` from YAML checked against the type ``hint``, converted (``Path``, int -> float,
    nested dataclasses, lists -> tuples where typed so); ConfigError(source, key, ...) otherwise."""
    origin, args = get_origin(hint), get_args(hint)

    def fail() -> ConfigError:
        return ConfigError(source, key, f"expected {_describe(hint)}, got {got(value)}")

    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for member in args:
            if member is type(None):
                continue
            try:
                return read_value(value, member, key, source)
            except ConfigError:
                continue
        raise fail()
    if origin is Literal:
        # Compare with the type too: YAML's true must not match a listed 1.
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise fail()
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            raise ConfigError(
                source,
                key,
                f"expected true or false, got {value!r} (a string: write it without quotes)",
            )
        raise fail()
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(source, key, f"expected a finite number, got {value!r}")
            return float(value)
        raise fail()
    if hint is str:
        if isinstance(value, str):
            return value
        raise fail()
    if hint is Path:
        if isinstance(value, (str, Path)) and str(value).strip():
            return Path(value)
        raise fail()
    if hint in (list, tuple) or origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail()
        if not args:
            return list(value) if (hint is list or origin is list) else tuple(value)
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(
                    source, key, f"expected a list of {len(args)} values, got {len(value)}"
                )
            return tuple(
                read_value(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args))
            )
        items = [read_value(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise fail()
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return read_section(hint, value, key, source)
    raise TypeError(f"{key}: no reader for the field type {hint!r}")  # a programming error


def read_section(
    cls: type[T],
    section: Any,
    name: str,
    source: str = "params.yaml",
    *,
    optional: Collection[str] | None = None,
    given: dict[str, Any] | None = None,
) -> T:
    """An instance of the dataclass ``cls`` from the YAML mapping ``section`` (key prefix ``name``),
    every field read by :func:`read_value` from its declared type. ``optional``: the fields that
    may be left out (None: every field with a default); ``given``: fields the caller sets, not read
    from the section (a key of that name there is unknown). Range checks in ``cls.__post_init__``
    raising ValueError become ConfigError too."""
    if not isinstance(section, dict):
        raise ConfigError(source, name, f"expected a mapping (a section), got {got(section)}")
    given = given or {}
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.name not in given}  # type: ignore[arg-type]
    unknown = sorted(set(section) - set(known), key=str)
    if unknown:
        raise ConfigError(
            source, f"{name}.{unknown[0]}", f"unknown key (known: {', '.join(known)})"
        )
    missing = [
        k
        for k, f in known.items()
        if k not in section
        and (
            k not in optional
            if optional is not None
            else f.default is MISSING and f.default_factory is MISSING
        )
    ]
    if missing:
        raise ConfigError(source, f"{name}.{missing[0]}", "missing key")
    values = {
        key: read_value(section[key], hints[key], f"{name}.{key}", source)
        for key in known
        if key in section
    }
    with config_errors(source, name):
        return cls(**given, **values)  # type: ignore[call-arg]


@contextmanager
def config_errors(source: str | Path = "params.yaml", section: str | None = None) -> Iterator[None]:
    """Turn a ValueError raised by a configuration check inside the block (a dataclass's
    ``__post_init__``, e.g. ``model.train.TrainConfig``) into a one-line ConfigError naming
    ``source``; a message starting ``KEY: `` with a bare key gets the ``section`` prefix."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as exc:
        message = " ".join(str(exc).split())  # one line
        prefix = "params.yaml: "
        message = message[len(prefix) :] if message.startswith(prefix) else message
        head = message.split(":", 1)[0]
        if section and not head.startswith(f"{section}.") and re.fullmatch(r"\w+", head):
            message = f"{section}.{message}"
        raise ConfigError(source, None, message) from exc
