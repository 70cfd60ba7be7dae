"""Reward-quality metrics against hand computations: EPIC on a tiny tabular MDP, Kendall tau, ECE, gap curve."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from scipy import stats

from aligngym.rewards.reward_quality import (
    EpicSample,
    canonical_rewards,
    canonicalize_tabular,
    epic_distance,
    epic_distance_tabular,
    epic_sample_from_segments,
    expected_calibration_error,
    gap_curve,
    pearson_distance,
    policy_ranking,
    preference_quality,
    simulator_reward,
)

GAMMA = 0.9
UNIFORM_S, UNIFORM_A = np.full(2, 0.5), np.full(2, 0.5)


def _brute_force_canonical(reward: np.ndarray, ds: np.ndarray, da: np.ndarray, gamma: float) -> np.ndarray:
    """The definition written out as loops: R + E[gamma R(s', A, S') - R(s, A, S') - gamma R(S, A, S')]."""
    n_s, n_a, _ = reward.shape
    out = np.zeros_like(reward)
    for s in range(n_s):
        for a in range(n_a):
            for s2 in range(n_s):
                total = reward[s, a, s2]
                for big_s in range(n_s):
                    for big_a in range(n_a):
                        for big_s2 in range(n_s):
                            w = ds[big_s] * da[big_a] * ds[big_s2]
                            total += w * gamma * reward[s2, big_a, big_s2]
                            total -= w * reward[s, big_a, big_s2]
                            total -= w * gamma * reward[big_s, big_a, big_s2]
                out[s, a, s2] = total
    return out


def test_tabular_canonicalisation_matches_the_definition_written_as_loops() -> None:
    rng = np.random.default_rng(0)
    reward = rng.normal(size=(3, 2, 3))
    ds, da = np.array([0.2, 0.5, 0.3]), np.array([0.7, 0.3])
    np.testing.assert_allclose(
        canonicalize_tabular(reward, ds, da, GAMMA), _brute_force_canonical(reward, ds, da, GAMMA), atol=1e-12
    )


def test_epic_is_zero_for_a_potential_shaped_rescaled_reward_and_one_for_the_negation() -> None:
    rng = np.random.default_rng(1)
    reward = rng.normal(size=(3, 2, 3))
    potential = rng.normal(size=3)
    shaped = 3.0 * reward + GAMMA * potential[None, None, :] - potential[:, None, None] - 2.0
    ds, da = np.full(3, 1 / 3), np.full(2, 0.5)
    assert epic_distance_tabular(reward, shaped, ds, da, GAMMA) == pytest.approx(0.0, abs=1e-7)
    assert epic_distance_tabular(reward, -reward, ds, da, GAMMA) == pytest.approx(1.0, abs=1e-9)
    # shaping with the WRONG discount is not shaping: the distance is positive
    wrong = reward + 0.5 * potential[None, None, :] - potential[:, None, None]
    assert epic_distance_tabular(reward, wrong, ds, da, GAMMA) > 0.01


def test_epic_of_an_unrelated_reward_matches_the_hand_computation() -> None:
    # 2 states, 2 actions, uniform coverage. R_a = [a = 1]; R_b = [a != s] (XOR).
    # Canonical forms, by hand: every expectation over (A, S') is 1/2, so C(R_a) = [a = 1] - 1/2 and
    # C(R_b) = [a != s] - 1/2. Over the 8 uniform transitions E[C_a C_b] = (1 + 1 - 1 - 1) / 4 / 2 = 0,
    # so rho = 0 and the distance is sqrt(1/2).
    s, a = np.meshgrid(np.arange(2), np.arange(2), indexing="ij")
    r_a = np.broadcast_to((a == 1).astype(float)[:, :, None], (2, 2, 2))
    r_b = np.broadcast_to((a != s).astype(float)[:, :, None], (2, 2, 2))
    np.testing.assert_allclose(canonicalize_tabular(r_a, UNIFORM_S, UNIFORM_A, GAMMA), r_a - 0.5, atol=1e-12)
    np.testing.assert_allclose(canonicalize_tabular(r_b, UNIFORM_S, UNIFORM_A, GAMMA), r_b - 0.5, atol=1e-12)
    assert epic_distance_tabular(r_a, r_b, UNIFORM_S, UNIFORM_A, GAMMA) == pytest.approx(math.sqrt(0.5))
    # partly related: R_c = [a = 1] + [s = 1]; a state-only term is not potential shaping (that needs
    # gamma Phi(s') - Phi(s)), so the distance lies strictly between 0 and sqrt(1/2) (loops give it)
    r_c = r_a + (s == 1).astype(float)[:, :, None]
    expected = pearson_distance(
        _brute_force_canonical(r_a, UNIFORM_S, UNIFORM_A, GAMMA),
        _brute_force_canonical(r_c, UNIFORM_S, UNIFORM_A, GAMMA),
    )
    assert epic_distance_tabular(r_a, r_c, UNIFORM_S, UNIFORM_A, GAMMA) == pytest.approx(expected)
    assert 0.05 < expected < math.sqrt(0.5)


def _tabular_reward_fn(table: np.ndarray):
    """A tabular reward over one-hot observations and actions (the sample-based API)."""

    def reward_fn(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        return table[obs.argmax(1), actions.argmax(1), next_obs.argmax(1)]

    return reward_fn


def test_sample_based_epic_converges_to_the_exact_tabular_value_and_is_exactly_shaping_invariant() -> None:
    rng = np.random.default_rng(2)
    n_s, n_a = 4, 3
    reward_a, reward_b = rng.normal(size=(n_s, n_a, n_s)), rng.normal(size=(n_s, n_a, n_s))
    reward_b = 0.6 * reward_a + reward_b  # correlated, so the distance is neither 0 nor sqrt(1/2)
    ds, da = np.full(n_s, 1 / n_s), np.full(n_a, 1 / n_a)
    eye_s, eye_a = np.eye(n_s), np.eye(n_a)
    n, m = 20000, 4000
    sample = EpicSample(
        obs=eye_s[rng.integers(n_s, size=n)],
        actions=eye_a[rng.integers(n_a, size=n)],
        next_obs=eye_s[rng.integers(n_s, size=n)],
        coverage_actions=eye_a[rng.integers(n_a, size=m)],
        coverage_next_obs=eye_s[rng.integers(n_s, size=m)],
    )
    exact = epic_distance_tabular(reward_a, reward_b, ds, da, GAMMA)
    estimate = epic_distance(_tabular_reward_fn(reward_a), _tabular_reward_fn(reward_b), sample, GAMMA)
    assert estimate == pytest.approx(exact, abs=0.02)
    potential = rng.normal(size=n_s)
    shaped = 2.0 * reward_a + GAMMA * potential[None, None, :] - potential[:, None, None] + 5.0
    assert epic_distance(_tabular_reward_fn(reward_a), _tabular_reward_fn(shaped), sample, GAMMA) < 1e-6


def test_simulator_reward_reproduces_halfcheetah_rewards_and_epic_ranks_rewards() -> None:
    env = gym.make("HalfCheetah-v5")
    obs, _ = env.reset(seed=0)
    env.action_space.seed(0)
    observations, actions, rewards = [], [], []
    for _ in range(90):
        action = env.action_space.sample()
        observations.append(obs)
        actions.append(action)
        obs, reward, *_ = env.step(action)
        rewards.append(reward)
    observations.append(obs)
    env.close()
    o = np.asarray(observations, dtype=np.float32)
    a = np.asarray(actions, dtype=np.float32)
    true_fn = simulator_reward("HalfCheetah-v5")
    np.testing.assert_allclose(true_fn(o[:-1], a, o[1:]), rewards, atol=2e-3)  # float32 observations

    sample = epic_sample_from_segments(o[None, :-1], a[None], n_chains=6, chain_length=8, n_coverage=16)
    canonical_true = canonical_rewards(true_fn, sample, 0.99)
    assert epic_distance(canonical_true, true_fn, sample) == pytest.approx(0.0, abs=1e-9)
    assert epic_distance(canonical_true, lambda o, a, n: -true_fn(o, a, n), sample) == pytest.approx(1.0)
    # the control cost alone is a poor proxy, the forward velocity of the next state a good one
    ctrl_only = epic_distance(canonical_true, lambda o, a, n: -0.1 * (a**2).sum(1), sample)
    velocity = epic_distance(canonical_true, lambda o, a, n: true_fn(o, a, n) + 0.05 * o[:, 8], sample)
    assert velocity < 0.1 < ctrl_only


def test_simulator_reward_rejects_envs_whose_observation_it_cannot_invert() -> None:
    with pytest.raises(ValueError, match="Pendulum-v1"):
        simulator_reward("Pendulum-v1")


def test_policy_ranking_is_scipys_kendall_tau() -> None:
    true = [1.0, 5.0, 3.0, 2.0, 4.0]
    assert policy_ranking([10, 50, 30, 20, 40], true) == pytest.approx(1.0)
    assert policy_ranking([-10, -50, -30, -20, -40], true) == pytest.approx(-1.0)
    learned = [2.0, 4.0, 3.5, 1.0, 5.0]
    assert policy_ranking(learned, true) == pytest.approx(stats.kendalltau(learned, true).statistic)
    assert math.isnan(policy_ranking([1.0, 1.0, 1.0], true[:3]))


def test_expected_calibration_error_by_hand() -> None:
    # 10 pairs at p = 0.9 with 9 correct: calibrated (0); 4 pairs at p = 0.2 (confidence 0.8) all correct:
    # |1.0 - 0.8| = 0.2 on 4 of 14 pairs; ties in the labels are ignored
    p = np.array([0.9] * 10 + [0.2] * 4 + [0.7])
    y = np.array([1.0] * 9 + [0.0] + [0.0] * 4 + [0.5])
    assert expected_calibration_error(p, y) == pytest.approx(4 / 14 * 0.2)
    assert expected_calibration_error(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_gap_curve_is_flat_for_constant_gaps_and_steep_for_a_convex_reward() -> None:
    rng = np.random.default_rng(3)
    true = rng.normal(size=1000)
    _, flat = gap_curve(np.sign(true) * 2.0, true)
    np.testing.assert_allclose(flat, 1.0)
    means, linear = gap_curve(3.0 * true, true)
    np.testing.assert_allclose(linear, np.array(means) / np.abs(true).mean())  # scale drops out
    steep = preference_quality(true**3, true, (true > 0).astype(float))
    shallow = preference_quality(true, true, (true > 0).astype(float))
    assert steep["gap_ratio"] > shallow["gap_ratio"] > 1.0
    assert len(steep["gap_curve"]) == 5


def test_policy_rollouts_rank_policies_perfectly_under_the_true_reward() -> None:
    from aligngym.rewards.pairs import scripted_policy
    from aligngym.rewards.reward_quality import collect_policy_rollouts

    space = gym.make("HalfCheetah-v5").action_space
    policies = {name: scripted_policy(name, space, seed=0) for name in ("zero", "random", "sine-fast")}
    rollouts = collect_policy_rollouts("HalfCheetah-v5", policies, episodes=1, seed=0)
    assert rollouts.names == ("zero", "random", "sine-fast")
    assert [len(eps[0][2]) for eps in rollouts.episodes] == [1000, 1000, 1000]
    true = rollouts.true_returns()
    learned = rollouts.learned_returns(simulator_reward("HalfCheetah-v5"))
    np.testing.assert_allclose(learned, true, rtol=1e-3, atol=0.5)
    assert policy_ranking(learned, true) == pytest.approx(1.0)
    reversed_order = rollouts.learned_returns(lambda o, a, n: -simulator_reward("HalfCheetah-v5")(o, a, n))
    assert policy_ranking(reversed_order, true) == pytest.approx(-1.0)


def test_a_fixed_pairs_cell_reports_the_reward_quality_metrics_reproducibly() -> None:
    import torch

    from aligngym.rewards.losses import LossSpec
    from aligngym.rewards.teachers import make_teacher
    from aligngym.runs.reward_benchmark import FixedPairsConfig, fixed_pairs_metrics, quality_reference

    torch.set_num_threads(1)
    config = FixedPairsConfig(
        segment_length=10, segments_per_policy=20, gait_policies=2, n_train=120, n_val=40, n_test=60, epochs=2
    )
    runs = [
        fixed_pairs_metrics("HalfCheetah-v5", LossSpec("rime"), make_teacher("mistake", 0.2), config, 0)
        for _ in range(2)
    ]
    out = runs[0]
    assert 0.0 <= out["epic"] <= 1.0 and -1.0 <= out["policy_tau"] <= 1.0 and 0.0 <= out["ece"] <= 1.0
    assert len(out["gap_curve"]) == 5 and out["gap_ratio"] > 0
    assert out["selection"] == "noisy" and out["best_epoch"] in (1, 2)
    assert 0.0 <= out["flagged_fraction"] <= 1.0
    assert {k: v for k, v in runs[1].items() if k != "fit_seconds"} == {
        k: v for k, v in out.items() if k != "fit_seconds"
    }
    # the fixed policy set: random, the seed's 2 gaits, 4 scripted policies
    assert len(quality_reference("HalfCheetah-v5", 0, 10, 20, 2)[2].names) == 7


def test_step_mean_ranking_ignores_the_constant_that_preferences_leave_free() -> None:
    from aligngym.rewards.reward_quality import PolicyRollouts

    def episode(rewards: list[float]):
        n = len(rewards)
        return (np.zeros((n, 1), np.float32), np.zeros((n, 1), np.float32), np.asarray(rewards))

    # three policies: short episodes of high reward, a long one of low reward, a middle one
    rollouts = PolicyRollouts(
        ("short-good", "long-poor", "mid"),
        ((episode([2.0] * 5),), (episode([0.5] * 100),), (episode([1.0] * 20),)),
    )
    true = rollouts.true_step_means()
    np.testing.assert_allclose(true, [2.0, 0.5, 1.0])
    shift = lambda offset: lambda o, a, n: np.full(len(o), offset)
    # the true reward plus a constant: step means keep the order, returns do not
    lookup = {5: 2.0, 100: 0.5, 20: 1.0}
    plus_constant = lambda o, a, n: np.full(len(o), lookup[len(o)] - 3.0)
    assert policy_ranking(rollouts.learned_step_means(plus_constant), true) == pytest.approx(1.0)
    assert policy_ranking(rollouts.learned_returns(plus_constant), rollouts.true_returns()) < 1.0
    assert math.isnan(policy_ranking(rollouts.learned_step_means(shift(1.0)), true))
