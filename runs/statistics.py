"""Statistics for few-seed RL comparisons (Agarwal et al. 2021, "Deep RL at the edge of the statistical precipice").

What the reports print, and why each one:

- :func:`iqm_interval`: the interquartile mean (IQM, the mean of the middle 50 % of runs; robust to one
  wild seed, less noisy than the median) with a stratified percentile-bootstrap 95 % CI;
- :func:`improvement_interval`: the probability of improvement ``P(X > Y)`` of method X over baseline Y
  (ties count 1/2), with a stratified bootstrap CI;
- :func:`paired_difference`: the mean of per-seed differences X - Y on the same seed (same labels and
  rollouts, so the seed-to-seed spread cancels) with a Student-t 95 % CI, the sharpest test of a
  method against its baseline;
- :func:`paired_power`, :func:`seeds_for_power`, :func:`detectable_gap`: the power of that paired test
  from a measured spread of the differences, i.e. how many seeds detect a given gap.

The point estimates and the bootstrap follow ``rliable`` 1.2.0 exactly (``metrics.aggregate_iqm`` is
``scipy.stats.trim_mean(scores, 0.25, axis=None)``; ``metrics.probability_of_improvement`` averages the
Mann-Whitney ``U / (n m)`` over tasks; ``library.StratifiedBootstrap`` resamples runs within each task,
``method="percentile"``). rliable itself is not a dependency: its bootstrap imports ``arch`` 7, which
fails to import with the pandas 3 of this environment (rliable pins ``arch < 8``).

The paired difference uses a t interval, not a bootstrap: with 5 seeds the percentile bootstrap of a
mean covers the true mean only about 82 % of the time (2000 normal samples; it uses the plug-in spread
and normal-like quantiles), the t interval 95.5 %, exact for normal differences at any n
(``tests/test_statistics.py`` measures both coverages). Scores are arrays ``[runs]`` (one task) or ``[runs, tasks]``.

Example:
    >>> import numpy as np
    >>> iqm(np.array([0.0, 1.0, 2.0, 3.0, 100.0]))  # the middle three of five
    2.0
    >>> probability_of_improvement(np.array([2.0, 3.0]), np.array([0.0, 1.0]))
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
REPS = 10_000
"""Bootstrap replications (rliable's interval estimates default to 50k; 10k moves a CI end by < 1 %)."""


@dataclass(frozen=True)
class Interval:
    """A point estimate, its confidence interval and how many seeds (runs) stand behind it."""

    value: float
    low: float
    high: float
    n: int

    def excludes(self, x: float = 0.0) -> bool:
        """True when ``x`` lies outside the interval (e.g. a difference significantly away from 0)."""
        return bool(x < self.low or x > self.high)

    def text(self, digits: int = 3, signed: bool = False) -> str:
        """``0.123 [0.100, 0.150]``; ``-`` when there is no estimate."""
        if math.isnan(self.value):
            return "-"
        fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
        if math.isnan(self.low):
            return fmt.format(self.value)
        return f"{fmt.format(self.value)} [{fmt.format(self.low)}, {fmt.format(self.high)}]"


NO_ESTIMATE = Interval(math.nan, math.nan, math.nan, 0)


def _as_runs_by_tasks(scores: np.ndarray) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"scores must have shape [runs] or [runs, tasks] with runs >= 1; got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("scores must be finite (drop missing runs before computing statistics)")
    return array


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean over all runs and tasks: ``scipy.stats.trim_mean(scores, 0.25, axis=None)``."""
    return float(stats.trim_mean(_as_runs_by_tasks(scores), 0.25, axis=None))


def stratified_bootstrap_samples(scores: np.ndarray, reps: int = REPS, seed: int = 0) -> np.ndarray:
    """``reps`` resamples ``[reps, runs, tasks]``: runs drawn with replacement within each task (stratum)."""
    array = _as_runs_by_tasks(scores)
    runs, tasks = array.shape
    rng = np.random.default_rng(seed)
    index = rng.integers(0, runs, size=(reps, runs, tasks))
    return array[index, np.arange(tasks)]


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_interval(
    scores: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    level: float = LEVEL,
    reps: int = REPS,
    seed: int = 0,
) -> tuple[float, float]:
    """Stratified percentile-bootstrap CI of ``statistic``, which maps ``[reps, runs * tasks]`` to ``[reps]``."""
    samples = stratified_bootstrap_samples(scores, reps, seed)
    return _percentiles(statistic(samples.reshape(reps, -1)), level)


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    return stats.trim_mean(samples, 0.25, axis=1)


def iqm_interval(scores: np.ndarray, level: float = LEVEL, reps: int = REPS, seed: int = 0) -> Interval:
    """IQM with its stratified percentile-bootstrap CI (one run: the value, no interval)."""
    array = _as_runs_by_tasks(scores)
    value = iqm(array)
    if array.shape[0] < 2:
        return Interval(value, math.nan, math.nan, array.shape[0])
    low, high = bootstrap_interval(array, _iqm_rows, level, reps, seed)
    return Interval(value, low, high, array.shape[0])


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``P(X > Y) + P(X = Y) / 2`` per leading index, averaged over tasks; x [..., n, T], y [..., m, T]."""
    greater = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    equal = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return (greater + 0.5 * equal).mean(axis=-1)


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray) -> float:
    """Probability that a run of X beats a run of Y on the same task (ties 1/2), averaged over tasks.

    Equals rliable's ``metrics.probability_of_improvement`` (Mann-Whitney ``U / (n m)`` per task).
    """
    x, y = _as_runs_by_tasks(scores_x), _as_runs_by_tasks(scores_y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"X and Y must have the same tasks; got {x.shape[1]} and {y.shape[1]}")
    return float(_improvement(x, y))


