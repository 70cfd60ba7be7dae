"""RIME (ICML 2024) as a margin loss: its thresholds by hand, the Bradley-Terry limit, recovery of known flips."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aligngym.rewards.fitting import FitConfig, fit_reward
from aligngym.rewards.losses import LossSpec, RimeLoss, make_loss
from aligngym.rewards.pairs import PairConfig, SegmentSet, make_pair_split
from aligngym.rewards.reward_nets import RewardNet
from aligngym.rewards.teachers import make_teacher

TRUST_ALL = {"flip_tau": 0.0, "uncertainty_cap": math.inf, "beta_max": 1e6, "beta_min": 1e6}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_with_thresholds_that_trust_every_pair_rime_is_bradley_terry_exactly() -> None:
    rime, bt = make_loss("rime", **TRUST_ALL), make_loss("bt")
    generator = torch.Generator().manual_seed(0)
    for _ in range(6):  # training calls advance the state; it must keep trusting everything
        margins = (3.0 * torch.randn(64, generator=generator)).requires_grad_()
        a, b = rime(margins), bt(margins)
        assert torch.equal(a.per_pair, b.per_pair) and torch.equal(a.loss, b.loss)
        (grad_a,) = torch.autograd.grad(a.loss, margins)
        (grad_b,) = torch.autograd.grad(b.loss, margins)
        assert torch.equal(grad_a, grad_b)
        assert float(a.diagnostics["flagged_fraction"]) == 0.0
    assert rime.state.steps == 6


def test_trust_all_rime_fits_the_same_net_as_bradley_terry() -> None:
    split = _linear_split(eps=0.2, n_segments=200, n_train=300)
    nets = []
    for spec in (LossSpec("bt"), LossSpec("rime", TRUST_ALL)):
        net = RewardNet(obs_dim=6, act_dim=0, hidden=(16,), seed=0)
        fit_reward(net, split.train, None, FitConfig(loss=spec, epochs=3, patience=None, seed=0))
        nets.append(net)
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(p, q)


def test_thresholds_and_statistics_follow_the_official_code_by_hand() -> None:
    loss = RimeLoss(alpha=0.5, beta_max=3.0, beta_min=1.0, decay_steps=4, flip_tau=0.001, rate=0.1)
    # before any training call: running max 0, so tau_lower = -log(1e-8) + min(3 * 1.0, 3) (var starts at 1)
    lower, upper = loss.thresholds()
    assert lower == pytest.approx(-math.log(1e-8) + 3.0)
    assert upper == pytest.approx(-math.log(0.001))
    margins = torch.tensor([2.0, 0.0, -1.0, -8.0], requires_grad=True)
    kl = -F.logsigmoid(margins.detach()).double()  # 0.127, 0.693, 1.313, 8.0003
    out = loss(margins)
    # first call: KL 8.0003 > 6.908 is flipped, the others are trusted (every KL < 21.4)
    assert out.diagnostics["trusted"].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert out.diagnostics["flipped"].tolist() == [0.0, 0.0, 0.0, 1.0]
    expected = torch.cat([F.softplus(-margins[:3]), F.softplus(margins[3:])]).detach()
    assert torch.allclose(out.per_pair.detach(), expected) and float(out.loss.detach()) == pytest.approx(
        float(expected.mean())
    )
    # statistics of the trusted KLs (mode "fixed", lr 0.1; count-weighted variance from count 0)
    trusted = kl[:3]
    state = loss.state
    assert state.mean == pytest.approx(0.1 * float(trusted.mean()))
    assert state.max == pytest.approx(0.1 * float(trusted.max()))
    assert state.var == pytest.approx(float(trusted.var(unbiased=False)))
    assert (state.count, state.steps) == (3, 1)
    beta = 3.0 - 2.0 * 1 / 4
    x = 0.1 * float(trusted.max())
    hand = -math.log(x + 1e-8) + 0.5 * x + min(beta * float(trusted.var(unbiased=False)), 3.0)
    assert loss.thresholds()[0] == pytest.approx(hand)
    # beta decays linearly to beta_min after decay_steps training calls and stays there
    for _ in range(10):
        loss(torch.tensor([1.0, 0.5, 0.2], requires_grad=True))
    x, var = loss.state.max, loss.state.var
    assert loss.thresholds()[0] == pytest.approx(-math.log(x + 1e-8) + 0.5 * x + min(1.0 * var, 3.0))


def test_pairs_between_the_thresholds_are_dropped_and_the_loss_averages_the_used_ones() -> None:
    loss = RimeLoss()
    loss.state.max, loss.state.var, loss.state.count = 2.0, 0.1, 100  # tau_lower = -log 2 + 1 + 0.3 = 0.607
    assert loss.thresholds()[0] == pytest.approx(-math.log(2.0) + 1.0 + 0.3, abs=1e-6)
    margins = torch.tensor([3.0, 0.0, -2.0, -9.0])  # KL 0.049 (trust), 0.693 / 2.13 (drop), 9.0 (flip)
    out = loss(margins)
    assert out.diagnostics["flagged"].tolist() == [False, True, True, True]
    assert float(out.diagnostics["flipped_fraction"]) == 0.25
    used = torch.tensor([F.softplus(torch.tensor(-3.0)), F.softplus(torch.tensor(-9.0))])
    assert float(out.loss) == pytest.approx(float(used.mean()))
    assert out.per_pair[1] == 0.0 and out.per_pair[2] == 0.0


def test_evaluation_calls_leave_the_state_alone() -> None:
    loss = make_loss("rime")
    with torch.no_grad():
        loss(torch.randn(32))
    loss(torch.randn(32))  # margins that need no grad: not a training step either
    assert loss.state.steps == 0 and loss.state.count == 0
    loss(torch.randn(32, requires_grad=True))
    assert loss.state.steps == 1
    assert make_loss("rime").state.steps == 0  # a fresh instance per build


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"flip_tau": 1.0}, r"flip_tau=1.0 is outside the valid range \[0.0, 1.0\)"),
        ({"beta_max": 0.5}, r"beta_max=0.5 is outside the valid range \[1.0, inf\)"),
        ({"decay_steps": 0}, r"decay_steps=0 must be an integer >= 1"),
        ({"rate": 0.0}, r"rate=0.0 is outside the valid range \(0.0, 1.0\]"),
    ],
)
def test_bad_parameters_fail_at_construction(params: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        LossSpec("rime", params)


def _linear_split(eps: float, n_segments: int = 1500, n_train: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n_segments, 10, 6)).astype(np.float32)
    rewards = obs.astype(np.float64) @ rng.normal(size=6)
    segments = SegmentSet(obs, np.zeros((n_segments, 10, 0), np.float32), rewards, np.zeros(n_segments, int))
    config = PairConfig(n_train=n_train, n_val=0, n_test=500)
    return make_pair_split(segments, config, make_teacher("mistake", eps), seed=seed)


def test_rime_recovers_the_flipped_pairs_of_a_known_linear_reward() -> None:
    # measured (seed 0, torch 2.13 CPU): 20.7% corrupted; RIME flags 19.9% at precision 0.95, recall 0.91
    # and reaches clean test accuracy 0.964 (BT 0.876, R3M lam 0.5 0.902)
    split = _linear_split(eps=0.2)
    results = {}
    for spec in (LossSpec("bt"), LossSpec("rime")):
        net = RewardNet(obs_dim=6, act_dim=0, seed=0)
        results[spec.name] = fit_reward(
            net, split.train, None, FitConfig(loss=spec, epochs=20, patience=None, seed=0), split.test
        )
    train = results["rime"].train_metrics
    assert train["outlier_precision"] >= 0.85 and train["outlier_recall"] >= 0.85
    assert results["rime"].test_metrics["accuracy"] > results["bt"].test_metrics["accuracy"] + 0.03
