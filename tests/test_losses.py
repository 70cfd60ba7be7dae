"""Preference losses: definitions, limits, exact tau solutions, TRL equivalence, validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aligngym.rewards.losses import (
    LOSSES,
    adaptive_objective,
    adaptive_quadratic_objective,
    adaptive_quadratic_tau,
    adaptive_ratio,
    adaptive_tau,
    adaptive_tau_newton,
    make_loss,
    r3m_clipped_logistic,
    r3m_delta,
    r3m_threshold,
)

MARGINS = torch.linspace(-12.0, 12.0, 241, dtype=torch.float64)


def _grid_argmin(
    objective, margins: torch.Tensor, tau_max: float, rho0: float, tau0: float = 0.1
) -> torch.Tensor:
    """Brute-force 1-D minimum over [tau0, tau_max]: grid spacing 1e-3, then 1e-6 around its best point."""
    coarse = torch.linspace(tau0, tau_max, round((tau_max - tau0) / 1e-3) + 1, dtype=torch.float64)
    best = coarse[objective(margins[:, None], coarse[None, :], rho0).argmin(dim=1)]
    offsets = torch.linspace(-2e-3, 2e-3, 4001, dtype=torch.float64)
    fine = torch.clamp(best[:, None] + offsets[None, :], tau0, tau_max)
    return fine.gather(1, objective(margins[:, None], fine, rho0).argmin(dim=1, keepdim=True)).squeeze(1)


def test_registry_names_and_unknown_name() -> None:
    assert set(LOSSES) == {"bt", "r3m", "adaptive", "adaptive_quadratic", "smoothing", "robust", "rime"}
    with pytest.raises(
        ValueError, match=r"unknown loss 'dpo'.*adaptive, adaptive_quadratic, bt, r3m, rime, robust"
    ):
        make_loss("dpo")


@pytest.mark.parametrize(
    ("name", "params", "pattern"),
    [
        ("r3m", {"lam": 1.0}, r"lam=1.0 is outside the valid range \(0.0, 1.0\)"),
        ("r3m", {"lam": 0.0}, r"lam=0.0"),
        ("r3m", {"lam": float("nan")}, r"lam=nan"),
        ("adaptive", {"tau0": 0.0}, r"tau0=0.0"),
        ("adaptive", {"tau0": 0.5, "tau_max": 0.2}, r"tau_max=0.2 is outside the valid range \[0.5, inf\)"),
        ("adaptive", {"rho0": -0.1}, r"rho0=-0.1"),
        ("adaptive", {"newton_steps": 0}, r"newton_steps=0"),
        ("adaptive", {"solver": "lbfgs"}, r"unknown solver 'lbfgs'; valid: exact, newton"),
        ("smoothing", {"eps": 0.5}, r"eps=0.5 is outside the valid range \[0.0, 0.5\)"),
        ("robust", {"eps": -0.01}, r"eps=-0.01"),
        ("bt", {"lam": 0.3}, r"no parameter\(s\) lam; valid: \(none\)"),
        ("r3m", {"lambda_": 0.3}, r"no parameter\(s\) lambda_; valid: lam"),
    ],
)
def test_bad_parameters_fail_at_construction(name: str, params: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        make_loss(name, **params)


def test_bt_is_negative_logsigmoid_and_stable_for_huge_margins() -> None:
    margins = torch.tensor([-1e4, -30.0, 0.0, 30.0, 1e4], requires_grad=True)
    out = make_loss("bt")(margins)
    torch.testing.assert_close(
        out.per_pair, torch.tensor([1e4, 30.0, math.log(2.0), 0.0, 0.0]), atol=1e-6, rtol=1e-6
    )
    out.loss.backward()
    assert torch.isfinite(margins.grad).all()
    torch.testing.assert_close(margins.grad, torch.tensor([-0.2, -0.2, -0.1, 0.0, 0.0]), atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_is_finite_and_differentiable_for_extreme_margins(name: str) -> None:
    margins = torch.tensor([-1e6, -50.0, -1e-30, 0.0, 1e-30, 50.0, 1e6], requires_grad=True)
    out = make_loss(name)(margins)
    out.loss.backward()
    assert out.per_pair.shape == (7,)
    assert torch.isfinite(out.per_pair).all() and torch.isfinite(margins.grad).all()
    if name not in ("smoothing", "robust"):  # those two push confident margins back on purpose
        assert (margins.grad <= 1e-12).all()


def test_r3m_with_lambda_to_one_equals_bradley_terry() -> None:
    margins = MARGINS.clone().requires_grad_(True)
    bt = make_loss("bt")(margins)
    r3m = make_loss("r3m", lam=1.0 - 1e-9)(margins)
    assert float(r3m.diagnostics["flagged_fraction"]) == 0.0
    torch.testing.assert_close(r3m.per_pair, bt.per_pair, atol=1e-12, rtol=0)
    (g_bt,) = torch.autograd.grad(bt.loss, margins)
    (g_r3m,) = torch.autograd.grad(r3m.loss, margins)
    torch.testing.assert_close(g_r3m, g_bt, atol=1e-12, rtol=0)


@pytest.mark.parametrize("lam", [0.1, 0.25, 0.5, 0.75, 0.9])
def test_r3m_equals_clipped_logistic_in_value_and_gradient(lam: float) -> None:
    margins = MARGINS.clone().requires_grad_(True)
    out = make_loss("r3m", lam=lam)(margins)
    clipped = r3m_clipped_logistic(margins, lam)
    torch.testing.assert_close(out.per_pair, clipped, atol=1e-12, rtol=1e-12)
    (g_r3m,) = torch.autograd.grad(out.loss, margins)
    (g_clip,) = torch.autograd.grad(clipped.mean(), margins)
    torch.testing.assert_close(g_r3m, g_clip, atol=1e-12, rtol=1e-9)
    # the gradient magnitude per pair is clipped at lambda (times 1/n from the mean)
    assert float(g_r3m.abs().max()) * len(margins) <= lam + 1e-12
    # delta is the minimiser of -log sigmoid(m + delta) + lam * delta over delta >= 0 (grid check)
    deltas = torch.linspace(0.0, 30.0, 300_001, dtype=torch.float64)
    m = MARGINS[::20]
    objective = -F.logsigmoid(m[:, None] + deltas[None, :]) + lam * deltas[None, :]
    torch.testing.assert_close(r3m_delta(m, lam), deltas[objective.argmin(dim=1)], atol=2e-4, rtol=0)


def test_r3m_flags_exactly_the_pairs_below_threshold() -> None:
    lam = 0.2
    c = r3m_threshold(lam)
    assert c == pytest.approx(math.log(4.0))
    margins = torch.tensor([c - 1.0, c - 1e-6, c + 1e-6, 5.0, -3.0])
    out = make_loss("r3m", lam=lam)(margins)
    assert out.diagnostics["flagged"].tolist() == [True, True, False, False, True]
    assert float(out.diagnostics["flagged_fraction"]) == pytest.approx(0.6)
    torch.testing.assert_close(out.diagnostics["delta"], torch.clamp(c - margins, min=0.0))


@pytest.mark.parametrize("tau_max", [1.0, 3.0])
@pytest.mark.parametrize("rho0", [0.05, 0.1, 0.3, 0.5, 0.8])
def test_adaptive_tau_equals_brute_force_grid_minimum(tau_max: float, rho0: float) -> None:
    tau = adaptive_tau(MARGINS, 0.1, tau_max, rho0)
    assert (tau - _grid_argmin(adaptive_objective, MARGINS, tau_max, rho0)).abs().max() < 1e-4


@pytest.mark.parametrize("tau_max", [1.0, 3.0])
@pytest.mark.parametrize("rho0", [0.05, 0.1, 0.3, 0.5, 0.8])
def test_adaptive_quadratic_newton_equals_brute_force_grid_minimum(tau_max: float, rho0: float) -> None:
    tau = adaptive_quadratic_tau(MARGINS, 0.1, tau_max, rho0, steps=8)
    assert (tau - _grid_argmin(adaptive_quadratic_objective, MARGINS, tau_max, rho0)).abs().max() < 1e-4


def test_adaptive_quadratic_tau_satisfies_the_closed_form_fixed_point() -> None:
    rho0, tau0 = 0.2, 0.1
    tau = adaptive_quadratic_tau(MARGINS, tau0, math.inf, rho0, steps=12)
    p = torch.sigmoid(MARGINS / tau)
    neg_entropy = torch.xlogy(p, p) + torch.xlogy(1 - p, 1 - p)
    torch.testing.assert_close(
        tau, torch.clamp((neg_entropy + math.log(2.0)) / (2 * rho0), min=tau0), atol=1e-8, rtol=0
    )


def test_adaptive_tau_sits_at_the_bounds_theory_predicts() -> None:
    tau0, tau_max, rho0 = 0.1, 3.0, 0.3
    x_star = adaptive_ratio(rho0)
    tau = adaptive_tau(MARGINS, tau0, tau_max, rho0)
    ambiguous = MARGINS.abs() <= x_star * tau0
    clear = MARGINS.abs() >= x_star * tau_max
    assert ambiguous.any() and clear.any()
    assert torch.all(tau[ambiguous] == tau0) and torch.all(tau[clear] == tau_max)
    # rho0 >= log 2: the objective increases in tau for every margin, so tau0 everywhere
    assert adaptive_ratio(0.8) == math.inf
    assert torch.all(adaptive_tau(MARGINS, tau0, tau_max, 0.8) == tau0)
    out = make_loss("adaptive", tau0=tau0, tau_max=tau_max, rho0=rho0)(MARGINS)
    assert float(out.diagnostics["tau_at_min"]) == pytest.approx(float(ambiguous.double().mean()))
    assert float(out.diagnostics["tau_at_max"]) == pytest.approx(float(clear.double().mean()))
    assert float(out.diagnostics["tau_mean"]) == pytest.approx(float(tau.mean()))


def test_paper_newton_iteration_matches_where_it_converges_and_misses_elsewhere() -> None:
    """The official code's projected Newton matches the exact tau for small rho0, oscillates for larger."""
    exact = adaptive_tau(MARGINS, 0.1, 3.0, 0.1)
    assert (adaptive_tau_newton(MARGINS, 0.1, 3.0, 0.1, steps=10) - exact).abs().max() < 1e-4
    missed = adaptive_tau_newton(MARGINS, 0.1, 3.0, 0.3, steps=50) - adaptive_tau(MARGINS, 0.1, 3.0, 0.3)
    assert missed.abs().max() > 0.1
    newton_loss = make_loss("adaptive", rho0=0.1, tau_max=3.0, solver="newton", newton_steps=10)(MARGINS)
    torch.testing.assert_close(newton_loss.diagnostics["tau"], exact, atol=1e-4, rtol=0)


