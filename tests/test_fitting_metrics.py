"""Reward-fitting metrics against hand-built cases: a lookup "net" whose learned returns are chosen, so
every accuracy, hardest-quarter accuracy, tie and outlier score has a value known before the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aligngym.rewards.fitting import clean_accuracy, evaluate_reward, outlier_scores, train_diagnostics
from aligngym.rewards.losses import BradleyTerryLoss, R3MLoss
from aligngym.rewards.pairs import PreferencePairs, SegmentSet

TRUE_RETURNS = np.array([0.0, 0.1, 1.0, 1.1, 5.0, 7.0, 10.0, 14.0])


class LookupNet:
    """Stands in for a RewardNet: a segment's learned return is stored in its first observation."""

    def segment_returns(self, obs, actions) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs)[:, 0, 0], dtype=torch.float64)


def _pairs(learned, first, second, labels=None) -> PreferencePairs:
    n = len(TRUE_RETURNS)
    obs = np.zeros((n, 2, 1), np.float32)
    obs[:, 0, 0] = learned
    rewards = np.stack([TRUE_RETURNS, np.zeros(n)], axis=1)
    segments = SegmentSet(obs, np.zeros((n, 2, 1), np.float32), rewards, np.zeros(n, int))
    first, second = np.asarray(first), np.asarray(second)
    gap = TRUE_RETURNS[first] - TRUE_RETURNS[second]
    oracle = np.where(gap > 0, 1.0, np.where(gap < 0, 0.0, 0.5)).astype(np.float32)
    labels = oracle if labels is None else np.asarray(labels, np.float32)
    return PreferencePairs(segments, first, second, labels, oracle, labels != oracle)


def test_hardest_quarter_is_the_quarter_with_the_smallest_true_gaps():
    # true gaps: 0.1, 0.1, 2, 4, 14, 9.9, 6, 3.9; the learned order is wrong on the two 0.1 gaps only
    learned = np.array([0.1, 0.0, 1.1, 1.0, 5.0, 7.0, 10.0, 14.0])
    pairs = _pairs(learned, [0, 2, 4, 6, 0, 1, 2, 3], [1, 3, 5, 7, 7, 6, 5, 4])
    metrics = evaluate_reward(LookupNet(), pairs)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["accuracy_hardest_quarter"] == 0.0
    assert metrics["n_pairs"] == 8.0


@pytest.mark.parametrize(("first", "second", "expected"), [([0], [1], 0.5), ([1], [0], 0.5)])
def test_a_learned_tie_scores_one_half_whichever_item_the_oracle_prefers(first, second, expected):
    learned = np.full(len(TRUE_RETURNS), 3.0)  # every learned return equal
    assert clean_accuracy(LookupNet(), _pairs(learned, first, second)) == expected


def test_outlier_precision_and_recall_have_their_own_denominators():
    flagged = np.array([True, True, True, True, False, False])
    corrupted = np.array([True, False, False, False, True, False])
    scores = outlier_scores(flagged, corrupted)
    assert scores["outlier_precision"] == pytest.approx(1 / 4)  # 1 of 4 flagged is corrupted
    assert scores["outlier_recall"] == pytest.approx(1 / 2)  # 1 of 2 corrupted is flagged
    assert scores["flagged_fraction"] == pytest.approx(4 / 6)


def test_r3m_flags_exactly_the_pairs_whose_label_contradicts_a_perfect_net():
    """lam = 0.5 puts R3M's threshold at margin 0: with the true returns as the net, a pair is flagged
    iff its (label-oriented) margin is negative, i.e. iff the label is corrupted."""
    first, second = [0, 2, 4, 6, 1, 3, 5, 7], [1, 3, 5, 7, 6, 4, 2, 0]
    clean = _pairs(TRUE_RETURNS, first, second)
    labels = clean.oracle.copy()
    labels[[1, 4, 7]] = 1.0 - labels[[1, 4, 7]]
    noisy = _pairs(TRUE_RETURNS, first, second, labels)
    metrics = train_diagnostics(LookupNet(), noisy, R3MLoss(lam=0.5))
    assert metrics["outlier_precision"] == 1.0 and metrics["outlier_recall"] == 1.0
    assert metrics["flagged_fraction"] == pytest.approx(3 / 8)
    assert metrics["label_accuracy"] == pytest.approx(5 / 8) and metrics["oracle_accuracy"] == 1.0
    assert "outlier_precision" not in train_diagnostics(LookupNet(), noisy, BradleyTerryLoss())


def test_history_train_loss_is_the_mean_over_the_epochs_batches():
    """With a negligible learning rate the epoch's batches all see the initial net: two equal batches of
    64 pairs, so the recorded loss is the Bradley-Terry loss of the initial net over all 128 pairs."""
    from aligngym.rewards.fitting import FitConfig, fit_reward
    from aligngym.rewards.reward_nets import RewardNet

    rng = np.random.default_rng(0)
    n, length = 64, 3
    obs = rng.normal(size=(n, length, 2)).astype(np.float32)
    rewards = obs.sum(axis=2).astype(np.float64)
    segments = SegmentSet(obs, np.zeros((n, length, 1), np.float32), rewards, np.zeros(n, int))
    first = rng.integers(n, size=128)
    second = (first + rng.integers(1, n, size=128)) % n
    oracle = (rewards.sum(1)[first] > rewards.sum(1)[second]).astype(np.float32)
    pairs = PreferencePairs(segments, first, second, oracle, oracle, np.zeros(128, bool))
    net = RewardNet(obs_dim=2, act_dim=1, hidden=(8,), seed=0)
    with torch.no_grad():
        returns = net(torch.as_tensor(obs), torch.zeros(n, length, 1)).sum(dim=-1).double()
    sign = torch.as_tensor(2.0 * oracle - 1.0, dtype=torch.float64)
    expected = float(BradleyTerryLoss()(sign * (returns[first] - returns[second])).loss)
    fit = fit_reward(net, pairs, None, FitConfig(epochs=1, batch_size=64, lr=1e-12, patience=None))
    assert fit.history[0]["train_loss"] == pytest.approx(expected, rel=1e-5)
