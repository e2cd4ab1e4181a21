"""Name -> class registries filled by decorators, with every module of a package imported on first
lookup (pkgutil), so that a new file is found with no other edit: encoders (spkid.models) and
classification heads (spkid.losses)."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

from spkid.errors import SpkidError


def discover(package: str) -> None:
    """Import every module of `package` so that their registration decorators run."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{package}.{info.name}")


class Registry:
    """The classes of one kind ("model", "head") found in `package`; `attribute` is set on each to its name."""

    def __init__(self, kind: str, package: str, attribute: str):
        self.kind, self.package, self.attribute = kind, package, attribute
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: make a class known as `name` (names are unique)."""
        def wrap(cls: type) -> type:
            other = self._classes.get(name)
            if other is not None and other.__qualname__ != cls.__qualname__:
                raise SpkidError(f"{self.kind} name '{name}' registered twice ({other.__module__}, "
                                 f"{cls.__module__})")
            self._classes[name] = cls
            setattr(cls, self.attribute, name)
            return cls
        return wrap

    def names(self) -> list[str]:
        discover(self.package)
        return sorted(self._classes)

    def get(self, name: str) -> type:
        discover(self.package)
        if name not in self._classes:
            raise SpkidError(f"unknown {self.kind} '{name}' (known: {', '.join(sorted(self._classes)) or 'none'})")
        return self._classes[name]
