"""The text preference pipeline: teacher labels on text pairs, the robustness cell, the train jobs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aligngym.alignment.preference_data import PairPool, label_pool
from aligngym.alignment.text_pipeline import TextCellBudget, run_text_cell
from aligngym.rewards.fitting import RESULT_KEYS

SMALL = {
    "sft_examples": 96,
    "sft_epochs": 1.0,
    "train_prompts": 24,
    "heldout_prompts": 16,
    "samples_per_prompt": 3,
    "max_new_tokens": 12,
    "dpo_epochs": 1.0,
    "dpo_batch_size": 8,
}


def _pool(first, second):
    n = len(first)
    return PairPool(
        [f"p{i}" for i in range(n)],
        [f"a{i}" for i in range(n)],
        [f"b{i}" for i in range(n)],
        list(first),
        list(second),
    )


def test_teacher_labels_text_pairs_and_records_corruption():
    pool = _pool(np.linspace(0, 1, 64), np.linspace(1, 0, 64) + 0.001)
    kept, first, corrupted = label_pool(pool, "mistake", 0.0, seed=0)
    assert kept.all() and not corrupted.any() and (first == pool.oracle_labels()).all()
    kept, first, corrupted = label_pool(pool, "mistake", 1.0, seed=0)
    assert corrupted.all() and (first == ~pool.oracle_labels()).all()
    _, first, corrupted = label_pool(pool, "irrational", 0.5, seed=0)  # the 8 clearest of 64 pairs flip
    gaps = np.abs(np.asarray(pool.first_reward) - np.asarray(pool.second_reward))
    assert corrupted.sum() == 8 and gaps[corrupted].min() >= np.sort(gaps)[-8]
    kept, _, _ = label_pool(pool, "equal", 0.5, seed=0)  # DPO needs hard labels: "equal" pairs are dropped
    assert 0 < kept.sum() < len(pool) and kept[0] and not kept[32]
    rows = pool.subset(kept).rows(first[kept])
    assert len(rows) == kept.sum() and set(rows[0]) == {"prompt", "chosen", "rejected"}
    with pytest.raises(ValueError, match="per-step rewards"):
        label_pool(pool, "myopic", 0.9, seed=0)
    with pytest.raises(ValueError, match="unknown teacher 'flips'"):
        label_pool(pool, "flips", 0.2, seed=0)


def test_text_cell_returns_the_benchmark_keys_and_is_deterministic(tmp_path):
    budget = dict(SMALL, cache_dir=str(tmp_path / "cache"))
    first = run_text_cell("r3m", "mistake", 0.25, seed=0, **budget)
    assert set(RESULT_KEYS) <= set(first)
    gap = first["oracle_return"] - first["sft_return"]  # R_oracle - R_sft, both of this seed
    assert first["normalized_return"] == pytest.approx((first["true_return"] - first["sft_return"]) / gap)
    assert first["flagged_fraction"] > 0 and first["corrupted_fraction"] > 0  # R3M's flags reach the row
    assert math.isfinite(first["normalized_return"]) and -1.0 < first["true_return"] < 1.0
    calls = []
    again = run_text_cell(
        "r3m", "mistake", 0.25, seed=0, progress=lambda s, t: calls.append((s, t)), **budget
    )
    assert again == first  # the second call reuses the cached SFT model and pools, and retrains DPO
    assert calls and calls[-1][0] == calls[-1][1]
    stock = run_text_cell("bt", "oracle", 0.0, seed=0, **budget)  # bt runs on TRL's sigmoid DPO code
    # the oracle-label bt run on TRL's code reproduces the cached oracle reference exactly
    assert stock["true_return"] == stock["oracle_return"] and stock["corrupted_fraction"] == 0.0
    assert math.isnan(stock["flagged_fraction"])  # TRL's sigmoid loss flags nothing
    with pytest.raises(ValueError, match="unknown DPO loss 'dpo2'; valid: adaptive, .*ipo"):
        run_text_cell("dpo2", "mistake", 0.2, seed=0, **budget)
    with pytest.raises(ValueError, match="samples_per_prompt must be >= 2"):
        TextCellBudget(samples_per_prompt=1)
