"""runs/statistics.py against brute force, rliable's definitions and coverage on synthetic data."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from aligngym.runs import statistics as S


def test_iqm_is_the_mean_of_the_middle_half():
    # 8 runs: drop the 2 lowest and 2 highest, average the middle 4
    scores = np.array([100.0, -50.0, 1.0, 2.0, 3.0, 4.0, 7.0, -9.0])
    assert S.iqm(scores) == pytest.approx(np.mean([1.0, 2.0, 3.0, 4.0]))
    # over runs x tasks the runs of every task are pooled (rliable: trim_mean(axis=None))
    grid = np.arange(12.0).reshape(4, 3)
    assert S.iqm(grid) == pytest.approx(np.mean(np.arange(3.0, 9.0)))
    # one wild seed does not move it (the mean would move by 20)
    assert S.iqm(np.array([1.0, 2.0, 3.0, 4.0, 100.0])) == pytest.approx(3.0)


def _brute_improvement(x, y):
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(x, y)]
    return float(np.mean(wins))


def test_probability_of_improvement_limits_and_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=6), rng.normal(size=4)
    assert S.probability_of_improvement(x, y) == pytest.approx(_brute_improvement(x, y))
    # dominating scores: 1; dominated: 0; identical distributions of values: 1/2
    assert S.probability_of_improvement(x + 100, y) == 1.0
    assert S.probability_of_improvement(x - 100, y) == 0.0
    assert S.probability_of_improvement(x, x) == 0.5
    assert S.probability_of_improvement(np.ones(3), np.ones(5)) == 0.5
    # Mann-Whitney U / (n m) per task, averaged over tasks (rliable's definition)
    xt, yt = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)) + 0.4
    expected = np.mean([stats.mannwhitneyu(xt[:, t], yt[:, t]).statistic / 25 for t in range(3)])
    assert S.probability_of_improvement(xt, yt) == pytest.approx(expected)
    with pytest.raises(ValueError, match="same tasks"):
        S.probability_of_improvement(xt, yt[:, :2])


def test_stratified_bootstrap_resamples_runs_within_each_task():
    # task t holds only values 10 t .. 10 t + 3: a resample may never mix tasks
    scores = np.arange(4)[:, None] + 10.0 * np.arange(3)[None, :]
    samples = S.stratified_bootstrap_samples(scores, reps=200, seed=1)
    assert samples.shape == (200, 4, 3)
    for t in range(3):
        assert set(np.unique(samples[:, :, t])) <= set(scores[:, t])
    # with replacement: some resample repeats a run
    assert any(len(set(s[:, 0])) < 4 for s in samples)


def test_iqm_interval_brackets_the_estimate_and_reports_the_seeds():
    scores = np.array([0.1, 0.4, 0.5, 0.6, 0.9])
    interval = S.iqm_interval(scores, reps=2000)
    assert interval.n == 5
    assert interval.low <= interval.value <= interval.high
    assert 0.1 <= interval.low < interval.high <= 0.9
    single = S.iqm_interval(np.array([0.3]))
    assert single.value == 0.3 and math.isnan(single.low) and single.n == 1
    with pytest.raises(ValueError, match="finite"):
        S.iqm_interval(np.array([1.0, np.nan]))


def _coverage(interval_fn, n, trials, seed):
    """Share of trials whose interval covers the true mean 1.0 of normal(1, 2) samples."""
    rng = np.random.default_rng(seed)
    hits = 0
    for trial in range(trials):
        interval = interval_fn(rng.normal(1.0, 2.0, n), trial)
        hits += interval.low <= 1.0 <= interval.high
    return hits / trials


def test_bootstrap_ci_of_the_mean_covers_at_the_nominal_rate_with_enough_runs():
    def mean_interval(sample, trial):
        low, high = S.bootstrap_interval(sample, lambda s: s.mean(axis=1), reps=1000, seed=trial)
        return S.Interval(float(sample.mean()), low, high, len(sample))

    # 30 runs: the percentile bootstrap is close to 95 % (binomial sd over 400 trials ~ 1.1 %)
    assert _coverage(mean_interval, 30, 400, seed=3) == pytest.approx(0.95, abs=0.035)
    # 5 runs: it under-covers clearly; this is why paired differences use a t interval
    assert _coverage(mean_interval, 5, 400, seed=4) < 0.9


def test_paired_difference_t_interval_covers_at_the_nominal_rate_with_five_seeds():
    def diff_interval(sample, trial):
        return S.paired_difference(sample, np.zeros_like(sample))

    assert _coverage(diff_interval, 5, 1000, seed=5) == pytest.approx(0.95, abs=0.02)


def test_paired_difference_is_the_mean_of_per_seed_differences():
    x, y = np.array([1.0, 2.0, 4.0]), np.array([0.5, 2.5, 1.0])
    d = x - y
    interval = S.paired_difference(x, y)
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert interval.value == pytest.approx(d.mean())
    assert (interval.low, interval.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert interval.n == 3
    # a constant shift has zero spread: the interval collapses onto it and excludes 0
    shift = S.paired_difference(y + 0.2, y)
    assert shift.low == pytest.approx(0.2) and shift.excludes(0.0)
    with pytest.raises(ValueError, match="equal length"):
        S.paired_difference(x, y[:2])


def test_improvement_interval_is_tight_for_dominating_scores():
    x, y = np.linspace(10, 11, 6), np.linspace(0, 1, 6)
    interval = S.improvement_interval(x, y, reps=500)
    assert (interval.value, interval.low, interval.high) == (1.0, 1.0, 1.0)
    same = S.improvement_interval(y, y, reps=2000)
    assert same.value == 0.5 and same.low < 0.5 < same.high


def test_power_matches_simulation_and_inverts():
    gap, sd, n = 0.5, 1.0, 10
    power = S.paired_power(gap, sd, n)
    rng = np.random.default_rng(7)
    diffs = rng.normal(gap, sd, size=(4000, n))
    rejected = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05
    assert power == pytest.approx(rejected.mean(), abs=0.03)
    # under no effect the power is the test's level
    assert S.paired_power(0.0, sd, n) == pytest.approx(0.05, abs=1e-9)
    needed = S.seeds_for_power(gap, sd, power=0.8)
    assert S.paired_power(gap, sd, needed) >= 0.8 > S.paired_power(gap, sd, needed - 1)
    assert needed == 34  # textbook: d = 0.5, two-sided 5 %, 80 % power -> 34 pairs
    detectable = S.detectable_gap(sd, needed, power=0.8)
    assert detectable <= gap and S.paired_power(detectable, sd, needed) == pytest.approx(0.8, abs=1e-6)
    assert S.detectable_gap(sd, 5) > S.detectable_gap(sd, 20)


def test_interval_text():
    assert S.Interval(0.1234, 0.1, 0.15, 5).text() == "0.123 [0.100, 0.150]"
    assert S.Interval(0.05, -0.01, 0.1, 5).text(signed=True, digits=2) == "+0.05 [-0.01, +0.10]"
    assert S.NO_ESTIMATE.text() == "-"
    assert not S.Interval(0.05, -0.01, 0.1, 5).excludes(0.0)
