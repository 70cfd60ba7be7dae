"""Adversary temperatures for QARL: the distributions alpha is drawn from, and the wrapper that shows alpha.

QARL (Reddi et al., ICLR 2024) conditions both agents on the adversary's entropy temperature alpha: one
alpha is drawn per episode from the curriculum's current distribution and appended to the observation, so
that a single network covers the whole family of quantal (bounded-rationality) adversaries. At evaluation
alpha = 0 is fed in (the fully rational adversary).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


@dataclass(frozen=True)
class GammaTemperature:
    """alpha ~ Gamma(concentration k, rate b); mean k / b."""

    concentration: float
    rate: float = 1000.0

    def __post_init__(self) -> None:
        if not (self.concentration > 0 and self.rate > 0):
            raise ValueError(
                f"GammaTemperature needs concentration > 0 and rate > 0, got {self.concentration}, {self.rate}"
            )

    @property
    def mean(self) -> float:
        return self.concentration / self.rate

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.gamma(self.concentration, 1.0 / self.rate))


@dataclass(frozen=True)
class PointTemperature:
    """A single temperature (alpha = value every episode); PointTemperature(0.0) is the evaluation setting."""

    value: float = 0.0

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError(f"a temperature must be >= 0, got {self.value}")

    @property
    def mean(self) -> float:
        return self.value

    def sample(self, rng: np.random.Generator) -> float:
        return float(self.value)


TemperatureDistribution = GammaTemperature | PointTemperature


class TemperatureObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Append the episode's adversary temperature alpha to a Box observation.

    alpha is drawn at every ``reset`` from ``distribution`` with the wrapper's own generator, seeded by
    ``reset(seed=...)`` (so the wrapped env's random stream is untouched). The wrapper also keeps, per finished episode, the pair (alpha, discounted return
    of the wrapped env's reward), which the self-paced curriculum needs; ``pop_episodes()`` hands them over.
    Place it under the single-agent views so that both players see the same alpha.

    Example:
        >>> import gymnasium as gym
        >>> env = TemperatureObservation(gym.make("Pendulum-v1"), PointTemperature(0.0))
        >>> obs, _ = env.reset(seed=0)
        >>> obs.shape, float(obs[-1])
        ((4,), 0.0)
    """

    def __init__(
        self,
        env: gym.Env,
        distribution: TemperatureDistribution | None = None,
        gamma: float = 0.99,
        max_alpha: float = 10.0,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, distribution=distribution, gamma=gamma, max_alpha=max_alpha
        )
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise TypeError(f"TemperatureObservation needs a 1-D Box observation space, got {space}")
        self.distribution: TemperatureDistribution = distribution or PointTemperature(0.0)
        self.gamma = gamma
        self.max_alpha = max_alpha
        low = np.append(space.low, 0.0).astype(space.dtype)
        high = np.append(space.high, max_alpha).astype(space.dtype)
        self.observation_space = spaces.Box(low=low, high=high, dtype=space.dtype)
        self.alpha = 0.0
        self._return = 0.0
        self._discount = 1.0
        self._finished: list[tuple[float, float]] = []
        self._alpha_rng = np.random.default_rng()

    def set_distribution(self, distribution: TemperatureDistribution) -> None:
        """Use ``distribution`` from the next reset on (call through ``VecEnv.env_method``)."""
        self.distribution = distribution

    def pop_episodes(self) -> list[tuple[float, float]]:
        """(alpha, discounted return) of every episode finished since the last call."""
        finished, self._finished = self._finished, []
        return finished

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._alpha_rng = np.random.default_rng([seed, 7919])
        self.alpha = min(self.distribution.sample(self._alpha_rng), self.max_alpha)
        self._return, self._discount = 0.0, 1.0
        info["temperature"] = self.alpha
        return self.observation(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += self._discount * float(reward)
        self._discount *= self.gamma
        info["temperature"] = self.alpha
        if terminated or truncated:
            self._finished.append((self.alpha, self._return))
        return self.observation(obs), reward, terminated, truncated, info

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.append(observation, self.alpha).astype(self.observation_space.dtype)
