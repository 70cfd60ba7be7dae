"""The two-player force game as each SB3 learner sees it: single-agent envs and opponent policies.

Both players' envs are built the same way: ``gym.make(<aligngym/Adversarial...-v0>)`` (TimeLimit),
then, for temperature-conditioned runs, :class:`~aligngym.agents.adversarial.temperature.TemperatureObservation`
(so both players see the same alpha), then the player's view from ``aligngym.envs.adversarial`` with
the frozen opponent inside, then SB3's ``Monitor`` for episode statistics.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.monitor import Monitor

import aligngym.envs  # noqa: F401  (registers the aligngym/... ids)
from aligngym.agents.adversarial.temperature import TemperatureDistribution, TemperatureObservation
from aligngym.envs.adversarial import AdversaryView, ProtagonistView


class ModelPolicy:
    """An SB3 model as the callable obs -> action that the views expect.

    Training opponents act stochastically (``deterministic=False``): a tempered adversary's randomness
    is the whole point of QARL. Evaluation uses the deterministic action.
    """

    def __init__(self, model: BaseAlgorithm, deterministic: bool = False) -> None:
        self.model = model
        self.deterministic = deterministic

    def __call__(self, obs: Any) -> np.ndarray:
        action, _ = self.model.predict(obs, deterministic=self.deterministic)
        return action


class RandomForce:
    """The domain-randomisation-like adversary: a uniform random force every step, from its own seed."""

    def __init__(self, space: spaces.Box, seed: int = 0) -> None:
        self.low, self.high = space.low, space.high
        self.rng = np.random.default_rng(seed)

    def __call__(self, obs: Any) -> np.ndarray:
        return self.rng.uniform(self.low, self.high).astype(np.float32)


def make_game(
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    max_episode_steps: int | None = None,
    temperature: TemperatureDistribution | None = None,
    gamma: float = 0.99,
) -> gym.Env:
    """The two-player env, with alpha appended to observations when ``temperature`` is given."""
    env = gym.make(env_id, max_episode_steps=max_episode_steps, **(env_kwargs or {}))
    if temperature is not None:
        env = TemperatureObservation(env, temperature, gamma=gamma)
    return env


def protagonist_env(game: gym.Env, adversary: Any = None) -> gym.Env:
    """The protagonist's env (``adversary`` None: no force)."""
    return Monitor(ProtagonistView(game, adversary))


def adversary_env(game: gym.Env, protagonist: Any) -> gym.Env:
    """The adversary's env: reward is minus the protagonist's."""
    return Monitor(AdversaryView(game, protagonist))
