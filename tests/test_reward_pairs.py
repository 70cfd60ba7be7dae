"""Segment pair data: rollouts of any policies, segments inside episodes, honest splits."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from aligngym.rewards.pairs import (
    PairConfig,
    SegmentSet,
    collect_segments,
    make_pair_split,
    sample_pair_indices,
)
from aligngym.rewards.teachers import make_teacher


def test_segments_hold_true_rewards_of_the_rollout() -> None:
    segments = collect_segments(
        "Pendulum-v1", {"random": "random", "still": lambda obs: np.zeros(1)}, 6, 12, seed=0
    )
    assert segments.obs.shape == (12, 12, 3) and segments.actions.shape == (12, 12, 1)
    assert segments.rewards.shape == (12, 12) and segments.policy_names == ("random", "still")
    assert segments.source.tolist() == [0] * 6 + [1] * 6
    np.testing.assert_allclose(segments.returns, segments.rewards.sum(axis=1))
    # replaying a "still" segment's actions from its first state is impossible without the state, but the
    # Pendulum reward is a known function of (obs, action): check it on every step
    cos, sin, vel = segments.obs[..., 0], segments.obs[..., 1], segments.obs[..., 2]
    theta = np.arctan2(sin, cos)
    expected = -(theta**2 + 0.1 * vel**2 + 0.001 * segments.actions[..., 0] ** 2)
    np.testing.assert_allclose(segments.rewards, expected, atol=1e-4)


def test_collection_is_seeded() -> None:
    first = collect_segments("Pendulum-v1", {"random": "random"}, 4, 10, seed=3)
    second = collect_segments("Pendulum-v1", {"random": "random"}, 4, 10, seed=3)
    other = collect_segments("Pendulum-v1", {"random": "random"}, 4, 10, seed=4)
    np.testing.assert_array_equal(first.obs, second.obs)
    np.testing.assert_array_equal(first.rewards, second.rewards)
    assert not np.array_equal(first.rewards, other.rewards)


def test_discrete_actions_are_one_hot_and_sb3_style_policies_work() -> None:
    class Predictor:
        def predict(self, obs, deterministic=False):
            return 1, None

    segments = collect_segments("CartPole-v1", {"right": Predictor()}, 3, 5, seed=0)
    assert segments.actions.shape == (3, 5, 2)
    np.testing.assert_array_equal(segments.actions[..., 1], 1.0)


def test_segments_never_cross_episode_ends_and_short_episodes_fail_clearly() -> None:
    # CartPole pushed right always falls within ~10 steps: 8-step windows fit, 60-step ones never do
    segments = collect_segments("CartPole-v1", {"right": lambda obs: 1}, 5, 8, seed=0)
    np.testing.assert_array_equal(segments.rewards, 1.0)
    with pytest.raises(RuntimeError, match=r"policy 'right' produced 0 of 2 segments of length 60"):
        collect_segments("CartPole-v1", {"right": lambda obs: 1}, 2, 60, seed=0, max_steps_per_policy=500)
    with pytest.raises(ValueError, match="unknown policy name 'expert'"):
        collect_segments("CartPole-v1", {"x": "expert"}, 2, 5)


def test_an_env_object_is_used_and_left_open() -> None:
    env = gym.make("Pendulum-v1")
    segments = collect_segments(env, {"random": "random"}, 2, 5, seed=0)
    assert len(segments) == 2
    env.reset(seed=0)  # still usable


def test_pair_indices_are_distinct() -> None:
    first, second = sample_pair_indices(5, 2000, np.random.default_rng(0))
    assert np.all(first != second) and first.max() == 4 and second.min() == 0


def _synthetic(n: int = 300, seed: int = 0) -> SegmentSet:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 5, 2)).astype(np.float32)
    return SegmentSet(obs, np.zeros((n, 5, 0), np.float32), obs[..., 0].astype(np.float64), np.zeros(n, int))


def test_split_is_honest_disjoint_val_labels_are_the_teachers_and_test_labels_are_oracle() -> None:
    segments = _synthetic()
    config = PairConfig(n_train=400, n_val=100, n_test=150, val_fraction=0.2, test_fraction=0.3)
    split = make_pair_split(segments, config, make_teacher("mistake", 0.3), seed=1)
    train, val, test = (set(p.segment_ids.tolist()) for p in (split.train, split.val, split.test))
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(val) <= 60 and len(test) <= 90
    assert (len(split.train), len(split.val), len(split.test)) == (400, 100, 150)
    assert 0.2 < split.train.corrupted.mean() < 0.4
    np.testing.assert_array_equal(split.test.labels, split.test.oracle)
    assert not split.test.corrupted.any()
    # validation pairs: the teacher's (noisy) labels, with the clean ones kept beside them
    assert 0.15 < split.val.corrupted.mean() < 0.45
    np.testing.assert_array_equal(split.val.corrupted, split.val.labels != split.val.oracle)
    np.testing.assert_array_equal(split.val.oracle, np.where(split.val.true_gap > 0, 1.0, 0.0))
    # labels agree with the true gap of the pair
    np.testing.assert_array_equal(split.test.oracle, np.where(split.test.true_gap > 0, 1.0, 0.0))


def test_skipped_queries_are_dropped_from_training_pairs() -> None:
    segments = _synthetic()
    split = make_pair_split(
        segments, PairConfig(n_train=500, n_val=0, n_test=0), make_teacher("skip", 0.0), seed=0
    )
    assert split.val is None and split.test is None
    assert 0 < len(split.train) < 500
    returns = segments.returns
    assert np.all(np.maximum(returns[split.train.first], returns[split.train.second]) >= 0.0)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n_train": 0}, "n_train=0 must be >= 1"),
        ({"n_val": -1}, "n_val=-1"),
        ({"val_fraction": 1.2}, r"val_fraction=1.2 must lie in \[0, 1\)"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "must be < 1"),
    ],
)
def test_pair_config_validation(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        PairConfig(**kwargs)
