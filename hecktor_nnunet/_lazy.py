"""Package namespaces whose names are imported from their modules on first use."""

from __future__ import annotations

import importlib
from typing import Callable


def lazy_exports(package: str, homes: dict[str, tuple[str, ...]]
                 ) -> tuple[list[str], Callable[[str], object], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``, which exports ``homes`` (module -> names).

    Each name is imported from its module when first asked for, so importing one light submodule of
    the package does not load the heavy ones.
    """
    where = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str):
        if name in where:
            return getattr(importlib.import_module(where[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*vars(importlib.import_module(package)), *where])

    return sorted(where), __getattr__, __dir__
