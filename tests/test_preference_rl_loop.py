"""The preference-based RL loop measured against independent references.

Which reward the agent optimises (the learned net's, never the env's), SAC's replay buffer after the
last reward update (a fresh computation with the final net), held-out pairs (disjoint segments, oracle
labels), the random-policy reference over several episodes of an env whose returns are known by hand,
the normaliser when true-reward RL scores below random, and the evaluation env's observation statistics.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from aligngym.agents.preference_rl import (
    PreferenceRLConfig,
    evaluate_true_return,
    normalized_return,
    query_round,
    random_return,
    run_preference_rl,
)
from aligngym.rewards.pairs import SegmentSet
from aligngym.rewards.teachers import make_teacher

TINY = {
    "env_id": "Pendulum-v1",
    "total_timesteps": 768,
    "n_envs": 1,
    "query_every": 256,
    "initial_queries": 16,
    "query_budget": 48,
    "segment_length": 10,
    "heldout_pairs_per_round": 20,
    "reward_epochs": 2,
    "eval_episodes": 1,
}
CYCLE_ID = "AligngymTest/Cycle-v0"


class CycleEnv(gym.Env):
    """Reward 1 per step; the k-th episode of an instance (k = 0, 1, ...) lasts 1 + k % 3 steps.

    So any policy's mean return over 4 episodes is (1 + 2 + 3 + 1) / 4 = 1.75, whatever the seeds.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self) -> None:
        self.episodes, self.left = 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.left = 1 + self.episodes % 3
        self.episodes += 1
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.left -= 1
        return np.zeros(1, np.float32), 1.0, self.left == 0, False, {}


if CYCLE_ID not in gym.registry:
    gym.register(id=CYCLE_ID, entry_point=CycleEnv)


