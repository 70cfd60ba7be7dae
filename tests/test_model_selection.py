"""Model selection a user could do: early stopping on the teacher's validation labels by default, clean
labels only as the explicitly named oracle setting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aligngym.rewards.fitting import FitConfig, _accuracy, _learned_gap, fit_reward
from aligngym.rewards.pairs import PairConfig, SegmentSet, make_pair_split
from aligngym.rewards.reward_nets import RewardNet
from aligngym.rewards.teachers import make_teacher


def _split(eps: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(300, 4, 3)).astype(np.float32)
    rewards = obs.astype(np.float64) @ rng.normal(size=3)
    segments = SegmentSet(obs, np.zeros((300, 4, 0), np.float32), rewards, np.zeros(300, int))
    config = PairConfig(n_train=300, n_val=150, n_test=60, val_fraction=0.25, test_fraction=0.2)
    return make_pair_split(segments, config, make_teacher("mistake", eps), seed=seed)


def _fit(split, selection: str, patience: int | None = None):
    torch.manual_seed(0)
    net = RewardNet(obs_dim=3, act_dim=0, hidden=(16,), seed=0)
    config = FitConfig(epochs=12, lr=0.01, patience=patience, selection=selection, seed=0)
    return net, fit_reward(net, split.train, split.val, config, split.test)


@pytest.mark.parametrize("selection", ["noisy", "oracle"])
def test_the_best_epoch_is_chosen_on_the_labels_the_selection_names(selection: str) -> None:
    split = _split(eps=0.35)
    assert split.val.corrupted.mean() > 0.2  # the teacher labelled the validation pairs
    net, fit = _fit(split, selection)
    labels = split.val.oracle if selection == "oracle" else split.val.labels
    val = [r["val_accuracy"] for r in fit.history]
    assert fit.best_epoch == 1 + int(np.argmax(val))
    # the returned net is the best epoch's, scored on the labels that selected it
    assert _accuracy(_learned_gap(net, split.val), labels) == pytest.approx(max(val))


def test_noisy_and_oracle_selection_see_different_validation_accuracies() -> None:
    split = _split(eps=0.35)
    noisy = [r["val_accuracy"] for r in _fit(split, "noisy")[1].history]
    oracle = [r["val_accuracy"] for r in _fit(split, "oracle")[1].history]
    # same training run (same seeds), different labels: under 35 % flips the teacher agrees less
    assert max(noisy) < max(oracle) - 0.1
    assert FitConfig().selection == "noisy"


def test_an_unknown_selection_fails_at_construction() -> None:
    with pytest.raises(ValueError, match=r"selection='clean' is invalid; valid: noisy, oracle"):
        FitConfig(selection="clean")
