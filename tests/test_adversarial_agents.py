"""RARL/QARL agents: alpha in observations, the per-sample entropy of TemperedSAC, the runner, resume, eval."""

from __future__ import annotations

import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from stable_baselines3 import SAC
from tempered_buffers import filled_model

from aligngym.agents.adversarial.evaluation import (
    EvaluationConfig,
    constant_pushes,
    mean_return,
    worst_constant_push,
)
from aligngym.agents.adversarial.opponents import make_game, protagonist_env
from aligngym.agents.adversarial.temperature import GammaTemperature, PointTemperature, TemperatureObservation
from aligngym.agents.adversarial.tempered_sac import TemperedSAC
from aligngym.agents.adversarial.training import (
    AdversarialTrainer,
    BaselineConfig,
    QARLConfig,
    RARLConfig,
    train_adversarial,
)
from aligngym.runs.cli import main
from aligngym.runs.recipes import recipe_from_dict

GAME = "aligngym/AdversarialInvertedPendulum-v0"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks: one thread is fastest and keeps runs reproducible; restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- observations carry alpha ------------------------------------------------------------------------


def test_observation_carries_one_alpha_per_episode_drawn_from_the_distribution() -> None:
    env = TemperatureObservation(gym.make(GAME), GammaTemperature(50.0, 1000.0))
    assert env.observation_space.shape == (5,)
    alphas = []
    for episode in range(30):
        obs, info = env.reset(seed=episode)
        alpha = obs[-1]
        assert alpha == pytest.approx(info["temperature"], rel=1e-6) and alpha > 0
        for _ in range(3):
            obs, *_ = env.step(env.action_space.sample())
            assert obs[-1] == alpha  # constant within the episode
        alphas.append(float(alpha))
    assert len(set(alphas)) == 30
    assert np.mean(alphas) == pytest.approx(0.05, rel=0.15)
    # Same seed, same alphas; evaluation feeds alpha = 0.
    again = TemperatureObservation(gym.make(GAME), GammaTemperature(50.0, 1000.0))
    assert [float(again.reset(seed=s)[0][-1]) for s in range(30)] == pytest.approx(alphas)
    env.set_distribution(PointTemperature(0.0))
    assert env.reset(seed=0)[0][-1] == 0.0


def test_finished_episodes_report_alpha_and_discounted_return() -> None:
    env = TemperatureObservation(gym.make(GAME, max_episode_steps=5), PointTemperature(0.02), gamma=0.5)
    env.reset(seed=0)
    zero = {"protagonist": np.zeros(1, np.float32), "adversary": np.zeros(2, np.float32)}
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(zero)
        done = terminated or truncated
    # InvertedPendulum pays 1 per step: 1 + 0.5 + 0.25 + 0.125 + 0.0625 over 5 steps.
    assert env.pop_episodes() == [(0.02, pytest.approx(1.9375))]
    assert env.pop_episodes() == []


def test_wrapper_rejects_non_box_observations() -> None:
    with pytest.raises(TypeError, match="1-D Box"):
        TemperatureObservation(gym.make("FrozenLake-v1"))


# -- the adversary's per-sample entropy temperature -------------------------------------------------


def _one_update(model) -> list[torch.Tensor]:
    torch.manual_seed(1)
    np.random.seed(1)
    model.train(gradient_steps=1, batch_size=32)
    return [p.detach().clone() for p in model.policy.parameters()]


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_tempered_sac_with_constant_alpha_equals_sac_with_that_ent_coef(alpha: float) -> None:
    tempered = _one_update(filled_model(TemperedSAC, np.array([alpha])))
    plain = _one_update(filled_model(SAC, np.array([alpha]), ent_coef=alpha))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(tempered, plain))


