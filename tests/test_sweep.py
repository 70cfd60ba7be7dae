"""Sweeps: JSONL rows, resume after a kill, foreign rows, local pool == Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from aligngym.runs.errors import UsageError
from aligngym.runs.sweep import append_row, cell_key, pending_cells, read_rows, run_sweep

HERE = Path(__file__).resolve().parent
TARGET = "test_sweep:seeded_cell"


def seeded_cell(cell: dict, progress) -> dict:
    """A trivial cell: numbers drawn from the seed; optionally slow; leaves a marker file per start."""
    config = cell["config"]
    marker_dir = config.get("marker_dir")
    if marker_dir:
        with open(Path(marker_dir) / "starts.txt", "a") as handle:
            handle.write(cell_key(cell) + "\n")
    rng = np.random.default_rng([cell["seed"], int(cell["rate"] * 100), len(cell["method"])])
    steps = 4
    for step in range(1, steps + 1):
        time.sleep(config.get("sleep", 0.0) / steps)
        progress(step, steps)
    return {
        "clean_accuracy": float(rng.uniform(0.5, 1.0)),
        "normalized_return": float(rng.normal()),
        "pid": os.getpid(),
    }


def grid(**config) -> list[dict]:
    return [
        {
            "domain": "control",
            "env": "Toy-v0",
            "method": m,
            "noise": "mistake",
            "rate": r,
            "seed": s,
            "config": dict(config),
        }
        for m in ("bt", "r3m")
        for r in (0.0, 0.2)
        for s in (0, 1)
    ]


def strip(rows: list[dict]) -> list[dict]:
    """Rows without what legitimately differs between runs (timing, worker pid)."""
    return [{k: v for k, v in r.items() if k not in ("wall_s", "pid")} for r in rows]


def test_cell_key_depends_on_coordinates_and_config():
    a, b = grid()[0], grid(steps=5)[0]
    assert cell_key(a) == cell_key(dict(a))
    assert cell_key(a) != cell_key(b)
    assert cell_key(a) != cell_key({**a, "seed": 7})
    assert cell_key(a).startswith("control/Toy-v0/bt/mistake/0.0/0/")


def test_torn_last_line_is_ignored_and_next_row_starts_a_new_line(tmp_path):
    path = tmp_path / "results.jsonl"
    append_row(path, {"key": "a", "x": 1})
    with open(path, "a") as handle:
        handle.write('{"key": "b", "x"')  # a kill in the middle of a write
    assert [r["key"] for r in read_rows(path)] == ["a"]
    append_row(path, {"key": "c", "x": 3})
    assert [r["key"] for r in read_rows(path)] == ["a", "c"]


def test_local_sweep_writes_every_cell_and_a_rerun_computes_nothing(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    cells = grid(marker_dir=str(markers))
    rows = run_sweep(cells, TARGET, tmp_path / "out", workers=2, progress=False)
    assert [r["key"] for r in rows] == [cell_key(c) for c in cells]
    assert {"domain", "env", "method", "noise", "rate", "seed", "config", "wall_s", "clean_accuracy"} <= set(
        rows[0]
    )
    assert len({r["pid"] for r in rows}) <= 2
    again = run_sweep(cells, TARGET, tmp_path / "out", workers=2, progress=False)
    assert strip(again) == strip(rows)
    assert len((markers / "starts.txt").read_text().splitlines()) == len(cells)


def test_rows_of_another_sweep_are_refused(tmp_path):
    run_sweep(grid()[:2], TARGET, tmp_path, workers=1, progress=False)
    with pytest.raises(UsageError, match="different sweep"):
        pending_cells(grid(sleep=0.1), tmp_path / "results.jsonl")
    with pytest.raises(UsageError, match="valid backends: local, ray"):
        run_sweep(grid(), TARGET, tmp_path, backend="slurm")


def test_killed_sweep_resumes_without_losing_or_recomputing_a_finished_cell(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    cells = grid(marker_dir=str(markers), sleep=0.6)
    out = tmp_path / "out"
    script = (
        f"import sys, json; sys.path.insert(0, {str(HERE)!r});"
        "from aligngym.runs.sweep import run_sweep;"
        f"run_sweep(json.loads(sys.argv[1]), {TARGET!r}, {str(out)!r}, workers=2, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(cells)], start_new_session=True)
    deadline = time.monotonic() + 60
    while len(read_rows(out / "results.jsonl")) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its pool workers, mid-way
    proc.wait()
    finished = {r["key"] for r in read_rows(out / "results.jsonl")}
    assert 3 <= len(finished) < len(cells)

    rows = run_sweep(cells, TARGET, out, workers=2, progress=False)
    keys = [r["key"] for r in rows]
    assert keys == [cell_key(c) for c in cells]  # every cell exactly once
    starts = (markers / "starts.txt").read_text().splitlines()
    assert all(starts.count(key) == 1 for key in finished)  # no finished cell ran again


def test_ray_backend_gives_the_same_rows_as_the_local_pool(tmp_path):
    pytest.importorskip("ray")
    cells = grid()[:4]
    local = run_sweep(cells, TARGET, tmp_path / "local", workers=2, progress=False)
    on_ray = run_sweep(
        cells,
        TARGET,
        tmp_path / "ray",
        backend="ray",
        workers=2,
        progress=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(HERE)}},
    )
    assert strip(on_ray) == strip(local)


@pytest.mark.slow
def test_real_benchmark_cells_give_the_same_rows_locally_and_on_ray(tmp_path):
    """The control cells themselves (fixed pairs + PbRL with PPO) are reproducible across backends."""
    pytest.importorskip("ray")
    from aligngym.runs.reward_benchmark import load_bench_recipe, run_benchmark

    recipe_path = tmp_path / "tiny.yaml"
    recipe_path.write_text(
        "name: tiny\nenvs: [Pendulum-v1]\nmethods: [{name: bt}, {name: r3m, params: {lam: 0.3}}]\n"
        "noises: [{teacher: mistake, levels: [0.3]}]\nseeds: [0]\n"
        "pairs: {segment_length: 10, segments_per_policy: 20, gait_policies: 2, n_train: 100, n_test: 50, epochs: 3}\n"
        "rl: {total_timesteps: 512, n_envs: 1, hyperparams: {n_steps: 256, batch_size: 64, n_epochs: 2},"
        " query_every: 256, initial_queries: 16, query_budget: 32, segment_length: 10, reward_epochs: 2,"
        " eval_episodes: 1}\n"
    )
    recipe = load_bench_recipe(str(recipe_path))
    local = run_benchmark(recipe, tmp_path / "local", workers=2, progress=False)
    on_ray = run_benchmark(recipe, tmp_path / "ray", backend="ray", workers=2, progress=False)
    assert len(local) == 2
    drop = ("wall_s", "fit_seconds", "rl_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in on_ray] == [
        {k: v for k, v in r.items() if k not in drop} for r in local
    ]
