"""bench tensor-paper-trainer: the port of the paper's PPO (CP forward, returns/GAE, one update, the
trainer loop's buffer, the per-step sampler), parameter counts, one cell and argument errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aligngym.runs.bench import tensor_paper_trainer as bench
from aligngym.runs.cli import main


def _states(setting: bench.Setting, n: int, seed: int = 0) -> np.ndarray:
    """Random states over (a bit more than) the grid's box, as float32 observations."""
    low, high = np.array(setting.low), np.array(setting.high)
    span = high - low
    return (
        np.random.default_rng(seed)
        .uniform(low - 0.1 * span, high + 0.1 * span, (n, len(low)))
        .astype(np.float32)
    )


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Pendulum-v1-discrete", "MountainCar-v0"])
def test_the_ported_parafac_equals_aligngyms_cp_table_and_discretization(env_id):
    from aligngym.agents.tensor.discretization import Discretization
    from aligngym.agents.tensor.policies import CPTable

    setting = bench.SETTINGS[env_id]["tensor"]
    dims = len(setting.low)
    torch.manual_seed(0)
    actor, critic = bench.build_model(setting, dims)
    grid = Discretization(setting.low, setting.high, [setting.bins] * dims).double()
    states = _states(setting, 500)
    assert (bench.grid_indices(states, setting) == grid.indices(torch.as_tensor(states)).numpy()).all()
    indices = torch.as_tensor(bench.grid_indices(states, setting))
    for model, outputs in ((actor, setting.actions or 1), (critic, 1)):
        table = CPTable(grid, setting.rank, outputs).double()
        with torch.no_grad():
            for mine, theirs in zip(model.factors, table.factors):
                theirs.copy_(mine)
            expected = table(torch.as_tensor(states, dtype=torch.double))
            assert torch.allclose(model(indices), expected.squeeze(-1) if outputs == 1 else expected)


def test_the_public_parafac_formula_on_hand_picked_states():
    """PolicyPARAFAC: T[i, j, k] = sum_r A[i, r] B[j, r] C[k, r], state -> nearest of 10 grid points."""
    setting = bench.SETTINGS["Pendulum-v1"]["tensor"]
    torch.manual_seed(1)
    actor, _ = bench.build_model(setting, 3)
    a, b, c = (f.detach().numpy() for f in actor.factors)
    # (-1, 0.05, 4.9): x clipped to the first point, y 0.525 * 9 = 4.725 -> 5, speed 0.99 * 9 = 8.91 -> 9
    states = np.array([[-1.5, 0.05, 4.9], [1.0, -1.0, 0.0]], dtype=np.float32)
    assert bench.grid_indices(states, setting).tolist() == [[0, 5, 9], [9, 0, 4]]  # 4.5 rounds to even
    expected = [(a[0] * b[5] * c[9]).sum(), (a[9] * b[0] * c[4]).sum()]
    assert np.allclose(actor(torch.as_tensor(bench.grid_indices(states, setting))).detach().numpy(), expected)


def test_returns_and_advantages_by_hand_restart_after_a_terminal_and_at_the_buffers_end():
    rewards, terminals = [1.0, 2.0, 3.0, 4.0], [False, True, False, False]
    values = np.array([0.5, 1.0, 1.5, 2.0])
    returns, advantages = bench.returns_and_advantages(rewards, terminals, values, gamma=0.5, tau=0.5)
    # returns: 4; 3 + .5 * 4; 2 (terminal); 1 + .5 * 2
    assert returns.tolist() == [2.0, 2.0, 5.0, 4.0]
    # deltas 1 + .5*1 - .5 = 1, 2 - 1 = 1, 3 + .5*2 - 1.5 = 2.5, 4 - 2 = 2; GAE with gamma * tau = .25
    raw = np.array([1.0 + 0.25 * 1.0, 1.0, 2.5 + 0.25 * 2.0, 2.0])
    assert np.allclose(advantages, (raw - raw.mean()) / raw.std(ddof=1))


def test_the_public_trainer_swaps_its_bcd_flags():
    """Pendulum-discrete's tensor run asks actor_opt="bcd": src/train.py then fits the critic by blocks."""
    discrete = bench.PaperPPO(bench.SETTINGS["Pendulum-v1-discrete"]["tensor"], 3)
    assert discrete._blocks() == ([0, 1, 2], [None])
    pendulum = bench.PaperPPO(bench.SETTINGS["Pendulum-v1"]["tensor"], 3)
    assert pendulum._blocks() == ([0, 1, 2], [0, 1, 2, 3])  # log_sigma first, as in PolicyPARAFAC
    assert bench.PaperPPO(bench.SETTINGS["Pendulum-v1"]["nn-paper"], 3)._blocks() == ([None], [None])


