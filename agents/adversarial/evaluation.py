"""What "robust" means for a trained protagonist: four numbers and a heatmap.

1. nominal return: the adversary switched off (zero force);
2. return against the adversary it was trained with (for the random-force baseline: random forces);
3. return against a *fresh* adversary trained against the frozen protagonist (the worst case it meets),
   and against the strongest constant push (+-bound along each force axis): a worst case that needs no
   training, which a short-trained adversary can miss;
4. the torso-mass x friction grid of ``aligngym.envs.perturbations`` (grid mean and worst cell).

Temperature-conditioned (QARL) players are evaluated with alpha = 0 in their observations. The
protagonist acts deterministically throughout; so do trained adversaries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

from aligngym.agents.adversarial.opponents import ModelPolicy, adversary_env, make_game, protagonist_env
from aligngym.agents.adversarial.temperature import PointTemperature
from aligngym.agents.sb3_training import save_model
from aligngym.envs.adversarial import ProtagonistView
from aligngym.envs.perturbations import GridResult, plot_heatmap, robustness_grid
from aligngym.files import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from aligngym.agents.adversarial.training import AdversarialConfig

logger = logging.getLogger(__name__)


@dataclass
class EvaluationConfig:
    """How a finished run is evaluated (also the defaults of ``aligngym eval robustness``)."""

    at_end: bool = True
    """Evaluate right after training (else only through ``aligngym eval robustness RUN_DIR``)."""
    episodes: int = 10
    """Episodes for the nominal and the against-adversary returns."""
    worst_case_steps: int = 5000
    """Env steps to train the fresh worst-case adversary (0 skips it)."""
    grid_points: int = 5
    """Points per axis of the mass x friction grid (the paper uses 11)."""
    grid_episodes: int = 1
    """Episodes per grid cell."""
    masses: list[float] | None = None
    """Absolute masses (kg) of the grid body; default: the task's range in envs.perturbations.DEFAULT_GRIDS."""
    frictions: list[float] | None = None
    """Friction scales; default: the task's range."""
    constant_pushes: bool = True
    """Also evaluate against the strongest constant push (+-bound along each force axis)."""
    grid_body: str | None = None
    """The body whose mass varies (default: the task's, e.g. torso; pole for InvertedPendulum)."""

    def __post_init__(self) -> None:
        for name in ("episodes", "grid_points", "grid_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"evaluation.{name}={getattr(self, name)} must be >= 1")
        if self.worst_case_steps < 0:
            raise ValueError(f"evaluation.worst_case_steps={self.worst_case_steps} must be >= 0")


def mean_return(
    model: BaseAlgorithm, make_env: Callable[[], Any], episodes: int, seed: int
) -> tuple[float, float]:
    """Mean and std of the protagonist's episode return (deterministic actions)."""
    vec_env = DummyVecEnv([make_env])
    vec_env.seed(seed)
    mean, std = evaluate_policy(model, vec_env, n_eval_episodes=episodes, deterministic=True)
    vec_env.close()
    return float(mean), float(std)


def constant_pushes(action_names: list[str], bound: float) -> dict[str, np.ndarray]:
    """The forces +-bound along each axis, on every pushed body at once, keyed like ``+fx``.

    ``action_names`` are the game's ``adversary_action_names`` (``foot:fx``, ``foot:fz``, ...).
    """
    axes = sorted({name.split(":")[1] for name in action_names})
    return {
        f"{sign}{axis}": np.array(
            [float(f"{sign}{bound}") if n.endswith(f":{axis}") else 0.0 for n in action_names],
            dtype=np.float32,
        )
        for axis in axes
        for sign in ("+", "-")
    }


def worst_constant_push(
    protagonist: BaseAlgorithm, new_game: Callable[[], Any], episodes: int, seed: int
) -> tuple[float, str]:
    """The protagonist's mean return against the most harmful constant push of the game, and its key."""
    probe = new_game()
    pushes = constant_pushes(probe.unwrapped.adversary_action_names, probe.unwrapped.force_bound)
    probe.close()
    returns = {
        key: mean_return(
            protagonist, lambda f=force: protagonist_env(new_game(), lambda obs, f=f: f), episodes, seed
        )[0]
        for key, force in pushes.items()
    }
    worst = min(returns, key=returns.__getitem__)
    return returns[worst], worst


def evaluation_game(config: AdversarialConfig) -> Any:
    """A fresh two-player game as evaluation sees it: temperature-conditioned (QARL) players get alpha = 0."""
    temperature = PointTemperature(0.0) if config.conditioned else None
    return make_game(config.env_id, config.env_kwargs, config.max_episode_steps, temperature, config.gamma)


def train_worst_case_adversary(
    config: AdversarialConfig, protagonist: BaseAlgorithm, steps: int, seed: int
) -> SAC:
    """A fresh SAC adversary trained for ``steps`` against the frozen, deterministic protagonist."""
    game = evaluation_game(config)
    vec_env = DummyVecEnv([lambda: adversary_env(game, ModelPolicy(protagonist, deterministic=True))])
    adversary = SAC(
        "MlpPolicy",
        vec_env,
        seed=seed,
        device=config.device,
        verbose=0,
        policy_kwargs=config.resolved_policy_kwargs(),
        **config.worst_case_settings(),
    )
    adversary.learn(total_timesteps=steps)
    return adversary


def evaluate_players(
    config: AdversarialConfig,
    protagonist: BaseAlgorithm,
    opponent: Callable[[Any], Any] | None,
    seed: int,
    out_dir: str | Path,
    evaluation: EvaluationConfig | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """Run the four evaluations; write ``robustness.json``, ``.md``, ``_grid.csv`` and ``_heatmap.png``.

    ``opponent`` is the adversary the protagonist was trained against as a callable obs -> force
    (None for the no-adversary baseline).
    """
    evaluation = evaluation or config.evaluation
    out_dir = Path(out_dir)

    def game() -> Any:
        return evaluation_game(config)

    results: dict[str, Any] = {}
    results["nominal_return"], results["nominal_std"] = mean_return(
        protagonist, lambda: protagonist_env(game()), evaluation.episodes, seed
    )
    if opponent is not None:
        results["vs_adversary_return"], _ = mean_return(
            protagonist, lambda: protagonist_env(game(), opponent), evaluation.episodes, seed
        )
    if evaluation.worst_case_steps > 0:
        worst = train_worst_case_adversary(config, protagonist, evaluation.worst_case_steps, seed + 2)
        save_model(worst, out_dir / "worst_case_adversary.zip")
        results["vs_worst_case_return"], _ = mean_return(
            protagonist,
            lambda: protagonist_env(game(), ModelPolicy(worst, deterministic=True)),
            evaluation.episodes,
            seed,
        )
    if evaluation.constant_pushes:
        results["vs_constant_push_return"], results["worst_constant_push"] = worst_constant_push(
            protagonist, game, evaluation.episodes, seed
        )
    grid = robustness_grid(
        lambda: ProtagonistView(game()),
        ModelPolicy(protagonist, deterministic=True),
        masses=evaluation.masses,
        frictions=evaluation.frictions,
        episodes=evaluation.grid_episodes,
        seed=seed,
        body=evaluation.grid_body,
        points=evaluation.grid_points,
    )
    results.update(grid_summary(grid))
    write_report(results, grid, out_dir, title)
    return results


def grid_summary(grid: GridResult) -> dict[str, float]:
    mass, friction = grid.worst_cell
    return {
        "grid_mean": grid.mean,
        "grid_worst": grid.worst,
        "worst_cell_mass": mass,
        "worst_cell_friction": friction,
    }


def write_report(results: dict[str, Any], grid: GridResult, out_dir: Path, title: str | None = None) -> None:
    """``robustness.json`` (scalars + the grid), ``robustness.md``, ``robustness_grid.csv``, the heatmap."""
    atomic_write_json(out_dir / "robustness.json", {**results, "grid": grid.to_dict()})
    lines = [f"| {key} | {value:.2f} |" for key, value in results.items() if isinstance(value, float)]
    atomic_write_text(
        out_dir / "robustness.md",
        "| metric | value |\n| --- | ---: |\n" + "\n".join(lines) + "\n\n" + grid.to_markdown(),
    )
    grid.to_csv(out_dir / "robustness_grid.csv")
    plot_heatmap(grid, out_dir / "robustness_heatmap.png", title=title)
    logger.info(
        "robustness of %s: %s", out_dir, {k: round(v, 2) for k, v in results.items() if isinstance(v, float)}
    )
