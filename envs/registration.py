"""Every ``aligngym/...`` id, registered with string entry points so that registering imports nothing heavy."""

from __future__ import annotations

import gymnasium as gym

NAMESPACE = "aligngym"

# id -> one-line description, shown by `aligngym envs`. Filled by register_envs().
DESCRIPTIONS: dict[str, str] = {}


def _register(name: str, entry_point: str, description: str, **kwargs) -> None:
    env_id = f"{NAMESPACE}/{name}"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, **kwargs)
    DESCRIPTIONS[env_id] = description


def register_envs() -> None:
    """Register all aligngym ids (idempotent)."""