@pytest.mark.parametrize(("env_id", "policy"), [("Pendulum-v1", "tensor"), ("MountainCar-v0", "nn-paper")])
def test_one_update_moves_actor_and_critic_and_lbfgs_lowers_the_critics_loss(env_id, policy):
    setting = bench.SETTINGS[env_id][policy]
    torch.manual_seed(0)
    agent = bench.PaperPPO(setting, len(bench.SETTINGS[env_id]["tensor"].low))
    rng = np.random.default_rng(0)
    n = 300
    states = _states(bench.SETTINGS[env_id]["tensor"], n)
    act = agent.behaviour(rng)
    actions = [act(s) for s in states]
    rewards = (-np.abs(states).sum(axis=1)).tolist()
    terminals = [(i + 1) % 100 == 0 for i in range(n)]
    x = agent.inputs(states)

    def critic_loss() -> float:
        with torch.no_grad():
            values = agent.critic(x).numpy()
        returns, _ = bench.returns_and_advantages(rewards, terminals, values, setting.gamma, setting.tau)
        return float(((agent.critic(x).detach().numpy() - returns) ** 2).mean())

    before_actor = [p.detach().clone() for p in agent.actor.parameters()]
    before_critic = [p.detach().clone() for p in agent.critic.parameters()]
    loss_before = critic_loss()
    agent.update(states, actions, rewards, terminals)
    assert critic_loss() < 0.75 * loss_before
    assert all(not torch.equal(b, p) for b, p in zip(before_critic, agent.critic.parameters()))
    assert any(not torch.equal(b, p) for b, p in zip(before_actor, agent.actor.parameters()))


def test_the_per_step_sampler_draws_from_the_actor_at_the_states_grid_cell():
    setting = bench.SETTINGS["Pendulum-v1"]["tensor"]
    torch.manual_seed(2)
    agent = bench.PaperPPO(setting, 3)
    states = _states(setting, 50)
    act = agent.behaviour(np.random.default_rng(5))
    noise = np.random.default_rng(5).standard_normal(50)
    with torch.no_grad():
        means = agent.actor(agent.inputs(states)).numpy()
    sampled = np.array([act(s)[0] for s in states])
    assert np.allclose(sampled, means + agent._sigma() * noise)


def test_the_softmax_sampler_inverts_the_clamped_softmax_of_the_states_cell():
    setting = bench.SETTINGS["Pendulum-v1-discrete"]["tensor"]
    torch.manual_seed(3)
    agent = bench.PaperPPO(setting, 3)
    states = _states(setting, 200)
    act = agent.behaviour(np.random.default_rng(4))
    uniforms = np.random.default_rng(4).random(200)
    with torch.no_grad():
        logits = torch.clamp(setting.beta * agent.actor(agent.inputs(states)), *bench.logit_bounds(setting))
        cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1).numpy()
    expected = [int((u >= c[:-1]).sum()) for u, c in zip(uniforms, cdf)]
    assert [act(s) for s in states] == expected
    assert bench.logit_bounds(setting)[0] == pytest.approx(-np.log(198) + 1)  # e^1 / (e^1 + 2 e^min) = 0.99


def test_the_envs_whose_rewards_are_python_floats_are_those_with_float32_returns():
    """Python-float rewards make the public torch.as_tensor(returns) a float32 tensor; numpy ones float64."""
    for env_id in bench.ENVS:
        env = bench.make_env(env_id)
        env.reset(seed=0)
        action = 1 if env_id in ("MountainCar-v0", "Pendulum-v1-discrete") else np.array([0.5])
        reward = env.step(action)[1]
        assert (type(reward) is float) == (env_id in bench.FLOAT32_RETURNS)


def test_the_critics_targets_are_float32_rounded_returns_where_the_rewards_are_python_floats():
    setting = bench.SETTINGS["MountainCar-v0"]["tensor"]
    agent = bench.PaperPPO(setting, 2, float32_returns=True)
    states, rewards, terminals = _states(setting, 50), [-1.0] * 50, [False] * 50
    x = agent.inputs(states)
    losses = []
    agent.opt_critic.step = lambda closure: losses.append(closure().item())  # the first closure's loss
    agent.update_critic(x, rewards, terminals, None)
    with torch.no_grad():
        values = agent.critic(x)
    returns, _ = bench.returns_and_advantages(rewards, terminals, values.numpy(), setting.gamma, setting.tau)
    public = torch.as_tensor(returns.tolist()).double()  # the public code: a list of Python floats
    assert public.dtype == torch.float64 and not torch.equal(public, torch.as_tensor(returns))
    assert losses == [(values - public).pow(2).mean().item()]


