"""TemperedSBXSAC (the QARL adversary on SBX/JAX): constant alpha equals SBX SAC at that ent_coef, per-sample
alpha (next observation's in the target, current one's in the actor loss), planted bugs that must fail; and
``sac_backend: sbx`` in the adversarial trainers (what works, what is refused at config time)."""

from __future__ import annotations

import functools
import subprocess
import sys

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sbx import SAC
from tempered_buffers import filled_model

from aligngym.agents.adversarial.evaluation import EvaluationConfig
from aligngym.agents.adversarial.sbx_sac import ObservedTemperature, TemperedSBXSAC
from aligngym.agents.adversarial.temperature import PointTemperature, TemperatureObservation
from aligngym.agents.adversarial.tempered_sac import TemperedSAC
from aligngym.agents.adversarial.training import (
    AdversarialTrainer,
    QARLConfig,
    RARLConfig,
    load_players,
    player_class,
)
from aligngym.agents.sb3_algorithms import ALGORITHMS
from aligngym.runs.recipes import recipe_from_dict


def _parameters(model) -> list[np.ndarray]:
    """Actor, critic and target-critic weights as arrays."""
    policy = model.policy
    trees = (policy.actor_state.params, policy.qf_state.params, policy.qf_state.target_params)
    return [np.asarray(leaf) for tree in trees for leaf in jax.tree_util.tree_leaves(tree)]


def _updated(model, gradient_steps: int = 5) -> list[np.ndarray]:
    np.random.seed(1)  # the replay buffer samples with numpy's global generator
    model.train(gradient_steps=gradient_steps, batch_size=32)
    return _parameters(model)


@functools.cache
def _weights_after_training(
    tempered: bool, alphas: tuple[float, ...], ent_coef: float = 0.0, temperature_index: int = -1
) -> tuple[list[np.ndarray], list[np.ndarray], dict[str, float]]:
    """Weights before and after 5 updates on the same data, and the logged values (each JIT costs seconds)."""
    if tempered:
        model = filled_model(TemperedSBXSAC, np.array(alphas), temperature_index=temperature_index)
    else:
        model = filled_model(SAC, np.array(alphas), ent_coef=ent_coef)
    before = _parameters(model)
    return before, _updated(model), dict(model.logger.name_to_value)


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.allclose(x, y, atol=1e-6) for x, y in zip(a, b))


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_constant_alpha_equals_sbx_sac_with_that_ent_coef(alpha: float) -> None:
    before, tempered, _ = _weights_after_training(True, (alpha,))
    _, plain, _ = _weights_after_training(False, (alpha,), ent_coef=alpha)
    assert _same(tempered, plain)
    assert not _same(tempered, before)  # the updates moved the weights: the comparison is not vacuous


def test_planted_bug_alpha_from_the_wrong_column_breaks_the_equality() -> None:
    """The exactness check has teeth: the same model reading alpha from observation column 0 fails it."""
    _, plain, _ = _weights_after_training(False, (0.3,), ent_coef=0.3)
    _, wrong_column, _ = _weights_after_training(True, (0.3,), temperature_index=0)
    assert not _same(wrong_column, plain)
    # and the entropy term matters at all: alpha 0.3 is not alpha 0
    assert not _same(_weights_after_training(True, (0.3,))[1], _weights_after_training(False, (0.3,))[1])


def _batch(obs_alpha: float, next_alpha: float) -> tuple[jax.Array, ...]:
    """(observations, actions, next_observations, rewards, dones, discounts, key): update_critic's data."""
    rng = np.random.default_rng(2)
    column = np.ones((32, 1))
    observations = np.hstack([rng.normal(size=(32, 3)), obs_alpha * column])
    actions = rng.uniform(-1, 1, (32, 1))
    next_observations = np.hstack([rng.normal(size=(32, 3)), next_alpha * column])
    arrays = (observations, actions, next_observations, rng.normal(size=32), np.zeros(32), np.full(32, 0.99))
    return (*(jnp.asarray(a, jnp.float32) for a in arrays), jax.random.PRNGKey(3))


