"""Preference-based RL: query schedule, segment recording, pair bookkeeping, determinism, SAC relabelling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env

from aligngym.agents.preference_rl import (
    PairStore,
    PreferenceRLConfig,
    SegmentRecorder,
    normalized_return,
    relabel_replay_buffer,
    run_preference_rl,
)
from aligngym.rewards.pairs import collect_segments, label_pairs, sample_pair_indices
from aligngym.rewards.reward_nets import RewardNet
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
    "hyperparams": {"n_steps": 256, "batch_size": 64, "n_epochs": 2},
    "eval_episodes": 1,
}


def test_config_spreads_the_budget_and_rejects_bad_values():
    config = PreferenceRLConfig(
        total_timesteps=50_000, query_every=10_000, query_budget=1000, initial_queries=203
    )
    assert config.rounds == 4
    assert [config.pairs_in_round(i) for i in range(4)] == [200, 199, 199, 199]
    with pytest.raises(ValueError, match="unknown loss 'nope'; valid names: adaptive"):
        PreferenceRLConfig(loss="nope")
    with pytest.raises(ValueError, match="initial_queries=20 must lie in"):
        PreferenceRLConfig(query_budget=10, initial_queries=20)
    with pytest.raises(ValueError, match="valid choices: ppo, sac"):
        PreferenceRLConfig(algo="dqn")


def test_normalized_return_handles_negative_returns():
    assert normalized_return(-400.0, random_return=-1200.0, true_rl_return=-200.0) == pytest.approx(0.8)
    assert normalized_return(-1200.0, -1200.0, -200.0) == 0.0
    assert math.isnan(normalized_return(5.0, 3.0, 3.0))


def test_recorder_cuts_segments_inside_episodes_with_true_rewards():
    venv = make_vec_env("Pendulum-v1", n_envs=2, seed=0)  # 200-step episodes
    recorder = SegmentRecorder(venv, length=30, capacity=100)
    recorder.reset()
    rewards = []
    for _ in range(400):
        _, reward, _, _ = recorder.step(np.zeros((2, 1), dtype=np.float32))
        rewards.append(reward)
    assert recorder.emitted == 2 * 2 * 6  # 6 whole segments per 200-step episode; the last 20 steps dropped
    segments = recorder.segment_set()
    assert segments.obs.shape == (24, 30, 3) and segments.actions.shape == (24, 30, 1)
    per_env = np.array(rewards).T  # [env, step]
    expected = per_env[
        0, 30:60
    ]  # env 0's second segment (segments are appended step by step, envs interleaved)
    assert np.allclose(segments.rewards[2], expected)


def test_pair_store_keeps_pairs_pointing_at_their_segments():
    teacher = make_teacher("mistake", 0.3)
    rng = np.random.default_rng(0)
    store, parts = PairStore(), []
    for seed in (0, 1):
        segments = collect_segments("Pendulum-v1", {"random": "random"}, 12, segment_length=5, seed=seed)
        first, second = sample_pair_indices(len(segments), 10, rng)
        pairs = label_pairs(segments, first, second, teacher, rng)
        parts.append(pairs)
        store.add(pairs)
    merged = store.merged()
    assert len(store) == len(merged) == 20
    assert np.allclose(merged.true_gap, np.concatenate([p.true_gap for p in parts]))
    assert np.array_equal(merged.corrupted, np.concatenate([p.corrupted for p in parts]))
    assert len(merged.segments) <= 40  # only the segments the pairs use are kept


def test_run_spends_the_budget_and_is_deterministic():
    config = PreferenceRLConfig(**TINY)
    runs = [run_preference_rl(config, make_teacher("mistake", 0.25), seed=3) for _ in range(2)]
    first, second = runs
    assert first.queries == 48 and len(first.rounds) == 3  # initial fit + 2 rounds
    assert first.timesteps == 768
    # the final net is the last round's and no held-out pair came after it: the same accuracy
    assert first.clean_accuracy == first.rounds[-1]["heldout_accuracy"]
    assert first.true_return == second.true_return
    assert first.corrupted_fraction == second.corrupted_fraction
    for a, b in zip(first.reward_net.state_dict().values(), second.reward_net.state_dict().values()):
        assert torch.equal(a, b)


def test_sac_replay_buffer_is_relabelled_with_the_current_reward():
    venv = make_vec_env("Pendulum-v1", n_envs=1, seed=0)
    model = SAC("MlpPolicy", venv, learning_starts=1000, seed=0, device="cpu", buffer_size=500)
    model.learn(120)
    net = RewardNet(obs_dim=3, act_dim=1, seed=1)
    relabel_replay_buffer(model, net)
    buffer = model.replay_buffer
    obs = torch.as_tensor(buffer.observations[:120, 0])
    actions = torch.as_tensor(model.policy.unscale_action(buffer.actions[:120, 0]))
    with torch.no_grad():
        expected = net(obs.float(), actions.float()).numpy()
    assert np.allclose(buffer.rewards[:120, 0], expected, atol=1e-5)
    assert np.all(buffer.rewards[120:] == 0.0)