def improvement_interval(
    scores_x: np.ndarray, scores_y: np.ndarray, level: float = LEVEL, reps: int = REPS, seed: int = 0
) -> Interval:
    """``P(X > Y)`` with a CI from resampling the runs of X and of Y independently within each task."""
    x, y = _as_runs_by_tasks(scores_x), _as_runs_by_tasks(scores_y)
    value = probability_of_improvement(x, y)
    n = min(x.shape[0], y.shape[0])
    if n < 2:
        return Interval(value, math.nan, math.nan, n)
    samples = _improvement(
        stratified_bootstrap_samples(x, reps, seed), stratified_bootstrap_samples(y, reps, seed + 1)
    )
    return Interval(value, *_percentiles(samples, level), n)


def paired_difference(scores_x: np.ndarray, scores_y: np.ndarray, level: float = LEVEL) -> Interval:
    """Mean of the per-seed differences ``x_i - y_i`` with a Student-t CI (n - 1 degrees of freedom)."""
    x, y = np.asarray(scores_x, dtype=np.float64), np.asarray(scores_y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired scores must be 1-D of equal length; got {x.shape} and {y.shape}")
    diff = _as_runs_by_tasks(x - y)[:, 0]
    n, mean = len(diff), float(diff.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = stats.t.ppf(0.5 + level / 2.0, n - 1) * diff.std(ddof=1) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_power(gap: float, sd: float, n: int, alpha: float = 1.0 - LEVEL) -> float:
    """Power of the two-sided paired t test at level ``alpha`` to detect a true mean difference ``gap``.

    ``sd`` is the standard deviation of the per-seed differences; noncentral t with ``n - 1`` d.o.f.
    """
    if n < 2:
        return math.nan
    if sd <= 0:
        return 1.0 if gap != 0 else alpha
    df = n - 1
    critical = stats.t.ppf(1.0 - alpha / 2.0, df)
    shift = abs(gap) / sd * math.sqrt(n)
    return float(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))


def seeds_for_power(
    gap: float, sd: float, power: float = 0.8, alpha: float = 1.0 - LEVEL, max_seeds: int = 10_000
) -> int | None:
    """The fewest seeds at which the paired t test detects ``gap`` with ``power``; None if above max_seeds."""
    for n in range(2, max_seeds + 1):
        if paired_power(gap, sd, n, alpha) >= power:
            return n
    return None


def detectable_gap(sd: float, n: int, power: float = 0.8, alpha: float = 1.0 - LEVEL) -> float:
    """The smallest true mean difference that ``n`` paired seeds detect with ``power`` (given ``sd``)."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd <= 0:
        return 0.0
    high = sd
    while paired_power(high, sd, n, alpha) < power:
        high *= 2.0
    low = 0.0
    for _ in range(60):
        middle = (low + high) / 2.0
        low, high = (middle, high) if paired_power(middle, sd, n, alpha) < power else (low, middle)
    return high
