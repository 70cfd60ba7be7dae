"""Temperature curricula for QARL: the self-paced Gamma curriculum and its two ablations.

Self-paced (SPDL-style, Klink et al. 2020, as used by QARL): p(alpha) = Gamma(k, rate b) with b fixed.
After an iteration, once at least ``min_episodes`` (alpha_i, J_i) pairs are buffered, the new concentration
solves

    min_k  KL(Gamma(k, b) || target)
    s.t.   mean_i( p_k(alpha_i) / p_old(alpha_i) * J_i ) >= xi     (importance-weighted performance)
           KL(Gamma(k, b) || p_old) <= max_kl                      (trust region)

with scipy's ``trust-constr``. If the performance constraint already fails at the current k, the
distribution is frozen for that round. Once KL(p || target) <= stop_kl the curriculum has arrived.
Ablations: ``LinearAnnealCurriculum`` (alpha moves linearly with the iteration count) and
``PointCurriculum`` (a single self-paced temperature instead of a distribution).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from scipy import optimize, special

from aligngym.agents.adversarial.temperature import (
    GammaTemperature,
    PointTemperature,
    TemperatureDistribution,
)

logger = logging.getLogger(__name__)

CURRICULA = ("self_paced", "linear", "point")
UpdateStatus = Literal["waiting", "moved", "frozen", "rejected", "done"]


def gamma_kl(k1: float, b1: float, k2: float, b2: float) -> float:
    """KL(Gamma(k1, rate b1) || Gamma(k2, rate b2)), closed form."""
    return float(
        (k1 - k2) * special.digamma(k1)
        - special.gammaln(k1)
        + special.gammaln(k2)
        + k2 * (np.log(b1) - np.log(b2))
        + k1 * (b2 - b1) / b1
    )


def _gamma_kl_dk1(k1: float, b1: float, k2: float, b2: float) -> float:
    """d KL(Gamma(k1, b1) || Gamma(k2, b2)) / d k1."""
    return float((k1 - k2) * special.polygamma(1, k1) + (b2 - b1) / b1)


def gamma_log_pdf(alpha: np.ndarray, k: float, rate: float) -> np.ndarray:
    """log density of Gamma(k, rate) at ``alpha`` (> 0)."""
    return k * np.log(rate) - special.gammaln(k) + (k - 1.0) * np.log(alpha) - rate * alpha


@dataclass
class CurriculumUpdate:
    """What one curriculum update did; logged per iteration."""

    status: UpdateStatus
    alpha_mean: float
    concentration: float | None = None
    kl_to_target: float | None = None
    kl_step: float | None = None
    performance: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class TemperatureCurriculum(Protocol):
    """What the QARL runner needs from a curriculum."""

    def distribution(self) -> TemperatureDistribution: ...

    def record(self, alphas: np.ndarray | list[float], returns: np.ndarray | list[float]) -> None: ...

    def update(self) -> CurriculumUpdate: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class _EpisodeBuffer:
    """The last ``capacity`` (alpha, J) pairs."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.alphas: list[float] = []
        self.returns: list[float] = []

    def add(self, alphas: np.ndarray | list[float], returns: np.ndarray | list[float]) -> None:
        alphas, returns = list(map(float, alphas)), list(map(float, returns))
        if len(alphas) != len(returns):
            raise ValueError(f"got {len(alphas)} temperatures but {len(returns)} returns")
        self.alphas = (self.alphas + alphas)[-self.capacity :]
        self.returns = (self.returns + returns)[-self.capacity :]

    def __len__(self) -> int:
        return len(self.alphas)

    def clear(self) -> None:
        self.alphas, self.returns = [], []


