"""Learned rewards per step, per vector step and per rollout agree; the true reward stays in info."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.env_util import make_vec_env

from aligngym.envs.learned_reward import LearnedRewardVecEnv, LearnedRewardWrapper, batch_rewards


def linear_reward(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
    """A batched reward that depends on all three inputs."""
    return next_obs.sum(axis=1) - 0.5 * obs[:, 0] + action.reshape(len(action), -1).sum(axis=1)


def test_wrapper_rewards_with_reward_fn_and_keeps_the_true_reward():
    raw = gym.make("Pendulum-v1")
    env = LearnedRewardWrapper(gym.make("Pendulum-v1"), linear_reward)
    obs, _ = env.reset(seed=0)
    raw.reset(seed=0)
    env.action_space.seed(0)
    transitions = []
    for _ in range(20):
        action = env.action_space.sample()
        next_obs, reward, _, _, info = env.step(action)
        _, true_reward, *_ = raw.step(action)
        assert info["true_reward"] == true_reward
        assert reward == pytest.approx(linear_reward(obs[None], action[None], next_obs[None])[0])
        transitions.append((obs, action, next_obs, reward))
        obs = next_obs
    observations, actions, next_observations, rewards = map(np.array, zip(*transitions))
    np.testing.assert_allclose(
        batch_rewards(linear_reward, observations, actions, next_observations), rewards
    )
    np.testing.assert_allclose(
        batch_rewards(linear_reward, observations, actions, next_observations, batch_size=7), rewards
    )


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same length, got 3, 2, 3"):
        batch_rewards(linear_reward, np.zeros((3, 2)), np.zeros((2, 1)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="returned 1 rewards for a batch of 3"):
        batch_rewards(lambda o, a, n: np.zeros(1), np.zeros((3, 2)), np.zeros((3, 1)), np.zeros((3, 2)))
    with pytest.raises(TypeError, match="Box observation space"):
        LearnedRewardWrapper(gym.make("Blackjack-v1"), linear_reward)
    with pytest.raises(TypeError, match="callable"):
        LearnedRewardWrapper(gym.make("Pendulum-v1"), reward_fn=3)


def test_vec_env_calls_reward_fn_once_per_step_and_uses_terminal_observations():
    calls = []

    def reward_fn(obs, action, next_obs):
        calls.append(len(obs))
        return next_obs[:, 0]

    venv = LearnedRewardVecEnv(make_vec_env("Pendulum-v1", n_envs=2, seed=0), reward_fn)
    truth = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    venv.reset(), truth.reset()
    actions = np.zeros((2, 1), dtype=np.float32)
    for _ in range(200):  # Pendulum truncates at 200 steps: the last step auto-resets both envs
        obs, rewards, dones, infos = venv.step(actions)
        _, true_rewards, _, _ = truth.step(actions)
        np.testing.assert_allclose([info["true_reward"] for info in infos], true_rewards, rtol=1e-6)
    assert dones.all()
    terminal = np.array([info["terminal_observation"][0] for info in infos], dtype=np.float32)
    np.testing.assert_allclose(rewards, terminal)
    assert not np.allclose(rewards, obs[:, 0])
    assert calls == [2] * 200


@pytest.fixture()
def one_torch_thread():
    """Tiny networks on a shared 2-core machine: torch's intra-op threads only contend."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_ppo_learns_from_the_learned_reward_vec_env(one_torch_thread):
    from stable_baselines3 import PPO

    # Pendulum's own reward is <= 0; this one is >= 1 and depends on the next observation.
    venv = LearnedRewardVecEnv(
        make_vec_env("Pendulum-v1", n_envs=2, seed=0), lambda o, a, n: 1.0 + np.abs(n[:, 2])
    )
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        policy_kwargs={"net_arch": [16]},
        seed=0,
        device="cpu",
    )
    model.learn(128)
    assert model.num_timesteps == 128
    buffer = model.rollout_buffer  # the second rollout (steps 64-127, no episode ends); training
    obs = buffer.observations.reshape(2, 64, 3)  # flattened the observations env-major
    for env in range(2):  # reward of step t = 1 + |theta dot| of the observation at t + 1
        np.testing.assert_allclose(buffer.rewards[:63, env], 1.0 + np.abs(obs[env, 1:, 2]), rtol=1e-5)
