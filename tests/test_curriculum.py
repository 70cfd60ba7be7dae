"""The QARL temperature curricula: self-paced Gamma updates (moves, freezes, trust region) and ablations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from aligngym.agents.adversarial.curriculum import (
    LinearAnnealCurriculum,
    PointCurriculum,
    SelfPacedGammaCurriculum,
    gamma_kl,
)
from aligngym.agents.adversarial.temperature import GammaTemperature, PointTemperature


def numeric_kl(k1: float, k2: float, rate: float = 1000.0) -> float:
    """KL(Gamma(k1, rate) || Gamma(k2, rate)) by quadrature, independent of the closed form."""
    p, q = stats.gamma(k1, scale=1 / rate), stats.gamma(k2, scale=1 / rate)
    low, high = p.ppf(1e-12), p.ppf(1 - 1e-12)
    value, _ = integrate.quad(lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), low, high, limit=200)
    return value


def samples(k: float, n: int = 60, seed: int = 0, rate: float = 1000.0) -> np.ndarray:
    return np.random.default_rng(seed).gamma(k, 1 / rate, size=n)


@pytest.mark.parametrize(("k1", "k2"), [(50.0, 43.0), (1.0, 50.0), (3.3, 1.0)])
def test_gamma_kl_closed_form_matches_quadrature(k1: float, k2: float) -> None:
    assert gamma_kl(k1, 1000.0, k2, 1000.0) == pytest.approx(numeric_kl(k1, k2), rel=1e-5, abs=1e-8)


def test_moves_toward_target_within_trust_region_when_performance_holds() -> None:
    curriculum = SelfPacedGammaCurriculum(performance_threshold=1.0)
    kl_before = curriculum.kl_to_target()
    alphas = samples(50.0)
    curriculum.record(alphas, np.full(alphas.size, 5.0))
    update = curriculum.update()
    assert update.status == "moved"
    assert curriculum.concentration < 50.0
    assert curriculum.kl_to_target() < kl_before
    step = numeric_kl(curriculum.concentration, 50.0)
    assert step <= 0.5 + 1e-6
    assert step > 0.4  # the objective pushes to the trust-region boundary when the constraint is slack
    assert curriculum.distribution().mean == pytest.approx(curriculum.concentration / 1000.0)


def test_freezes_when_performance_fails() -> None:
    curriculum = SelfPacedGammaCurriculum(performance_threshold=10.0)
    alphas = samples(50.0)
    curriculum.record(alphas, np.full(alphas.size, 2.0))
    update = curriculum.update()
    assert update.status == "frozen"
    assert curriculum.concentration == 50.0
    assert update.performance == pytest.approx(2.0)
    assert len(curriculum.buffer) == 0  # the round is spent


def test_performance_constraint_binds_on_importance_weighted_return() -> None:
    # J grows with alpha (a weaker adversary), so lowering k lowers the importance-weighted return.
    alphas = samples(50.0, n=200, seed=1)
    returns = 1000.0 * alphas  # mean about 50
    threshold = 49.0
    curriculum = SelfPacedGammaCurriculum(performance_threshold=threshold, min_episodes=30, buffer_size=200)
    curriculum.record(alphas, returns)
    assert curriculum.update().status == "moved"
    new_k = curriculum.concentration
    weights = stats.gamma(new_k, scale=1e-3).pdf(alphas) / stats.gamma(50.0, scale=1e-3).pdf(alphas)
    assert np.mean(weights * returns) >= threshold - 1e-6
    assert np.mean(weights * returns) == pytest.approx(threshold, abs=0.2)  # active constraint
    assert numeric_kl(new_k, 50.0) < 0.5  # not the trust region that stopped it
    assert new_k < 50.0


def test_waits_for_enough_episodes_then_stops_at_target() -> None:
    curriculum = SelfPacedGammaCurriculum(performance_threshold=1.0)
    curriculum.record(samples(50.0, n=29), np.full(29, 5.0))
    assert curriculum.update().status == "waiting"
    assert curriculum.concentration == 50.0
    statuses = []
    for seed in range(40):
        alphas = samples(curriculum.concentration, n=30, seed=seed)
        curriculum.record(alphas, np.full(30, 5.0))
        update = curriculum.update()
        statuses.append(update.status)
        assert update.kl_step is not None and update.kl_step <= 0.5 + 1e-6
        if update.status == "done":
            break
    assert statuses[-1] == "done"
    assert curriculum.kl_to_target() <= 0.01
    assert 5 < len(statuses) < 40


def test_state_dict_round_trip() -> None:
    curriculum = SelfPacedGammaCurriculum()
    curriculum.record([0.04, 0.05], [3.0, 4.0])
    curriculum.concentration = 12.5
    other = SelfPacedGammaCurriculum()
    other.load_state_dict(curriculum.state_dict())
    assert other.concentration == 12.5
    assert other.buffer.alphas == [0.04, 0.05] and other.buffer.returns == [3.0, 4.0]


def test_linear_anneal_ablation() -> None:
    curriculum = LinearAnnealCurriculum(start=0.05, end=0.001, iterations=4)
    means = [curriculum.distribution().mean]
    for _ in range(6):
        curriculum.update()
        means.append(curriculum.distribution().mean)
    assert means[:5] == pytest.approx([0.05, 0.03775, 0.0255, 0.01325, 0.001])
    assert means[5:] == pytest.approx([0.001, 0.001])


def test_point_ablation_steps_only_when_performance_holds() -> None:
    curriculum = PointCurriculum(start=0.05, end=0.001, step=0.02, performance_threshold=3.0, min_episodes=2)
    curriculum.record([0.05, 0.05], [1.0, 2.0])
    assert curriculum.update().status == "frozen" and curriculum.alpha == 0.05
    curriculum.record([0.05, 0.05], [4.0, 5.0])
    assert curriculum.update().status == "moved" and curriculum.alpha == pytest.approx(0.03)
    for _ in range(3):
        curriculum.record([0.0, 0.0], [4.0, 5.0])
        curriculum.update()
    assert curriculum.alpha == pytest.approx(0.001)
    assert isinstance(curriculum.distribution(), PointTemperature)


def test_temperature_distributions_validate_and_sample() -> None:
    rng = np.random.default_rng(0)
    draws = np.array([GammaTemperature(50.0, 1000.0).sample(rng) for _ in range(4000)])
    assert draws.mean() == pytest.approx(0.05, rel=0.02)
    assert PointTemperature(0.0).sample(rng) == 0.0
    with pytest.raises(ValueError, match="concentration"):
        GammaTemperature(0.0)
    with pytest.raises(ValueError, match=">= 0"):
        PointTemperature(-1.0)
