"""``"module:attribute"`` strings -> the object they name: the one importer of the package.

Jobs, sweep cell functions, MuJoCo task classes and SB3 policies are named this way so that importing a
registry imports nothing heavy. Importing a module runs its code, so a string that comes from the user (a
recipe value) is only ever resolved against an explicit allow-list: ``allowed`` maps the short names a
recipe may use to their entry points, and a value that is neither a short name nor one of those entry
points is refused before anything is imported.

Example:
    >>> load_entry_point("collections:OrderedDict").__name__
    'OrderedDict'
    >>> load_entry_point("os:system", allowed={"dict": "builtins:dict"}, what="policy")
    Traceback (most recent call last):
    ...
    ValueError: policy 'os:system' is not allowed; valid choices: dict, builtins:dict
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any


def resolve_allowed(value: str, allowed: Mapping[str, str], what: str = "entry point") -> str:
    """The entry point that ``value`` names (a short name or one of the allowed entry points), else ValueError."""
    if value in allowed:
        return allowed[value]
    if value in allowed.values():
        return value
    choices = [*allowed, *(v for v in allowed.values() if v not in allowed)]
    raise ValueError(f"{what} {value!r} is not allowed; valid choices: {', '.join(choices)}")


def load_entry_point(target: str, allowed: Mapping[str, str] | None = None, what: str = "entry point") -> Any:
    """Import ``"module:attribute"`` (dots allowed in the attribute); with ``allowed``, only those names.

    ``allowed=None`` is for strings written in this package's own code (registries), never for user input.
    """
    if allowed is not None:
        target = resolve_allowed(target, allowed, what)
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{what} {target!r} must be 'module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(
                f"{what} {target!r}: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return obj
