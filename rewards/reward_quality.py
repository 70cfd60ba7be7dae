"""Reward quality without RL: EPIC distance to the true reward, policy ranking, calibration, gap shape.

Accuracy on held-out pairs says whether a learned reward ORDERS pairs as the truth does. Two of the
papers claim more (adaptive scaling: the reward's shape and calibration; RIME / R3M: a reward good
enough to train a policy), so a fixed-pairs benchmark also measures:

- **EPIC distance** (Gleave et al., ICLR 2021, arXiv 2006.13900): canonicalise each reward with
  independent coverage distributions of states ``D_S`` and actions ``D_A``,
  ``C(R)(s, a, s') = R(s, a, s') + E[gamma R(s', A, S') - R(s, A, S') - gamma R(S, A, S')]``, then take
  the Pearson distance ``sqrt((1 - rho) / 2)`` over a distribution of transitions. It is 0 for rewards
  that differ by potential shaping and positive scaling, 1 for ``R`` vs ``-R``, and bounds regret.
  ``epic_distance_tabular`` is the exact form on a finite MDP; ``canonical_rewards`` the sample form
  (Gleave et al.'s sample canonicalisation) for continuous spaces.
- **Policy ranking**: Kendall tau between the learned and the true values of a fixed set of policies
  (returns, or mean rewards per step where episode lengths differ: see ``PolicyRollouts``).
- **Expected calibration error** of the predicted preference ``sigmoid(learned gap)`` against clean
  labels (10 equal-width confidence bins, the usual binary ECE).
- **Binned gap curve**: mean |learned gap| per quantile bin of |true gap|, divided by the overall mean
  |learned gap| so that reward scale drops out; adaptive scaling claims a steeper curve (larger gaps on
  clear pairs, smaller on ambiguous ones).

Example (a shaped, rescaled reward is at distance 0 from the original):
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> reward = rng.normal(size=(3, 2, 3))
    >>> potential = rng.normal(size=3)
    >>> shaped = 2.0 * reward + 0.9 * potential[None, None, :] - potential[:, None, None] + 1.0
    >>> uniform_s, uniform_a = np.full(3, 1 / 3), np.full(2, 1 / 2)
    >>> round(epic_distance_tabular(reward, shaped, uniform_s, uniform_a, gamma=0.9), 9)
    0.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import expit

RewardFn = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``reward_fn(obs [K, d], actions [K, k], next_obs [K, d]) -> rewards [K]`` (numpy, batched)."""


