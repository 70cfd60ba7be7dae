"""The tensor low-rank PG paper's protocol trained by a port of its own PPO trainer, not SB3's.

``tensor-paper-protocol`` runs Rozada, Wai and Marques's protocol (arXiv 2501.04879) with SB3's PPO as a
stand-in; there neither the CP policy nor the paper's NN swings Pendulum up. This benchmark keeps that
protocol (envs, thresholds, ``WINDOW``, budgets, episode log, report) and trains with a torch port of the
public code (sergiorozada12/tensor-low-rank-pg: ``src/agents/ppo.py`` PPOGaussianNN / PPOSoftmaxNN,
``src/train.py`` Trainer, ``src/models.py``, ``src/utils.py`` Discretizer), with the settings of its
``src/experiments/*.py`` ``run_experiment_ppo_ten`` / ``run_experiment_ppo_nn``:

- one env, one episode stream of up to ``max_steps`` steps (the gym time limit is not applied: the
  public loop ignores ``truncated``), every step into one buffer; the update runs when the buffer holds
  ``update_freq`` steps and the episode index exceeds ``initial_offset`` (so the first update takes every
  step of the first ``initial_offset + 1`` episodes), possibly mid-episode; the buffer is then cleared;
- the last step of an episode (terminated, or step ``max_steps``) is a terminal: returns and GAE restart
  there, and the buffer's end is treated the same way (no bootstrap);
- the critic is fitted to the discounted returns by LBFGS (25 iterations, strong-Wolfe line search,
  history 100, one optimizer kept across updates), the actor by Adam on the clipped PPO objective,
  full batch, ``epochs`` passes, advantages normalised; float64 throughout, except that the critic's
  targets are float32-rounded returns on the two MountainCars, as there (``FLOAT32_RETURNS``);
- block-coordinate descent (bcd): one LBFGS fit (critic) or ``epochs`` Adam passes (actor) per parameter
  tensor in turn, the gradients of the others zeroed (Adam's momentum still moves them, as in the public
  code); the public Trainer swaps its flags (``actor_opt == "bcd"`` runs the critic by blocks,
  ``critic_opt == "bcd"`` the actor); reproduced, since it is what the paper ran. Settings keep the
  public flag names, the swap is applied where they are read (``_blocks``).

Checked against the public code itself (its src/ imported beside this module, same seed, the same
buffers): identical initial weights, and after three updates the critic bit-identical and the actor
within 3e-15 in all eight (env, policy) settings.

Differences from the public code, kept on purpose:

- Budget: env steps as tensor-paper-protocol (400k MountainCar, 600k Pendulum), not a number of episodes;
  an episode cut by the budget is not logged. The log holds each episode's true length (public: t).
- Seeding: the public code seeds torch / numpy / random with the run index and never seeds the env. Here
  torch's seed draws the initial weights in the public order (the same numbers as the public code for the
  same seed), the env is reset with ``seed`` once, and actions come from ``numpy.random.default_rng(seed)``
  instead of torch's global RNG (the same distributions, another stream).
- Speed: the behaviour policy is fixed between updates, so its per-step forward runs in plain Python /
  numpy on a copy of the weights (tensor: a table of its output on every grid cell), and the behaviour
  log-probabilities are recomputed in one batch at the start of the update from the same weights (the
  public code stores each step's; they equal up to rounding). Grid indices are computed once per update,
  not on every closure call. The env is stepped unwrapped (no TimeLimit, order or checker wrappers, which
  the public loop makes no use of). One env is stepped, not a vector of them: the public stream updates
  mid-episode on MountainCar, which lock-step envs would change; on Pendulum the env step itself is a
  large part of the cost.
- The Gaussian agent's Adam holds only the actor's parameters (public: actor and critic; under torch >= 2.0
  the critic's gradients are None at every Adam step, so Adam never moves them: the same updates).
- Discrete Pendulum: the public PendulumEnvDiscrete (torque 2a - 2, gymnasium's default g = 10, not the
  9.81 of its continuous runs; tensor-paper-protocol's discrete cells use g = 10 too).
- gymnasium 1.x (the public code pins 0.29.1; the two were not diffed here).
- Parameters reported = actor + critic + log-std, as tensor-paper-protocol counts them (the paper's
  counts leave the log-std out: Pendulum 300 / 642 here 301 / 643).

    nice -n 15 aligngym bench tensor-paper-trainer --seeds 10 --workers 2 --publish benchmarks/results
    aligngym bench tensor-paper-trainer --seeds 1 --envs Pendulum-v1 --scale 0.05   # a quick look
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aligngym.runs.bench.options import out_dir
from aligngym.runs.bench.tensor_paper_protocol import (
    PROTOCOLS,
    add_grid_arguments,
    check_grid_arguments,
    grid_rows,
    report,
    write_outputs,
)

if TYPE_CHECKING:
    import torch

NAME = "tensor-paper-trainer"
DESCRIPTION = "CP tensor vs the paper's NN under the paper's protocol, trained by a port of its own PPO"
FILES = ("tensor_paper_trainer.md", "tensor_paper_trainer.json", "tensor_paper_trainer.png")
POLICIES = ("tensor", "nn-paper")
ENVS = tuple(PROTOCOLS)


@dataclass(frozen=True)
class Setting:
    """One public ``run_experiment_ppo_*``: model, PPO agent and Trainer arguments (public names).

    ``hidden`` set = PolicyNetwork / ValueNetwork with one tanh layer of that width; otherwise
    PolicyPARAFAC / ValuePARAFAC of ``rank`` over a ``bins`` grid of ``[low, high]``, factors drawn as
    ``scale * (randn + bias)``. ``actions`` = None: Gaussian, else softmax over that many actions.
    """

    lr_actor: float
    gamma: float
    tau: float
    epochs: int
    eps_clip: float
    max_steps: int
    update_freq: int
    initial_offset: int
    actor_opt: str = "sgd"
    critic_opt: str = "sgd"
    actions: int | None = None
    beta: float = 1.0
    max_p: float = 0.99
    hidden: int | None = None
    rank: int = 1
    bins: int = 10
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    actor_scale: float = 1.0
    actor_bias: float = 0.0
    critic_scale: float = 1.0
    critic_bias: float = 0.0


PENDULUM = {"gamma": 0.9, "tau": 0.9, "max_steps": 1000, "update_freq": 10_000, "initial_offset": 0}
PENDULUM_GRID = {"bins": 10, "low": (-1.0, -1.0, -5.0), "high": (1.0, 1.0, 5.0)}
MOUNTAIN_GRID = {"bins": 10, "low": (-1.2, -0.07), "high": (0.6, 0.07)}
MCC = {"gamma": 0.99, "tau": 0.9, "max_steps": 10_000, "update_freq": 10_000, "initial_offset": 10}
MC = {"gamma": 0.99, "tau": 0.99, "max_steps": 10_000, "update_freq": 20_000, "initial_offset": 10}
MC_SOFTMAX = {"actions": 3, "beta": 0.1, "max_p": 0.9, "lr_actor": 1e-2, "epochs": 20, "eps_clip": 0.2}
PD_SOFTMAX = {"actions": 3, "beta": 1.0, "max_p": 0.99, "epochs": 1, "eps_clip": 0.01}

# src/experiments/<env>.py, run_experiment_ppo_ten and run_experiment_ppo_nn, argument for argument.
SETTINGS: dict[str, dict[str, Setting]] = {
    "MountainCar-v0": {  # mountaincar_discrete.py
        "tensor": Setting(
            **MC, **MC_SOFTMAX, **MOUNTAIN_GRID, rank=1, actor_scale=0.01, actor_bias=-1.0, critic_bias=-1.0
        ),
        "nn-paper": Setting(**MC, **MC_SOFTMAX, hidden=8),
    },
    "Pendulum-v1": {  # pendulum_continuous.py
        "tensor": Setting(
            **PENDULUM,
            **PENDULUM_GRID,
            lr_actor=1e-3,
            epochs=10,
            eps_clip=0.3,
            actor_opt="bcd",
            critic_opt="bcd",
            rank=5,
            actor_scale=0.1,
        ),
        "nn-paper": Setting(**PENDULUM, lr_actor=1e-3, epochs=10, eps_clip=0.3, hidden=64),
    },
    "MountainCarContinuous-v0": {  # mountaincar_continuous.py
        "tensor": Setting(
            **MCC,
            **MOUNTAIN_GRID,
            lr_actor=1e-3,
            epochs=10,
            eps_clip=0.2,
            rank=1,
            actor_scale=0.1,
            critic_scale=0.1,
        ),
        "nn-paper": Setting(**MCC, lr_actor=1e-3, epochs=10, eps_clip=0.2, hidden=8),
    },
    # pendulum_discrete.py; PolicyPARAFAC([10, 10, 10, 3], 10, 0.1, model="softmax") passes 0.1 as
    # num_outputs, so the actor's factors are drawn at the default scale 1.0. Actor bcd, critic sgd, swapped.
    "Pendulum-v1-discrete": {
        "tensor": Setting(**PENDULUM, **PD_SOFTMAX, **PENDULUM_GRID, lr_actor=1e-1, actor_opt="bcd", rank=10),
        "nn-paper": Setting(**PENDULUM, **PD_SOFTMAX, lr_actor=1e-2, hidden=64),
    },
}
FLOAT32_RETURNS = ("MountainCar-v0", "MountainCarContinuous-v0")
"""Envs whose rewards are Python floats: the public calculate_returns then builds its list of returns into a
float32 tensor (``torch.as_tensor`` of Python floats) before ``.double()``, so the critic's targets are
rounded to float32 there (Pendulum's rewards are numpy float64: float64 targets). Reproduced."""


def budget(env_id: str) -> int:
    """Env steps per cell: tensor-paper-protocol's budget of the same env (its tensor and nn-paper share it)."""
    return PROTOCOLS[env_id].settings["tensor"].timesteps


def make_env(env_id: str) -> Any:
    """The public code's env without wrappers: gym.make(id) (Pendulum: g=9.81) or PendulumEnvDiscrete()."""
    import gymnasium as gym
    from gymnasium.envs.classic_control.pendulum import PendulumEnv

    if env_id != "Pendulum-v1-discrete":
        return gym.make(env_id, **({"g": 9.81} if env_id == "Pendulum-v1" else {})).unwrapped

    class PendulumEnvDiscrete(PendulumEnv):
        """src/environments/pendulum.py: action a in {0, 1, 2} applies the torque 2a - 2 (its copy of
        PendulumEnv.step differs from Gymnasium's only there, so the parent's step does the rest)."""

        def step(self, u: int) -> tuple:
            return super().step(np.array([2 * u - 2.0]))

    return PendulumEnvDiscrete()


def grid_indices(states: np.ndarray, setting: Setting) -> np.ndarray:
    """src/utils.py Discretizer.get_index: clip, scale to [0, 1], round to the nearest of ``bins`` points."""
    low, high = np.array(setting.low), np.array(setting.high)
    scaling = (np.clip(states, low, high) - low) / (high - low)
    return np.round(scaling * (setting.bins - 1)).astype(int)


def _parafac(dims: list[int], rank: int, scale: float, bias: float) -> Any:
    """src/models.py's PARAFAC factors: one (dim, rank) float64 matrix per mode, ``scale * (randn + bias)``."""
    import torch

    return torch.nn.ParameterList(
        [torch.nn.Parameter(scale * (torch.randn(d, rank, dtype=torch.double) + bias)) for d in dims]
    )


def build_model(setting: Setting, state_dims: int) -> tuple[Any, Any]:
    """(actor, critic) as src/models.py builds them, in its order (so one seed draws the same weights).

    Actor: PolicyPARAFAC / PolicyNetwork (Gaussian: ``log_sigma`` is its first parameter, as there);
    critic: ValuePARAFAC / ValueNetwork. Tensors take grid indices, networks states.
    """
    import torch

    outputs = setting.actions or 1

    class Actor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if setting.hidden:
                self.body = torch.nn.Sequential(
                    torch.nn.Linear(state_dims, setting.hidden),
                    torch.nn.Tanh(),
                    _head(setting.hidden, outputs),
                ).double()
            else:
                dims = [setting.bins] * state_dims + ([outputs] if setting.actions else [])
                self.factors = _parafac(dims, setting.rank, setting.actor_scale, setting.actor_bias)
            if not setting.actions:
                self.log_sigma = torch.nn.Parameter(torch.zeros(1, 1, dtype=torch.double))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            """Gaussian mean (batch,) or softmax logits (batch, actions), before beta and the clamp."""
            if setting.hidden:
                out = self.body(x)
                return out if setting.actions else out.squeeze(-1)
            return _cp(self.factors, x, state_dims)

    class Critic(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if setting.hidden:
                self.body = torch.nn.Sequential(
                    torch.nn.Linear(state_dims, setting.hidden), torch.nn.Tanh(), _head(setting.hidden, 1)
                ).double()
            else:
                dims = [setting.bins] * state_dims
                self.factors = _parafac(dims, setting.rank, setting.critic_scale, setting.critic_bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x).squeeze(-1) if setting.hidden else _cp(self.factors, x, state_dims)

    actor = Actor()
    return actor, Critic()


def _head(inputs: int, outputs: int) -> Any:
    """The public output layer: default init, weight times 0.1, bias zero."""
    import torch

    layer = torch.nn.Linear(inputs, outputs)
    layer.weight.data.mul_(0.1)
    layer.bias.data.mul_(0.0)
    return layer


def _cp(factors: Any, indices: torch.Tensor, state_dims: int) -> torch.Tensor:
    """PolicyPARAFAC / ValuePARAFAC forward: product of one row per state mode; sum over the rank, or times
    the output mode's factor when there is one more factor than state dims."""
    rows = factors[0][indices[:, 0]]
    for d in range(1, state_dims):
        rows = rows * factors[d][indices[:, d]]
    return rows @ factors[state_dims].T if len(factors) > state_dims else rows.sum(dim=-1)


def log_sigma_bounds(setting: Setting) -> tuple[float, float]:
    """PolicyPARAFAC clamps log sigma to [-2.5, 0], PolicyNetwork to [-2, 0] (max_sigma 0 in these runs)."""
    return (-2.0, 0.0) if setting.hidden else (-2.5, 0.0)


def logit_bounds(setting: Setting) -> tuple[float, float]:
    """SoftmaxAgent: logits clamped to [min_logit, 1], min_logit such that the top probability <= max_p."""
    n = setting.actions or 1
    return math.log((math.e / setting.max_p - math.e) / (n - 1)), 1.0


def returns_and_advantages(
    rewards: list[float], terminals: list[bool], values: np.ndarray, gamma: float, tau: float
) -> tuple[np.ndarray, np.ndarray]:
    """calculate_returns: discounted returns and GAE(tau), both restarting after every terminal and at the
    buffer's end (no bootstrap); the advantages normalised by their mean and (unbiased) std."""
    n = len(rewards)
    returns, advantages = np.empty(n), np.empty(n)
    prev_return = prev_value = prev_advantage = 0.0
    for i in range(n - 1, -1, -1):
        mask = 0.0 if terminals[i] else 1.0
        reward, value = float(rewards[i]), float(values[i])
        prev_return = reward + gamma * prev_return * mask
        delta = reward + gamma * prev_value * mask - value
        prev_advantage = delta + gamma * tau * prev_advantage * mask
        prev_value = value
        returns[i], advantages[i] = prev_return, prev_advantage
    return returns, (advantages - advantages.mean()) / advantages.std(ddof=1)


class PaperPPO:
    """PPOGaussianNN / PPOSoftmaxNN + Trainer._update of the public code, on a whole buffer at once."""

    def __init__(self, setting: Setting, state_dims: int, float32_returns: bool = False) -> None:
        import torch

        self.setting = setting
        self.float32_returns = float32_returns
        self.actor, self.critic = build_model(setting, state_dims)
        self.opt_actor = torch.optim.Adam(self.actor.parameters(), setting.lr_actor)
        self.opt_critic = torch.optim.LBFGS(
            self.critic.parameters(), history_size=100, max_iter=25, line_search_fn="strong_wolfe"
        )

    def inputs(self, states: np.ndarray) -> torch.Tensor:
        """What the models take: grid indices (tensor) or the states (network), float64 like the public code."""
        import torch

        if self.setting.hidden:
            return torch.as_tensor(states, dtype=torch.double)
        return torch.as_tensor(grid_indices(states, self.setting))

    def log_prob(self, x: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        import torch

        out = self.actor(x)
        if self.setting.actions:
            logits = torch.clamp(self.setting.beta * out, *logit_bounds(self.setting))
            return torch.distributions.Categorical(logits=logits).log_prob(actions)
        sigma = torch.clamp(self.actor.log_sigma, *log_sigma_bounds(self.setting)).exp().squeeze()
        return torch.distributions.Normal(out, sigma).log_prob(actions)

    def update(self, states: np.ndarray, actions: list, rewards: list[float], terminals: list[bool]) -> None:
        """One Trainer._update: the critic (bcd: once per parameter), then the actor (bcd: likewise)."""
        import torch

        x = self.inputs(states)
        dtype = torch.long if self.setting.actions else torch.double
        acts = torch.as_tensor(np.asarray(actions), dtype=dtype).reshape(len(actions))
        with torch.no_grad():
            old_logprobs = self.log_prob(x, acts)
        critic_blocks, actor_blocks = self._blocks()
        for block in critic_blocks:
            advantages = self.update_critic(x, rewards, terminals, block)
        for block in actor_blocks:
            self.update_actor(x, acts, old_logprobs, advantages, block)

    def _blocks(self) -> tuple[list[int | None], list[int | None]]:
        """Trainer._update's loops, flags swapped as there: actor_opt == "bcd" fits the critic by blocks."""
        critic = (
            list(range(len(list(self.critic.parameters())))) if self.setting.actor_opt == "bcd" else [None]
        )
        actor = (
            list(range(len(list(self.actor.parameters())))) if self.setting.critic_opt == "bcd" else [None]
        )
        return critic, actor

    @staticmethod
    def _keep_only(model: Any, block: int | None) -> None:
        """zero_grad(model, idx): zero every gradient but parameter ``block``'s (None: keep all)."""
        if block is None:
            return
        for i, param in enumerate(model.parameters()):
            if i != block:
                param.grad.zero_()

    def update_critic(
        self, x: torch.Tensor, rewards: list, terminals: list, block: int | None
    ) -> torch.Tensor:
        """Fit the critic to the returns by one LBFGS step (25 iterations); the advantages under the critic
        as it was before this fit."""
        import torch

        s = self.setting
        with torch.no_grad():
            values = self.critic(x).numpy()
        returns, advantages = returns_and_advantages(rewards, terminals, values, s.gamma, s.tau)
        target = torch.as_tensor(returns)
        if self.float32_returns:
            target = target.float().double()

        def closure() -> torch.Tensor:
            self.opt_critic.zero_grad()
            loss = (self.critic(x) - target).pow(2).mean()
            # PPOSoftmaxNN skips the gradient of a diverged fit (LBFGS then sees a zero gradient and stops)
            if not s.actions or loss.abs() <= 1e10:
                loss.backward()
                self._keep_only(self.critic, block)
            return loss

        self.opt_critic.step(closure)
        return torch.as_tensor(advantages)

    def update_actor(
        self,
        x: torch.Tensor,
        actions: torch.Tensor,
        old: torch.Tensor,
        advantages: torch.Tensor,
        block: int | None,
    ) -> None:
        import torch

        eps = self.setting.eps_clip
        for _ in range(self.setting.epochs):
            ratio = torch.exp(self.log_prob(x, actions) - old)
            clipped = torch.clamp(ratio, 1 - eps, 1 + eps)
            loss = -torch.min(ratio * advantages, clipped * advantages)
            self.opt_actor.zero_grad()
            loss.mean().backward()
            self._keep_only(self.actor, block)
            self.opt_actor.step()

    def behaviour(self, rng: np.random.Generator) -> Any:
        """The current actor as a fast per-step sampler ``act(state) -> env action`` (its weights copied:
        a network as numpy arrays, a tensor as its output on every grid cell, looked up by the
        Discretizer's index computed in Python floats)."""
        import torch

        s = self.setting
        with torch.no_grad():
            if s.hidden:
                first, _, last = self.actor.body
                w1, b1, w2, b2 = (
                    t.numpy().copy() for t in (first.weight, first.bias, last.weight, last.bias)
                )
            else:
                dims = len(s.low)
                grid = np.stack(np.meshgrid(*[np.arange(s.bins)] * dims, indexing="ij"), -1).reshape(-1, dims)
                table = self.actor(torch.as_tensor(grid)).numpy()
        low, high = list(s.low), list(s.high)
        strides = [s.bins ** (len(low) - 1 - d) for d in range(len(low))]
        steps = s.bins - 1

        def cell(state: np.ndarray) -> int:
            flat = 0
            for d, value in enumerate(state.tolist()):
                lo, hi = low[d], high[d]
                value = lo if value < lo else min(value, hi)
                flat += round((value - lo) / (hi - lo) * steps) * strides[d]
            return flat

        if s.actions:
            bounds = logit_bounds(s)

            def cdf(output: np.ndarray) -> list[float]:
                logits = np.clip(s.beta * output, *bounds)
                return np.cumsum(np.exp(logits - logits.max(axis=-1, keepdims=True)), axis=-1).tolist()

            def draw(cumulative: list[float]) -> int:
                u = rng.random() * cumulative[-1]
                for action, c in enumerate(cumulative):
                    if u < c:
                        return action
                return len(cumulative) - 1

            if s.hidden:
                return lambda state: draw(cdf(w2 @ np.tanh(w1 @ state.astype(np.float64) + b1) + b2))
            cdfs = cdf(table)
            return lambda state: draw(cdfs[cell(state)])

        sigma = self._sigma()
        normal = rng.standard_normal
        if s.hidden:
            w2, b2 = w2[0], float(b2[0])
            return lambda state: np.array(
                [float(w2 @ np.tanh(w1 @ state.astype(np.float64) + b1)) + b2 + sigma * normal()]
            )
        means = table.tolist()
        return lambda state: np.array([means[cell(state)] + sigma * normal()])

    def _sigma(self) -> float:
        import torch

        with torch.no_grad():
            return torch.clamp(self.actor.log_sigma, *log_sigma_bounds(self.setting)).exp().item()

    def parameters(self) -> int:
        return sum(p.numel() for p in (*self.actor.parameters(), *self.critic.parameters()))


def train(env_id: str, setting: Setting, seed: int, timesteps: int, progress: Any = None) -> dict[str, Any]:
    """Trainer.train for ``timesteps`` env steps: every finished episode as [env steps at its end, return,
    length]."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    env = make_env(env_id)
    agent = PaperPPO(setting, env.observation_space.shape[0], env_id in FLOAT32_RETURNS)
    rng = np.random.default_rng(seed)
    act = agent.behaviour(rng)
    states: list[np.ndarray] = []
    actions: list[Any] = []
    rewards: list[float] = []
    terminals: list[bool] = []
    episodes: list[list[float]] = []
    steps, epoch, reset_seed = 0, 0, seed
    while steps < timesteps:
        state, _ = env.reset(seed=reset_seed)
        reset_seed = None
        total, done, t = 0.0, False, 0
        for t in range(setting.max_steps):
            action = act(state)
            states.append(state)
            actions.append(action)
            state, reward, terminated, _, _ = env.step(action)
            steps += 1
            done = bool(terminated) or t + 1 == setting.max_steps
            rewards.append(float(reward))
            terminals.append(done)
            total += float(reward)
            if len(states) >= setting.update_freq and epoch > setting.initial_offset and steps < timesteps:
                agent.update(np.stack(states), actions, rewards, terminals)
                states, actions, rewards, terminals = [], [], [], []
                act = agent.behaviour(rng)
                if progress is not None:
                    progress(steps, timesteps)
            if done or steps >= timesteps:
                break
        if done:
            episodes.append([steps, total, t + 1])
        epoch += 1
    return {"parameters": agent.parameters(), "timesteps": steps, "episodes": episodes}


def cells(envs: list[str], policies: list[str], seeds: int, scale: float, runs: Path) -> list[dict[str, Any]]:
    """One cell per (env, seed, policy), env by env in the order given."""
    grid = []
    for env_id in envs:
        for seed in range(seeds):
            for policy in policies:
                config = asdict(SETTINGS[env_id][policy]) | {
                    "timesteps": max(1, round(budget(env_id) * scale)),
                    "trainer": "paper-ppo-port",
                }
                grid.append(
                    {"domain": "control", "env": env_id, "method": policy, "noise": None, "rate": None}
                    | {"seed": seed, "config": config, "runs": str(runs)}
                )
    return grid


def run_cell(cell: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Sweep cell function: train one (env, policy, seed) with the port and log every training episode."""
    start = time.perf_counter()
    config = dict(cell["config"])
    timesteps = config.pop("timesteps")
    config.pop("trainer")
    setting = Setting(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    result = train(cell["env"], setting, cell["seed"], timesteps, progress)
    return result | {"train_wall_s": round(time.perf_counter() - start, 2)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_grid_arguments(parser, ENVS, POLICIES, NAME)


def trainer_report(
    summary: list, compared: list, command: str, wall_s: float, load: str, missing: list
) -> str:
    """tensor-paper-protocol's report, retitled for this trainer and pointing at this benchmark's plot."""
    lines = report(summary, compared, command, wall_s, load, missing).splitlines()
    lines[0] = (
        "# Tensor (CP) policy vs the paper's NN under the paper's protocol, trained by a port of its PPO"
    )
    lines[1:1] = [
        "",
        (
            "Trainer: a torch port of the public code's PPO (src/agents/ppo.py, src/train.py): critic fitted "
            "by LBFGS to the returns, actor by Adam, full buffers of 10k (MountainCar 20k) steps, "
            "block-coordinate updates where the public runs use them, float64; see the module docstring "
            "of aligngym.runs.bench.tensor_paper_trainer for every difference."
        ),
    ]
    return "\n".join(lines).replace("tensor_paper_protocol.png", FILES[2])


def run(args: argparse.Namespace) -> int:
    check_grid_arguments(args, ENVS, POLICIES)
    out = out_dir(args, NAME)
    grid = cells(args.envs, args.policies, args.seeds, args.scale, out / "runs")
    timing = time.perf_counter(), " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = grid_rows(args, grid, out, f"{__name__}:run_cell")
    done = {(r["env"], r["method"]) for r in rows}
    missing = [f"{e} x {p}" for e in ENVS for p in POLICIES if (e, p) not in done]
    protocols = {
        e: {
            "threshold": PROTOCOLS[e].threshold,
            "budget": budget(e),
            "settings": {p: asdict(s) for p, s in SETTINGS[e].items()},
        }
        for e in ENVS
    }
    write_outputs(args, NAME, FILES, out, rows, timing, missing, protocols, render=trainer_report)
    return 0
