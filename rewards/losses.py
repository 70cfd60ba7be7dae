"""Preference losses as functions of per-pair margins, shared by control reward nets and LLM trainers.

A margin is ``m_i = r(w_i) - r(l_i)`` for the pair's labelled winner ``w_i``: segment returns of a
reward net, DPO implicit rewards ``beta * (logratio(y_w) - logratio(y_l))`` or reward-model scores.
Every loss here sees only margins (and optional soft labels), so one implementation serves both
domains. Formulas: Bradley-Terry; R3M (arXiv 2406.15568, sparse outlier vector ``delta``); adaptive
preference scaling (arXiv 2406.02764, per-pair temperature ``tau``); conservative label smoothing;
TRL's ``robust`` (rDPO) loss; RIME (arXiv 2402.17257, trust / flip / drop each pair by its KL, with
running statistics kept in the loss instance). Per-pair variables (``delta``, ``tau``, RIME's decisions)
are solved on detached margins inside the call (the papers' alternating optimisation), so a caller just
backpropagates ``out.loss``.

``LossSpec(name, params)`` says which loss with which parameters. It is validated once, when built
(unknown name, unknown / ill-typed / out-of-range parameter: one ``ValueError`` naming the valid
choices), and every config that names a loss carries it unchanged: ``FitConfig``, the preference-based
RL loop, the benchmark's methods, the DPO / reward-model configs and the text cells.

Adding a loss takes one class: a frozen dataclass subclass of ``PreferenceLoss`` decorated with
``@register_loss``, with a unique ``name``, its parameters as typed fields with defaults (the one place
a parameter is named and defaulted), range checks in ``__post_init__`` and
``_terms(margins) -> (per_pair_loss, per_pair_diagnostics)`` for "the first item is preferred"
(soft labels are handled by the base class). A ``"delta"``-style outlier flag goes in the diagnostics
as ``"flagged"`` / ``"flagged_fraction"`` (via ``_summaries``), so the trainers log it and the
benchmarks score it. It then works in ``fit_reward``, both benchmark domains, ``RobustDPOTrainer`` and
``RobustRewardTrainer``, and the tests parametrised over ``LOSSES`` cover it.

Example:
    >>> import torch
    >>> spec = LossSpec("r3m", {"lam": 0.2})
    >>> out = spec.build()(torch.tensor([2.0, -1.0]))
    >>> out.per_pair.shape, float(out.diagnostics["flagged_fraction"])
    (torch.Size([2]), 0.5)
    >>> LossSpec("r3m", {"lamda": 0.2})
    Traceback (most recent call last):
    ...
    ValueError: loss 'r3m' has no parameter(s) lamda; valid: lam
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

LOG2 = math.log(2.0)
_HESSIAN_FLOOR = 1e-8  # spec's guard: Newton steps stay finite where the curvature vanishes


@dataclass
class LossOutput:
    """A loss value with its per-pair terms and loss-specific diagnostics (detached)."""

    loss: Tensor
    per_pair: Tensor
    diagnostics: dict[str, Tensor | float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Pure functions (the formulas; used by the loss objects and by tests)


def r3m_threshold(lam: float) -> float:
    """R3M's margin threshold ``c = log(1/lam - 1)``: pairs with margin below ``c`` get ``delta > 0``."""
    return math.log(1.0 / lam - 1.0)


def r3m_delta(margins: Tensor, lam: float) -> Tensor:
    """Closed-form R3M outlier step ``delta_i = max(log(1/lam - 1) - m_i, 0)`` on detached margins."""
    return torch.clamp(r3m_threshold(lam) - margins.detach(), min=0.0)


def r3m_clipped_logistic(margins: Tensor, lam: float) -> Tensor:
    """R3M's per-pair loss with ``delta`` minimised out: logistic for ``m >= c``, slope ``lam`` below.

    ``min_{delta >= 0} -log sigmoid(m + delta) + lam * delta``; its gradient magnitude is clipped at lam.
    """
    c = r3m_threshold(lam)
    logistic = -F.logsigmoid(margins)
    linear = -F.logsigmoid(torch.full_like(margins, c)) + lam * (c - margins)
    return torch.where(margins >= c, logistic, linear)