def test_tempered_sac_uses_each_samples_alpha() -> None:
    mixed = filled_model(TemperedSAC, np.array([0.0, 0.6]))
    obs = torch.tensor([[0.1, 0.2, 0.3, 0.0], [0.1, 0.2, 0.3, 0.6], [0.0, 0.0, 0.0, 2.0]])
    log_prob = torch.tensor([-1.0, -2.0, 0.5])
    assert torch.equal(mixed.entropy_terms(obs, log_prob), torch.tensor([[0.0], [-1.2], [1.0]]))
    # Not one global coefficient: the mixed-alpha update differs from SAC at the mean alpha (0.3).
    at_mean = _one_update(filled_model(SAC, np.array([0.0, 0.6]), ent_coef=0.3))
    updated = _one_update(mixed)
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(updated, at_mean))
    assert mixed.logger.name_to_value["train/ent_coef"] == pytest.approx(0.3, abs=0.15)


def test_tempered_sac_refuses_a_global_ent_coef() -> None:
    env = TemperatureObservation(gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="ent_coef"):
        TemperedSAC("MlpPolicy", env, ent_coef="auto")


# -- configs -----------------------------------------------------------------------------------------


def test_configs_validate_and_name_their_method() -> None:
    assert BaselineConfig().method == "sac" and BaselineConfig(adversary="random").method == "random"
    assert RARLConfig().method == "rarl" and QARLConfig().conditioned
    with pytest.raises(ValueError, match="AdversarialHopper-v0"):
        RARLConfig(env_id="Hopper-v5")
    with pytest.raises(ValueError, match="must be sac"):
        QARLConfig(adversary_algo="ppo")
    with pytest.raises(ValueError, match="ent_coef"):
        QARLConfig(hyperparams={"ent_coef": "auto"})
    with pytest.raises(ValueError, match="gamma"):
        RARLConfig(hyperparams={"gamma": 0.9})


# -- the runner: train, log the curriculum, checkpoint, resume, evaluate ----------------------------

TINY = {
    "env_id": GAME,
    "max_episode_steps": 30,
    "protagonist_steps": 40,
    "adversary_steps": 40,
    "hyperparams": {"learning_starts": 20, "batch_size": 16, "buffer_size": 2000},
    "policy_kwargs": {"net_arch": [16, 16]},
    "evaluation": EvaluationConfig(at_end=False, episodes=1, worst_case_steps=30, grid_points=2),
}