def _critic_after_one_update(
    model, batch: tuple[jax.Array, ...], planted_bug: bool = False
) -> list[np.ndarray]:
    policy, ent_coef_state = model.policy, model.ent_coef_state
    if planted_bug:  # the target reads alpha of the current observations instead of the next ones
        apply, current = ent_coef_state.apply_fn, batch[0]
        ent_coef_state = ent_coef_state.replace(apply_fn=lambda variables, _: apply(variables, current))
    qf_state, _, _ = type(model).update_critic(policy.actor_state, policy.qf_state, ent_coef_state, *batch)
    return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(qf_state.params)]


@pytest.mark.parametrize("planted_bug", [False, True])
def test_the_soft_target_uses_the_next_observations_alpha(planted_bug: bool) -> None:
    batch = _batch(obs_alpha=0.0, next_alpha=0.5)
    tempered = _critic_after_one_update(filled_model(TemperedSBXSAC, np.array([0.0])), batch, planted_bug)
    at_next = _critic_after_one_update(filled_model(SAC, np.array([0.0]), ent_coef=0.5), batch)
    at_current = _critic_after_one_update(filled_model(SAC, np.array([0.0]), ent_coef=0.0), batch)
    assert _same(tempered, at_next) != planted_bug  # the planted bug fails here
    assert _same(tempered, at_current) == planted_bug


def test_the_actor_loss_uses_the_current_observations_alpha() -> None:
    batch = _batch(obs_alpha=0.5, next_alpha=0.0)
    args = (batch[0], batch[-1])  # observations, key

    def actor_after_one_update(model) -> list[np.ndarray]:
        policy = model.policy
        state, *_ = type(model).update_actor(policy.actor_state, policy.qf_state, model.ent_coef_state, *args)
        return [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(state.params)]

    tempered = actor_after_one_update(filled_model(TemperedSBXSAC, np.array([0.0])))
    assert _same(tempered, actor_after_one_update(filled_model(SAC, np.array([0.0]), ent_coef=0.5)))
    assert not _same(tempered, actor_after_one_update(filled_model(SAC, np.array([0.0]), ent_coef=0.0)))


def test_each_sample_has_its_own_alpha() -> None:
    obs = jnp.array([[0.1, 0.2, 0.3, 0.0], [0.1, 0.2, 0.3, 0.6], [0.0, 0.0, 0.0, 2.0], [0.0, 0.0, 0.0, -1.0]])
    module = ObservedTemperature()
    alphas = module.apply(module.init(jax.random.PRNGKey(0), obs), obs)
    np.testing.assert_allclose(np.asarray(alphas), [[0.0], [0.6], [2.0], [0.0]])  # clipped at 0
    # Not one global coefficient: the mixed-alpha update differs from SBX SAC at the mean alpha (0.3).
    _, mixed, logged = _weights_after_training(True, (0.0, 0.6))
    assert not _same(mixed, _weights_after_training(False, (0.0, 0.6), ent_coef=0.3)[1])
    assert logged["train/ent_coef"] == pytest.approx(0.3, abs=0.15)
    assert logged["train/ent_coef_loss"] == 0.0  # nothing tunes alpha


def test_refuses_a_global_ent_coef() -> None:
    env = TemperatureObservation(gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="ent_coef"):
        TemperedSBXSAC("MlpPolicy", env, ent_coef="auto")


def test_learns_through_sbx_loop_and_acts() -> None:
    env = TemperatureObservation(gym.make("Pendulum-v1"), PointTemperature(0.2))
    model = TemperedSBXSAC(
        "MlpPolicy", env, learning_starts=32, batch_size=16, seed=0, policy_kwargs={"net_arch": [16, 16]}
    )
    model.learn(64)
    assert model.num_timesteps == 64 and model.logger.name_to_value["train/ent_coef"] == pytest.approx(0.2)
    action, _ = model.predict(env.reset(seed=0)[0], deterministic=True)
    assert env.action_space.contains(action)


# -- the adversarial trainers with sac_backend: sbx ------------------------------------------------------

