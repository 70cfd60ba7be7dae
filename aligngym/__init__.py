"""aligngym: robust reinforcement learning and LLM alignment on Gymnasium, SB3 and TRL.

Importing the package registers every ``aligngym/...`` environment id with Gymnasium.
"""

from __future__ import annotations

__version__ = "0.1.0"

from aligngym import envs  # registers the env ids

__all__ = ["__version__", "envs"]