class SelfPacedGammaCurriculum:
    """The QARL curriculum: move Gamma(k, rate) toward Gamma(target_k, rate) while the protagonist keeps up.

    Example:
        >>> c = SelfPacedGammaCurriculum(performance_threshold=1.0)
        >>> c.record([0.05] * 30, [5.0] * 30)
        >>> c.update().status, c.concentration < 50
        ('moved', True)
    """

    def __init__(
        self,
        initial_concentration: float = 50.0,
        target_concentration: float = 1.0,
        rate: float = 1000.0,
        performance_threshold: float = 1.0,
        max_kl: float = 0.5,
        stop_kl: float = 0.01,
        min_episodes: int = 30,
        buffer_size: int = 100,
        min_concentration: float = 1e-3,
    ) -> None:
        if not (initial_concentration > 0 and target_concentration > 0 and rate > 0):
            raise ValueError("concentrations and rate must be > 0")
        if max_kl <= 0 or stop_kl < 0:
            raise ValueError(f"max_kl must be > 0 and stop_kl >= 0, got {max_kl}, {stop_kl}")
        if not 1 <= min_episodes <= buffer_size:
            raise ValueError(f"need 1 <= min_episodes <= buffer_size, got {min_episodes}, {buffer_size}")
        self.concentration = float(initial_concentration)
        self.target_concentration = float(target_concentration)
        self.rate = float(rate)
        self.performance_threshold = float(performance_threshold)
        self.max_kl = float(max_kl)
        self.stop_kl = float(stop_kl)
        self.min_episodes = min_episodes
        self.min_concentration = float(min_concentration)
        self.buffer = _EpisodeBuffer(buffer_size)

    def distribution(self) -> GammaTemperature:
        return GammaTemperature(self.concentration, self.rate)

    def kl_to_target(self, k: float | None = None) -> float:
        k = self.concentration if k is None else k
        return gamma_kl(k, self.rate, self.target_concentration, self.rate)

    def record(self, alphas: np.ndarray | list[float], returns: np.ndarray | list[float]) -> None:
        self.buffer.add(alphas, returns)

    def expected_performance(self, k: float, alphas: np.ndarray, returns: np.ndarray, old_k: float) -> float:
        """Importance-weighted estimate of E_{alpha ~ Gamma(k)}[J] from samples drawn under Gamma(old_k)."""
        weights = np.exp(gamma_log_pdf(alphas, k, self.rate) - gamma_log_pdf(alphas, old_k, self.rate))
        return float(np.mean(weights * returns))

    def update(self) -> CurriculumUpdate:
        """One self-paced step (see the module docstring); clears the buffer when it was used."""
        old_k = self.concentration
        if self.kl_to_target() <= self.stop_kl:
            return self._result("done", old_k)
        if len(self.buffer) < self.min_episodes:
            return self._result("waiting", old_k)
        # Gamma samples can underflow to exactly 0 in float32 observations: keep the log density finite.
        alphas = np.maximum(np.asarray(self.buffer.alphas), np.finfo(np.float64).tiny)
        returns = np.asarray(self.buffer.returns)
        self.buffer.clear()
        performance = self.expected_performance(old_k, alphas, returns, old_k)
        if performance < self.performance_threshold:
            return self._result("frozen", old_k, performance=performance)

        rate, target = self.rate, self.target_concentration

        def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
            return gamma_kl(x[0], rate, target, rate), np.array([_gamma_kl_dk1(x[0], rate, target, rate)])

        def perf(x: np.ndarray) -> float:
            return self.expected_performance(x[0], alphas, returns, old_k)

        def perf_grad(x: np.ndarray) -> np.ndarray:
            k = x[0]
            weights = np.exp(gamma_log_pdf(alphas, k, rate) - gamma_log_pdf(alphas, old_k, rate))
            dlogp = np.log(rate) - special.digamma(k) + np.log(alphas)
            return np.array([[np.mean(weights * returns * dlogp)]])

        def trust(x: np.ndarray) -> float:
            return gamma_kl(x[0], rate, old_k, rate)

        def trust_grad(x: np.ndarray) -> np.ndarray:
            return np.array([[_gamma_kl_dk1(x[0], rate, old_k, rate)]])

        constraints = [
            optimize.NonlinearConstraint(
                perf, self.performance_threshold, np.inf, jac=perf_grad, keep_feasible=True
            ),
            optimize.NonlinearConstraint(trust, -np.inf, self.max_kl, jac=trust_grad, keep_feasible=True),
        ]
        bounds = optimize.Bounds([self.min_concentration], [np.inf], keep_feasible=True)
        x0 = np.array([max(old_k, self.min_concentration)])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trust-constr warns about delta_grad == 0 on flat steps
            try:
                res = optimize.minimize(
                    objective,
                    x0,
                    method="trust-constr",
                    jac=True,
                    bounds=bounds,
                    constraints=constraints,
                    options={"gtol": 1e-4, "xtol": 1e-6},
                )
            except ValueError as exc:  # an infeasible start or a numerical failure: keep the old k
                logger.warning("self-paced update failed (%s); keeping k=%.4g", exc, old_k)
                return self._result("rejected", old_k, performance=performance)
        new_k = float(res.x[0])
        # Accept only what verifiably satisfies both constraints and improves the objective.
        feasible = (
            new_k >= self.min_concentration
            and trust(res.x) <= self.max_kl + 1e-8
            and perf(res.x) >= self.performance_threshold - 1e-8
        )
        if not (feasible and objective(res.x)[0] < objective(x0)[0]):
            logger.info("self-paced update not accepted (%s); keeping k=%.4g", res.message, old_k)
            return self._result("rejected", old_k, performance=performance)
        self.concentration = new_k
        return self._result("moved", old_k, performance=perf(res.x))

    def _result(
        self, status: UpdateStatus, old_k: float, performance: float | None = None
    ) -> CurriculumUpdate:
        return CurriculumUpdate(
            status=status,
            alpha_mean=self.distribution().mean,
            concentration=self.concentration,
            kl_to_target=self.kl_to_target(),
            kl_step=gamma_kl(self.concentration, self.rate, old_k, self.rate),
            performance=performance,
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "concentration": self.concentration,
            "alphas": self.buffer.alphas,
            "returns": self.buffer.returns,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.concentration = float(state["concentration"])
        self.buffer.clear()
        self.buffer.add(state["alphas"], state["returns"])


class LinearAnnealCurriculum:
    """Ablation: alpha goes linearly from ``start`` to ``end`` over ``iterations`` updates, then stays."""

    def __init__(self, start: float = 0.05, end: float = 0.001, iterations: int = 100) -> None:
        if start < 0 or end < 0 or iterations < 1:
            raise ValueError(f"need start, end >= 0 and iterations >= 1, got {start}, {end}, {iterations}")
        self.start, self.end, self.iterations = float(start), float(end), iterations
        self.step = 0

    def distribution(self) -> PointTemperature:
        fraction = min(self.step / self.iterations, 1.0)
        return PointTemperature(self.start + fraction * (self.end - self.start))

    def record(self, alphas: np.ndarray | list[float], returns: np.ndarray | list[float]) -> None:
        """The schedule ignores performance."""

    def update(self) -> CurriculumUpdate:
        self.step += 1
        status: UpdateStatus = "done" if self.step >= self.iterations else "moved"
        return CurriculumUpdate(status=status, alpha_mean=self.distribution().mean)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])


