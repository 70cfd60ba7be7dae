"""bench tensor-paper-protocol: threshold crossings with censoring, the comparison, argument errors, one cell."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aligngym.runs.bench import tensor_paper_protocol as bench
from aligngym.runs.cli import main
from aligngym.runs.sweep import cell_key as bench_key


def test_threshold_crossing_uses_the_moving_mean_and_the_steps_of_that_episode():
    returns = np.array([-10.0] * 5 + [0.0] * 20)
    steps = np.arange(1, 26) * 100
    # window 5: the mean of episodes 6..10 is the first to reach -0.5
    assert bench.threshold_crossing(steps, returns, -0.5, window=5) == (10, 1000)
    # one lucky episode above the threshold is not a crossing: every window holding it has mean -4
    spike = np.full(25, -10.0)
    spike[12] = 20.0
    assert bench.threshold_crossing(steps, spike, 0.0, window=5) == (None, None)
    # a lower threshold is crossed earlier: the mean of episodes 2..6 is -8
    assert bench.threshold_crossing(steps, returns, -8.0, window=5) == (6, 600)


def test_threshold_crossing_reports_censored_runs_as_not_reached():
    steps = np.arange(1, 31) * 1000
    assert bench.threshold_crossing(steps, np.full(30, -600.0), -500.0) == (None, None)
    assert bench.threshold_crossing(steps[:5], np.zeros(5), -500.0) == (None, None)  # fewer than WINDOW


def test_quartiles_rank_censored_runs_last_and_say_so():
    assert bench._quartiles([100, 200, 300, 400, 500]) == [200.0, 300.0, 400.0]
    # 3 of 5 not reached: the median and the upper quartile are "not reached", the lower one is a number
    assert bench._quartiles([100, None, None, 200, None]) == [200.0, None, None]


def test_comparison_censors_both_sides_at_the_shorter_budget():
    def row(policy: str, steps: list[int | None], budget: int) -> dict:
        return {"env": "Pendulum-v1", "policy": policy, "steps_to_threshold": steps, "timesteps": budget}

    tensor = row("tensor", [300_000, 350_000, 400_000, None], 800_000)
    nn = row("nn-paper", [600_000, 700_000, None, None], 800_000)
    # the zoo's budget is 200k: within it nobody reaches the threshold, so every pair ties
    zoo = row("mlp-zoo", [150_000, 180_000, None, None], 200_000)
    compared = {c["baseline"]: c for c in bench.comparisons([tensor, nn, zoo])}
    # tensor sooner in 12 of 16 pairs, ties (both not reached) in 2: (12 + 2 / 2) / 16
    assert compared["nn-paper"]["p_tensor_sooner"] == pytest.approx(13 / 16)
    assert compared["mlp-zoo"]["horizon"] == 200_000
    # the zoo reaches within 200k in 2 runs, tensor never does by then: it is sooner in none of 16 pairs,
    # ties in 2 x 4 = 8 (both not reached within the horizon)
    assert compared["mlp-zoo"]["p_tensor_sooner"] == pytest.approx(8 * 0.5 / 16)


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--envs", "CartPole-v1", "--envs 'CartPole-v1' is not one of: MountainCar-v0, Pendulum-v1"),
        ("--policies", "mlp", "--policies 'mlp' is not one of: tensor, nn-paper, mlp-zoo"),
        ("--seeds", "0", "--seeds=0 must be >= 1"),
    ],
)
def test_a_bad_option_is_one_error_line_naming_it_and_the_choices(flag, value, expected, tmp_path, capsys):
    assert main(["bench", "tensor-paper-protocol", flag, value, "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and expected in error
    assert not (tmp_path / "o").exists()


def test_a_cell_logs_every_episode_of_the_papers_pendulum():
    """One PPO update of the paper's settings: ten 1000-step episodes (the gym limit of 200 is lifted)."""
    [cell] = [
        c
        for c in bench.cells(["Pendulum-v1"], ["tensor"], seeds=1, scale=0.001, runs=None)
        if c["method"] == "tensor"
    ]
    result = bench.run_cell(cell)
    episodes = np.array(result["episodes"])
    assert result["parameters"] == 301 and result["timesteps"] == 10_000
    assert episodes.shape == (10, 3)
    assert (episodes[:, 2] == 1000).all() and episodes[:, 0].max() == 10_000
    assert (episodes[:, 1] < 0).all()  # Pendulum's rewards are costs


def test_the_papers_discrete_pendulum_has_three_torques_its_parameter_counts_and_no_zoo_cell():
    """src/environments/pendulum.py: action a applies 2a - 2; the paper counts 630 (tensor) / 772 (NN)."""
    import gymnasium as gym

    raw, wrapped = gym.make("Pendulum-v1"), bench.discrete_torques(gym.make("Pendulum-v1"), [-2.0, 0.0, 2.0])
    assert wrapped.action_space == gym.spaces.Discrete(3)
    for action, torque in ((0, -2.0), (1, 0.0), (2, 2.0)):
        raw.reset(seed=3), wrapped.reset(seed=3)
        assert np.allclose(wrapped.step(action)[0], raw.step(np.array([torque], dtype=np.float32))[0])
    grid = bench.cells(["Pendulum-v1-discrete"], list(bench.POLICIES), seeds=1, scale=0.001, runs=None)
    assert [c["method"] for c in grid] == ["tensor", "nn-paper"]
    assert all(c["config"]["gym_id"] == "Pendulum-v1" for c in grid)
    # the other envs' cells carry no such keys: their keys (and finished rows) stay as they were
    assert not any("torques" in c["config"] for c in bench.cells(["Pendulum-v1"], ["tensor"], 1, 1.0, None))
    result = bench.run_cell(grid[0])
    episodes = np.array(result["episodes"])
    assert result["parameters"] == 630 and episodes.shape == (10, 3) and (episodes[:, 2] == 1000).all()


def test_report_only_reports_finished_cells_and_refuses_an_empty_folder(tmp_path, capsys):
    out = tmp_path / "o"
    args = ["bench", "tensor-paper-protocol", "--seeds", "2", "--envs", "Pendulum-v1", "--out", str(out)]
    assert main([*args, "--report-only"]) == 2
    assert "holds no finished cell" in capsys.readouterr().err
    [first, *_] = bench.cells(["Pendulum-v1"], list(bench.POLICIES), seeds=2, scale=1.0, runs=out / "runs")
    episodes = [[1000 * (i + 1), -3000.0 + 200 * i, 1000] for i in range(30)]  # mean of 7..16 is -900
    row = {k: first[k] for k in ("domain", "env", "method", "noise", "rate", "seed")}
    row |= {"key": bench_key(first), "episodes": episodes, "parameters": 301, "timesteps": 30_000}
    out.mkdir()
    (out / "results.jsonl").write_text(json.dumps(row | {"train_wall_s": 1.0}) + "\n")
    assert main([*args, "--report-only"]) == 0
    report = json.loads((out / "tensor_paper_protocol.json").read_text())
    [summary] = report["summary"]
    assert (summary["policy"], summary["seeds"], summary["episodes_to_threshold"]) == ("tensor", 1, [16])
    missing = (out / "tensor_paper_protocol.md").read_text().split("No finished run (yet) of: ")[1]
    assert (
        "Pendulum-v1 x nn-paper, Pendulum-v1 x mlp-zoo" in missing and "Pendulum-v1 x tensor" not in missing
    )
    assert (out / "tensor_paper_protocol.png").stat().st_size > 0  # one seed: its curve, no interval