def test_qarl_runs_logs_the_curriculum_and_resumes_after_a_kill(tmp_path) -> None:
    config = QARLConfig(**{**TINY, "iterations": 2})
    config.curriculum.min_episodes = 3
    trainer = AdversarialTrainer(config, seed=0, run_dir=tmp_path)
    assert trainer.protagonist.observation_space.shape == (5,)  # InvertedPendulum's 4 + alpha
    assert isinstance(trainer.adversary, TemperedSAC)
    summary = trainer.train()
    assert summary["protagonist_timesteps"] == 80 and summary["adversary_timesteps"] == 80
    with open(tmp_path / "iterations.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["iteration"] for r in rows] == ["1", "2"]
    assert {"curriculum_alpha_mean", "curriculum_status", "episodes"} <= set(rows[0])
    assert (tmp_path / "protagonist.zip").exists() and (tmp_path / "adversary.zip").exists()
    latest = json.loads((tmp_path / "checkpoints" / "latest.json").read_text())["folder"]
    assert sorted(p.name for p in (tmp_path / "checkpoints" / latest).iterdir()) == [
        "adversary.zip",
        "adversary_buffer.npz",
        "protagonist.zip",
        "protagonist_buffer.npz",
        "state.json",
    ]
    # A run that goes on in the same folder (what a re-run after a kill does) continues at iteration 3.
    longer = QARLConfig(**{**TINY, "iterations": 3})
    longer.curriculum.min_episodes = 3
    resumed = AdversarialTrainer(longer, seed=0, run_dir=tmp_path)
    summary = resumed.train()
    assert resumed.iteration == 3
    assert summary["protagonist_timesteps"] == 120 and summary["adversary_timesteps"] == 120
    assert resumed.protagonist.replay_buffer.size() == 120  # the buffer came back with the checkpoint
    assert len(resumed.history) == 3


def test_same_seed_same_numbers(tmp_path) -> None:
    config = RARLConfig(**{**TINY, "iterations": 1})
    first = AdversarialTrainer(config, seed=3, run_dir=tmp_path / "a")
    first.train()
    second = AdversarialTrainer(config, seed=3, run_dir=tmp_path / "b")
    second.train()
    for a, b in zip(first.protagonist.policy.parameters(), second.protagonist.policy.parameters()):
        assert torch.equal(a, b)
    assert first.history == second.history


def test_random_force_baseline_and_robustness_eval_from_the_cli(tmp_path, capsys) -> None:
    config = BaselineConfig(**{**TINY, "iterations": 1, "adversary": "random"})
    summary = train_adversarial(config, seed=0, run_dir=tmp_path)
    assert summary["method"] == "random" and summary["adversary_timesteps"] == 0
    recipe = {
        "job": "adversarial-baseline",
        "name": "t",
        "seed": 0,
        "config": {
            **{k: v for k, v in TINY.items() if k != "evaluation"},
            "iterations": 1,
            "adversary": "random",
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(recipe))
    assert recipe_from_dict(recipe).config.method == "random"
    code = main(
        [
            "eval",
            "robustness",
            str(tmp_path),
            "--episodes",
            "1",
            "--worst-case-steps",
            "30",
            "--grid-points",
            "2",
        ]
    )
    assert code == 0
    results = json.loads((tmp_path / "robustness.json").read_text())
    assert {
        "nominal_return",
        "vs_adversary_return",
        "vs_worst_case_return",
        "vs_constant_push_return",
        "grid_mean",
        "grid_worst",
    } <= set(results)
    assert results["worst_constant_push"] in {"+fx", "-fx", "+fz", "-fz"}
    assert results["grid_worst"] <= results["grid_mean"]
    assert np.array(results["grid"]["returns"]).shape == (2, 2)
    assert (tmp_path / "robustness_heatmap.png").stat().st_size > 0
    assert "grid_mean" in capsys.readouterr().out


def test_eval_rejects_a_folder_that_is_not_an_adversarial_run(tmp_path, capsys) -> None:
    assert main(["eval", "robustness", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_rarl_with_ppo_players(tmp_path) -> None:
    config = RARLConfig(
        **{
            **TINY,
            "iterations": 1,
            "protagonist_algo": "ppo",
            "adversary_algo": "ppo",
            "hyperparams": {"n_steps": 32, "batch_size": 16, "n_epochs": 1},
        }
    )
    trainer = AdversarialTrainer(config, seed=0, run_dir=tmp_path)
    summary = trainer.train()
    assert type(trainer.adversary).__name__ == "PPO"
    assert summary["protagonist_timesteps"] >= 40 and summary["adversary_timesteps"] >= 40
    assert not list((tmp_path / "checkpoints").glob("*/*.npz"))  # on-policy: no replay buffers to keep


def test_constant_pushes_cover_each_axis_of_every_body() -> None:
    pushes = constant_pushes(["torso:fx", "torso:fz", "bfoot:fx", "bfoot:fz"], 3.0)
    assert sorted(pushes) == ["+fx", "+fz", "-fx", "-fz"]
    np.testing.assert_array_equal(pushes["-fz"], [0.0, -3.0, 0.0, -3.0])


class _Still:
    """A protagonist that never acts: the pole only falls faster when pushed."""

    def predict(self, obs, state=None, episode_start=None, deterministic=True):
        return np.zeros((len(obs), 1), dtype=np.float32), state


def test_the_strongest_constant_push_is_the_worst_of_the_four() -> None:
    def game():
        return make_game(GAME, {"force_bound": 20.0}, 100)

    protagonist = _Still()
    worst, key = worst_constant_push(protagonist, game, episodes=2, seed=0)
    nominal, _ = mean_return(protagonist, lambda: protagonist_env(game()), 2, 0)
    assert key in {"+fx", "-fx", "+fz", "-fz"}
    assert worst < nominal  # 20 N on the pole topples it sooner than gravity alone
    returns = [
        mean_return(protagonist, lambda f=f: protagonist_env(game(), lambda obs, f=f: f), 2, 0)[0]
        for f in constant_pushes(["pole:fx", "pole:fz"], 20.0).values()
    ]
    assert worst == min(returns)
