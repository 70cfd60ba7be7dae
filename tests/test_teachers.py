"""Simulated teachers: corruption rates match their parameters, exact irrational flips, composition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit

from aligngym.rewards.teachers import NOISE_KINDS, Teacher, irrational_flip_count, make_teacher

N = 20_000


def _returns(seed: int = 0, n: int = N) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=n), rng.normal(size=n)


def _binomial_tolerance(p: float, n: int) -> float:
    return 4.0 * math.sqrt(p * (1 - p) / n)  # 4 standard errors


def test_oracle_labels_are_rational_and_uncorrupted() -> None:
    a, b = np.array([3.0, 1.0, 2.0, -1.0]), np.array([1.0, 2.0, 2.0, -5.0])
    out = make_teacher("oracle").label(a, b, np.random.default_rng(0))
    assert out.labels.tolist() == [1.0, 0.0, 0.5, 1.0]
    assert out.oracle.tolist() == [1.0, 0.0, 0.5, 1.0]
    assert not out.corrupted.any() and out.keep.all() and out.corruption_rate == 0.0


@pytest.mark.parametrize("eps", [0.1, 0.2, 0.4])
def test_mistake_teacher_flips_at_rate_eps(eps: float) -> None:
    a, b = _returns()
    out = make_teacher("mistake", eps).label(a, b, np.random.default_rng(1))
    assert abs(out.corruption_rate - eps) < _binomial_tolerance(eps, N)
    # a corrupted label is exactly the flipped oracle label
    assert np.all(out.labels[out.corrupted] == 1.0 - out.oracle[out.corrupted])
    assert np.all(out.labels[~out.corrupted] == out.oracle[~out.corrupted])


@pytest.mark.parametrize("beta", [0.5, 1.0, 3.0])
def test_stochastic_teacher_matches_bradley_terry_probabilities(beta: float) -> None:
    a, b = _returns()
    out = make_teacher("stochastic", beta).label(a, b, np.random.default_rng(2))
    expected = float(np.mean(expit(-beta * np.abs(a - b))))  # P(label disagrees with the oracle)
    assert abs(out.corruption_rate - expected) < _binomial_tolerance(expected, N)
    # calibration: in a bin of gaps around 1.0, P(first preferred) is sigmoid(beta * gap)
    in_bin = np.abs((a - b) - 1.0) < 0.1
    assert abs(out.labels[in_bin].mean() - expit(beta)) < _binomial_tolerance(expit(beta), int(in_bin.sum()))


@pytest.mark.parametrize(
    ("batch", "p", "expected"), [(64, 1 / 3, 4), (64, 1 / 2, 8), (64, 2 / 3, 16), (50, 0.5, 7), (1, 0.5, 1)]
)
def test_irrational_flip_count_is_floor_of_b_to_the_p(batch: int, p: float, expected: int) -> None:
    assert irrational_flip_count(batch, p) == expected


@pytest.mark.parametrize("p", [1 / 3, 1 / 2, 2 / 3])
def test_irrational_teacher_flips_exactly_the_largest_gaps_per_batch(p: float) -> None:
    a, b = _returns(n=64 * 10 + 20)  # ten full batches and a partial one of 20
    out = make_teacher("irrational", p, batch_size=64).label(a, b, np.random.default_rng(3))
    gaps = np.abs(a - b)
    for start in range(0, len(a), 64):
        window = slice(start, start + 64)
        k = irrational_flip_count(len(gaps[window]), p)
        flipped = out.corrupted[window]
        assert flipped.sum() == k
        # the flipped pairs are the k largest gaps of the batch
        assert gaps[window][flipped].min() >= np.sort(gaps[window])[::-1][k - 1]
    assert out.corruption_rate == pytest.approx(
        (10 * irrational_flip_count(64, p) + irrational_flip_count(20, p)) / len(a)
    )


def test_myopic_teacher_weighs_recent_steps() -> None:
    # item a earns its reward early, item b late; equal undiscounted returns would tie, so b gets a bit less
    a = np.array([[1.0, 0.0, 0.0, 0.0]])
    b = np.array([[0.0, 0.0, 0.0, 0.9]])
    rng = np.random.default_rng(0)
    assert make_teacher("oracle").label(a, b, rng).labels.tolist() == [1.0]
    out = make_teacher("myopic", 0.5).label(a, b, rng)  # a seen as 0.125, b as 0.9
    assert out.labels.tolist() == [0.0] and out.corrupted.tolist() == [True]
    with pytest.raises(ValueError, match=r"needs per-step rewards of shape \[n, H\]"):
        make_teacher("myopic", 0.5).label(a.sum(1), b.sum(1), rng)


def test_myopic_corruption_grows_as_gamma_falls() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(5000, 25)), rng.normal(size=(5000, 25))
    rates = [
        make_teacher("myopic", g).label(a, b, np.random.default_rng(0)).corruption_rate
        for g in (1.0, 0.9, 0.5)
    ]
    assert rates[0] == 0.0 and 0.05 < rates[1] < rates[2] < 0.5


def test_skip_and_equal_thresholds() -> None:
    a, b = np.array([0.5, 3.0, 2.0, 5.0]), np.array([0.2, 2.95, 1.0, 5.0])
    out = Teacher(skip_threshold=1.0, equal_threshold=0.1).label(a, b, np.random.default_rng(0))
    assert out.keep.tolist() == [False, True, True, True]
    assert out.labels.tolist() == [1.0, 0.5, 1.0, 0.5]
    assert out.corrupted.tolist() == [False, True, False, False]  # 0.5 where the oracle says 1 differs


def test_teachers_compose_and_are_seeded() -> None:
    a, b = _returns()
    teacher = make_teacher("irrational", 0.5, eps=0.2, batch_size=64)
    first = teacher.label(a, b, np.random.default_rng(7))
    second = teacher.label(a, b, np.random.default_rng(7))
    assert np.array_equal(first.labels, second.labels)
    irrational_only = make_teacher("irrational", 0.5).label(a, b, np.random.default_rng(7)).corruption_rate
    # independent mistakes on top: rate = q (1 - eps) + (1 - q) eps
    expected = irrational_only * 0.8 + (1 - irrational_only) * 0.2
    assert abs(first.corruption_rate - expected) < _binomial_tolerance(expected, N)
    other_seed = teacher.label(a, b, np.random.default_rng(8))
    assert not np.array_equal(first.labels, other_seed.labels)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"kind": "lazy"}, r"unknown teacher 'lazy'; valid teachers: oracle, stochastic, mistake"),
        ({"kind": "mistake", "level": 1.5}, r"eps=1.5 is invalid; valid: in \[0, 1\]"),
        ({"kind": "mistake"}, r"needs a level \(its eps\)"),
        ({"kind": "myopic", "level": 0.0}, r"gamma=0.0"),
        ({"kind": "stochastic", "level": -1.0}, r"beta=-1.0"),
        ({"kind": "irrational", "level": 2.0}, r"irrational_p=2.0"),
        ({"kind": "oracle", "level": 0.1}, r"takes no level"),
        ({"kind": "oracle", "temperature": 2.0}, r"unknown teacher field\(s\) temperature"),
    ],
)
def test_bad_teacher_settings_fail_with_valid_choices(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        make_teacher(**kwargs)


def test_every_noise_kind_is_buildable() -> None:
    levels = {"stochastic": 1.0, "mistake": 0.1, "myopic": 0.9, "irrational": 0.5, "skip": 0.0, "equal": 0.1}
    for kind in NOISE_KINDS:
        teacher = make_teacher(kind, levels.get(kind))
        field = NOISE_KINDS[kind]
        assert field is None or getattr(teacher, field) == levels[kind]