def pearson_distance(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """``sqrt((1 - rho) / 2)`` for the (optionally weighted) Pearson correlation rho of x and y.

    A constant vector has no correlation: its distance is defined here as ``sqrt(1/2)`` (rho = 0),
    the value of an unrelated reward, so a learned reward that collapsed to a constant is not "close".
    """
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    w = np.full(len(x), 1.0 / len(x)) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    w = w / w.sum()
    dx, dy = x - w @ x, y - w @ y
    var_x, var_y = w @ (dx * dx), w @ (dy * dy)
    scale = max(np.max(np.abs(x)), np.max(np.abs(y)), 1.0)
    if var_x <= (1e-12 * scale) ** 2 or var_y <= (1e-12 * scale) ** 2:
        return float(np.sqrt(0.5))
    rho = float(np.clip((w @ (dx * dy)) / np.sqrt(var_x * var_y), -1.0, 1.0))
    return float(np.sqrt((1.0 - rho) / 2.0))


# ---------------------------------------------------------------------------------------------------
# EPIC


def canonicalize_tabular(
    reward: np.ndarray, state_dist: np.ndarray, action_dist: np.ndarray, gamma: float
) -> np.ndarray:
    """Exact EPIC canonicalisation of a tabular reward ``R[s, a, s']`` under ``D_S`` and ``D_A``."""
    r = np.asarray(reward, dtype=np.float64)
    ds, da = np.asarray(state_dist, dtype=np.float64), np.asarray(action_dist, dtype=np.float64)
    # mean_from[x] = E_{A ~ D_A, S' ~ D_S} R(x, A, S')
    mean_from = np.einsum("xak,a,k->x", r, da, ds)
    constant = ds @ mean_from  # E R(S, A, S')
    return r + gamma * mean_from[None, None, :] - mean_from[:, None, None] - gamma * constant


def epic_distance_tabular(
    reward_a: np.ndarray,
    reward_b: np.ndarray,
    state_dist: np.ndarray,
    action_dist: np.ndarray,
    gamma: float,
    transition_dist: np.ndarray | None = None,
) -> float:
    """Exact EPIC distance of two tabular rewards ``[S, A, S']``; Pearson weighted by ``transition_dist``
    (default: ``D_S x D_A x D_S``, the coverage distribution itself)."""
    ds, da = np.asarray(state_dist, dtype=np.float64), np.asarray(action_dist, dtype=np.float64)
    if transition_dist is None:
        transition_dist = np.einsum("s,a,k->sak", ds, da, ds)
    ca = canonicalize_tabular(reward_a, ds, da, gamma)
    cb = canonicalize_tabular(reward_b, ds, da, gamma)
    return pearson_distance(ca, cb, transition_dist)


@dataclass(frozen=True)
class EpicSample:
    """Transitions to compare rewards on, and coverage samples for the canonicalisation.

    obs, actions, next_obs: N transitions ``(s, a, s')`` (the Pearson distribution).
    coverage_actions, coverage_next_obs: M independent samples ``A ~ D_A`` and ``S' ~ D_S``; the
    expectations ``E R(x, A, S')`` of every state x use the same M samples (common random numbers,
    so the estimate's noise is shared by the two rewards compared).
    """

    obs: np.ndarray
    actions: np.ndarray
    next_obs: np.ndarray
    coverage_actions: np.ndarray
    coverage_next_obs: np.ndarray


def epic_sample_from_segments(
    obs: np.ndarray,
    actions: np.ndarray,
    n_chains: int = 32,
    chain_length: int = 8,
    n_coverage: int = 64,
    seed: int = 0,
) -> EpicSample:
    """EPIC transitions from segments ``[N, H, dim]``: ``n_chains`` runs of ``chain_length`` consecutive
    steps of random segments (consecutive, so the states to canonicalise number ``n_chains * (L + 1)``,
    not twice the transitions), and coverage samples drawn independently from all segment states and
    actions (the empirical ``D_S`` and ``D_A`` of the data)."""
    n, h = obs.shape[:2]
    if h < chain_length + 1:
        raise ValueError(f"segments of {h} steps cannot hold chains of {chain_length} transitions")
    rng = np.random.default_rng([seed, 17])
    rows = rng.integers(n, size=n_chains)
    starts = rng.integers(h - chain_length, size=n_chains)
    steps = starts[:, None] + np.arange(chain_length)[None, :]
    flat_obs, flat_act = obs.reshape(n * h, -1), actions.reshape(n * h, -1)
    return EpicSample(
        obs=obs[rows[:, None], steps].reshape(n_chains * chain_length, -1),
        actions=actions[rows[:, None], steps].reshape(n_chains * chain_length, -1),
        next_obs=obs[rows[:, None], steps + 1].reshape(n_chains * chain_length, -1),
        coverage_actions=flat_act[rng.integers(n * h, size=n_coverage)],
        coverage_next_obs=flat_obs[rng.integers(n * h, size=n_coverage)],
    )


def canonical_rewards(reward_fn: RewardFn, sample: EpicSample, gamma: float) -> np.ndarray:
    """Sample-based EPIC canonicalisation ``C(R)`` at the sample's N transitions, shape [N]."""
    states = np.concatenate([sample.obs, sample.next_obs])
    unique, inverse = np.unique(states, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    m = len(sample.coverage_actions)
    # E_{A, S'} R(x, A, S') for every distinct state x: one batched call over |unique| * M inputs
    values = reward_fn(
        np.repeat(unique, m, axis=0),
        np.tile(sample.coverage_actions, (len(unique), 1)),
        np.tile(sample.coverage_next_obs, (len(unique), 1)),
    )
    mean_from = np.asarray(values, dtype=np.float64).reshape(len(unique), m).mean(axis=1)
    n = len(sample.obs)
    at_s, at_next = mean_from[inverse[:n]], mean_from[inverse[n:]]
    constant = at_s.mean()  # E R(S, A, S') with S from the transitions' states (a constant: rho ignores it)
    direct = np.asarray(reward_fn(sample.obs, sample.actions, sample.next_obs), dtype=np.float64)
    return direct + gamma * at_next - at_s - gamma * constant


def epic_distance(
    reward_a: RewardFn | np.ndarray, reward_b: RewardFn | np.ndarray, sample: EpicSample, gamma: float = 0.99
) -> float:
    """EPIC distance of two rewards on ``sample``; either may be given as precomputed canonical values."""
    ca = reward_a if isinstance(reward_a, np.ndarray) else canonical_rewards(reward_a, sample, gamma)
    cb = reward_b if isinstance(reward_b, np.ndarray) else canonical_rewards(reward_b, sample, gamma)
    return pearson_distance(ca, cb)


_POSITION_EXCLUDED_ENVS = ("HalfCheetah", "Hopper", "Walker2d")


def simulator_reward(env_id: str) -> RewardFn:
    """The TRUE reward of a planar MuJoCo locomotion env as a function of ``(obs, action)``.

    HalfCheetah / Hopper / Walker2d observations are ``qpos[1:]`` and ``qvel`` (the root x position is
    left out) and their dynamics and rewards do not depend on x, so setting the state
    ``(0, qpos[1:]), qvel`` and stepping reproduces the env's reward for any observation (to the
    float32 precision of stored observations; Hopper / Walker2d clip velocities to +-10 in the
    observation). ``next_obs`` is ignored: the true reward is a state-action reward.
    """
    import gymnasium as gym

    if not env_id.startswith(_POSITION_EXCLUDED_ENVS):
        raise ValueError(
            f"simulator_reward supports {', '.join(_POSITION_EXCLUDED_ENVS)} (-v4/-v5); got {env_id!r}"
        )
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    nq, nv = env.model.nq, env.model.nv
    if env.observation_space.shape != (nq - 1 + nv,):
        raise ValueError(f"{env_id}: observation shape {env.observation_space.shape} is not qpos[1:] + qvel")

    def reward_fn(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        out = np.empty(len(obs))
        for i, (o, a) in enumerate(zip(np.asarray(obs, np.float64), np.asarray(actions, np.float64))):
            env.set_state(np.concatenate([[0.0], o[: nq - 1]]), o[nq - 1 :])
            out[i] = env.step(a)[1]
        return out

    return reward_fn


# ---------------------------------------------------------------------------------------------------
# Policy ranking, calibration, gap shape


def policy_ranking(learned_returns: Sequence[float], true_returns: Sequence[float]) -> float:
    """Kendall tau (tau-b) between learned and true returns of the same policies (nan for < 3 policies)."""
    learned, true = np.asarray(learned_returns, np.float64), np.asarray(true_returns, np.float64)
    if len(true) < 3 or np.ptp(learned) == 0 or np.ptp(true) == 0:
        return float("nan")
    return float(stats.kendalltau(learned, true).statistic)


def expected_calibration_error(prob_first: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Binary ECE of ``P(first preferred)`` against 0/1 labels (0.5 labels are left out).

    Confidence ``max(p, 1 - p)`` in ``bins`` equal-width bins over [0.5, 1];
    ``ECE = sum_b (n_b / n) |accuracy_b - confidence_b|``.
    """
    p, y = np.asarray(prob_first, np.float64), np.asarray(labels, np.float64)
    decided = y != 0.5
    p, y = p[decided], y[decided]
    if not len(p):
        return float("nan")
    confidence = np.maximum(p, 1.0 - p)
    correct = ((p >= 0.5) == (y == 1.0)).astype(np.float64)
    index = np.minimum(((confidence - 0.5) * 2.0 * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def gap_curve(
    learned_gap: np.ndarray, true_gap: np.ndarray, bins: int = 5
) -> tuple[list[float], list[float]]:
    """Binned shape of the learned reward: per quantile bin of |true gap|, the mean |true gap| and the
    mean |learned gap| divided by the mean |learned gap| over all pairs (1 everywhere = flat)."""
    learned, true = np.abs(np.asarray(learned_gap, np.float64)), np.abs(np.asarray(true_gap, np.float64))
    order = np.argsort(true, kind="stable")
    scale = learned.mean()
    groups = np.array_split(order, bins)
    true_means = [float(true[g].mean()) for g in groups]
    learned_means = [float(learned[g].mean() / scale) if scale > 0 else float("nan") for g in groups]
    return true_means, learned_means


def preference_quality(
    learned_gap: np.ndarray, true_gap: np.ndarray, oracle: np.ndarray
) -> dict[str, object]:
    """ECE against the clean labels and the binned gap curve of held-out pairs (learned and true gaps of
    ``first - second``); ``gap_ratio`` is the curve's top bin over its bottom bin."""
    true_means, learned_means = gap_curve(learned_gap, true_gap)
    return {
        "ece": expected_calibration_error(expit(np.asarray(learned_gap, np.float64)), oracle),
        "gap_ratio": learned_means[-1] / learned_means[0] if learned_means[0] > 0 else float("nan"),
        "gap_curve": learned_means,
        "gap_curve_true": true_means,
    }


@dataclass(frozen=True)
class PolicyRollouts:
    """Whole episodes of a fixed set of policies: per policy, per-episode observations, actions, true rewards."""

    names: tuple[str, ...]
    episodes: tuple[tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...], ...]

    def true_returns(self) -> np.ndarray:
        """Mean true episode return per policy, shape [policies]."""
        return np.array([np.mean([rew.sum() for _, _, rew in eps]) for eps in self.episodes])

    def learned_returns(self, reward_fn: RewardFn) -> np.ndarray:
        """Mean episode return per policy under ``reward_fn`` (one batched call per episode)."""
        return np.array(
            [np.mean([np.sum(reward_fn(obs, act, obs)) for obs, act, _ in eps]) for eps in self.episodes]
        )

    def true_step_means(self) -> np.ndarray:
        """Mean true reward per step of each policy (over all its steps), shape [policies]."""
        return np.array([np.concatenate([rew for _, _, rew in eps]).mean() for eps in self.episodes])

    def learned_step_means(self, reward_fn: RewardFn) -> np.ndarray:
        """Mean reward per step of each policy under ``reward_fn``.

        Rank by this, not by the return, when episode lengths differ (Hopper falls): preferences between
        equal-length segments leave the learned reward's constant offset unidentified, and that offset
        times the episode length would decide a return ranking. With a fixed episode length
        (HalfCheetah's 1000 steps) both rankings are the same.
        """
        return np.array(
            [
                np.concatenate([reward_fn(obs, act, obs) for obs, act, _ in eps]).mean()
                for eps in self.episodes
            ]
        )


def collect_policy_rollouts(
    env_id: str, policies: dict[str, Callable[[np.ndarray], np.ndarray]], episodes: int = 2, seed: int = 0
) -> PolicyRollouts:
    """Roll out each policy for ``episodes`` whole episodes (the env's own time limit), seeded."""
    import gymnasium as gym
    from gymnasium import spaces

    env = gym.make(env_id)
    rng = np.random.default_rng([seed, 23])
    env.action_space.seed(seed)
    out = []
    try:
        for act in policies.values():
            per_policy = []
            for _ in range(episodes):
                obs, _ = env.reset(seed=int(rng.integers(2**31)))
                observations, actions, rewards = [], [], []
                done = False
                while not done:
                    action = act(obs)
                    observations.append(spaces.flatten(env.observation_space, obs))
                    actions.append(spaces.flatten(env.action_space, action))
                    obs, reward, terminated, truncated, _ = env.step(action)
                    rewards.append(float(reward))
                    done = terminated or truncated
                per_policy.append(
                    (
                        np.asarray(observations, np.float32),
                        np.asarray(actions, np.float32),
                        np.asarray(rewards, np.float64),
                    )
                )
            out.append(tuple(per_policy))
    finally:
        env.close()
    return PolicyRollouts(tuple(policies), tuple(out))
