"""A SAC-family model whose replay buffer holds the same 64 alpha-carrying transitions: the shared set-up of the
exactness tests of the torch and the SBX temperature-conditioned SAC (tests/test_adversarial_agents.py,
tests/test_sbx_sac.py)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from stable_baselines3.common.logger import Logger

from aligngym.agents.adversarial.temperature import PointTemperature, TemperatureObservation


def filled_model(cls, alphas: np.ndarray, **kwargs):
    """A SAC-family model on an alpha-carrying env whose replay buffer holds the same 64 transitions."""
    env = TemperatureObservation(gym.make("Pendulum-v1"), PointTemperature(0.0))
    model = cls(
        "MlpPolicy",
        env,
        seed=0,
        learning_starts=10_000,
        batch_size=32,
        policy_kwargs={"net_arch": [16, 16]},
        **kwargs,
    )
    model.set_logger(Logger(None, []))
    rng = np.random.default_rng(0)
    for i in range(64):
        obs = np.append(rng.normal(size=3), alphas[i % len(alphas)]).astype(np.float32)
        next_obs = np.append(rng.normal(size=3), alphas[i % len(alphas)]).astype(np.float32)
        model.replay_buffer.add(
            obs[None],
            next_obs[None],
            rng.uniform(-2, 2, (1, 1)),
            np.array([rng.normal()]),
            np.array([False]),
            [{}],
        )
    return model
