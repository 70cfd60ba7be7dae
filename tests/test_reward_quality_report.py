"""The reward-quality report: the gap-closed ratio by hand, targets met or not, the rendered files."""

from __future__ import annotations

import json
import math

import pytest

from aligngym.runs.reward_quality_report import gap_closed, main, targets_markdown


def _row(method: str, rate: float, seed: int, acc: float, **extra) -> dict:
    return {
        "domain": "control",
        "env": "HalfCheetah-v5",
        "noise": "mistake",
        "rate": rate,
        "method": method,
        "seed": seed,
        "key": f"control/HalfCheetah-v5/{method}/mistake/{rate}/{seed}/x",
        "clean_accuracy": acc,
        **extra,
    }


def _rows() -> list[dict]:
    rows = []
    for seed, jitter in enumerate((0.0, 0.01, -0.01, 0.02)):
        rows += [
            _row("bt", 0.0, seed, 0.95 + jitter, gap_curve=[0.5, 0.8, 1.0, 1.2, 1.5], ece=0.05),
            _row("bt", 0.2, seed, 0.80 + jitter),
            _row("bt", 0.4, seed, 0.70 + jitter),
            # r3m closes 60 % of the gap at 20 % flips, 20 % at 40 %; its flags are good
            _row(
                "r3m",
                0.2,
                seed,
                0.89 + jitter,
                outlier_precision=0.8,
                outlier_recall=0.75,
                flagged_fraction=0.2,
            ),
            _row("r3m", 0.4, seed, 0.75 + jitter),
            _row("adaptive", 0.0, seed, 0.95 + jitter, gap_curve=[0.3, 0.7, 1.0, 1.3, 1.7], ece=0.04),
        ]
    return rows


def test_gap_closed_is_the_share_of_the_bt_gap_and_its_ci_covers_it() -> None:
    twenty = gap_closed(_rows(), "HalfCheetah-v5", 0.2, "r3m")
    assert twenty.value == pytest.approx((0.89 - 0.80) / (0.95 - 0.80))
    assert twenty.n == 4 and twenty.low <= twenty.value <= twenty.high
    assert gap_closed(_rows(), "HalfCheetah-v5", 0.4, "r3m").value == pytest.approx(0.2)
    assert math.isnan(gap_closed(_rows(), "HalfCheetah-v5", 0.2, "rime").value)  # no rows: no estimate


def test_targets_say_met_or_not_met() -> None:
    text = targets_markdown(_rows())
    twenty, forty = text.split("**Accuracy gap closed at 40% uniform flips**")
    assert "**met** (best: r3m, 0.60)" in twenty
    assert "**not met** (best: r3m, 0.20)" in forty
    outliers = text.split("**Outlier detection")[1].split("**Adaptive")[0]
    assert "| HalfCheetah-v5 | r3m |" in outliers and "**met**" in outliers
    assert "| HalfCheetah-v5 | adaptive | 0.30 / 0.70 / 1.00 / 1.30 / 1.70 |" in text


def test_main_renders_the_report_files(tmp_path) -> None:
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    assert main([str(folder), "--out", str(tmp_path / "out"), "--header", "# Title"]) == 0
    markdown = (tmp_path / "out" / "reward_quality.md").read_text()
    assert markdown.startswith("# Title") and "## Targets" in markdown and "| clean acc |" in markdown
    assert len((tmp_path / "out" / "reward_quality.jsonl").read_text().splitlines()) == len(_rows())
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
