"""The reward benchmark's cell functions (they run inside pool workers; here in-process): each result key
carries the number its name says."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from aligngym.rewards import fitting
from aligngym.rewards.losses import LossSpec
from aligngym.rewards.teachers import make_teacher
from aligngym.runs.reward_benchmark import FixedPairsConfig, fixed_pairs_metrics


def test_fixed_pairs_metrics_report_the_test_scores_under_their_own_names(monkeypatch):
    """Distinct numbers for every score of the fit: a swapped or reused key shows."""
    test_scores = {"accuracy": 0.71, "accuracy_hardest_quarter": 0.52, "spearman": 0.33, "n_pairs": 20.0}
    train_scores = {
        "label_accuracy": 0.64,
        "oracle_accuracy": 0.9,
        "corruption_rate": 0.125,
        "outlier_precision": 0.41,
        "outlier_recall": 0.27,
        "flagged_fraction": 0.18,
    }
    fitted = SimpleNamespace(train_metrics=train_scores, best_epoch=2, seconds=1.5, test_metrics={})
    monkeypatch.setattr(fitting, "fit_reward", lambda *args, **kwargs: fitted)
    monkeypatch.setattr(fitting, "evaluate_reward", lambda net, pairs: dict(test_scores))
    config = FixedPairsConfig(
        segment_length=10, segments_per_policy=20, gait_policies=1, n_train=40, n_test=20, epochs=1
    )
    out = fixed_pairs_metrics("Pendulum-v1", LossSpec("bt"), make_teacher("oracle"), config, seed=0)
    assert out["clean_accuracy"] == 0.71 and out["hard_accuracy"] == 0.52 and out["spearman"] == 0.33
    assert out["train_label_accuracy"] == 0.64 and out["corrupted_fraction"] == 0.125
    assert (out["outlier_precision"], out["outlier_recall"], out["flagged_fraction"]) == (0.41, 0.27, 0.18)
    assert out["fit_seconds"] == pytest.approx(1.5)
