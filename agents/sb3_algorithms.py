"""The stable-baselines3 algorithms a recipe may name: one table for every job that builds SB3 agents.

A job that supports only some of them says which in its config's ``Literal`` (the recipe loader checks
it) and looks the class up with ``algorithm_class(name, choices)``.
"""

from __future__ import annotations

from collections.abc import Collection

from stable_baselines3 import A2C, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C, "sac": SAC, "td3": TD3}


def algorithm_class(name: str, choices: Collection[str] = tuple(ALGORITHMS)) -> type[BaseAlgorithm]:
    """The SB3 class called ``name``; a ValueError naming the valid ``choices`` when it is not one of them."""
    if name not in choices or name not in ALGORITHMS:
        raise ValueError(f"algo {name!r} is not valid; valid choices: {', '.join(choices)}")
    return ALGORITHMS[name]
