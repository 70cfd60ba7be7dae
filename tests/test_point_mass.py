"""The point mass vs wind: the QARL code's dynamics step for step, its perturbations, and domain randomisation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import aligngym  # noqa: F401  (registers the ids)
from aligngym.agents.adversarial.evaluation import EvaluationConfig, constant_pushes
from aligngym.agents.adversarial.training import AdversarialTrainer, BaselineConfig
from aligngym.envs.perturbations import DomainRandomization, robustness_grid
from aligngym.envs.point_mass import PointMassWindEnv

GAME = "aligngym/AdversarialPointMass-v0"
UP = np.array([0.0, 1.0])


def reference_step(
    state: np.ndarray, protagonist: np.ndarray, wind: float, mass=5.0, friction=1.0
) -> np.ndarray:
    """``AbstractPointMassEnvironment.step`` of github.com/AryamanReddi99/quantal-adversarial-rl, ported as is."""
    low, high = np.array([-2.0, -np.inf, -2.0, -np.inf]), np.array([2.0, np.inf, 2.0, np.inf])
    net = np.clip(protagonist, -1.0, 1.0).astype(np.float64)
    if -1.0 <= state[2] <= 0:
        net = net + np.array([np.clip(wind, -10.0, 10.0), 0.0])
    new = state
    for _ in range(10):
        old = new
        derivative = np.zeros(4)
        derivative[0::2] = old[1::2]
        derivative[1::2] = (net - friction * old[1::2]) / mass
        new = old + 0.01 * derivative
        if new[0] < low[0] or new[0] > high[0]:
            new[1] = 0
        if new[2] < low[2] or new[2] > high[2]:
            new[3] = 0
        new = np.clip(new, low, high)
        if old[2] >= 0 > new[2]:
            alpha = (0.0 - old[2]) / (new[2] - old[2])
            x_crit = alpha * new[0] + (1 - alpha) * old[0]
            if np.abs(x_crit) > 0.5:
                new = np.array([x_crit, old[1], 1e-4, 0])
        if old[2] <= 0 < new[2]:
            alpha = (0.0 - old[2]) / (new[2] - old[2])
            x_crit = alpha * new[0] + (1 - alpha) * old[0]
            if np.abs(x_crit) > 0.5:
                new = np.array([x_crit, old[1], -1e-4, 0])
    return new


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dynamics_and_reward_equal_the_qarl_code_step_for_step(seed):
    """Random pushes of both players (walls, the gap, the border and the wind band all get hit)."""
    rng = np.random.default_rng(seed)
    env = PointMassWindEnv()
    obs, _ = env.reset(seed=seed)
    state = np.array([0.0, 0.0, -1.5, 0.0])
    upward = np.array([0.0, 0.6])
    for _ in range(400):
        protagonist = rng.uniform(-1.5, 1.5, size=2) + upward  # some actions beyond the bound: clipped
        wind = float(rng.uniform(-15.0, 15.0))
        obs, reward, terminated, truncated, info = env.step({"protagonist": protagonist, "adversary": [wind]})
        state = reference_step(state, protagonist, wind)
        np.testing.assert_allclose(obs, state, rtol=1e-6, atol=1e-6)
        distance = np.hypot(state[0], state[2] - 1.5)
        assert info["distance"] == pytest.approx(distance)
        assert reward == pytest.approx(0.0 if distance <= 0.1 else np.exp(-distance) - 1.0)
        assert info["adversary_reward"] == -reward and not truncated
        if terminated:
            assert distance <= 0.1
            break


def test_flying_straight_reaches_the_goal_and_the_wind_blows_only_in_its_band():
    env = gym.make(GAME)
    env.reset(seed=0)
    for steps in range(1, 200):
        _, reward, terminated, _, _ = env.step({"protagonist": UP, "adversary": None})
        if terminated:
            break
    assert (steps, reward) == (66, 0.0)
    env.reset(seed=0)  # below the band (y = -1.5): a 10 N wind does nothing
    obs, *_ = env.step({"protagonist": [0.0, 0.0], "adversary": [10.0]})
    assert obs[0] == 0.0
    for _ in range(100):  # a constant +10 N wind pushes a straight flight into the wall beside the gap
        obs, _, terminated, _, _ = env.step({"protagonist": UP, "adversary": [10.0]})
        assert not terminated
    assert obs[0] > 0.5 and -1e-4 <= obs[2] < 0.0  # held under the wall


def test_bad_actions_and_settings_are_refused_with_one_line():
    env = PointMassWindEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"protagonist action \[nan, 0.0\]"):
        env.step({"protagonist": [np.nan, 0.0], "adversary": None})
    with pytest.raises(ValueError, match="adversary action .* 1 finite number"):
        env.step({"protagonist": UP, "adversary": [1.0, 2.0]})
    with pytest.raises(ValueError, match="force_bound=-1.0"):
        PointMassWindEnv(force_bound=-1)
    with pytest.raises(ValueError, match="gravity_scale=2.0: .* valid perturbations: mass_scale"):
        env.reset(options={"gravity_scale": 2.0})
    with pytest.raises(ValueError, match="unknown body 'torso'; the point mass has one body: 'mass'"):
        env.reset(options={"mass_scale": 2.0, "mass_bodies": ["torso"]})
    with pytest.raises(ValueError, match="unknown reset option.*'wind'"):
        env.reset(options={"wind": 1.0})


def test_perturbations_last_one_episode_and_slow_a_heavier_mass_down():
    env = PointMassWindEnv()
    env.reset(seed=0, options={"mass_scale": 2.0, "friction_scale": 0.5, "gear_scale": 3.0})
    assert (env.model.mass, env.model.friction, env.model.force) == (10.0, 0.5, 3.0)
    env.reset(seed=0)
    assert env.model == env.nominal
    grid = robustness_grid(lambda: gym.make("aligngym/PointMassProtagonist-v0"), lambda obs: UP, points=3)
    assert grid.masses == [2.5, 5.0, 7.5] and grid.body == "mass"
    assert grid.returns[1, 1] == pytest.approx(-50.831, abs=1e-3)  # the nominal cell: 66 steps
    assert (np.diff(grid.returns, axis=0) < 0).all()  # heavier: slower
    assert (np.diff(grid.returns, axis=1) < 0).all()  # more friction: slower


def test_domain_randomization_draws_each_episode_within_the_grid_ranges():
    env = DomainRandomization(gym.make("aligngym/PointMassProtagonist-v0"), seed=0)
    masses, frictions = [], []
    for episode in range(50):
        env.reset(seed=episode)
        masses.append(env.unwrapped.model.mass)
        frictions.append(env.unwrapped.model.friction)
    assert 2.5 <= min(masses) < 3.0 and 7.0 < max(masses) <= 7.5  # 0.5x-1.5x the nominal 5 kg
    assert 0.1 <= min(frictions) < 0.4 and 1.6 < max(frictions) <= 1.9
    env.reset(options={"mass_scale": 1.0, "friction_scale": 1.0})  # options given to reset win
    assert env.unwrapped.model == env.unwrapped.nominal
    with pytest.raises(ValueError, match=r"masses=\[3.0, 1.0\] must be \(low, high\)"):
        DomainRandomization(gym.make("aligngym/PointMassProtagonist-v0"), masses=(3.0, 1.0))
    hopper = DomainRandomization(gym.make("Hopper-v5"), masses=(2.0, 2.5), seed=0)  # MuJoCo: wrapped here
    hopper.reset(seed=0)
    assert 2.0 <= hopper.unwrapped.model.body_mass[1] <= 2.5


def test_domain_randomization_baseline_trains_over_the_evaluation_ranges(tmp_path):
    assert BaselineConfig(env_id=GAME, domain_randomization=True).method == "dr"
    with pytest.raises(ValueError, match="domain_randomization=true with adversary='random'"):
        BaselineConfig(env_id=GAME, adversary="random", domain_randomization=True)
    config = BaselineConfig(
        env_id=GAME,
        domain_randomization=True,
        max_episode_steps=20,
        hyperparams={"learning_starts": 10, "batch_size": 8, "buffer_size": 100},
        policy_kwargs={"net_arch": [8]},
        evaluation=EvaluationConfig(masses=[4.0, 4.5], frictions=[0.2, 0.3]),
    )
    trainer = AdversarialTrainer(config, seed=0, run_dir=tmp_path)
    env = trainer.protagonist.get_env()
    drawn = []
    for _ in range(10):
        env.reset()
        drawn.append(trainer.protagonist_game.unwrapped.model)
    assert all(4.0 <= m.mass <= 4.5 and 0.2 <= m.friction <= 0.3 for m in drawn)
    assert len({m.mass for m in drawn}) == 10


def test_the_strongest_constant_push_is_the_wind_both_ways():
    env = PointMassWindEnv(force_bound=7.0)
    pushes = constant_pushes(env.adversary_action_names, env.force_bound)
    assert {k: v.tolist() for k, v in pushes.items()} == {"+fx": [7.0], "-fx": [-7.0]}


def _returns(protagonist, wind, horizon=150) -> tuple[float, float]:
    """Undiscounted and discounted (gamma 0.99) return of a fixed action and a constant wind (None: no wind)."""
    env = gym.make(GAME, max_episode_steps=horizon)
    env.reset(seed=0)
    total = discounted = 0.0
    for t in range(horizon):
        _, reward, terminated, truncated, _ = env.step({"protagonist": protagonist, "adversary": wind})
        total, discounted = total + reward, discounted + 0.99**t * reward
        if terminated or truncated:
            break
    return total, discounted


def test_the_reference_returns_quoted_in_the_recipes_and_docs():
    """xi = -56.5 of qarl-pointmass is halfway between these two discounted returns; the docs quote the rest."""
    straight, still = _returns(UP, None), _returns([0.0, 0.0], None)
    assert straight == pytest.approx((-50.8, -39.1), abs=0.05)
    assert still == pytest.approx((-142.5, -74.0), abs=0.05)
    assert (straight[1] + still[1]) / 2 == pytest.approx(-56.5, abs=0.1)
    assert _returns(UP, [10.0])[0] == pytest.approx(-138.0, abs=0.05)
    assert _returns(UP, [2.0])[0] < -130  # a constant 2 N wind already keeps a straight flight off the goal