def adaptive_objective(margins: Tensor, tau: Tensor, rho0: float) -> Tensor:
    """Adaptive-scaling per-pair objective ``-tau * log(2 sigmoid(m / tau)) + rho0 * tau``."""
    # -log(2 sigmoid(x)) = softplus(-x) - log 2: one fused op fewer on the training path
    return tau * (F.softplus(-margins / tau) + (rho0 - LOG2))


@functools.lru_cache(maxsize=64)
def adaptive_ratio(rho0: float) -> float:
    """The ratio ``x* = |d| / tau`` at which the adaptive objective is stationary (inf if ``rho0 >= log 2``).

    d/dtau [-tau log(2 sigmoid(d/tau)) + rho0 tau] = H(sigmoid(d/tau)) - log 2 + rho0, with H the binary
    entropy: it depends on d/tau only, is even in it and falls from rho0 at 0 to rho0 - log 2 at
    infinity. So for 0 < rho0 < log 2 there is one root x* (solved here once by bisection to double
    precision) and the per-pair minimiser is ``clip(|d| / x*, tau0, tau_max)``.
    """
    if rho0 >= LOG2:
        return math.inf

    def excess(x: float) -> float:  # H(sigmoid(x)) - log 2 + rho0, written for x >= 0 without overflow
        e = math.exp(-x)
        return math.log1p(e) + x * e / (1.0 + e) - LOG2 + rho0

    lo, hi = 0.0, 1.0
    while excess(hi) > 0.0:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) > 0.0 else (lo, mid)
    return 0.5 * (lo + hi)


def adaptive_tau(margins: Tensor, tau0: float, tau_max: float, rho0: float) -> Tensor:
    """Exact per-pair temperature ``argmin_{tau in [tau0, tau_max]}`` of the adaptive objective.

    ``tau = clip(|d| / x*(rho0), tau0, tau_max)`` on the detached margin d (see ``adaptive_ratio``):
    ambiguous pairs (small |d|) get tau0, clear pairs tau_max, and every pair tau0 if rho0 >= log 2.
    """
    d = margins.detach()
    d = d.float() if d.dtype in (torch.float16, torch.bfloat16) else d
    return torch.clamp(d.abs() / adaptive_ratio(rho0), tau0, tau_max)


def adaptive_tau_newton(margins: Tensor, tau0: float, tau_max: float, rho0: float, steps: int = 5) -> Tensor:
    """The paper's / official code's per-pair projected Newton iteration (start ``tau = 1``).

    grad = -log(2 s) + (1 - s) d / tau + rho0,  hess = max(d^2 / tau^3 s (1 - s), 1e-8),  s = sigmoid(d/tau).
    Kept for reproducing the official code: it does NOT converge for every margin (the gradient is a
    sigmoid-shaped function of tau and Newton oscillates, e.g. rho0 = 0.3, d = -1, tau_max = 3), which
    is why the losses use the exact ``adaptive_tau`` by default.
    """
    d = margins.detach()
    d = d.float() if d.dtype in (torch.float16, torch.bfloat16) else d
    tau = torch.ones_like(d).clamp(tau0, tau_max)
    for _ in range(steps):
        x = d / tau
        grad = -(F.logsigmoid(x) + LOG2) + torch.sigmoid(-x) * x + rho0
        hess = torch.clamp(x * x / tau * torch.sigmoid(x) * torch.sigmoid(-x), min=_HESSIAN_FLOOR)
        tau = torch.clamp(tau - grad / hess, tau0, tau_max)
    return tau


