"""Env throughput of each aligngym control wrapper as a ratio to the raw Gymnasium env, in one run.

Random actions (pre-sampled, the same for every variant), one env, resets on episode end. Variants
are measured in pairs, each right after a run of its baseline (the raw env), so that load from other
processes on a shared machine hits both alike; the order rotates every round. The headline ratio is
the median over rounds of the paired ratios (min and max show the machine's noise); the ratio of the
best rates (timeit's rule: the fastest run is the least disturbed) is given beside it. Ratios belong side
by side in one process, so this benchmark runs directly, not through the sweep runner.

    aligngym bench env-throughput --publish benchmarks/results     # Hopper and HalfCheetah, the committed table
    aligngym bench env-throughput --envs Hopper --steps 2000 --rounds 2   # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.runs.bench.options import add_output_arguments, command_line, out_dir, publish

NAME = "env-throughput"
DESCRIPTION = "steps/s of each control wrapper as a ratio to the raw Gymnasium env (paired, one process)"
FILES = ("env_throughput.md", "env_throughput.json")
# The targets; "close to 1.0" for the batched rollout is read as >= 0.9.
TARGETS = {
    "protagonist view, no adversary": 0.95,
    "learned reward, per step": 0.5,
    "learned reward, batched rollout": 0.9,
}
VEC_ENVS = 8


def small_mlp_reward(obs_dim: int, act_dim: int, seed: int = 0) -> Callable[..., np.ndarray]:
    """A 2x64 tanh MLP on (obs, action, next_obs): the size of the reward nets in preference RL."""
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(2 * obs_dim + act_dim, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 1),
    ).eval()

    def reward_fn(obs: np.ndarray, action: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(np.concatenate([obs, action, next_obs], axis=1, dtype=np.float32))
        with torch.inference_mode():
            return net(inputs)[:, 0].numpy()

    return reward_fn


def run_env(env: gym.Env, actions: np.ndarray, seed: int) -> float:
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - start


def run_game(env: gym.Env, actions: np.ndarray, seed: int) -> float:
    """The two-player env stepped with a zero adversary action."""
    zero = np.zeros(env.action_space["adversary"].shape, dtype=np.float32)
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step({"protagonist": action, "adversary": zero})
        if terminated or truncated:
            env.reset()
    return time.perf_counter() - start


def run_batched(env: gym.Env, actions: np.ndarray, seed: int, reward_fn: Callable[..., np.ndarray]) -> float:
    """Record the rollout as a rollout buffer would, then compute all learned rewards in one call."""
    from aligngym.envs.learned_reward import batch_rewards

    n, obs_dim = len(actions), env.observation_space.shape[0]
    observations, next_observations = np.empty((n, obs_dim)), np.empty((n, obs_dim))
    obs, _ = env.reset(seed=seed)
    start = time.perf_counter()
    for t, action in enumerate(actions):
        observations[t] = obs
        obs, _, terminated, truncated, _ = env.step(action)
        next_observations[t] = obs
        if terminated or truncated:
            obs, _ = env.reset()
    batch_rewards(reward_fn, observations, actions, next_observations)
    return time.perf_counter() - start


def run_vec(venv, actions: np.ndarray, seed: int) -> float:
    venv.seed(seed)
    venv.reset()
    batched = np.repeat(actions[:, None], venv.num_envs, axis=1)
    start = time.perf_counter()
    for action in batched:
        venv.step(action)
    return time.perf_counter() - start


def measure(task: str, steps: int, rounds: int, seed: int) -> list[dict]:
    from stable_baselines3.common.vec_env import DummyVecEnv

    from aligngym.envs.learned_reward import LearnedRewardVecEnv, LearnedRewardWrapper
    from aligngym.envs.perturbations import ModelPerturbation

    raw = gym.make(f"{task}-v5")
    obs_dim, act_dim = raw.observation_space.shape[0], raw.action_space.shape[0]
    reward_fn = small_mlp_reward(obs_dim, act_dim, seed)
    actions = (
        np.random.default_rng(seed)
        .uniform(raw.action_space.low, raw.action_space.high, (steps, act_dim))
        .astype(np.float32)
    )
    vec_actions = actions[: steps // VEC_ENVS]
    vec_steps = len(vec_actions) * VEC_ENVS
    view = gym.make(f"aligngym/{task}Protagonist-v0")
    game = gym.make(f"aligngym/Adversarial{task}-v0")
    perturbed = ModelPerturbation(gym.make(f"{task}-v5"))
    learned = LearnedRewardWrapper(gym.make(f"{task}-v5"), reward_fn)
    recorded = gym.make(f"{task}-v5")
    raw_vec = DummyVecEnv([lambda: gym.make(f"{task}-v5")] * VEC_ENVS)
    learned_vec = LearnedRewardVecEnv(DummyVecEnv([lambda: gym.make(f"{task}-v5")] * VEC_ENVS), reward_fn)
    vec_base = f"raw DummyVecEnv({VEC_ENVS})"
    # name -> (baseline name, run() -> seconds, env steps per run)
    variants: dict[str, tuple[str, Callable[[], float], int]] = {
        "raw": ("raw", lambda: run_env(raw, actions, seed), steps),
        "protagonist view, no adversary": ("raw", lambda: run_env(view, actions, seed), steps),
        "two-player game, zero force": ("raw", lambda: run_game(game, actions, seed), steps),
        "model perturbation (nominal)": ("raw", lambda: run_env(perturbed, actions, seed), steps),
        "learned reward, per step": ("raw", lambda: run_env(learned, actions, seed), steps),
        "learned reward, batched rollout": (
            "raw",
            lambda: run_batched(recorded, actions, seed, reward_fn),
            steps,
        ),
        vec_base: (vec_base, lambda: run_vec(raw_vec, vec_actions, seed), vec_steps),
        f"LearnedRewardVecEnv({VEC_ENVS})": (
            vec_base,
            lambda: run_vec(learned_vec, vec_actions, seed),
            vec_steps,
        ),
    }
    names = [name for name, (baseline, _, _) in variants.items() if name != baseline]
    # name -> [(baseline rate, variant rate)] measured back to back
    pairs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order every round
            baseline, run, n = variants[name]
            _, run_baseline, n_baseline = variants[baseline]
            pairs[name].append((n_baseline / run_baseline(), n / run()))
    rows = []
    for name, (baseline, _, _) in variants.items():
        if name == baseline:
            base_rates = [b for other, p in pairs.items() if variants[other][0] == name for b, _ in p]
            rows.append(
                {
                    "env": f"{task}-v5",
                    "variant": name,
                    "steps_per_s": max(base_rates),
                    "ratio": 1.0,
                    "best_rate_ratio": 1.0,
                    "paired_ratio_min": 1.0,
                    "paired_ratio_max": 1.0,
                    "baseline": baseline,
                    "target": None,
                }
            )
            continue
        base_rates, rates = (np.array(x) for x in zip(*pairs[name]))
        ratios = rates / base_rates
        rows.append(
            {
                "env": f"{task}-v5",
                "variant": name,
                "steps_per_s": float(rates.max()),
                "ratio": float(np.median(ratios)),
                "best_rate_ratio": float(rates.max() / base_rates.max()),
                "paired_ratio_min": float(ratios.min()),
                "paired_ratio_max": float(ratios.max()),
                "baseline": baseline,
                "target": TARGETS.get(name),
            }
        )
    return rows


def to_markdown(rows: list[dict], command: str, meta: dict) -> str:
    lines = [
        "# Env throughput: aligngym wrappers vs the raw Gymnasium env",
        "",
        f"Command: `{command}`",
        "",
        (
            f"Machine: {meta['machine']}; load average at start {meta['loadavg']}; torch threads 1; "
            f"{meta['steps']} steps per measurement, {meta['rounds']} rounds of (baseline, variant) pairs."
        ),
        "",
        "| env | variant | best steps/s | ratio (median of pairs) | min-max | target | met | ratio of best rates | baseline |",
        "| --- | --- | ---: | ---: | --- | ---: | :---: | ---: | --- |",
    ]
    for row in rows:
        target = row["target"]
        met = "" if target is None else ("yes" if row["ratio"] >= target else "NO")
        lines.append(
            f"| {row['env']} | {row['variant']} | {row['steps_per_s']:,.0f} | {row['ratio']:.3f} | "
            f"{row['paired_ratio_min']:.2f}-{row['paired_ratio_max']:.2f} | "
            f"{'' if target is None else f'>= {target}'} | {met} | {row['best_rate_ratio']:.3f} | {row['baseline']} |"
        )
    lines += [
        "",
        "Random actions, single env unless a vector env is named (its steps/s count env steps), episode ends reset.",
        "The learned reward is a 2x64 tanh MLP (torch, CPU) on (obs, action, next_obs). 'batched rollout' steps the",
        "raw env recording transitions into arrays, then computes every reward in one call (time included).",
        "",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--envs", nargs="+", default=["Hopper", "HalfCheetah"], help="Gymnasium MuJoCo task names"
    )
    parser.add_argument("--steps", type=int, default=2_000, help="steps per measurement")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    out = out_dir(args, NAME)
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "steps": args.steps,
        "rounds": args.rounds,
    }
    rows = [row for task in args.envs for row in measure(task, args.steps, args.rounds, args.seed)]
    command = command_line(args, NAME)
    markdown = to_markdown(rows, command, meta)
    atomic_write_text(out / "env_throughput.md", markdown)
    atomic_write_json(out / "env_throughput.json", {"command": command, **meta, "rows": rows})
    print(markdown)
    for path in publish(out, FILES, args.publish):
        print(f"published: {path}")
    return 0
