"""Model perturbations change the dynamics for one episode; robustness grids are tables, CSV and PNG."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from aligngym.envs.perturbations import (
    DEFAULT_GRIDS,
    ModelPerturbation,
    Perturbation,
    plot_heatmap,
    robustness_grid,
)


@pytest.fixture(autouse=True)
def _scratch_cwd(tmp_path, monkeypatch):
    """MuJoCo writes MUJOCO_LOG.TXT into the working directory when it compiles half_cheetah.xml."""
    monkeypatch.chdir(tmp_path)


def rollout(env: gym.Env, seed: int = 0, steps: int = 40, options: dict | None = None) -> np.ndarray:
    """Observations of a fixed open-loop action sequence."""
    obs, _ = env.reset(seed=seed, options=options)
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, *env.action_space.shape)).astype(np.float32)
    trajectory = [obs]
    for action in actions:
        obs, _, terminated, truncated, _ = env.step(action)
        trajectory.append(obs)
        if terminated or truncated:
            break
    return np.array(trajectory)


@pytest.mark.parametrize(
    "options",
    [{"mass_scale": 2.0}, {"friction_scale": 0.3}, {"gravity_scale": 0.5}, {"gear_scale": 0.5}],
    ids=lambda options: next(iter(options)),
)
def test_perturbation_changes_dynamics_and_next_reset_restores_nominal(options):
    env = ModelPerturbation(gym.make("Hopper-v5"))
    nominal = rollout(env)
    perturbed = rollout(env, options=options)
    assert not np.allclose(nominal[: len(perturbed)][-5:], perturbed[: len(nominal)][-5:], atol=1e-3)
    again = rollout(env)
    np.testing.assert_array_equal(nominal, again)
    model = env.unwrapped.model
    np.testing.assert_array_equal(model.body_mass, env.nominal.body_mass)
    np.testing.assert_array_equal(model.geom_friction, env.nominal.geom_friction)
    np.testing.assert_array_equal(model.opt.gravity, env.nominal.gravity)
    np.testing.assert_array_equal(model.actuator_gear, env.nominal.actuator_gear)


def test_values_are_scaled_where_documented():
    env = ModelPerturbation(gym.make("Walker2d-v5"))
    env.reset(
        seed=0,
        options={
            "mass_scale": 1.5,
            "mass_bodies": ["torso", "foot"],
            "friction_scale": 0.5,
            "gravity_scale": 2.0,
            "gear_scale": 0.25,
        },
    )
    model, nominal = env.unwrapped.model, env.nominal
    for name in ("torso", "foot"):
        body = nominal.body_id(name)
        assert model.body_mass[body] == pytest.approx(1.5 * nominal.body_mass[body])
        np.testing.assert_allclose(model.body_inertia[body], 1.5 * nominal.body_inertia[body])
    thigh = nominal.body_id("thigh")
    assert model.body_mass[thigh] == nominal.body_mass[thigh]
    np.testing.assert_allclose(model.geom_friction, 0.5 * nominal.geom_friction)
    np.testing.assert_allclose(model.opt.gravity, [0.0, 0.0, -19.62])
    np.testing.assert_allclose(model.actuator_gear, 0.25 * nominal.actuator_gear)
    assert env.perturbation.mass_bodies == ("torso", "foot")


def test_heavier_torso_falls_differently_in_every_task_family():
    for env_id in ("HalfCheetah-v5", "Ant-v5", "Swimmer-v5"):
        env = ModelPerturbation(gym.make(env_id))
        assert not np.allclose(rollout(env, steps=20), rollout(env, steps=20, options={"mass_scale": 3.0}))


def test_constructor_sets_every_episode_and_options_override_one():
    env = ModelPerturbation(gym.make("Hopper-v5"), mass_scale=2.0, friction_scale=0.5)
    torso = env.nominal.body_id("torso")
    model = env.unwrapped.model
    env.reset(seed=0)
    assert model.body_mass[torso] == pytest.approx(2 * env.nominal.body_mass[torso])
    env.reset(seed=0, options={"mass_scale": 1.0})
    assert model.body_mass[torso] == env.nominal.body_mass[torso]
    assert model.geom_friction[0, 0] == pytest.approx(0.5 * env.nominal.geom_friction[0, 0])
    env.reset(seed=0)
    assert model.body_mass[torso] == pytest.approx(2 * env.nominal.body_mass[torso])


def test_wraps_the_adversarial_game_too():
    env = ModelPerturbation(gym.make("aligngym/HopperProtagonist-v0"), friction_scale=0.2)
    env.reset(seed=0)
    np.testing.assert_allclose(env.unwrapped.model.geom_friction, 0.2 * env.nominal.geom_friction)


def test_bad_values_fail_with_the_rule_or_the_choices():
    with pytest.raises(ValueError, match="mass_scale=0.0 must be > 0"):
        Perturbation(mass_scale=0.0)
    with pytest.raises(ValueError, match="friction_scale=-1 must be >= 0"):
        Perturbation(friction_scale=-1)
    with pytest.raises(ValueError, match="unknown body 'pelvis'; valid bodies: torso"):
        ModelPerturbation(gym.make("Hopper-v5"), mass_scale=2.0, mass_bodies="pelvis")
    with pytest.raises(TypeError, match="not a MuJoCo env"):
        ModelPerturbation(gym.make("CartPole-v1"))


def test_robustness_grid_table_csv_and_heatmap(tmp_path):
    def still(obs):
        return np.zeros(3, dtype=np.float32)

    result = robustness_grid(
        lambda: gym.make("Hopper-v5"),
        still,
        masses=[2.0, 8.0],
        frictions=[0.2, 1.0, 1.8],
        episodes=2,
        seed=5,
        max_steps=30,
    )
    assert result.returns.shape == (2, 3) and result.body == "torso" and result.task == "Hopper"
    assert result.nominal_mass == pytest.approx(3.6651914)
    assert result.worst == result.returns.min() <= result.mean <= result.returns.max()
    assert result.worst_cell[0] in (2.0, 8.0)
    assert not np.all(result.returns == result.returns[0, 0])
    again = robustness_grid(
        lambda: gym.make("Hopper-v5"),
        still,
        masses=[2.0, 8.0],
        frictions=[0.2, 1.0, 1.8],
        episodes=2,
        seed=5,
        max_steps=30,
    )
    np.testing.assert_array_equal(result.returns, again.returns)

    markdown = result.to_markdown()
    assert "| 8.00 |" in markdown and "grid mean" in markdown
    csv_text = result.to_csv(tmp_path / "grid.csv")
    assert csv_text.splitlines()[0] == "mass_kg,friction_scale,mean_return,std_return"
    assert len((tmp_path / "grid.csv").read_text().splitlines()) == 1 + 6
    png = plot_heatmap(result, tmp_path / "grid.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.to_dict()["worst"] == result.worst


def test_default_grid_uses_the_task_range():
    result = robustness_grid(
        lambda: gym.make("aligngym/HopperProtagonist-v0"), lambda obs: np.zeros(3), points=3, max_steps=2
    )
    assert result.masses == [1.0, 5.0, 9.0] == list(np.linspace(*DEFAULT_GRIDS["Hopper"].masses, 3))
    assert result.frictions == pytest.approx([0.1, 1.0, 1.9])
    walker = robustness_grid(lambda: gym.make("Walker2d-v5"), lambda obs: np.zeros(6), points=2, max_steps=1)
    assert walker.masses == pytest.approx([0.5 * walker.nominal_mass, 1.5 * walker.nominal_mass])
    assert walker.frictions == pytest.approx([0.1, 1.3])
