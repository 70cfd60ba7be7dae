"""The ``sb3`` job: train any stable-baselines3 algorithm on any Gymnasium id, logging into a run folder."""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

import aligngym  # noqa: F401  (registers aligngym/... ids for make_vec_env)
from aligngym.agents.sb3_algorithms import algorithm_class
from aligngym.files import atomic_path

SB3_POLICY_NAMES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")


@dataclass
class SB3Config:
    """Settings of one stable-baselines3 training run."""

    algo: Literal["ppo", "a2c", "sac", "td3"] = "ppo"
    """Which SB3 algorithm."""
    env_id: str = "Pendulum-v1"
    """Any registered Gymnasium id, aligngym/... included."""
    total_timesteps: int = 50_000
    n_envs: int = 1
    """Number of environments in the (synchronous) vector env."""
    policy: str = "MlpPolicy"
    """An SB3 policy name or ``module:Class`` (e.g. aligngym.agents.tensor.policies:TensorActorCriticPolicy)."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Passed to the policy; ``activation_fn`` may be a torch.nn class name such as "Tanh"."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """Passed to the algorithm's constructor (learning_rate, n_steps, batch_size, ...)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_episodes: int = 10
    """Episodes of deterministic evaluation at the end."""
    device: str = "auto"
    progress_bar: bool = False

    def __post_init__(self) -> None:
        if self.total_timesteps <= 0:
            raise ValueError(f"total_timesteps must be positive, got {self.total_timesteps}")
        if self.n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {self.n_envs}")


def resolve_policy(policy: str) -> str | type:
    """An SB3 policy name stays a string; ``module:Class`` is imported."""
    if policy in SB3_POLICY_NAMES:
        return policy
    module, sep, attr = policy.partition(":")
    if not sep:
        raise ValueError(
            f"policy {policy!r} is neither one of {', '.join(SB3_POLICY_NAMES)} nor 'module:Class'"
        )
    return getattr(importlib.import_module(module), attr)


def resolve_policy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn YAML-friendly values into what SB3 expects (activation names into torch.nn classes)."""
    out = dict(kwargs)
    if isinstance(out.get("activation_fn"), str):
        out["activation_fn"] = getattr(torch.nn, out["activation_fn"])
    return out


def build_model(config: SB3Config, seed: int, tensorboard_log: str | None = None) -> BaseAlgorithm:
    env = make_vec_env(config.env_id, n_envs=config.n_envs, seed=seed, env_kwargs=config.env_kwargs)
    return algorithm_class(config.algo)(
        resolve_policy(config.policy),
        env,
        policy_kwargs=resolve_policy_kwargs(config.policy_kwargs),
        seed=seed,
        device=config.device,
        verbose=0,
        tensorboard_log=tensorboard_log,
        **config.hyperparams,
    )


def save_model(model: BaseAlgorithm, path: Path) -> None:
    """Save an SB3 model zip atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        model.save(handle)


def train_sb3(config: SB3Config, seed: int, run_dir: Path) -> dict[str, Any]:
    """Train, log (CSV + TensorBoard) into ``run_dir``, save ``model.zip``, evaluate."""
    start = time.perf_counter()
    model = build_model(config, seed)
    model.set_logger(configure(str(run_dir), ["csv", "tensorboard"]))
    model.learn(total_timesteps=config.total_timesteps, progress_bar=config.progress_bar)
    save_model(model, run_dir / "model.zip")
    eval_env = make_vec_env(config.env_id, n_envs=1, seed=seed + 10_000, env_kwargs=config.env_kwargs)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=config.eval_episodes, deterministic=True)
    return {
        "mean_return": float(mean),
        "std_return": float(std),
        "timesteps": int(model.num_timesteps),
        "parameters": sum(p.numel() for p in model.policy.parameters()),
        "wall_s": round(time.perf_counter() - start, 2),
    }
