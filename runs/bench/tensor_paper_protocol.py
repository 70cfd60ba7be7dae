"""The tensor low-rank PG paper's own metric: episodes (and env steps) to a return threshold, >= 10 seeds.

Rozada, Wai and Marques (arXiv 2501.04879; code sergiorozada12/tensor-low-rank-pg) train PPO every 10k
(discrete MountainCar: 20k) environment steps, full batch, on episodes of 1,000 (Pendulum) or up to 10,000
(MountainCar) steps, and plot the return of every training episode. This benchmark runs that protocol with
SB3's PPO for three policies side by side:

- ``tensor``: the CP policy of ``aligngym.agents.tensor.policies`` with the paper's grids and ranks;
- ``nn-paper``: the paper's network, one tanh hidden layer (64 units Pendulum, 8 MountainCar), same PPO;
- ``mlp-zoo``: SB3's default 2x64 MLP with rl-baselines3-zoo's tuned PPO hyperparameters for that env
  (``hyperparams/ppo.yml``, VecNormalize where the zoo normalizes), on the same episodes.

Four envs: the paper's continuous Pendulum and MountainCar, its discrete MountainCar, and its discrete
Pendulum (``Pendulum-v1-discrete``: three torques -2, 0, +2; tensor and nn-paper only, the zoo has no
setting for it).

Each cell is one (env, policy, seed) run through the sweep runner (``OUT/results.jsonl``, one row per
finished cell: a killed run re-run with the same ``--out`` resumes, and a larger ``--seeds`` adds seeds).
A row holds every training episode (env steps at its end, return, length). The report gives episodes
and steps until the mean return of the last ``WINDOW`` episodes first reaches the env's threshold
(fixed below from the paper's figures before any run; runs that never reach it are counted as not
reached, not dropped), median and IQR over seeds, the probability that the tensor policy reaches it
sooner than each baseline (censoring at the shorter budget of the two), learning curves with bootstrap
95 % CIs and parameter counts.

    nice -n 15 aligngym bench tensor-paper-protocol --seeds 10 --workers 1 --publish benchmarks/results
    aligngym bench tensor-paper-protocol --seeds 1 --envs Pendulum-v1 --scale 0.01   # a quick look
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aligngym.runs.bench.options import (
    add_output_arguments,
    add_sweep_arguments,
    command_line,
    out_dir,
    publish,
    sweep_options,
)
from aligngym.runs.errors import UsageError

if TYPE_CHECKING:
    import gymnasium as gym

NAME = "tensor-paper-protocol"
DESCRIPTION = "CP tensor vs the paper's NN vs zoo MLP under the paper's PPO protocol: episodes to a threshold"
FILES = ("tensor_paper_protocol.md", "tensor_paper_protocol.json", "tensor_paper_protocol.png")
WINDOW = 10
"""Episodes in the moving mean that must reach the threshold (one 10k-step update's worth on Pendulum)."""
POLICIES = ("tensor", "nn-paper", "mlp-zoo")


@dataclass(frozen=True)
class Setting:
    """One policy's training settings on one env (SB3 PPO arguments) and its budget in env steps."""

    n_envs: int
    policy: str
    policy_kwargs: dict[str, Any]
    hyperparams: dict[str, Any]
    timesteps: int
    normalize: bool = False


@dataclass(frozen=True)
class Protocol:
    """An env of the paper: its gym kwargs, the threshold on the moving mean return, and its policies' settings.

    ``gym_id`` is the Gymnasium id when the env's name here is not one; ``torques`` turns a Box action into
    ``Discrete(len(torques))``, action i applying ``torques[i]`` (the paper's discrete Pendulum).
    """

    env_kwargs: dict[str, Any]
    threshold: float
    settings: dict[str, Setting] = field(default_factory=dict)
    gym_id: str | None = None
    torques: tuple[float, ...] | None = None


TENSOR = "aligngym.agents.tensor.policies:TensorActorCriticPolicy"
NO_CLIP = 1e6  # the paper clips no gradient norm; SB3 always clips, so the bound is set out of reach


def _paper(update: int, n_envs: int, epochs: int, lr: float, gamma: float, lam: float, clip: float) -> dict:
    """The public code's PPO (src/agents/ppo.py) as SB3 arguments: one full batch of ``update`` steps."""
    return {
        "n_steps": update // n_envs,
        "batch_size": update,
        "n_epochs": epochs,
        "learning_rate": lr,
        "gamma": gamma,
        "gae_lambda": lam,
        "clip_range": clip,
        "ent_coef": 0.0,
        "max_grad_norm": NO_CLIP,
    }


PENDULUM_PPO = _paper(10_000, 10, 10, 1e-3, 0.9, 0.9, 0.3)
# src/experiments/pendulum_discrete.py: one epoch, clip 0.01; the actor's lr is 1e-1 (tensor) and 1e-2 (NN)
PENDULUM_DISCRETE_PPO = {lr: _paper(10_000, 10, 1, lr, 0.9, 0.9, 0.01) for lr in (1e-1, 1e-2)}
MCC_PPO = _paper(10_000, 10, 10, 1e-3, 0.99, 0.9, 0.2)
MC_PPO = _paper(20_000, 10, 20, 1e-2, 0.99, 0.99, 0.2)

# Budgets (env steps) fit the whole grid, 10 seeds, into about an hour of one CPU core: the paper's two
# policies get 0.4-0.6M steps (its figures run 0.5-1M), the zoo's MLP its own n_timesteps (Pendulum 1e5,
# MountainCarContinuous 2e4) or 1e5 on MountainCar (zoo: 1e6); its PPO costs 5-90x more per step here.
PROTOCOLS: dict[str, Protocol] = {
    # Paper, PPO column of its Figure 3: the tensor policy's median return crosses -500 at about 100
    # episodes, the NN's at about 300-400.
    "MountainCar-v0": Protocol(
        env_kwargs={"max_episode_steps": 10_000},
        threshold=-500.0,
        settings={
            "tensor": Setting(
                10,
                TENSOR,
                {"rank": 1, "bins": 10, "beta": 0.1, "logit_clip": 1.445, "actor_init_scale": 0.01},
                MC_PPO,
                400_000,
            ),
            "nn-paper": Setting(10, "MlpPolicy", {"net_arch": [8], "activation_fn": "Tanh"}, MC_PPO, 400_000),
            "mlp-zoo": Setting(
                16,
                "MlpPolicy",
                {},
                {"n_steps": 16, "gae_lambda": 0.98, "gamma": 0.99, "n_epochs": 4, "ent_coef": 0.0},
                100_000,
                normalize=True,
            ),
        },
    ),
    # Figure 2, PPO: the tensor policy's median crosses -1000 (per 1000-step episode) at about 350
    # episodes and plateaus near -400 by 400; the NN crosses -1000 at about 650-700.
    "Pendulum-v1": Protocol(
        env_kwargs={"g": 9.81, "max_episode_steps": 1000},
        threshold=-1000.0,
        settings={
            "tensor": Setting(
                10,
                TENSOR,
                {
                    "rank": 5,
                    "bins": 10,
                    "low": [-1.0, -1.0, -5.0],
                    "high": [1.0, 1.0, 5.0],
                },
                PENDULUM_PPO,
                600_000,
            ),
            "nn-paper": Setting(
                10, "MlpPolicy", {"net_arch": [64], "activation_fn": "Tanh"}, PENDULUM_PPO, 600_000
            ),
            "mlp-zoo": Setting(
                4,
                "MlpPolicy",
                {},
                {
                    "n_steps": 1024,
                    "gae_lambda": 0.95,
                    "gamma": 0.9,
                    "n_epochs": 10,
                    "ent_coef": 0.0,
                    "learning_rate": 1e-3,
                    "clip_range": 0.2,
                    "use_sde": True,
                    "sde_sample_freq": 4,
                },
                100_000,
            ),
        },
    ),
    # Figure 2, PPO: the tensor policy's median crosses +50 at about 150-200 episodes, the NN's is near
    # +40 at 500 (a return above 0 needs the goal; standing still scores about 0).
    "MountainCarContinuous-v0": Protocol(
        env_kwargs={"max_episode_steps": 10_000},
        threshold=50.0,
        settings={
            "tensor": Setting(
                10,
                TENSOR,
                {
                    "rank": 1,
                    "bins": 10,
                    "actor_init_scale": 0.1,
                    "critic_init_scale": 0.1,
                },
                MCC_PPO,
                400_000,
            ),
            "nn-paper": Setting(
                10, "MlpPolicy", {"net_arch": [8], "activation_fn": "Tanh"}, MCC_PPO, 400_000
            ),
            "mlp-zoo": Setting(
                1,
                "MlpPolicy",
                {"log_std_init": -3.29, "ortho_init": False},
                {
                    "batch_size": 256,
                    "n_steps": 8,
                    "gamma": 0.9999,
                    "learning_rate": 7.77e-05,
                    "ent_coef": 0.00429,
                    "clip_range": 0.1,
                    "n_epochs": 10,
                    "gae_lambda": 0.9,
                    "max_grad_norm": 5,
                    "vf_coef": 0.19,
                    "use_sde": True,
                },
                20_000,
                normalize=True,
            ),
        },
    ),
    # Figure 3, PPO: Pendulum with three torques -2, 0, +2 (src/environments/pendulum.py: u = 2a - 2);
    # the tensor policy's median crosses -1000 at about 200-250 episodes, the NN's at about 900-1000, so
    # within this 600k budget the paper has the tensor policy reaching it and the NN not yet. The public
    # softmax clamp [min_logit, 1] at max_p 0.99 is the symmetric clamp +-ln(198)/2 = 2.644 (beta 1).
    # The zoo has no setting for this env: no mlp-zoo cell.
    # Its PendulumEnvDiscrete keeps Gymnasium's default g = 10 (the continuous runs set 9.81).
    "Pendulum-v1-discrete": Protocol(
        env_kwargs={"g": 10.0, "max_episode_steps": 1000},
        threshold=-1000.0,
        gym_id="Pendulum-v1",
        torques=(-2.0, 0.0, 2.0),
        settings={
            "tensor": Setting(
                10,
                TENSOR,
                {
                    "rank": 10,
                    "bins": 10,
                    "low": [-1.0, -1.0, -5.0],
                    "high": [1.0, 1.0, 5.0],
                    "beta": 1.0,
                    "logit_clip": 2.644,
                },
                PENDULUM_DISCRETE_PPO[1e-1],
                600_000,
            ),
            "nn-paper": Setting(
                10,
                "MlpPolicy",
                {"net_arch": [64], "activation_fn": "Tanh"},
                PENDULUM_DISCRETE_PPO[1e-2],
                600_000,
            ),
        },
    ),
}
ENVS = tuple(PROTOCOLS)


def threshold_crossing(
    steps: np.ndarray, returns: np.ndarray, threshold: float, window: int = WINDOW
) -> tuple[int | None, int | None]:
    """(episodes, env steps) until the mean return of the last ``window`` episodes first reaches
    ``threshold``; ``(None, None)`` if it never does (a censored run). ``steps[i]`` = env steps when
    episode i ended; episodes count from 1, so the earliest crossing is at episode ``window``."""
    returns = np.asarray(returns, dtype=np.float64)
    if len(returns) < window:
        return None, None
    means = np.convolve(returns, np.ones(window) / window, mode="valid")
    hits = np.flatnonzero(means >= threshold)
    if len(hits) == 0:
        return None, None
    last = int(hits[0]) + window - 1
    return last + 1, int(steps[last])


def censored_times(times: list[int | None], horizon: int) -> np.ndarray:
    """Steps to the threshold with every run not reached within ``horizon`` set to ``horizon + 1``."""
    return np.array([t if t is not None and t <= horizon else horizon + 1 for t in times], dtype=np.float64)


def cells(envs: list[str], policies: list[str], seeds: int, scale: float, runs: Path) -> list[dict[str, Any]]:
    """The sweep's grid, env by env in the order given: one cell per (env, seed, policy)."""
    grid = []
    for env_id in envs:
        protocol = PROTOCOLS[env_id]
        for seed in range(seeds):
            for policy in (p for p in policies if p in protocol.settings):
                setting = protocol.settings[policy]
                config = {
                    "env_kwargs": protocol.env_kwargs,
                    "n_envs": setting.n_envs,
                    "policy": setting.policy,
                    "policy_kwargs": setting.policy_kwargs,
                    "hyperparams": setting.hyperparams,
                    "normalize": setting.normalize,
                    "timesteps": max(1, round(setting.timesteps * scale)),
                }
                if protocol.gym_id is not None:  # only where set: the keys of earlier cells stay as they were
                    config["gym_id"] = protocol.gym_id
                if protocol.torques is not None:
                    config["torques"] = list(protocol.torques)
                grid.append(
                    {"domain": "control", "env": env_id, "method": policy, "noise": None, "rate": None}
                    | {"seed": seed, "config": config, "runs": str(runs)}
                )
    return grid


def discrete_torques(env: gym.Env, torques: list[float]) -> gym.Env:
    """``Discrete(len(torques))`` actions, action i applying the torque ``torques[i]`` (Gymnasium's
    ``DiscretizeAction`` takes bin centres, -4/3, 0, 4/3 for three bins, not the paper's -2, 0, 2)."""
    from gymnasium.spaces import Discrete
    from gymnasium.wrappers import TransformAction

    table = np.asarray(torques, dtype=np.float32).reshape(-1, 1)
    return TransformAction(env, lambda action: table[int(action)], Discrete(len(table)))


def run_cell(cell: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Sweep cell function: train one (env, policy, seed) with SB3 PPO and log every training episode."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from aligngym.agents.sb3_training import resolve_policy, resolve_policy_kwargs

    torch.set_num_threads(1)
    config = cell["config"]
    episodes: list[list[float]] = []

    class EpisodeLog(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    episodes.append(
                        [self.num_timesteps, float(info["episode"]["r"]), int(info["episode"]["l"])]
                    )
            return True

        def _on_rollout_end(self) -> None:
            if progress is not None:
                progress(self.num_timesteps, config["timesteps"])

    start = time.perf_counter()
    env = make_vec_env(
        config.get("gym_id", cell["env"]),
        n_envs=config["n_envs"],
        seed=cell["seed"],
        env_kwargs=config["env_kwargs"],
        wrapper_class=discrete_torques if "torques" in config else None,
        wrapper_kwargs={"torques": config["torques"]} if "torques" in config else None,
    )
    if config["normalize"]:
        env = VecNormalize(env, gamma=config["hyperparams"].get("gamma", 0.99))
    model = PPO(
        resolve_policy(config["policy"]),
        env,
        policy_kwargs=resolve_policy_kwargs(config["policy_kwargs"]),
        seed=cell["seed"],
        device="cpu",
        verbose=0,
        **config["hyperparams"],
    )
    model.learn(total_timesteps=config["timesteps"], callback=EpisodeLog())
    return {
        "parameters": sum(p.numel() for p in model.policy.parameters()),
        "timesteps": int(model.num_timesteps),
        "episodes": episodes,
        "train_wall_s": round(time.perf_counter() - start, 2),
    }


def _quartiles(values: list[int | None]) -> list[float | None]:
    """25th, 50th, 75th percentiles with censored runs ranked last; None where a quartile lands on one."""
    array = np.array([math.inf if v is None else v for v in values], dtype=np.float64)
    ordered = np.sort(array)
    result: list[float | None] = []
    for q in (0.25, 0.5, 0.75):  # linear interpolation, kept inf-safe
        position = q * (len(ordered) - 1)
        low, high = math.floor(position), math.ceil(position)
        if math.isinf(ordered[high]):
            result.append(None)
        else:
            result.append(float(ordered[low] + (ordered[high] - ordered[low]) * (position - low)))
    return result


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per (env, policy): crossings per seed, median [IQR] of episodes and steps, final return."""
    out = []
    for env_id in ENVS:
        threshold = PROTOCOLS[env_id].threshold
        for policy in POLICIES:
            group = sorted(
                (r for r in rows if r["env"] == env_id and r["method"] == policy), key=lambda r: r["seed"]
            )
            if not group:
                continue
            crossings = []
            finals = []
            for r in group:
                episodes = np.array(r["episodes"], dtype=np.float64).reshape(-1, 3)
                crossings.append(threshold_crossing(episodes[:, 0], episodes[:, 1], threshold))
                finals.append(float(episodes[-WINDOW:, 1].mean()) if len(episodes) else math.nan)
            out.append(
                {
                    "env": env_id,
                    "policy": policy,
                    "threshold": threshold,
                    "seeds": len(group),
                    "parameters": group[0]["parameters"],
                    "timesteps": group[0]["timesteps"],
                    "reached": sum(c[0] is not None for c in crossings),
                    "episodes_to_threshold": [c[0] for c in crossings],
                    "steps_to_threshold": [c[1] for c in crossings],
                    "episodes_quartiles": _quartiles([c[0] for c in crossings]),
                    "steps_quartiles": _quartiles([c[1] for c in crossings]),
                    "final_return_median": float(np.nanmedian(finals)),
                    "final_returns": finals,
                    "episodes_run_median": float(np.median([len(r["episodes"]) for r in group])),
                    "wall_s_median": float(np.median([r["train_wall_s"] for r in group])),
                }
            )
    return out


def comparisons(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """P(tensor reaches the threshold in fewer env steps than a baseline), censored at the shorter budget."""
    from aligngym.runs.statistics import improvement_interval

    out = []
    for env_id in ENVS:
        by_policy = {s["policy"]: s for s in summary if s["env"] == env_id}
        if "tensor" not in by_policy:
            continue
        tensor = by_policy["tensor"]
        for baseline in ("nn-paper", "mlp-zoo"):
            if baseline not in by_policy:
                continue
            other = by_policy[baseline]
            horizon = min(tensor["timesteps"], other["timesteps"])
            # fewer steps is better: compare negated times, ties (both not reached) count 1/2
            x = -censored_times(tensor["steps_to_threshold"], horizon)
            y = -censored_times(other["steps_to_threshold"], horizon)
            interval = improvement_interval(x, y)
            out.append(
                {
                    "env": env_id,
                    "baseline": baseline,
                    "horizon": horizon,
                    "p_tensor_sooner": interval.value,
                    "ci": [None if math.isnan(v) else v for v in (interval.low, interval.high)],
                    "seeds": [len(x), len(y)],
                }
            )
    return out


def curves(rows: list[dict[str, Any]], env_id: str, policy: str, axis: str, points: int = 40) -> dict | None:
    """Mean over seeds of the moving-mean return on a grid of episodes or env steps, with bootstrap 95 % CIs."""
    from aligngym.runs.statistics import bootstrap_interval

    group = [np.array(r["episodes"], dtype=np.float64).reshape(-1, 3) for r in rows]
    group = [g for g in group if len(g) >= WINDOW]
    if not group:  # one run: its curve, the interval collapses onto it
        return None
    smooth = [np.convolve(g[:, 1], np.ones(WINDOW) / WINDOW, mode="valid") for g in group]
    if axis == "episodes":
        xs = [np.arange(WINDOW, len(g) + 1, dtype=np.float64) for g in group]
    else:
        xs = [g[WINDOW - 1 :, 0] for g in group]
    start, end = max(x[0] for x in xs), min(x[-1] for x in xs)
    if end <= start:
        return None
    grid = np.linspace(start, end, points)
    values = np.array([np.interp(grid, x, s) for x, s in zip(xs, smooth)])
    bands = [bootstrap_interval(values[:, i], lambda s: s.mean(axis=1), reps=2000) for i in range(points)]
    return {
        "x": grid.tolist(),
        "mean": values.mean(axis=0).tolist(),
        "low": [b[0] for b in bands],
        "high": [b[1] for b in bands],
        "seeds": len(group),
    }


def all_curves(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """curves[env][policy] = {"episodes": ..., "steps": ...} for every (env, policy) with a finished run."""
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for env_id in ENVS:
        for policy in POLICIES:
            group = [r for r in rows if r["env"] == env_id and r["method"] == policy]
            entry = {axis: curves(group, env_id, policy, axis) for axis in ("episodes", "steps")}
            if entry["episodes"] is not None:
                result.setdefault(env_id, {})[policy] = entry
    return result


def plot(curve_sets: dict, summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aligngym.files import atomic_save

    envs = list(curve_sets)
    if not envs:
        return
    fig, axes = plt.subplots(2, len(envs), figsize=(5.5 * len(envs), 7), squeeze=False)
    params = {(s["env"], s["policy"]): s["parameters"] for s in summary}
    for column, env_id in enumerate(envs):
        for row, axis in enumerate(("episodes", "steps")):
            ax = axes[row, column]
            for policy, entry in curve_sets[env_id].items():
                curve = entry[axis]
                if curve is None:
                    continue
                label = f"{policy} ({params[(env_id, policy)]} params, {curve['seeds']} seeds)"
                ax.plot(curve["x"], curve["mean"], label=label)
                ax.fill_between(curve["x"], curve["low"], curve["high"], alpha=0.25)
            ax.axhline(PROTOCOLS[env_id].threshold, color="k", linestyle="--", linewidth=0.8)
            ax.set_title(f"{env_id}: mean, bootstrap 95% CI")
            ax.set_xlabel("training episodes" if axis == "episodes" else "environment steps")
            ax.set_ylabel(f"return, mean of last {WINDOW} episodes")
            ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def _fmt(value: float | None) -> str:
    return "not reached" if value is None else f"{value:,.0f}"


def report(
    summary: list[dict], compared: list[dict], command: str, wall_s: float, load: str, missing: list[str]
) -> str:
    lines = [
        "# Tensor (CP) policy under the paper's PPO protocol: episodes to a return threshold",
        "",
        f"Command: `{command}`",
        "",
        (
            f"Threshold: the mean return of the last {WINDOW} training episodes first reaches the env's "
            "threshold (fixed from the paper's figures before the runs); episodes and env steps until then, "
            "median and IQR over seeds, runs that never reach it within their budget counted as not reached "
            "(a quartile that falls on one reads 'not reached'). Final = mean return of the last "
            f"{WINDOW} training episodes. Parameters = actor + critic (+ log-std). Wall time of this "
            f"invocation {wall_s / 60:.1f} min (cells finished earlier are not re-run; --report-only runs "
            f"none); load average at start {load}; median wall s = training time of one cell."
        ),
        "",
        (
            "| env | threshold | policy | parameters | budget (steps) | seeds | reached | episodes median [IQR] "
            "| steps median [IQR] | final return median | median wall s |"
        ),
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for s in summary:
        e, st = s["episodes_quartiles"], s["steps_quartiles"]
        lines.append(
            f"| {s['env']} | {s['threshold']:g} | {s['policy']} | {s['parameters']} | {s['timesteps']:,} | "
            f"{s['seeds']} | {s['reached']}/{s['seeds']} | {_fmt(e[1])} [{_fmt(e[0])}, {_fmt(e[2])}] | "
            f"{_fmt(st[1])} [{_fmt(st[0])}, {_fmt(st[2])}] | {s['final_return_median']:.1f} | "
            f"{s['wall_s_median']:.0f} |"
        )
    lines += [
        "",
        (
            "P(tensor sooner) = probability that a tensor run reaches the threshold in fewer env steps than a "
            "run of the baseline (Mann-Whitney, ties and both-not-reached count 1/2), both censored at the "
            "shorter of the two budgets; 95 % CI by resampling the seeds of each side."
        ),
        "",
        "| env | baseline | common horizon (steps) | P(tensor sooner) | 95 % CI |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for c in compared:
        lines.append(
            f"| {c['env']} | {c['baseline']} | {c['horizon']:,} | {c['p_tensor_sooner']:.2f} | "
            + (f"[{c['ci'][0]:.2f}, {c['ci'][1]:.2f}] |" if c["ci"][0] is not None else "n/a (1 seed) |")
        )
    if missing:
        lines += ["", "No finished run (yet) of: " + ", ".join(missing) + "."]
    lines += ["", "![learning curves](tensor_paper_protocol.png)", ""]
    return "\n".join(lines)


def add_grid_arguments(
    parser: argparse.ArgumentParser, envs: Sequence[str], policies: Sequence[str], name: str
) -> None:
    """The options of a protocol benchmark (this one, ``tensor-paper-trainer``): grid, sweep and output."""
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per (env, policy); more extends")
    parser.add_argument(
        "--envs", nargs="+", default=list(envs), help=f"envs, run in this order (choices: {', '.join(envs)})"
    )
    parser.add_argument(
        "--policies", nargs="+", default=list(policies), help=f"choices: {', '.join(policies)}"
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every budget (e.g. 0.01 for a smoke run)"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run no cell: report the grid's cells already in OUT/results.jsonl (e.g. of an interrupted run)",
    )
    add_sweep_arguments(parser, workers=1)
    add_output_arguments(parser, name)


def check_grid_arguments(args: argparse.Namespace, envs: Sequence[str], policies: Sequence[str]) -> None:
    """UsageError naming the first bad --envs / --policies / --seeds / --scale value and the valid choices."""
    for flag, values, valid in (("--envs", args.envs, envs), ("--policies", args.policies, policies)):
        for value in values:
            if value not in valid:
                raise UsageError(f"{flag} {value!r} is not one of: {', '.join(valid)}")
        if len(set(values)) != len(values):
            raise UsageError(f"{flag} lists a value twice: {' '.join(values)}")
    if args.seeds < 1:
        raise UsageError(f"--seeds={args.seeds} must be >= 1")
    if not args.scale > 0:
        raise UsageError(f"--scale={args.scale} must be > 0")


def grid_rows(
    args: argparse.Namespace, grid: list[dict[str, Any]], out: Path, cell_function: str
) -> list[dict[str, Any]]:
    """The grid's rows: run what is unfinished, or with ``--report-only`` only read the finished ones."""
    from aligngym.runs.sweep import RESULTS_FILE, cell_key, finished_rows, read_rows, run_sweep

    if not args.report_only:
        return run_sweep(grid, cell_function, out, **sweep_options(args))
    keys = {cell_key(c) for c in grid}
    rows = [r for r in finished_rows(read_rows(out / RESULTS_FILE)) if r["key"] in keys]
    if not rows:
        raise UsageError(f"{out / RESULTS_FILE} holds no finished cell of this grid")
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_grid_arguments(parser, ENVS, POLICIES, NAME)


def write_outputs(
    args: argparse.Namespace,
    name: str,
    files: Sequence[str],
    out: Path,
    rows: list[dict[str, Any]],
    timing: tuple[float, str],
    missing: list[str],
    protocols: dict[str, Any],
    render: Callable[..., str] = report,
) -> None:
    """The report (``render``-ed markdown), its JSON (settings, summary, curves, cells) and the plot in OUT."""
    from aligngym.files import atomic_write_json, atomic_write_text

    start, load = timing
    wall_s = time.perf_counter() - start
    summary = summarise(rows)
    compared = comparisons(summary)
    curve_sets = all_curves(rows)
    command = command_line(args, name)
    text = render(summary, compared, command, wall_s, load, missing)
    atomic_write_text(out / files[0], text)
    atomic_write_json(
        out / files[1],
        {
            "command": command,
            "load_at_start": load,
            "wall_s": wall_s,
            "window": WINDOW,
            "protocols": protocols,
            "summary": summary,
            "comparisons": compared,
            "curves": curve_sets,
            "cells": [
                {
                    k: r[k]
                    for k in ("env", "method", "seed", "parameters", "timesteps", "train_wall_s", "episodes")
                }
                for r in rows
            ],
        },
    )
    plot(curve_sets, summary, out / files[2])
    print(text)
    for path in publish(out, files, args.publish):
        print(f"published: {path}")


def run(args: argparse.Namespace) -> int:
    check_grid_arguments(args, ENVS, POLICIES)
    out = out_dir(args, NAME)
    grid = cells(args.envs, args.policies, args.seeds, args.scale, out / "runs")
    timing = time.perf_counter(), " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = grid_rows(args, grid, out, f"{__name__}:run_cell")
    done = {(r["env"], r["method"]) for r in rows}
    missing = [
        f"{e} x {p}" for e, protocol in PROTOCOLS.items() for p in protocol.settings if (e, p) not in done
    ]
    protocols = {
        e: {
            "threshold": p.threshold,
            "env_kwargs": p.env_kwargs,
            "settings": {k: vars(v) for k, v in p.settings.items()},
        }
        for e, p in PROTOCOLS.items()
    }
    write_outputs(args, NAME, FILES, out, rows, timing, missing, protocols)
    return 0
