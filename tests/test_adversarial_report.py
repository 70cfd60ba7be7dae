"""The adversarial-robustness report: IQM with CIs, P(improvement) and paired differences, curriculum traces."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from aligngym.runs.bench.adversarial_robustness import comparisons, curriculum_trace, report, versus

CONFIG = {
    "env_id": "aligngym/AdversarialPointMass-v0",
    "env_kwargs": {"force_bound": 10.0},
    "max_episode_steps": 150,
    "iterations": 3,
    "protagonist_steps": 1000,
    "adversary_steps": 1000,
    "policy_kwargs": {"net_arch": [64, 64]},
    "hyperparams": {"batch_size": 128},
    "evaluation": {"worst_case_steps": 3000, "grid_points": 2, "grid_episodes": 1, "episodes": 10},
    "curriculum": {"target_concentration": 1.0, "rate": 1000.0, "stop_kl": 0.01},
}


def fake_run(root: Path, method: str, seed: int, grid_mean: float, kls: list[float] | None = None) -> dict:
    """A finished run folder as the trainer leaves it (config.yaml, robustness.json, iterations.csv)."""
    run_dir = root / f"{method}-{seed}"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"job": method, "config": CONFIG}))
    grid = {
        "task": "PointMass",
        "body": "mass",
        "nominal_mass": 5.0,
        "masses": [2.5, 7.5],
        "frictions": [0.1, 1.9],
        "returns": [[grid_mean - 1, grid_mean + 1], [grid_mean + 2, grid_mean - 2]],
        "episodes": 1,
        "seed": seed,
    }
    (run_dir / "robustness.json").write_text(json.dumps({"grid": grid}))
    if kls is not None:
        with (run_dir / "iterations.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(
                ["iteration", "protagonist_timesteps", "adversary_timesteps", "curriculum_status"]
                + ["curriculum_alpha_mean", "curriculum_kl_to_target"]
            )
            for i, kl in enumerate(kls, start=1):
                status = "moved" if kl > 0.01 else "done"
                writer.writerow([i, 1000 * i, 1000 * i, status, 0.001 + kl / 1000, kl])
    metrics = {m: grid_mean for m in ("nominal_return", "vs_worst_case_return", "vs_constant_push_return")}
    return {
        "method": method,
        "seed": seed,
        "run_dir": str(run_dir),
        "protagonist_timesteps": 3000,
        "grid_mean": grid_mean,
        "grid_worst": grid_mean - 2,
        **metrics,
    }


def test_pairs_tested_are_every_method_against_sac_and_qarl_against_rarl():
    assert comparisons(["sac", "random", "dr", "rarl", "qarl"]) == [
        ("random", "sac"),
        ("dr", "sac"),
        ("rarl", "sac"),
        ("qarl", "sac"),
        ("qarl", "rarl"),
    ]
    assert comparisons(["qarl", "rarl"]) == [("qarl", "rarl")]


def test_versus_pairs_by_seed_and_gives_the_probability_of_improvement():
    sac = [{"seed": s, "grid_mean": v} for s, v in enumerate([-60.0, -70.0, -65.0])]
    qarl = [{"seed": s, "grid_mean": v} for s, v in zip([2, 0, 1], [-62.0, -55.0, -66.0])]  # seeds shuffled
    probability, difference = versus(qarl, sac, "grid_mean")
    # P(X > Y) over all 9 pairs: -55 beats 3, -62 beats 2 (-65, -70), -66 beats 1 (-70): 6 / 9
    assert probability.startswith("0.67 [")
    # same-seed differences: seed 0: 5, seed 1: 4, seed 2: 3 -> mean +4.0, t CI 4 +- 4.303 * 1 / sqrt(3)
    assert difference == "+4.0 [+1.5, +6.5]"
    assert versus(qarl, sac, "grid_worst") == ("-", "-")


def test_curriculum_trace_finds_where_the_target_was_reached(tmp_path):
    reached = curriculum_trace(fake_run(tmp_path, "qarl", 0, -50.0, kls=[40.0, 3.0, 0.005]))
    assert reached["reached_iteration"] == 3 and reached["reached_steps"] == 6000
    assert reached["counts"]["moved"] == 2 and reached["final_kl"] == pytest.approx(0.005)
    missed = curriculum_trace(fake_run(tmp_path, "qarl", 1, -50.0, kls=[40.0, 3.0, 0.5]))
    assert missed["reached_iteration"] is None
    assert curriculum_trace(fake_run(tmp_path, "sac", 0, -50.0)) is None


def test_report_tables_heatmaps_and_curriculum_plot(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    rows = [fake_run(runs, "sac", s, -70.0 + s) for s in range(3)]
    rows += [fake_run(runs, "qarl", s, -60.0 + s, kls=[40.0, 0.001, 0.001]) for s in range(3)]
    text = report(rows, ["sac", "qarl"], "pointmass", "aligngym bench x", tmp_path, 60.0)
    summary = next(line for line in text.splitlines() if line.startswith("| sac | 3 | 3000 |"))
    iqm_sac = float(np.mean([-70.0, -69.0, -68.0]))  # the IQM of 3 values (scipy's trim_mean keeps all 3)
    assert summary.split(" | ")[7].startswith(f"{iqm_sac:.1f} [")  # the grid-mean column
    assert "| qarl vs sac | grid mean | 1.00 [1.00, 1.00] | +10.0 [+10.0, +10.0] |" in text
    assert "reached on 3 of 3 seeds" in text
    assert "horizon 150, 3 iterations x (1000 adversary + 1000 protagonist)" in text
    for name in ("adversarial_heatmap_pointmass_sac.png", "adversarial_curriculum_pointmass.png"):
        assert (tmp_path / name).stat().st_size > 0