def test_adaptive_gradient_treats_tau_as_constant() -> None:
    margins = MARGINS.clone().requires_grad_(True)
    out = make_loss("adaptive", tau0=0.1, tau_max=3.0, rho0=0.3)(margins)
    (grad,) = torch.autograd.grad(out.loss, margins)
    tau = out.diagnostics["tau"]
    torch.testing.assert_close(grad, -torch.sigmoid(-margins.detach() / tau) / len(margins))


@pytest.mark.parametrize("name", ["bt", "r3m", "adaptive", "smoothing", "robust"])
def test_soft_labels_mix_both_directions(name: str) -> None:
    loss_fn = make_loss(name)
    margins = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    ones = loss_fn(margins, torch.ones(3, dtype=torch.float64))
    zeros = loss_fn(margins, torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(ones.per_pair, loss_fn(margins).per_pair)
    torch.testing.assert_close(zeros.per_pair, loss_fn(-margins).per_pair)
    half = loss_fn(margins, torch.full((3,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(half.per_pair, 0.5 * (ones.per_pair + zeros.per_pair))
    with pytest.raises(ValueError, match=r"soft_labels must lie in \[0, 1\]"):
        loss_fn(margins, torch.tensor([1.0, 2.0, 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="must match margins"):
        loss_fn(margins, torch.ones(2, dtype=torch.float64))


def test_bt_with_soft_labels_is_binary_cross_entropy() -> None:
    margins = torch.tensor([2.0, -1.0, 0.5, 0.0])
    y = torch.tensor([1.0, 0.0, 0.5, 0.3])
    out = make_loss("bt")(margins, y)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(margins, y))


def test_r3m_flagged_fraction_counts_hard_labels_only() -> None:
    out = make_loss("r3m", lam=0.2)(torch.tensor([-2.0, 3.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.5, 0.0]))
    assert out.diagnostics["flagged"].tolist() == [True, False, False, True]
    assert float(out.diagnostics["flagged_fraction"]) == pytest.approx(2 / 3)


def test_margins_must_be_one_dimensional() -> None:
    with pytest.raises(ValueError, match=r"1-D tensor \[n\], got shape \(2, 3\)"):
        make_loss("bt")(torch.zeros(2, 3))


def test_half_precision_margins_are_computed_in_float32() -> None:
    margins = torch.tensor([1.0, -2.0], dtype=torch.bfloat16, requires_grad=True)
    out = make_loss("adaptive")(margins)
    assert out.loss.dtype == torch.float32
    out.loss.backward()
    assert margins.grad.dtype == torch.bfloat16


def _trl_dpo_losses(loss_type: str, chosen: torch.Tensor, rejected: torch.Tensor, beta: float, eps: float):
    """TRL 1.16's per-sequence DPO losses, from its source formulas (sigmoid and robust branches)."""
    delta_score = chosen - rejected
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * delta_score)
    clean = -(1 - eps) * F.logsigmoid(beta * delta_score)
    flipped = -eps * F.logsigmoid(-beta * delta_score)
    return (clean - flipped) / (1 - 2 * eps)


def test_trl_source_still_has_the_formulas_we_match() -> None:
    """Pin the TRL branches our bt/robust losses reproduce (read from the installed source)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("trl")
    if spec is None:
        pytest.skip("trl (the llm extra) is not installed")
    source = (Path(spec.origin).parent / "trainer" / "dpo_trainer.py").read_text()
    assert "per_sequence_loss = -F.logsigmoid(self.beta * delta_score)" in source
    assert "clean_loss_term = -(1 - self.label_smoothing) * F.logsigmoid(self.beta * delta_score)" in source
    assert "flipped_loss_term = -self.label_smoothing * F.logsigmoid(-self.beta * delta_score)" in source
    assert (
        "per_sequence_loss = (clean_loss_term - flipped_loss_term) / (1 - 2 * self.label_smoothing)" in source
    )


@pytest.mark.parametrize(
    ("ours", "theirs", "params"), [("bt", "sigmoid", {}), ("robust", "robust", {"eps": 0.2})]
)
def test_losses_match_trl_dpo_formulas(ours: str, theirs: str, params: dict) -> None:
    gen = torch.Generator().manual_seed(0)
    chosen, rejected, beta = torch.randn(32, generator=gen), torch.randn(32, generator=gen), 0.1
    margins = beta * (chosen - rejected)
    expected = _trl_dpo_losses(theirs, chosen, rejected, beta, params.get("eps", 0.0))
    torch.testing.assert_close(make_loss(ours, **params)(margins).per_pair, expected)
    if ours == "bt":  # R3M-DPO with lambda -> 1 is TRL's stock sigmoid DPO loss
        torch.testing.assert_close(make_loss("r3m", lam=1 - 1e-9)(margins).per_pair, expected)
