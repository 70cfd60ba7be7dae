"""The self-paced curriculum accepts only what verifiably satisfies its constraints.

The optimiser's answer is replaced by chosen points (a step inside the KL bound, one at twice the bound,
one that breaks the performance constraint), so the acceptance check itself is what is tested; the
references (KL by quadrature, importance weights from scipy's Gamma density) are independent of the
module's closed forms. Also the KL of Gammas with different rates, the episode buffer and the schedules.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from aligngym.agents.adversarial import curriculum as curriculum_module
from aligngym.agents.adversarial.curriculum import (
    LinearAnnealCurriculum,
    SelfPacedGammaCurriculum,
    gamma_kl,
)

RATE = 1000.0


def quadrature_kl(k1: float, b1: float, k2: float, b2: float) -> float:
    p, q = stats.gamma(k1, scale=1 / b1), stats.gamma(k2, scale=1 / b2)
    low, high = p.ppf(1e-12), p.ppf(1 - 1e-12)
    return integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), low, high, limit=200)[0]


def k_at_kl(old_k: float, kl: float) -> float:
    """The concentration below ``old_k`` whose KL to Gamma(old_k) (same rate) is ``kl``, by quadrature."""
    return optimize.brentq(lambda k: quadrature_kl(k, RATE, old_k, RATE) - kl, 1.0, old_k - 1e-6)


def weighted_performance(k: float, old_k: float, alphas: np.ndarray, returns: np.ndarray) -> float:
    weights = stats.gamma(k, scale=1 / RATE).pdf(alphas) / stats.gamma(old_k, scale=1 / RATE).pdf(alphas)
    return float(np.mean(weights * returns))


def _propose(monkeypatch, k: float) -> None:
    """Make the optimiser answer ``k`` whatever the problem."""

    def fake_minimize(*args, **kwargs):
        return optimize.OptimizeResult(x=np.array([k]), message="proposed by the test", success=True)

    monkeypatch.setattr(curriculum_module.optimize, "minimize", fake_minimize)


def _filled(threshold: float, returns_fn=lambda a: np.full(a.size, 5.0)):
    curriculum = SelfPacedGammaCurriculum(performance_threshold=threshold, max_kl=0.5)
    alphas = np.random.default_rng(0).gamma(50.0, 1 / RATE, size=60)
    returns = returns_fn(alphas)
    curriculum.record(alphas, returns)
    return curriculum, alphas, returns


@pytest.mark.parametrize(("kl", "accepted"), [(0.45, True), (1.0, False), (0.6, False)])
def test_a_step_is_accepted_only_inside_the_kl_bound(monkeypatch, kl, accepted):
    curriculum, _, _ = _filled(threshold=1e-9)  # performance cannot bind
    proposed = k_at_kl(50.0, kl)  # KL 1.0 = twice the bound
    _propose(monkeypatch, proposed)
    update = curriculum.update()
    assert update.status == ("moved" if accepted else "rejected")
    assert curriculum.concentration == pytest.approx(proposed if accepted else 50.0)


def test_a_step_that_breaks_the_performance_constraint_is_refused(monkeypatch):
    """Returns are high only for large temperatures; lowering k lowers the weighted performance."""

    def returns_fn(alphas):
        return np.where(alphas > np.median(alphas), 10.0, 0.0)

    curriculum, alphas, returns = _filled(threshold=0.0, returns_fn=returns_fn)
    proposed = k_at_kl(50.0, 0.4)
    at_old, at_new = (weighted_performance(k, 50.0, alphas, returns) for k in (50.0, proposed))
    assert at_new < 0.8 * at_old
    curriculum.performance_threshold = 0.5 * (at_old + at_new)  # met now, broken by the step
    _propose(monkeypatch, proposed)
    update = curriculum.update()
    assert update.status == "rejected" and curriculum.concentration == 50.0
    assert update.performance == pytest.approx(at_old, rel=1e-6)


def test_the_real_optimiser_stays_inside_both_constraints():
    def returns_fn(alphas):
        return np.where(alphas > np.median(alphas), 10.0, 0.0)

    curriculum, alphas, returns = _filled(threshold=4.0, returns_fn=returns_fn)
    update = curriculum.update()
    assert update.status == "moved" and curriculum.concentration < 50.0
    assert quadrature_kl(curriculum.concentration, RATE, 50.0, RATE) <= 0.5 + 1e-6
    assert weighted_performance(curriculum.concentration, 50.0, alphas, returns) >= 4.0 - 1e-6
    assert update.performance == pytest.approx(
        weighted_performance(curriculum.concentration, 50.0, alphas, returns), rel=1e-6
    )


def test_frozen_exactly_when_performance_is_below_the_threshold():
    for threshold, status in ((5.5, "frozen"), (4.5, "moved")):
        curriculum, _, _ = _filled(threshold=threshold)  # every return is 5
        assert curriculum.update().status == status


@pytest.mark.parametrize(("k1", "b1", "k2", "b2"), [(3.0, 2.0, 5.0, 1.0), (50.0, 1000.0, 40.0, 500.0)])
def test_gamma_kl_with_different_rates_matches_quadrature(k1, b1, k2, b2):
    assert gamma_kl(k1, b1, k2, b2) == pytest.approx(quadrature_kl(k1, b1, k2, b2), rel=1e-5, abs=1e-8)


def test_the_buffer_keeps_the_most_recent_episodes():
    curriculum = SelfPacedGammaCurriculum(min_episodes=2, buffer_size=3)
    curriculum.record([0.1, 0.2], [1.0, 2.0])
    curriculum.record([0.3, 0.4], [3.0, 4.0])
    assert curriculum.buffer.alphas == [0.2, 0.3, 0.4] and curriculum.buffer.returns == [2.0, 3.0, 4.0]


def test_linear_anneal_stops_at_its_end_value():
    schedule = LinearAnnealCurriculum(start=0.05, end=0.01, iterations=4)
    means = []
    for _ in range(6):
        schedule.update()
        means.append(schedule.distribution().mean)
    assert means == pytest.approx([0.04, 0.03, 0.02, 0.01, 0.01, 0.01])
