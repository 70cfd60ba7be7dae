"""The ``sb3`` job: train any stable-baselines3 algorithm on any Gymnasium id, logging into a run folder."""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Mapping
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
from aligngym.agents.sb3_logging import DEFAULT_LOGGERS, StepProgress, check_loggers, sb3_formats, tracking
from aligngym.agents.sb3_weights import load_policy, read_description, save_policy
from aligngym.entry_points import load_entry_point, resolve_allowed
from aligngym.files import atomic_path

SB3_POLICY_NAMES = ("MlpPolicy", "CnnPolicy", "MultiInputPolicy")
POLICY_CLASSES: dict[str, str] = {
    "TensorActorCriticPolicy": "aligngym.agents.tensor.policies:TensorActorCriticPolicy",
}
"""Policy classes a recipe may name besides SB3's own (short name -> entry point). A recipe value is never
imported unless listed here: importing an arbitrary ``module:attr`` would run code from a recipe."""


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
    """An SB3 policy name, or a name (or entry point) of ``POLICY_CLASSES`` such as TensorActorCriticPolicy."""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """Passed to the policy; ``activation_fn`` may be a torch.nn class name such as "Tanh"."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """Passed to the algorithm's constructor (learning_rate, n_steps, batch_size, ...)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    eval_episodes: int = 10
    """Episodes of deterministic evaluation at the end."""
    device: str = "auto"
    progress_bar: bool = True
    """A bar with ETA on a terminal, a status line every 30 s when output is not a terminal."""
    loggers: list[str] = field(default_factory=lambda: list(DEFAULT_LOGGERS))
    """SB3 logger formats (stdout, csv, tensorboard, json, log) and/or wandb (the aligngym[wandb] extra)."""

    def __post_init__(self) -> None:
        check_loggers(self.loggers)
        if self.total_timesteps <= 0:
            raise ValueError(f"total_timesteps must be positive, got {self.total_timesteps}")
        if self.n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {self.n_envs}")
        if ":" in self.env_id:  # gym.make("module:Env-v0") would import that module
            raise ValueError(
                f"env_id={self.env_id!r}: give a registered id, not 'module:id' (which imports code)"
            )
        if self.eval_episodes < 1:
            raise ValueError(
                f"eval_episodes={self.eval_episodes} must be >= 1 (a mean over no episodes is NaN)"
            )
        if self.policy not in SB3_POLICY_NAMES:
            resolve_allowed(self.policy, {**{n: n for n in SB3_POLICY_NAMES}, **POLICY_CLASSES}, "policy")
        check_hyperparams(algorithm_class(self.algo), self.hyperparams, "hyperparams")
        resolve_policy_kwargs(self.policy_kwargs)

    def preflight(self) -> None:
        """Build the env and the model once (then drop them): a bad env id, env kwarg or hyperparameter value
        fails here, before a run folder exists, not minutes into the run."""
        build_model(self, seed=0).get_env().close()


# What the runners pass to SB3 constructors themselves (a recipe's hyperparams may not set them).
RUNNER_ARGUMENTS = frozenset(
    {"policy", "env", "policy_kwargs", "seed", "device", "verbose", "tensorboard_log"}
)


def constructor_arguments(algorithm: type) -> set[str]:
    """The keyword arguments ``algorithm(...)`` accepts, following ``**kwargs`` up the class hierarchy."""
    names: set[str] = set()
    for klass in algorithm.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names |= {
            p.name
            for p in parameters
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not p.name.startswith("_")
        }
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return names - {"self"}


def check_hyperparams(algorithm: type, hyperparams: Mapping[str, Any], field_name: str) -> None:
    """ValueError naming the first key of ``hyperparams`` that ``algorithm``'s constructor does not take."""
    valid = sorted(constructor_arguments(algorithm) - RUNNER_ARGUMENTS)
    unknown = sorted(set(hyperparams) - set(valid))
    if unknown:
        raise ValueError(
            f"{field_name}.{unknown[0]} is not a {algorithm.__name__} argument; valid keys: {', '.join(valid)}"
        )


def resolve_policy(policy: str) -> str | type:
    """An SB3 policy name stays a string; a ``POLICY_CLASSES`` name or entry point is imported; else ValueError."""
    if policy in SB3_POLICY_NAMES:
        return policy
    return load_entry_point(policy, allowed=POLICY_CLASSES, what="policy")


def resolve_policy_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Turn YAML-friendly values into what SB3 expects (activation names into torch.nn classes)."""
    out = dict(kwargs)
    if isinstance(out.get("activation_fn"), str):
        name = out["activation_fn"]
        activation = getattr(torch.nn, name, None)
        if not (isinstance(activation, type) and issubclass(activation, torch.nn.Module)) or name.startswith(
            "_"
        ):
            raise ValueError(
                f"policy_kwargs.activation_fn={name!r} is not a torch.nn module (e.g. Tanh, ReLU)"
            )
        out["activation_fn"] = activation
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
    model.set_logger(configure(str(run_dir), sb3_formats(config.loggers)))
    with tracking(config.loggers, run_dir, dataclasses.asdict(config)):
        progress = StepProgress(f"sb3 {config.algo} {config.env_id}", enabled=config.progress_bar)
        model.learn(total_timesteps=config.total_timesteps, callback=progress)
    save_model(model, run_dir / "model.zip")
    save_policy(model, run_dir / "model", {"sb3_config": dataclasses.asdict(config)})
    eval_env = make_vec_env(config.env_id, n_envs=1, seed=seed + 10_000, env_kwargs=config.env_kwargs)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=config.eval_episodes, deterministic=True)
    return {
        "mean_return": float(mean),
        "std_return": float(std),
        "timesteps": int(model.num_timesteps),
        "parameters": sum(p.numel() for p in model.policy.parameters()),
        "wall_s": round(time.perf_counter() - start, 2),
    }


def load_trained_model(stem: str | Path, device: str = "cpu") -> BaseAlgorithm:
    """The model an ``sb3`` run saved as ``<stem>.safetensors`` + ``<stem>.json``, without unpickling.

    The JSON's ``sb3_config`` rebuilds the model (its policy is checked against ``POLICY_CLASSES`` like
    a recipe's), then only the weights are loaded (:func:`aligngym.agents.sb3_weights.load_policy`).
    """
    info = read_description(stem)
    try:
        config = SB3Config(**{**info["sb3_config"], "device": device, "progress_bar": False})
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{stem}.json holds no valid sb3_config ({exc})") from None
    return load_policy(build_model(config, seed=0), stem)