def adaptive_quadratic_tau(
    margins: Tensor, tau0: float, tau_max: float, rho0: float, steps: int = 8
) -> Tensor:
    """Per-pair temperature of the quadratic variant ``-tau log sigmoid(m/tau) + rho0 tau^2 - log2 tau``.

    Stationary point ``tau = (p log p + (1-p) log(1-p) + log 2) / (2 rho0)``, ``p = sigmoid(m/tau)``
    (implicit in tau). Solved by safeguarded Newton: the derivative is increasing in tau (curvature
    ``d^2/tau^3 s(1-s) + 2 rho0 > 0``), so a bracket [lo, hi] is kept and a Newton step that leaves it
    is replaced by bisection; bound optima are detected first. The root lies below log(2) / (2 rho0).
    """
    d = margins.detach()
    d = d.float() if d.dtype in (torch.float16, torch.bfloat16) else d

    def grad_hess(tau: Tensor) -> tuple[Tensor, Tensor]:
        x = d / tau
        # d/dtau of -tau log sigmoid(d/tau) is the binary entropy H(sigmoid(d/tau))
        grad = -(F.logsigmoid(x) + LOG2) + torch.sigmoid(-x) * x + 2.0 * rho0 * tau
        hess = x * x / tau * torch.sigmoid(x) * torch.sigmoid(-x) + 2.0 * rho0
        return grad, hess

    upper = min(tau_max, max(tau0, LOG2 / (2.0 * rho0)))
    lo = torch.full_like(d, tau0)
    hi = torch.full_like(d, upper)
    at_lo = grad_hess(lo)[0] >= 0.0
    at_hi = grad_hess(hi)[0] <= 0.0
    tau = torch.full_like(d, min(max(1.0, tau0), upper))
    for _ in range(steps):
        grad, hess = grad_hess(tau)
        lo = torch.where(grad < 0.0, tau, lo)
        hi = torch.where(grad > 0.0, tau, hi)
        newton = tau - grad / hess
        tau = torch.where((newton >= lo) & (newton <= hi), newton, 0.5 * (lo + hi))
    return torch.where(at_lo, lo.new_full((), tau0), torch.where(at_hi, hi.new_full((), upper), tau))


def adaptive_quadratic_objective(margins: Tensor, tau: Tensor, rho0: float) -> Tensor:
    """Quadratic-variant per-pair objective ``-tau log sigmoid(m/tau) + rho0 tau^2 - log(2) tau``."""
    return -tau * F.logsigmoid(margins / tau) + rho0 * tau * tau - LOG2 * tau


# ---------------------------------------------------------------------------------------------------
# Loss objects and their registry


