"""Objects registered by name by the modules of one package: data set formats
(``uvgen.formats``), methods (``model.methods``).

Each module of the package registers its objects when imported; the first lookup imports every
module of the package (so adding one is adding a file), in the calling process and in each dask
worker alike.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects of one kind (``what``, e.g. "data set format") by the name ``name_of`` gives, from
    the modules of ``package``."""

    def __init__(self, package: str, what: str, name_of: Callable[[T], str]) -> None:
        self.package, self.what, self._name_of = package, what, name_of
        self._items: dict[str, T] = {}
        self._discovered = False

    def register(self, item: T) -> T:
        """Make ``item`` known by its name (another, different item of that name is an error)."""
        name = self._name_of(item)
        known = self._items.get(name)
        if known is not None and known != item:
            raise ValueError(f"a {self.what} named {name!r} is already registered")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        """Forget ``name`` (tests that register a toy one clean up with this)."""
        self._items.pop(name, None)

    def _discover(self) -> None:
        if self._discovered:
            return
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{info.name}")
        self._discovered = True

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        self._discover()
        return tuple(sorted(self._items))

    def get(self, name: str) -> T:
        """The item registered as ``name``; ``KeyError`` naming the known ones otherwise."""
        self._discover()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items))
            raise KeyError(f"unknown {self.what} {name!r} (known: {known})") from None
