"""CP tensor policies: discretisation, gather-multiply forward, SB3 integration, distillation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import tensorly as tl
import torch
from stable_baselines3 import A2C, PPO

from aligngym.agents.sb3_training import build_model, train_sb3
from aligngym.agents.tensor.discretization import Discretization
from aligngym.agents.tensor.distillation import (
    decompose,
    distill_policy,
    load_cp_tensor,
    policy_tensors,
    reconstruction_errors,
    relative_error,
    save_cp_tensor,
)
from aligngym.agents.tensor.policies import CPTable, FactorCycleCallback, TensorActorCriticPolicy
from aligngym.runs.recipes import load_recipe

PENDULUM_KWARGS = {"rank": 5, "bins": 10, "low": [-1, -1, -5], "high": [1, 1, 5]}


def pendulum_ppo(seed: int = 0, **kwargs) -> PPO:
    return PPO(
        TensorActorCriticPolicy,
        "Pendulum-v1",
        policy_kwargs={**PENDULUM_KWARGS, **kwargs},
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        seed=seed,
        device="cpu",
    )


def test_discretization_rounds_to_nearest_grid_point_and_clips_out_of_range():
    disc = Discretization(low=[-1.0, 0.0], high=[1.0, 10.0], bins=[5, 11])
    states = torch.tensor([[-1.0, 0.0], [0.24, 4.6], [0.26, 4.4], [1.0, 10.0], [-7.0, 99.0], [3.0, -5.0]])
    assert disc.indices(states).tolist() == [[0, 0], [2, 5], [3, 4], [4, 10], [0, 10], [4, 0]]
    lower, upper, weight = disc.neighbours(torch.tensor([[0.25, 10.0], [-3.0, 2.5]]))
    assert lower.tolist() == [[2, 9], [0, 2]]
    assert upper.tolist() == [[3, 10], [1, 3]]
    assert torch.allclose(weight, torch.tensor([[0.5, 1.0], [0.0, 0.5]]))
    assert disc.grid().shape == (55, 2)
    assert torch.equal(disc.indices(disc.grid()), torch.cartesian_prod(torch.arange(5), torch.arange(11)))


def test_discretization_from_space_needs_finite_ranges():
    space = gym.make("InvertedPendulum-v5").observation_space
    with pytest.raises(ValueError, match="infinite bounds"):
        Discretization.from_space(space, bins=4)
    disc = Discretization.from_space(space, bins=[3, 4, 5, 6], low=[-1, -0.2, -1, -2], high=[1, 0.2, 1, 2])
    assert disc.shape == (3, 4, 5, 6)
    pendulum = Discretization.from_space(
        gym.make("Pendulum-v1").observation_space, bins=7, low=[None, None, -5]
    )
    assert pendulum.low.tolist() == [-1.0, -1.0, -5.0] and pendulum.high.tolist() == [1.0, 1.0, 8.0]
    with pytest.raises(ValueError, match="bins must be >= 2"):
        Discretization([0.0], [1.0], [1])


@pytest.mark.parametrize("outputs", [1, 3])
def test_gather_multiply_forward_equals_cp_to_tensor_at_the_same_cells(outputs):
    torch.manual_seed(0)
    disc = Discretization(low=[-1, -2, 0], high=[1, 2, 5], bins=[4, 6, 5])
    table = CPTable(disc, rank=3, outputs=outputs, init_scale=1.0)
    states = torch.rand(200, 3) * torch.tensor([3.0, 5.0, 7.0]) - torch.tensor([1.5, 2.5, 1.0])
    with tl.backend_context("pytorch"):
        full = tl.cp_to_tensor((torch.ones(3), list(table.factors)))
    index = disc.indices(states)
    expected = full[index[:, 0], index[:, 1], index[:, 2]].reshape(200, -1)
    assert full.shape == (4, 6, 5) + ((outputs,) if outputs > 1 else ())
    assert torch.allclose(table(states), expected, atol=1e-5)


def test_interpolation_is_multilinear_between_grid_cells():
    torch.manual_seed(1)
    disc = Discretization(low=[0, 0], high=[3, 3], bins=[4, 4])
    table = CPTable(disc, rank=2, interpolate=True, init_scale=1.0)
    with tl.backend_context("pytorch"):
        full = tl.cp_to_tensor((torch.ones(2), list(table.factors)))
    on_grid = table(torch.tensor([[1.0, 2.0]]))
    centre = table(torch.tensor([[1.5, 2.5]]))
    assert torch.allclose(on_grid, full[1, 2].reshape(1, 1), atol=1e-6)
    assert torch.allclose(centre, full[1:3, 2:4].mean().reshape(1, 1), atol=1e-6)


def test_gradients_reach_every_factor_of_actor_and_critic():
    model = pendulum_ppo()
    obs = torch.rand(64, 3) * 2 - 1
    values, log_prob, _ = model.policy.evaluate_actions(obs, torch.randn(64, 1))
    (values.pow(2).mean() - log_prob.mean()).backward()
    for name, param in model.policy.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_parameter_count_matches_the_paper_pendulum_setting():
    model = pendulum_ppo()
    counts = {name: p.numel() for name, p in model.policy.named_parameters()}
    assert sum(counts.values()) == 3 * 10 * 5 * 2 + 1  # actor and critic factors, one log-std
    assert counts["log_std"] == 1


def test_log_std_is_clamped():
    model = pendulum_ppo(log_std_init=-9.0, log_std_bounds=(-2.5, 0.0))
    distribution = model.policy.get_distribution(torch.zeros(2, 3))
    assert torch.allclose(distribution.distribution.stddev, torch.full((2, 1), float(np.exp(-2.5))))


def test_softmax_policy_for_discrete_actions_uses_an_output_mode():
    model = A2C(
        TensorActorCriticPolicy,
        "CartPole-v1",
        policy_kwargs={
            "rank": 3,
            "bins": 6,
            "low": [-2.4, -3, -0.21, -3],
            "high": [2.4, 3, 0.21, 3],
            "beta": 2.0,
        },
        n_steps=16,
        seed=0,
        device="cpu",
    )
    assert model.policy.action_net.tensor_shape == (6, 6, 6, 6, 2)
    obs = torch.zeros(5, 4)
    logits = model.policy.get_distribution(obs).distribution.logits
    raw = torch.log_softmax(2.0 * model.policy.action_net(obs), dim=-1)
    assert torch.allclose(logits, raw, atol=1e-6)
    model.learn(64)
    assert model.num_timesteps == 64


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_sb3_algorithms_train_and_round_trip_through_save_load(algo, tmp_path):
    model = algo(
        TensorActorCriticPolicy,
        "Pendulum-v1",
        policy_kwargs=PENDULUM_KWARGS,
        n_steps=64,
        seed=3,
        device="cpu",
    )
    before = [p.detach().clone() for p in model.policy.action_net.factors]
    model.learn(64)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.action_net.factors))
    model.save(tmp_path / "model.zip")
    loaded = algo.load(tmp_path / "model.zip", device="cpu")
    obs = np.random.default_rng(0).uniform(-1, 1, size=(8, 3)).astype(np.float32)
    assert np.array_equal(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )


def test_same_seed_gives_the_same_policy():
    # Built and trained one after the other: SB3 samples actions from torch's global generator.
    first = pendulum_ppo(seed=5).learn(64)
    second = pendulum_ppo(seed=5).learn(64)
    for a, b in zip(first.policy.parameters(), second.policy.parameters()):
        assert torch.equal(a, b)


def test_mlp_only_arguments_and_gsde_are_rejected():
    with pytest.raises(ValueError, match="takes no 'net_arch'"):
        pendulum_ppo(net_arch=[64])
    with pytest.raises(ValueError, match="gSDE"):
        PPO(TensorActorCriticPolicy, "Pendulum-v1", policy_kwargs=PENDULUM_KWARGS, use_sde=True)
    with pytest.raises(ValueError, match="log_std_bounds"):
        pendulum_ppo(log_std_bounds=(0.0, -1.0))


def test_factor_cycle_callback_updates_one_factor_per_table():
    model = pendulum_ppo()
    before = {name: p.detach().clone() for name, p in model.policy.named_parameters()}
    model.learn(64, callback=FactorCycleCallback())
    changed = {name for name, p in model.policy.named_parameters() if not torch.equal(before[name], p)}
    assert changed == {"action_net.factors.0", "value_net.factors.0", "log_std"}
    assert all(p.requires_grad for p in model.policy.parameters())


def test_decomposition_recovers_an_exactly_low_rank_tensor():
    rng = np.random.default_rng(0)
    factors = [rng.normal(size=(size, 3)) for size in (6, 7, 5)]
    tensor = tl.cp_to_tensor((np.ones(3), factors))
    assert relative_error(tensor, decompose(tensor, 3)) < 1e-6
    errors = reconstruction_errors(tensor, [1, 2, 3])
    assert errors[1] > errors[2] > 1e-3
    assert errors[3] < 1e-6


def test_distillation_into_a_tensor_policy_reproduces_a_low_rank_source():
    source = pendulum_ppo(seed=1, rank=2).policy
    target = pendulum_ppo(seed=2, rank=2).policy
    report = distill_policy(source, target)
    assert report.actor_error < 1e-4 and report.critic_error < 1e-4
    grid = target.action_net.discretization.grid()
    with torch.no_grad():
        assert torch.allclose(target.action_net(grid), source.action_net(grid), atol=1e-4)
        assert torch.allclose(target.predict_values(grid), source.predict_values(grid), atol=1e-3)


def test_distilling_an_mlp_gives_a_partial_fit_and_tensors_on_the_grid():
    mlp = PPO("MlpPolicy", "Pendulum-v1", seed=0, device="cpu").policy
    target = pendulum_ppo(rank=3).policy
    actor, value = policy_tensors(mlp, target.action_net.discretization)
    assert actor.shape == value.shape == (10, 10, 10)
    report = distill_policy(mlp, target)
    assert 0 < report.actor_error < 1 and 0 < report.critic_error < 1


def test_cp_tensor_save_and_load_round_trip(tmp_path):
    table = CPTable(Discretization([0, 0], [1, 1], [3, 4]), rank=2, outputs=2, init_scale=1.0)
    cp = table.to_cp_tensor()
    save_cp_tensor(tmp_path / "actor.safetensors", cp)
    loaded = load_cp_tensor(tmp_path / "actor.safetensors")
    assert np.allclose(tl.cp_to_tensor(loaded), tl.cp_to_tensor(cp))
    other = CPTable(Discretization([0, 0], [1, 1], [3, 4]), rank=2, outputs=2)
    other.load_cp_tensor(loaded)
    states = torch.rand(10, 2)
    assert torch.allclose(other(states), table(states))
    with pytest.raises(ValueError, match="do not match"):
        CPTable(Discretization([0, 0], [1, 1], [3, 5]), rank=2, outputs=2).load_cp_tensor(loaded)


@pytest.mark.parametrize(
    ("recipe", "parameters"),
    [("tensor-ppo-pendulum", 301), ("tensor-ppo-mountaincar", 41), ("tensor-ppo-invertedpendulum", 401)],
)
def test_tensor_recipes_build_a_tensor_policy_through_the_sb3_job(recipe, parameters):
    config = load_recipe(recipe).config
    model = build_model(config, seed=0)
    assert isinstance(model.policy, TensorActorCriticPolicy)
    assert sum(p.numel() for p in model.policy.parameters()) == parameters


def test_sb3_job_trains_a_tensor_recipe(tmp_path):
    overrides = [
        "n_envs=1",
        "total_timesteps=32",
        "eval_episodes=1",
        "hyperparams.n_steps=32",
        "hyperparams.batch_size=32",
    ]
    config = load_recipe("tensor-ppo-pendulum", overrides).config
    summary = train_sb3(config, seed=0, run_dir=tmp_path)
    assert summary["parameters"] == 301 and summary["timesteps"] == 32
    assert (tmp_path / "model.zip").exists() and np.isfinite(summary["mean_return"])