def pendulum_reward(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    """Gymnasium's Pendulum-v1 reward from its observation (cos, sin, theta dot) and the clipped torque."""
    theta = np.arctan2(obs[:, 1], obs[:, 0])
    torque = np.clip(action[:, 0], -2.0, 2.0)
    return -(theta**2 + 0.1 * obs[:, 2] ** 2 + 0.001 * torque**2)


def test_ppo_agent_is_rewarded_by_the_final_learned_net_not_by_the_env():
    """The last rollout (after the last query round) carries exactly the final net's rewards."""
    config = PreferenceRLConfig(
        **TINY, normalize=False, hyperparams={"n_steps": 256, "batch_size": 64, "n_epochs": 1}
    )
    result = run_preference_rl(config, make_teacher("oracle"), seed=0)
    buffer = result.model.rollout_buffer  # training flattened observations / actions to [steps * envs, dim]
    obs = buffer.observations.reshape(buffer.buffer_size, -1)
    actions = np.clip(buffer.actions.reshape(buffer.buffer_size, -1), -2.0, 2.0)
    with torch.no_grad():
        learned = result.reward_net(torch.as_tensor(obs), torch.as_tensor(actions)).numpy()
    # SB3 adds gamma * V(terminal obs) to the reward of a step that ends in a time-limit truncation.
    ends = np.append(buffer.episode_starts[1:, 0], 0.0) == 1.0
    assert 0 < ends.sum() < 3
    rewards = buffer.rewards[:, 0]
    np.testing.assert_allclose(rewards[~ends], learned[~ends], rtol=1e-5, atol=1e-6)
    assert not np.allclose(rewards[~ends], pendulum_reward(obs, actions)[~ends], atol=1e-2)


def test_sac_replay_buffer_holds_the_final_nets_rewards_after_the_loop():
    """A wrapped buffer (600 steps, 400 slots) whose last relabelling happens at step 580: every slot,
    old or new, must hold what the final reward net gives (a fresh computation)."""
    config = PreferenceRLConfig(
        **{**TINY, "total_timesteps": 600, "query_every": 290},
        algo="sac",
        hyperparams={
            "buffer_size": 400,
            "learning_starts": 600,  # no gradient steps: the test is about the buffer, not SAC
            "batch_size": 32,
            "policy_kwargs": {"net_arch": [16]},
        },
    )
    result = run_preference_rl(config, make_teacher("oracle"), seed=0)
    assert len(result.rounds) == 3  # initial fit + rounds at steps 290 and 580
    buffer = result.model.replay_buffer
    assert buffer.full and buffer.pos == 200
    obs = torch.as_tensor(buffer.observations[:, 0])
    actions = torch.as_tensor(result.model.policy.unscale_action(buffer.actions[:, 0]))
    with torch.no_grad():
        expected = result.reward_net(obs.float(), actions.float()).numpy()
    np.testing.assert_allclose(buffer.rewards[:, 0], expected, rtol=1e-5, atol=1e-6)


def _numbered_segments(n: int, length: int = 5) -> SegmentSet:
    """Segments whose observations hold their own index, with random true rewards."""
    rng = np.random.default_rng(0)
    obs = np.repeat(np.arange(n, dtype=np.float32), length).reshape(n, length, 1)
    return SegmentSet(
        obs, np.zeros((n, length, 1), np.float32), rng.normal(size=(n, length)), np.zeros(n, int)
    )


def _ids(pairs) -> set[int]:
    used = np.concatenate([pairs.first, pairs.second])
    return set(pairs.segments.obs[used, 0, 0].astype(int).tolist())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_heldout_pairs_use_other_segments_than_training_pairs_and_oracle_labels(seed):
    segments = _numbered_segments(50)
    rng = np.random.default_rng(seed)
    train, heldout = query_round(segments, 200, 100, 0.2, make_teacher("mistake", 0.4), rng)
    assert _ids(train).isdisjoint(_ids(heldout))
    assert len(_ids(heldout)) <= 10 and len(_ids(train)) >= 35  # 20 % of 50 segments held out
    assert train.corrupted.mean() > 0.2  # the teacher is noisy ...
    np.testing.assert_array_equal(heldout.labels, heldout.oracle)  # ... the held-out labels are not
    assert not heldout.corrupted.any()


def test_random_return_is_the_mean_over_episodes():
    assert random_return(CYCLE_ID, episodes=4, seed=0) == pytest.approx(1.75)
    assert random_return(CYCLE_ID, episodes=3, seed=5) == pytest.approx(2.0)


def test_reference_cell_averages_the_random_policy_over_eval_episodes():
    """The reference cell runs inside pool workers; here it runs in-process on the hand-computable env."""
    from aligngym.runs.reward_benchmark import reference_cell

    rl = {
        "env_id": CYCLE_ID,
        "total_timesteps": 64,
        "n_envs": 1,
        "eval_episodes": 4,
        "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    }
    out = reference_cell({"seed": 0, "config": {"rl": rl}})
    assert out["random_return"] == pytest.approx(1.75)
    assert out["true_rl_return"] == pytest.approx(1.75)  # every policy scores 1.75 on this env


@pytest.mark.parametrize(
    ("value", "random", "true_rl", "expected"),
    [
        (-400.0, -1200.0, -200.0, 0.8),  # negative returns, RL above random
        (-200.0, -100.0, -300.0, 0.5),  # true-reward RL BELOW random: the gap is negative
        (-50.0, -100.0, -300.0, -0.25),  # better than random when RL is worse: negative score
        (10.0, 2.0, 4.0, 4.0),  # beyond the reference
    ],
)
def test_normalized_return_hand_computed(value, random, true_rl, expected):
    assert normalized_return(value, random, true_rl) == pytest.approx(expected)


def test_evaluation_normalises_observations_with_the_training_statistics():
    """Deterministic evaluation through VecNormalize must use the training env's observation statistics:
    fresh statistics (mean 0, var 1) give the unnormalised return, shifted ones a different return."""
    raw = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    model = PPO("MlpPolicy", raw, seed=0, device="cpu", n_steps=64, batch_size=64)
    with torch.no_grad():  # an untrained policy barely acts: make its torque depend strongly on the input
        model.policy.action_net.weight.mul_(100.0)
    plain = evaluate_true_return(model, raw, "Pendulum-v1", episodes=1, seed=0)
    fresh = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=0))
    assert evaluate_true_return(model, fresh, "Pendulum-v1", episodes=1, seed=0) == pytest.approx(
        plain, rel=1e-4
    )
    shifted = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=0))
    shifted.obs_rms.mean = np.array([3.0, -3.0, 5.0])
    shifted.obs_rms.var = np.array([0.01, 0.01, 0.01])
    assert abs(evaluate_true_return(model, shifted, "Pendulum-v1", episodes=1, seed=0) - plain) > 1.0
