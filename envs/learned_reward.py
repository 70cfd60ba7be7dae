"""Replace an env's reward with a learned one, ``reward_fn(obs, action, next_obs)`` on batches.

Three ways to evaluate it, from slowest to fastest per transition: :class:`LearnedRewardWrapper` (one
call per ``env.step``), :class:`LearnedRewardVecEnv` (one call per vector step for all envs; the
stable-baselines3 route), and :func:`batch_rewards` over a recorded rollout (one call per chunk).
The env's own reward is kept in ``info["true_reward"]``, which corrupted-preference benchmarks need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], Any]
"""Batched reward: arrays with a leading batch dimension (obs, action, next_obs) -> rewards of shape (batch,)."""


def _require_box_observations(space: spaces.Space, owner: str) -> None:
    if not isinstance(space, spaces.Box):
        raise TypeError(
            f"{owner} needs a Box observation space (rewards are computed on arrays), got {space}"
        )


def _as_rewards(values: Any, batch: int) -> np.ndarray:
    rewards = np.asarray(values, dtype=np.float64).reshape(-1)
    if rewards.shape != (batch,):
        raise ValueError(f"reward_fn returned {rewards.size} rewards for a batch of {batch}")
    return rewards


def batch_rewards(
    reward_fn: RewardFn,
    observations: np.ndarray,
    actions: np.ndarray,
    next_observations: np.ndarray,
    batch_size: int | None = None,
) -> np.ndarray:
    """Learned rewards of many transitions (rows) at once, in chunks of ``batch_size`` (all by default)."""
    n = len(observations)
    if len(actions) != n or len(next_observations) != n:
        raise ValueError(
            f"observations, actions and next_observations need the same length, got {n}, {len(actions)}, "
            f"{len(next_observations)}"
        )
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    step = batch_size or max(n, 1)
    out = np.empty(n)
    for start in range(0, n, step):
        end = min(start + step, n)
        out[start:end] = _as_rewards(
            reward_fn(observations[start:end], actions[start:end], next_observations[start:end]), end - start
        )
    return out


class LearnedRewardWrapper(gym.Wrapper):
    """Reward each step with ``reward_fn`` on a batch of one; ``info["true_reward"]`` keeps the env's.

    Not ``RecordConstructorArgs``: a reward function is a model, not a config value.

    Example:
        >>> import gymnasium as gym
        >>> env = LearnedRewardWrapper(gym.make("Pendulum-v1"), lambda o, a, o2: -np.abs(o2[:, 0]))
        >>> _ = env.reset(seed=0)
        >>> obs, reward, *_, info = env.step(env.action_space.sample())
        >>> bool(reward == -abs(obs[0])), "true_reward" in info
        (True, True)
    """

    def __init__(self, env: gym.Env, reward_fn: RewardFn) -> None:
        _require_box_observations(env.observation_space, "LearnedRewardWrapper")
        if not callable(reward_fn):
            raise TypeError(
                f"reward_fn must be callable (obs, action, next_obs) -> rewards, got {reward_fn!r}"
            )
        super().__init__(env)
        self.reward_fn = reward_fn
        self._obs: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._obs, info = self.env.reset(seed=seed, options=options)
        return self._obs, info

    def step(self, action: Any):
        next_obs, true_reward, terminated, truncated, info = self.env.step(action)
        reward = self.reward_fn(self._obs[None], np.asarray(action)[None], next_obs[None])
        info["true_reward"] = true_reward
        self._obs = next_obs
        return next_obs, float(_as_rewards(reward, 1)[0]), terminated, truncated, info


class LearnedRewardVecEnv(VecEnvWrapper):
    """SB3 vector-env wrapper: one ``reward_fn`` call per vector step for all envs.

    For an env that ended, ``next_obs`` is its ``terminal_observation`` (not the reset one).
    ``infos[i]["true_reward"]`` keeps the env's reward. Wrap the raw vector env (Monitor inside, so
    episode statistics stay true returns), before any ``VecNormalize``.

    Example:
        >>> from stable_baselines3.common.env_util import make_vec_env
        >>> venv = LearnedRewardVecEnv(make_vec_env("Pendulum-v1", n_envs=2), lambda o, a, o2: o2[:, 0])
        >>> _ = venv.reset()
        >>> obs, rewards, dones, infos = venv.step(np.zeros((2, 1), dtype=np.float32))
        >>> bool(np.allclose(rewards, obs[:, 0])), "true_reward" in infos[0]
        (True, True)
    """

    def __init__(self, venv: VecEnv, reward_fn: RewardFn) -> None:
        _require_box_observations(venv.observation_space, "LearnedRewardVecEnv")
        if not callable(reward_fn):
            raise TypeError(
                f"reward_fn must be callable (obs, action, next_obs) -> rewards, got {reward_fn!r}"
            )
        super().__init__(venv)
        self.reward_fn = reward_fn
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        self._obs = self.venv.reset()
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        obs, true_rewards, dones, infos = self.venv.step_wait()
        next_obs = obs
        if dones.any():
            next_obs = obs.copy()
            for i in np.flatnonzero(dones):
                next_obs[i] = infos[i]["terminal_observation"]
        rewards = _as_rewards(self.reward_fn(self._obs, self._actions, next_obs), self.num_envs)
        for info, true_reward in zip(infos, true_rewards):
            info["true_reward"] = float(true_reward)
        self._obs = obs
        return obs, rewards.astype(np.float32), dones, infos
