"""Lazy package exports (PEP 562): a package lists its public names without importing the modules that
define them, so ``import aligngym.agents`` stays cheap and pulls no optional dependency (transformers,
trl, bm25s) until a name that needs one is used.

Usage in a package's ``__init__.py``::

    __all__, __getattr__, __dir__ = lazy_exports(__name__, {".tensor.policies": ["TensorActorCriticPolicy"]})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_exports(
    package: str, modules: Mapping[str, Sequence[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for ``package``; ``modules`` maps each module (relative
    to the package, e.g. ``.tensor.policies``) to the public names it defines. A name is imported on first
    use and then cached in the package's namespace."""
    origin: dict[str, str] = {}
    for module, names in modules.items():
        for name in names:
            if name in origin:
                raise ValueError(f"{package} exports {name!r} twice: from {origin[name]} and {module}")
            origin[name] = module

    def __getattr__(name: str) -> Any:
        if name not in origin:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(origin[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *origin})

    return sorted(origin), __getattr__, __dir__
