"""The real console script: help, envs, train, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SCRIPT = shutil.which("aligngym", path=os.path.dirname(sys.executable)) or "aligngym"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, cwd=cwd, timeout=300, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aligngym: error:")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def write_recipe(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


PPO_RECIPE = {
    "job": "sb3",
    "name": "tiny",
    "seed": 1,
    "config": {
        "algo": "ppo",
        "env_id": "CartPole-v1",
        "total_timesteps": 128,
        "hyperparams": {"n_steps": 64},
    },
}


def test_help_lists_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    for sub in ("envs", "train", "bench", "eval"):
        assert sub in result.stdout


@pytest.mark.parametrize("sub", ["envs", "train", "bench", "eval"])
def test_each_subcommand_has_help(sub):
    result = run_cli(sub, "--help")
    assert result.returncode == 0
    assert "usage: aligngym " + sub in result.stdout


def test_python_dash_m_matches_console_script():
    result = subprocess.run(
        [sys.executable, "-m", "aligngym", "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert result.stdout.startswith("aligngym ")


def test_envs_lists_every_registered_id():
    from aligngym.envs.registration import DESCRIPTIONS

    result = run_cli("envs")
    assert result.returncode == 0
    assert DESCRIPTIONS, "no aligngym ids registered"
    for env_id in DESCRIPTIONS:
        assert env_id in result.stdout


def test_unknown_config_key(tmp_path):
    recipe = write_recipe(tmp_path, {**PPO_RECIPE, "config": {**PPO_RECIPE["config"], "learning_rat": 0.1}})
    assert_one_line_error(run_cli("train", str(recipe)), "'learning_rat'", "valid keys:", "total_timesteps")


def test_wrong_type(tmp_path):
    recipe = write_recipe(tmp_path, PPO_RECIPE)
    assert_one_line_error(
        run_cli("train", str(recipe), "total_timesteps=many"), "total_timesteps='many'", "int"
    )


def test_unknown_job(tmp_path):
    recipe = write_recipe(tmp_path, {**PPO_RECIPE, "job": "dqn-magic"})
    assert_one_line_error(run_cli("train", str(recipe)), "'dqn-magic'", "valid jobs:", "sb3")


def test_bad_choice_lists_choices(tmp_path):
    recipe = write_recipe(tmp_path, PPO_RECIPE)
    assert_one_line_error(run_cli("train", str(recipe), "algo=dqn"), "algo='dqn'", "ppo", "sac")


def test_missing_recipe_and_malformed_yaml(tmp_path):
    assert_one_line_error(run_cli("train", str(tmp_path / "nope.yaml")), "nope.yaml", "built-in")
    bad = tmp_path / "bad.yaml"
    bad.write_text("job: [sb3\n")
    assert_one_line_error(run_cli("train", str(bad)), "not valid YAML")


def test_bad_override_form_and_unknown_bench(tmp_path):
    recipe = write_recipe(tmp_path, PPO_RECIPE)
    assert_one_line_error(run_cli("train", str(recipe), "no_equals_sign"), "key=value")
    assert run_cli("bench", "no-such-bench").returncode == 2


def test_train_writes_a_complete_run_folder(tmp_path):
    recipe = write_recipe(tmp_path, PPO_RECIPE)
    result = run_cli("train", str(recipe), "seed=7", "eval_episodes=2", "--out", str(tmp_path / "results"))
    assert result.returncode == 0, result.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    assert run_dir.name.startswith("sb3__tiny__7__")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["seed"] == 7 and config["config"]["eval_episodes"] == 2
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["seed"] == 7 and "torch" in meta["packages"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["timesteps"] >= 128
    assert (run_dir / "progress.csv").exists()
    assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())
    assert (run_dir / "model.zip").stat().st_size > 0


def test_import_from_outside_the_repo(tmp_path):
    code = "import aligngym, gymnasium as gym; print(aligngym.__version__, sorted(gym.registry)[0])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stderr
