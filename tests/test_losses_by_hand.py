"""Every margin loss at a few margins, against its formula written out by hand with ``math``
(the closed forms in the papers / TRL 1.16), not against the module's own helper functions."""

from __future__ import annotations

import math

import pytest
import torch

from aligngym.rewards.losses import BradleyTerryLoss, LabelSmoothingLoss, R3MLoss, RobustLoss

MARGINS = [-3.0, -0.4, 0.0, 1.5, 4.0]


def nll(m: float) -> float:
    """-log sigmoid(m)."""
    return math.log1p(math.exp(-m))


def _values(loss, margins=MARGINS) -> list[float]:
    return loss(torch.tensor(margins, dtype=torch.float64)).per_pair.tolist()


def test_bradley_terry():
    assert _values(BradleyTerryLoss()) == pytest.approx([nll(m) for m in MARGINS], rel=1e-12)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_conservative_label_smoothing(eps):
    expected = [(1 - eps) * nll(m) + eps * nll(-m) for m in MARGINS]
    assert _values(LabelSmoothingLoss(eps=eps)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("eps", [0.1, 0.3])
def test_robust_rdpo(eps):
    expected = [((1 - eps) * nll(m) - eps * nll(-m)) / (1 - 2 * eps) for m in MARGINS]
    assert _values(RobustLoss(eps=eps)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("lam", [0.2, 0.5, 0.8])
def test_r3m_with_delta_minimised_out(lam):
    """min over delta >= 0 of nll(m + delta) + lam delta: delta = max(c - m, 0), c = log(1/lam - 1)."""
    c = math.log(1 / lam - 1)
    expected = [nll(m) if m >= c else nll(c) + lam * (c - m) for m in MARGINS]
    out = R3MLoss(lam=lam)(torch.tensor(MARGINS, dtype=torch.float64))
    assert out.per_pair.tolist() == pytest.approx(expected, rel=1e-12)
    assert out.diagnostics["flagged"].tolist() == [m < c for m in MARGINS]
    # a brute-force minimum over delta agrees
    deltas = torch.linspace(0, 10, 200_001, dtype=torch.float64)
    brute = [float((torch.nn.functional.softplus(-(m + deltas)) + lam * deltas).min()) for m in MARGINS]
    assert out.per_pair.tolist() == pytest.approx(brute, abs=1e-8)


def test_soft_labels_mix_both_directions():
    margins = torch.tensor([1.0, -2.0], dtype=torch.float64)
    labels = torch.tensor([0.25, 0.5], dtype=torch.float64)
    out = BradleyTerryLoss()(margins, labels)
    expected = [0.25 * nll(1.0) + 0.75 * nll(-1.0), 0.5 * nll(-2.0) + 0.5 * nll(2.0)]
    assert out.per_pair.tolist() == pytest.approx(expected, rel=1e-12)