def test_the_loop_holds_the_first_episodes_until_initial_offset_then_updates_every_update_freq_steps(
    monkeypatch,
):
    """Trainer.train: no update before episode initial_offset + 1, then one whenever the buffer holds
    update_freq steps, mid-episode too; the last step of each 1000-step episode is a terminal."""
    from dataclasses import replace

    setting = replace(bench.SETTINGS["Pendulum-v1"]["nn-paper"], initial_offset=2, update_freq=1500)
    buffers = []
    monkeypatch.setattr(bench.PaperPPO, "update", lambda self, s, a, r, t: buffers.append(list(t)))
    result = bench.train("Pendulum-v1", setting, 0, 6_500)
    # episodes 0-2 (3000 steps) wait; episode 3's first step triggers it: 3001 steps, then every 1500
    assert [len(b) for b in buffers] == [3001, 1500, 1500]
    assert [i for i, t in enumerate(buffers[0]) if t] == [999, 1999, 2999]
    assert [i for i, t in enumerate(buffers[1]) if t] == [998]
    episodes = np.array(result["episodes"])
    assert episodes[:, 0].tolist() == [1000, 2000, 3000, 4000, 5000, 6000]  # the cut 7th is not logged
    assert (episodes[:, 2] == 1000).all() and result["timesteps"] == 6_500


PAPER_COUNTS = {  # actor + critic without the log-std, as the paper counts them
    ("Pendulum-v1", "tensor"): 300,
    ("Pendulum-v1", "nn-paper"): 642,
    ("MountainCar-v0", "tensor"): 43,
    ("MountainCar-v0", "nn-paper"): 84,
    ("Pendulum-v1-discrete", "tensor"): 630,
    ("Pendulum-v1-discrete", "nn-paper"): 772,
    ("MountainCarContinuous-v0", "tensor"): 40,
    ("MountainCarContinuous-v0", "nn-paper"): 66,
}


@pytest.mark.parametrize(("env_id", "policy"), list(PAPER_COUNTS))
def test_parameter_counts_are_the_papers_plus_the_log_std(env_id, policy):
    setting = bench.SETTINGS[env_id][policy]
    agent = bench.PaperPPO(setting, 3 if env_id.startswith("Pendulum") else 2)
    gaussian = setting.actions is None
    assert agent.parameters() == PAPER_COUNTS[(env_id, policy)] + gaussian


def test_a_tiny_cell_logs_episodes_in_the_siblings_format_and_the_discrete_pendulum_has_three_torques():
    import gymnasium as gym

    [cell] = bench.cells(["Pendulum-v1-discrete"], ["tensor"], seeds=1, scale=0.02, runs=None)
    result = bench.run_cell(cell)
    episodes = np.array(result["episodes"])
    assert result["parameters"] == 630 and result["timesteps"] == 12_000
    assert episodes.shape == (12, 3) and (episodes[:, 2] == 1000).all() and (episodes[:, 1] < 0).all()
    assert episodes[:, 0].tolist() == [1000.0 * (i + 1) for i in range(12)]
    discrete, raw = bench.make_env("Pendulum-v1-discrete"), gym.make("Pendulum-v1", g=10.0).unwrapped
    for action, torque in ((0, -2.0), (1, 0.0), (2, 2.0)):
        discrete.reset(seed=3), raw.reset(seed=3)
        assert np.allclose(discrete.step(action)[0], raw.step(np.array([torque]))[0])


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--envs", "CartPole-v1", "--envs 'CartPole-v1' is not one of: MountainCar-v0, Pendulum-v1"),
        ("--policies", "mlp-zoo", "--policies 'mlp-zoo' is not one of: tensor, nn-paper"),
    ],
)
def test_a_bad_option_is_one_error_line_naming_it_and_the_choices(flag, value, expected, tmp_path, capsys):
    assert main(["bench", "tensor-paper-trainer", flag, value, "--out", str(tmp_path / "o")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and expected in error
    assert not (tmp_path / "o").exists()