class PointCurriculum:
    """Ablation: one self-paced temperature; steps down by ``step`` when the mean return is >= threshold."""

    def __init__(
        self,
        start: float = 0.05,
        end: float = 0.001,
        step: float = 0.005,
        performance_threshold: float = 1.0,
        min_episodes: int = 30,
    ) -> None:
        if not (start >= end >= 0 and step > 0 and min_episodes >= 1):
            raise ValueError(
                f"need start >= end >= 0, step > 0, min_episodes >= 1; got {start}, {end}, {step}"
            )
        self.alpha, self.end, self.step = float(start), float(end), float(step)
        self.performance_threshold = float(performance_threshold)
        self.min_episodes = min_episodes
        self.buffer = _EpisodeBuffer(max(100, min_episodes))

    def distribution(self) -> PointTemperature:
        return PointTemperature(self.alpha)

    def record(self, alphas: np.ndarray | list[float], returns: np.ndarray | list[float]) -> None:
        self.buffer.add(alphas, returns)

    def update(self) -> CurriculumUpdate:
        if self.alpha <= self.end:
            return CurriculumUpdate(status="done", alpha_mean=self.alpha)
        if len(self.buffer) < self.min_episodes:
            return CurriculumUpdate(status="waiting", alpha_mean=self.alpha)
        performance = float(np.mean(self.buffer.returns))
        self.buffer.clear()
        if performance < self.performance_threshold:
            return CurriculumUpdate(status="frozen", alpha_mean=self.alpha, performance=performance)
        self.alpha = max(self.alpha - self.step, self.end)
        return CurriculumUpdate(status="moved", alpha_mean=self.alpha, performance=performance)

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "alphas": self.buffer.alphas, "returns": self.buffer.returns}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.alpha = float(state["alpha"])
        self.buffer.clear()
        self.buffer.add(state["alphas"], state["returns"])