@dataclass(frozen=True)
class PreferenceLoss:
    """Base class: a callable ``loss_fn(margins, soft_labels=None) -> LossOutput``.

    ``soft_labels[i]`` is the probability that the FIRST item (whose reward enters the margin with
    a plus sign) is preferred: 1 = first preferred, 0 = second, 0.5 = equal. A soft label ``y``
    mixes the two directions, ``y * f(m) + (1 - y) * f(-m)``, which for Bradley-Terry is the usual
    cross-entropy; per-pair variables are solved per direction.
    """

    name: ClassVar[str] = ""

    def __call__(self, margins: Tensor, soft_labels: Tensor | None = None) -> LossOutput:
        if margins.dim() != 1:
            raise ValueError(f"margins must be a 1-D tensor [n], got shape {tuple(margins.shape)}")
        m = margins.float() if margins.dtype in (torch.float16, torch.bfloat16) else margins
        if soft_labels is None:
            per_pair, per_pair_diag = self._terms(m)
            hard = None  # every label is hard
        else:
            y = self._check_labels(soft_labels, m)
            fwd, fwd_diag = self._terms(m)
            bwd, bwd_diag = self._terms(-m)
            per_pair = y * fwd + (1.0 - y) * bwd
            per_pair_diag = {k: y * fwd_diag[k] + (1.0 - y) * bwd_diag[k] for k in fwd_diag}
            hard = (y == 0.0) | (y == 1.0)
        diagnostics: dict[str, Tensor | float] = {k: v.detach() for k, v in per_pair_diag.items()}
        diagnostics.update(self._summaries(diagnostics, hard))
        return LossOutput(loss=per_pair.mean(), per_pair=per_pair, diagnostics=diagnostics)

    def _terms(self, margins: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-pair loss for 'first item preferred' and per-pair diagnostics (tensors of shape [n])."""
        raise NotImplementedError

    def _summaries(self, per_pair_diag: dict[str, Tensor | float], hard: Tensor | None) -> dict[str, Tensor]:
        """Batch-level diagnostics; ``hard`` marks pairs with a 0/1 label (None: all of them)."""
        return {}

    @staticmethod
    def _check_labels(soft_labels: Tensor, margins: Tensor) -> Tensor:
        if soft_labels.shape != margins.shape:
            raise ValueError(
                f"soft_labels shape {tuple(soft_labels.shape)} must match margins {tuple(margins.shape)}"
            )
        y = soft_labels.to(device=margins.device, dtype=margins.dtype)
        if bool(((y < 0.0) | (y > 1.0)).any()):
            raise ValueError("soft_labels must lie in [0, 1] (1 = first preferred, 0.5 = equal)")
        return y


LOSSES: dict[str, type[PreferenceLoss]] = {}
"""The registered losses by name (``@register_loss`` adds one)."""

_L = TypeVar("_L", bound=type[PreferenceLoss])


def register_loss(cls: _L) -> _L:
    """Class decorator: add a ``PreferenceLoss`` subclass to ``LOSSES`` under its ``name``."""
    if not cls.name or cls.name in LOSSES:
        raise ValueError(f"loss class {cls.__name__} needs a unique, non-empty name; got {cls.name!r}")
    LOSSES[cls.name] = cls
    return cls


def _check_range(loss: str, param: str, value: float, low: float, high: float, closed: str = "") -> None:
    """Raise one ValueError naming the parameter, its value and the valid range.

    ``closed`` holds "[" and/or "]" for a closed lower / upper end (open by default).
    """
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    ok_low = numeric and (value >= low if "[" in closed else value > low)
    ok_high = numeric and (value <= high if "]" in closed else value < high)
    if not (ok_low and ok_high):
        left = "[" if "[" in closed else "("
        right = "]" if "]" in closed else ")"
        raise ValueError(
            f"loss {loss!r}: {param}={value!r} is outside the valid range {left}{low}, {high}{right}"
        )


@register_loss
@dataclass(frozen=True)
class BradleyTerryLoss(PreferenceLoss):
    """Bradley-Terry: ``-log sigmoid(m)`` (TRL's ``sigmoid`` DPO loss when m is the DPO margin)."""

    name: ClassVar[str] = "bt"

    def _terms(self, margins: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return -F.logsigmoid(margins), {}


@register_loss
@dataclass(frozen=True)
class R3MLoss(PreferenceLoss):
    """R3M: ``-log sigmoid(m + delta) + lam |delta|`` with the closed-form ``delta`` on detached margins.

    ``delta_i > 0`` flags pair i as a suspected outlier. As ``lam -> 1`` it becomes Bradley-Terry.
    """

    name: ClassVar[str] = "r3m"
    lam: float = 0.5

    def __post_init__(self) -> None:
        _check_range(self.name, "lam", self.lam, 0.0, 1.0, "")

    def _terms(self, margins: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        delta = r3m_delta(margins, self.lam)
        per_pair = -F.logsigmoid(margins + delta) + self.lam * delta
        return per_pair, {"delta": delta}

    def _summaries(self, diag: dict[str, Tensor | float], hard: Tensor | None) -> dict[str, Tensor]:
        flagged = diag["delta"] > 0
        if hard is None:
            return {"flagged": flagged, "flagged_fraction": flagged.float().mean()}
        flagged = flagged & hard
        return {"flagged": flagged, "flagged_fraction": flagged.sum() / hard.sum().clamp(min=1)}


def _tau_summaries(tau: Tensor, tau0: float, tau_max: float) -> dict[str, Tensor]:
    return {
        "tau_mean": tau.mean(),
        "tau_at_min": (tau <= tau0 * (1 + 1e-6)).float().mean(),
        "tau_at_max": (tau >= tau_max * (1 - 1e-6)).float().mean(),
    }


@register_loss
@dataclass(frozen=True)
class AdaptiveLoss(PreferenceLoss):
    """Adaptive preference scaling: ``-tau log(2 sigmoid(m/tau)) + rho0 tau``, tau in [tau0, tau_max].

    tau is the exact per-pair minimiser on the detached margin (``solver="exact"``), or the official
    code's ``newton_steps`` projected Newton steps (``solver="newton"``, which can miss the minimum).
    """

    name: ClassVar[str] = "adaptive"
    SOLVERS: ClassVar[tuple[str, ...]] = ("exact", "newton")
    tau0: float = 0.1
    tau_max: float = 1.0
    rho0: float = 0.1
    newton_steps: int = 5
    solver: str = "exact"

    def __post_init__(self) -> None:
        _check_range(self.name, "tau0", self.tau0, 0.0, math.inf, "")
        _check_range(self.name, "tau_max", self.tau_max, self.tau0, math.inf, "[")
        _check_range(self.name, "rho0", self.rho0, 0.0, math.inf, "")
        _check_steps(self.name, self.newton_steps)
        if self.solver not in self.SOLVERS:
            raise ValueError(
                f"loss {self.name!r}: unknown solver {self.solver!r}; valid: {', '.join(self.SOLVERS)}"
            )

    def _terms(self, margins: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if self.solver == "exact":
            tau = adaptive_tau(margins, self.tau0, self.tau_max, self.rho0)
        else:
            tau = adaptive_tau_newton(margins, self.tau0, self.tau_max, self.rho0, self.newton_steps)
        tau = tau.to(margins.dtype)
        return adaptive_objective(margins, tau, self.rho0), {"tau": tau}

    def _summaries(self, diag: dict[str, Tensor | float], hard: Tensor | None) -> dict[str, Tensor]:
        return _tau_summaries(diag["tau"], self.tau0, self.tau_max)


@register_loss
@dataclass(frozen=True)
class AdaptiveQuadraticLoss(PreferenceLoss):
    """Quadratic adaptive scaling: ``-tau log sigmoid(m/tau) + rho0 tau^2 - log(2) tau``, tau >= tau0.

    ``tau_max`` defaults to infinity (the paper's variant has only the lower bound).
    """

    name: ClassVar[str] = "adaptive_quadratic"
    tau0: float = 0.1
    tau_max: float = math.inf
    rho0: float = 0.1
    newton_steps: int = 8

    def __post_init__(self) -> None:
        _check_range(self.name, "tau0", self.tau0, 0.0, math.inf, "")
        _check_range(self.name, "tau_max", self.tau_max, self.tau0, math.inf, "[]")
        _check_range(self.name, "rho0", self.rho0, 0.0, math.inf, "")
        _check_steps(self.name, self.newton_steps)

    def _terms(self, margins: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        tau = adaptive_quadratic_tau(margins, self.tau0, self.tau_max, self.rho0, self.newton_steps)
        tau = tau.to(margins.dtype)
        return adaptive_quadratic_objective(margins, tau, self.rho0), {"tau": tau}

    def _summaries(self, diag: dict[str, Tensor | float], hard: Tensor | None) -> dict[str, Tensor]:
        return _tau_summaries(diag["tau"], self.tau0, self.tau_max)


@register_loss
@dataclass(frozen=True)
class LabelSmoothingLoss(PreferenceLoss):
    """Conservative Bradley-Terry: ``-(1 - eps) log sigmoid(m) - eps log sigmoid(-m)``."""

    name: ClassVar[str] = "smoothing"
    eps: float = 0.1

    def __post_init__(self) -> None:
        _check_range(self.name, "eps", self.eps, 0.0, 0.5, "[")

    def _terms(self, margins: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return -(1.0 - self.eps) * F.logsigmoid(margins) - self.eps * F.logsigmoid(-margins), {}


@register_loss
@dataclass(frozen=True)
class RobustLoss(PreferenceLoss):
    """TRL's ``robust`` (rDPO) loss with assumed flip rate eps, unbiased under random label flips.

    ``((1 - eps) (-log sigmoid(m)) - eps (-log sigmoid(-m))) / (1 - 2 eps)`` (TRL 1.16 DPOTrainer).
    """

    name: ClassVar[str] = "robust"
    eps: float = 0.1

    def __post_init__(self) -> None:
        _check_range(self.name, "eps", self.eps, 0.0, 0.5, "[")

    def _terms(self, margins: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        clean = -(1.0 - self.eps) * F.logsigmoid(margins)
        flipped = -self.eps * F.logsigmoid(-margins)
        return (clean - flipped) / (1.0 - 2.0 * self.eps), {}


@dataclass
class RimeState:
    """RIME's running statistics of the trusted pairs' KL and the count of training calls.

    The official code's ``RunningMeanStd(mode="fixed", lr=0.1)``: mean and max are exponential moving
    averages with rate ``rate``, the variance is the count-weighted (parallel) variance of every trusted
    KL seen. It starts at max 0, so the first call trusts every pair (``-log(1e-8)`` ~ 18.4).
    """

    mean: float = 0.0
    var: float = 1.0
    max: float = 0.0
    count: int = 0
    steps: int = 0

    def update(self, kl: Tensor, trusted: Tensor, rate: float) -> None:
        """One training call: the statistics of the KLs of the pairs it trusted (``trusted`` a bool mask)."""
        self.steps += 1
        selected = kl[trusted].double()
        n = selected.numel()
        if n == 0:  # the official code would average an empty array into NaN; keep the statistics
            return
        batch_var, batch_mean = torch.var_mean(selected, unbiased=False)
        batch_mean, batch_var, batch_max = torch.stack([batch_mean, batch_var, selected.max()]).tolist()
        delta = batch_mean - self.mean
        total = self.count + n
        self.var = (self.var * self.count + batch_var * n + delta * delta * self.count * n / total) / total
        self.mean += rate * delta
        self.max += rate * (batch_max - self.max)
        self.count = total


@register_loss
@dataclass(frozen=True)
class RimeLoss(PreferenceLoss):
    """RIME (Cheng et al., ICML 2024, arXiv 2402.17257): trust, flip or drop each pair by its KL.

    Per pair, on the detached margin, ``KL = -log sigmoid(m)`` (KL between the one-hot label and the
    predicted preference). Pairs with ``KL < tau_lower`` are trusted (Bradley-Terry term), pairs with
    ``KL > -log(flip_tau)`` are trained with the label flipped, the rest are dropped; the loss averages
    over the pairs used. ``tau_lower = -log(x) + alpha x + min(beta_t var, uncertainty_cap)`` with x and
    var the running max and variance of the trusted KLs (``RimeState``) and
    ``beta_t = max(beta_min, beta_max - (beta_max - beta_min) t / decay_steps)``, t the training calls
    so far. Defaults are the official run script's (alpha 0.5, beta 3 -> 1, flip_tau 0.001, cap 3,
    rate 0.1); the code adds the VARIANCE (the paper writes a standard deviation) and we follow the code.

    Differences from the official code, which runs once per epoch over the whole buffer: here the
    thresholds are applied per call (minibatch) and the statistics and ``t`` advance per TRAINING call
    (margins that require grad; evaluation calls leave the state alone), so ``decay_steps`` counts
    optimiser steps (the code's k = 60 epochs over 1-10 minibatches is roughly 200 steps). A pair above
    both thresholds is flipped (the code trains it twice). The state lives in the instance:
    ``LossSpec.build()`` gives a fresh one per fit. Soft labels mix both directions like every loss.
    Limit: with ``flip_tau=0`` (never flip), ``uncertainty_cap=inf`` and large betas every pair is
    trusted and RIME is Bradley-Terry.
    """

    name: ClassVar[str] = "rime"
    alpha: float = 0.5
    beta_max: float = 3.0
    beta_min: float = 1.0
    decay_steps: int = 200
    flip_tau: float = 0.001
    uncertainty_cap: float = 3.0
    rate: float = 0.1

    def __post_init__(self) -> None:
        _check_range(self.name, "alpha", self.alpha, 0.0, math.inf, "[")
        _check_range(self.name, "beta_min", self.beta_min, 0.0, math.inf, "[")
        _check_range(self.name, "beta_max", self.beta_max, self.beta_min, math.inf, "[")
        _check_range(self.name, "flip_tau", self.flip_tau, 0.0, 1.0, "[")
        _check_range(self.name, "uncertainty_cap", self.uncertainty_cap, 0.0, math.inf, "[]")
        _check_range(self.name, "rate", self.rate, 0.0, 1.0, "]")
        if (
            not isinstance(self.decay_steps, int)
            or isinstance(self.decay_steps, bool)
            or self.decay_steps < 1
        ):
            raise ValueError(f"loss {self.name!r}: decay_steps={self.decay_steps!r} must be an integer >= 1")
        object.__setattr__(self, "state", RimeState())

    def thresholds(self) -> tuple[float, float]:
        """The current ``(tau_lower, tau_upper)`` on the KL."""
        state: RimeState = self.state  # type: ignore[attr-defined]
        decay = (self.beta_max - self.beta_min) * state.steps / self.decay_steps
        beta = max(self.beta_min, self.beta_max - decay)
        lower = (
            -math.log(state.max + 1e-8) + self.alpha * state.max + min(beta * state.var, self.uncertainty_cap)
        )
        upper = -math.log(self.flip_tau) if self.flip_tau > 0 else math.inf
        return lower, upper

    def __call__(self, margins: Tensor, soft_labels: Tensor | None = None) -> LossOutput:
        lower, upper = self.thresholds()
        object.__setattr__(self, "_current", (lower, upper))  # what _terms and _summaries of this call use
        out = super().__call__(margins, soft_labels)
        if margins.requires_grad:  # a training step: advance the thresholds' statistics
            diagnostics = out.diagnostics
            self.state.update(diagnostics["kl"], diagnostics["trusted"] > 0.5, self.rate)  # type: ignore[attr-defined]
        return out

    def _terms(self, margins: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        lower, upper = self._current  # type: ignore[attr-defined]
        kl = -F.logsigmoid(margins.detach())  # KL(one-hot label || sigmoid(m)) on the detached margin
        flipped = kl > upper
        trusted = (kl < lower) & ~flipped
        used = (trusted | flipped).to(margins.dtype)
        flip = flipped.to(margins.dtype)
        # Bradley-Terry on the (possibly flipped) label: -log sigmoid(+-m), averaged over the pairs used
        scale = len(margins) / used.sum().clamp(min=1.0)
        per_pair = -F.logsigmoid((1.0 - 2.0 * flip) * margins) * (used * scale)
        return per_pair, {"kl": kl, "trusted": trusted.to(margins.dtype), "flipped": flip}

    def _summaries(self, diag: dict[str, Tensor | float], hard: Tensor | None) -> dict[str, Tensor | float]:
        flagged = diag["trusted"] < 0.5  # flipped or dropped
        flipped = diag["flipped"] > 0.5
        if hard is not None:
            flagged, flipped = flagged & hard, flipped & hard
        count = torch.tensor(float(len(flagged))) if hard is None else hard.sum().clamp(min=1).float()
        lower, upper = self._current  # type: ignore[attr-defined]
        return {
            "flagged": flagged,
            "flagged_fraction": flagged.sum() / count,
            "flipped_fraction": flipped.sum() / count,
            "tau_lower": lower,
            "tau_upper": upper,
        }


def _check_steps(loss: str, steps: int) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"loss {loss!r}: newton_steps={steps!r} must be an integer >= 1")


def loss_params(name: str) -> tuple[str, ...]:
    """The parameter names of the registered loss ``name``."""
    return tuple(f.name for f in dataclasses.fields(_loss_class(name)))


def _loss_class(name: str) -> type[PreferenceLoss]:
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}")
    return LOSSES[name]


def _checked_value(loss: str, param: str, value: Any, expected: Any) -> Any:
    """``value`` if it has the field's type (an int passes as a float, a bool never as a number)."""
    ok = {
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
    }.get(expected, True)
    if not ok:
        raise ValueError(
            f"loss {loss!r}: {param}={value!r} has type {type(value).__name__}; expected {expected.__name__}"
        )
    return float(value) if expected is float else value


@dataclass(frozen=True)
class LossSpec:
    """Which registered loss, with which parameters (the loss class's own names; omitted ones take its defaults).

    Validated when built, so a config holding one cannot fail later. ``params`` keeps only what was
    given (ints of float parameters become floats); ``resolved_params()`` adds the defaults.
    """

    name: str = "bt"
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        cls = _loss_class(self.name)
        if not isinstance(self.params, Mapping):
            raise ValueError(f"loss {self.name!r}: params must be a mapping, got {self.params!r}")  # noqa: TRY004
        valid = loss_params(self.name)
        unknown = sorted(set(self.params) - set(valid))
        if unknown:
            raise ValueError(
                f"loss {self.name!r} has no parameter(s) {', '.join(map(str, unknown))}; "
                f"valid: {', '.join(valid) or '(none)'}"
            )
        hints = typing.get_type_hints(cls)
        params = {k: _checked_value(self.name, k, v, hints[k]) for k, v in self.params.items()}
        object.__setattr__(self, "params", params)
        cls(**params)  # range checks of the loss itself

    @classmethod
    def of(cls, value: LossSpec | str | Mapping[str, Any]) -> LossSpec:
        """A LossSpec from itself, a bare loss name, or a mapping ``{name: ..., params: {...}}``."""
        if isinstance(value, LossSpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping) and set(value) <= {"name", "params"} and "name" in value:
            return cls(value["name"], value.get("params") or {})
        raise ValueError(f"a loss is a name or {{name: ..., params: {{...}}}}, got {value!r}")

    def build(self) -> PreferenceLoss:
        """The loss object (a fresh, immutable instance)."""
        return LOSSES[self.name](**self.params)

    def resolved_params(self) -> dict[str, Any]:
        """Every parameter of the loss, the given ones and the class defaults."""
        built = self.build()
        return {name: getattr(built, name) for name in loss_params(self.name)}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    def __str__(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}({inner})" if inner else self.name


def make_loss(name: str, **params: Any) -> PreferenceLoss:
    """``LossSpec(name, params).build()``: unknown names, unknown parameters or bad values raise ValueError."""
    return LossSpec(name, params).build()
