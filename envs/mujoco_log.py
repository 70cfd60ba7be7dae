"""MuJoCo's own messages, made quiet and routed through Python's ``logging``.

MuJoCo writes every warning to the console and appends it to ``MUJOCO_LOG.TXT`` in the current folder.
Gymnasium's ``half_cheetah.xml`` uses the deprecated compiler attribute ``settotalmass``, so each
HalfCheetah env that is built prints a deprecation notice (177 copies in one ``make demo``). Here the
log file is switched off, that one known notice is dropped, and every other warning goes to the
``mujoco`` logger (shown on stderr like any Python warning-level log). The model keeps its meaning: the
attribute still sets the total mass; only the notice goes.

``install()`` does this as soon as ``mujoco`` is imported, without importing it itself (registering
aligngym's env ids stays light).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
from types import ModuleType

logger = logging.getLogger("mujoco")

# Notices about Gymnasium's shipped models, which the user cannot act on.
KNOWN_NOTICES = ("compiler attribute 'settotalmass' is deprecated",)


def on_warning(message: str) -> None:
    """MuJoCo's warning callback: drop the known notices, log the rest."""
    if not message.startswith(KNOWN_NOTICES):
        logger.warning(message)


def quiet(mujoco: ModuleType) -> None:
    """No ``MUJOCO_LOG.TXT``; warnings through :func:`on_warning` instead of the console."""
    config = mujoco.MjLogConfig.get()
    config.logto_file = False
    config.set()
    mujoco.set_mju_user_warning(on_warning)


class _OnMujocoImport(importlib.abc.MetaPathFinder):
    """Finds ``mujoco`` with the normal finders, then runs :func:`quiet` right after it executes."""

    def find_spec(self, name, path=None, target=None):
        if name != "mujoco":
            return None
        sys.meta_path.remove(self)  # once, and not for the lookup below
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_quiet(module: ModuleType) -> None:
            exec_module(module)
            quiet(module)

        spec.loader.exec_module = exec_then_quiet  # this spec's loader only
        return spec


def install() -> None:
    """Make MuJoCo quiet now if it is imported, else the moment it is."""
    if "mujoco" in sys.modules:
        quiet(sys.modules["mujoco"])
    elif not any(isinstance(finder, _OnMujocoImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OnMujocoImport())