SBX_TINY = {
    "env_id": "aligngym/AdversarialInvertedPendulum-v0",
    "max_episode_steps": 30,
    "protagonist_steps": 40,
    "adversary_steps": 40,
    "hyperparams": {"learning_starts": 20, "batch_size": 16, "buffer_size": 2000},
    "policy_kwargs": {"net_arch": [16, 16]},
    "evaluation": EvaluationConfig(episodes=1, worst_case_steps=30, grid_points=2),
    "checkpoint_every": 0,
    "sac_backend": "sbx",
}


def test_qarl_on_sbx_trains_evaluates_and_is_not_reloaded_without_weights(tmp_path) -> None:
    config = QARLConfig(**{**SBX_TINY, "iterations": 1})
    trainer = AdversarialTrainer(config, seed=0, run_dir=tmp_path)
    assert isinstance(trainer.adversary, TemperedSBXSAC) and type(trainer.protagonist) is SAC
    summary = trainer.train()
    assert summary["protagonist_timesteps"] == 40 and summary["adversary_timesteps"] == 40
    assert np.isfinite(summary["grid_mean"]) and np.isfinite(summary["vs_worst_case_return"])
    assert (tmp_path / "adversary.zip").exists() and not (tmp_path / "adversary.safetensors").exists()
    assert (
        TemperedSBXSAC.load(tmp_path / "adversary.zip").temperature_index == -1
    )  # SBX's own loader reads it
    with pytest.raises(ValueError, match="sac_backend='sbx'.*sac_backend='sb3' runs are re-evaluated"):
        load_players(config, tmp_path)


def test_the_default_backend_stays_sb3() -> None:
    assert QARLConfig().sac_backend == "sb3"
    assert player_class(QARLConfig(), "adversary") is TemperedSAC
    assert player_class(QARLConfig(**SBX_TINY), "adversary") is TemperedSBXSAC
    ppo = RARLConfig(**{**SBX_TINY, "hyperparams": {}, "protagonist_algo": "ppo"})
    assert player_class(ppo, "protagonist") is ALGORITHMS["ppo"] and player_class(ppo, "adversary") is SAC


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"checkpoint_every": 1}, "supports no checkpoints and no resume .*set checkpoint_every: 0"),
        ({"resume_from": "old-run"}, "supports no checkpoints and no resume .*resume_from='old-run'"),
        ({"policy_kwargs": {"activation_fn": "Tanh"}}, "policy_kwargs.activation_fn names a torch class"),
        ({"hyperparams": {"qf_learning_rate": 1e-3}}, "'qf_learning_rate' is an SBX-only SAC argument"),
        ({"hyperparams": {"optimize_memory_usage": True}}, "optimize_memory_usage is not a SAC argument"),
    ],
)
def test_what_sbx_cannot_do_is_refused_at_config_time_in_one_line(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        RARLConfig(**{**SBX_TINY, **change})
    assert "\n" not in str(error.value)


def test_sbx_only_arguments_pass_without_the_sb3_worst_case_adversary() -> None:
    evaluation = EvaluationConfig(worst_case_steps=0)
    config = RARLConfig(**{**SBX_TINY, "hyperparams": {"qf_learning_rate": 1e-3}, "evaluation": evaluation})
    assert config.adversary_settings()["qf_learning_rate"] == 1e-3


def test_a_recipe_names_the_valid_backends() -> None:
    recipe = {"job": "qarl", "name": "t", "seed": 0, "config": {"sac_backend": "jax"}}
    with pytest.raises(ValueError, match="sac_backend.*sb3.*sbx"):
        recipe_from_dict(recipe)


def test_without_sbx_installed_the_error_names_the_extra(tmp_path) -> None:
    code = (
        "import sys\nsys.modules['sbx'] = None\n"
        "from aligngym.agents.adversarial.training import RARLConfig\n"
        "RARLConfig(sac_backend='sbx', checkpoint_every=0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        "ModuleNotFoundError: sac_backend: sbx needs sbx, which is not installed: pip install 'aligngym[sbx]'"
    )
