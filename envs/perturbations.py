"""Model perturbations of MuJoCo envs (mass, friction, gravity, actuator gear) and robustness grids.

A perturbation is applied at ``reset`` and lasts one episode: every reset first restores the nominal
model recorded when the env was wrapped, then scales it. The evaluation grid runs a fixed policy over
torso mass x friction and reports the mean return of each cell, as in the RARL/QARL robustness plots.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from aligngym.files import atomic_path, atomic_write_text

logger = logging.getLogger(__name__)

PERTURBATION_KEYS = ("mass_scale", "mass_bodies", "friction_scale", "gravity_scale", "gear_scale")
MAX_SCALE = 100.0
"""Upper bound of every scale factor: beyond 100x nothing of the task is left to measure, and factors
like 1e300 overflow the physics into inf/NaN states that would silently end every episode."""


@dataclass(frozen=True)
class Perturbation:
    """Scale factors for one episode; all 1.0 is the nominal model.

    Masses scale ``body_mass`` and ``body_inertia`` together (a denser body of the same shape).
    Friction scales all three coefficients (sliding, torsional, rolling) of every geom.
    """

    mass_scale: float = 1.0
    """Factor on the mass and inertia of each body in ``mass_bodies``."""
    mass_bodies: tuple[str, ...] = ("torso",)
    """Names of the bodies whose mass is scaled."""
    friction_scale: float = 1.0
    """Factor on every geom's friction."""
    gravity_scale: float = 1.0
    """Factor on ``model.opt.gravity``."""
    gear_scale: float = 1.0
    """Factor on every actuator's gear (actuator strength)."""

    def __post_init__(self) -> None:
        if isinstance(self.mass_bodies, str):
            object.__setattr__(self, "mass_bodies", (self.mass_bodies,))
        else:
            object.__setattr__(self, "mass_bodies", tuple(self.mass_bodies))
        for name, low, strict in (
            ("mass_scale", 0.0, True),
            ("friction_scale", 0.0, False),
            ("gravity_scale", 0.0, False),
            ("gear_scale", 0.0, False),
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not np.isfinite(value):
                raise ValueError(f"{name}={value!r} must be a finite number")
            if value < low or (strict and value == low) or value > MAX_SCALE:
                bound = "> 0" if strict else ">= 0"
                raise ValueError(f"{name}={value!r} must be {bound} and <= {MAX_SCALE:g}")
        if not all(isinstance(name, str) for name in self.mass_bodies):
            raise ValueError(f"mass_bodies={self.mass_bodies!r} must be body names")

    @property
    def is_nominal(self) -> bool:
        return self.mass_scale == self.friction_scale == self.gravity_scale == self.gear_scale == 1.0

    def updated(self, options: Mapping[str, Any] | None) -> tuple[Perturbation, dict[str, Any]]:
        """This perturbation with the perturbation keys of ``options`` applied, and the other options."""
        rest = dict(options or {})
        changes = {key: rest.pop(key) for key in PERTURBATION_KEYS if key in rest}
        return (replace(self, **changes) if changes else self), rest


class NominalModel:
    """The nominal parameters of one ``mujoco.MjModel``, to perturb it and restore it in place."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.body_mass = model.body_mass.copy()
        self.body_inertia = model.body_inertia.copy()
        self.geom_friction = model.geom_friction.copy()
        self.gravity = model.opt.gravity.copy()
        self.actuator_gear = model.actuator_gear.copy()
        self._perturbed = False

    def body_id(self, name: str) -> int:
        import mujoco

        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, name)
        if body < 0:
            raise ValueError(f"unknown body {name!r}; valid bodies: {', '.join(self.body_names())}")
        return body

    def body_names(self) -> list[str]:
        import mujoco

        names = (
            mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(1, self.model.nbody)
        )
        return [name for name in names if name]

    def nominal_mass(self, body: str) -> float:
        return float(self.body_mass[self.body_id(body)])

    def apply(self, perturbation: Perturbation) -> None:
        """Restore the nominal model, then scale it (a no-op while nominal and never perturbed); an unknown
        body raises ValueError before the model changes."""
        if perturbation.is_nominal and not self._perturbed:
            return
        # Look the bodies up before touching the model: an unknown name leaves it as it was.
        ids = (
            [self.body_id(name) for name in perturbation.mass_bodies]
            if perturbation.mass_scale != 1.0
            else []
        )
        model = self.model
        model.body_mass[:] = self.body_mass
        model.body_inertia[:] = self.body_inertia
        model.geom_friction[:] = self.geom_friction
        model.opt.gravity[:] = self.gravity
        model.actuator_gear[:] = self.actuator_gear
        if ids:
            model.body_mass[ids] *= perturbation.mass_scale
            model.body_inertia[ids] *= perturbation.mass_scale
        model.geom_friction[:] *= perturbation.friction_scale
        model.opt.gravity[:] *= perturbation.gravity_scale
        model.actuator_gear[:] *= perturbation.gear_scale
        self._perturbed = not perturbation.is_nominal


def mujoco_model(env: gym.Env) -> Any:
    """The ``mujoco.MjModel`` of a MuJoCo env (wrapped or not); TypeError for any other env."""
    import mujoco

    model = getattr(env.unwrapped, "model", None)
    if not isinstance(model, mujoco.MjModel):
        raise TypeError(f"{env.unwrapped!r} is not a MuJoCo env (it has no mujoco.MjModel `model` attribute)")
    return model


class ModelPerturbation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Perturb the MuJoCo model of any Gymnasium MuJoCo env at every reset.

    The constructor sets the default perturbation of every episode; ``reset(options=...)`` overrides
    any of its keys (``mass_scale``, ``mass_bodies``, ``friction_scale``, ``gravity_scale``,
    ``gear_scale``) for that episode only. Each reset restores the nominal model first.

    Example:
        >>> import gymnasium as gym
        >>> env = ModelPerturbation(gym.make("Hopper-v5"), friction_scale=0.5)
        >>> _ = env.reset(seed=0, options={"mass_scale": 2.0})
        >>> round(float(env.unwrapped.model.body_mass[1] / env.nominal.body_mass[1]), 2)
        2.0
        >>> _ = env.reset(seed=0)
        >>> round(float(env.unwrapped.model.body_mass[1] / env.nominal.body_mass[1]), 2)
        1.0
    """

    def __init__(
        self,
        env: gym.Env,
        mass_scale: float = 1.0,
        mass_bodies: Sequence[str] | str = ("torso",),
        friction_scale: float = 1.0,
        gravity_scale: float = 1.0,
        gear_scale: float = 1.0,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            mass_scale=mass_scale,
            mass_bodies=mass_bodies,
            friction_scale=friction_scale,
            gravity_scale=gravity_scale,
            gear_scale=gear_scale,
        )
        gym.Wrapper.__init__(self, env)
        self.nominal = NominalModel(mujoco_model(env))
        self.default = Perturbation(mass_scale, mass_bodies, friction_scale, gravity_scale, gear_scale)
        if self.default.mass_scale != 1.0:
            for name in self.default.mass_bodies:
                self.nominal.body_id(name)  # fail at construction on an unknown body
        self.perturbation = self.default
        """The perturbation of the current episode."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        perturbation, rest = self.default.updated(options)
        self.nominal.apply(perturbation)
        self.perturbation = perturbation
        return self.env.reset(seed=seed, options=rest if options is not None else None)


# ---------------------------------------------------------------------------------------------------
# Robustness grid


@dataclass(frozen=True)
class GridRange:
    """Default evaluation ranges of one task: absolute masses (kg) of ``body`` and friction scales."""

    body: str
    masses: tuple[float, float] | None
    """(low, high) in kg; None means 0.5x to 1.5x the nominal mass."""
    frictions: tuple[float, float] = (0.1, 1.9)


# From the QARL spec (cheetah torso 3-9 kg, hopper 1-9 kg, walker 5-15 kg, friction 0.1-1.9 / 0.1-1.3).
# The spec's walker range is for dm_control's walker (torso ~10.7 kg); Gymnasium's Walker2d torso weighs
# 3.67 kg, so the same relative range (0.5x to 1.5x) is used there.
DEFAULT_GRIDS: dict[str, GridRange] = {
    "Hopper": GridRange("torso", (1.0, 9.0)),
    "HalfCheetah": GridRange("torso", (3.0, 9.0)),
    "Walker2d": GridRange("torso", None, (0.1, 1.3)),
    "Ant": GridRange("torso", None),
    "Swimmer": GridRange("torso", None),
    "InvertedPendulum": GridRange("pole", None),
    "PointMass": GridRange("mass", None),
}


def task_name(env: gym.Env) -> str:
    """The MuJoCo task of an env: ``Hopper`` for Hopper-v5 and for aligngym's adversarial Hopper."""
    unwrapped = env.unwrapped
    task = getattr(unwrapped, "task", None)
    if isinstance(task, str):
        return task
    name = type(unwrapped).__name__
    return name.removesuffix("Env")


@dataclass
class GridResult:
    """Mean episode return of a policy in each (mass, friction) cell."""

    task: str
    body: str
    nominal_mass: float
    masses: list[float]
    """Absolute masses (kg) of ``body``: the rows."""
    frictions: list[float]
    """Friction scales: the columns."""
    returns: np.ndarray
    """Mean return, shape (len(masses), len(frictions))."""
    stds: np.ndarray
    """Standard deviation of the return over episodes, same shape."""
    episodes: int
    seed: int

    @property
    def mean(self) -> float:
        """Mean return over all cells."""
        return float(self.returns.mean())

    @property
    def worst(self) -> float:
        """Return of the worst cell."""
        return float(self.returns.min())

    @property
    def worst_cell(self) -> tuple[float, float]:
        """(mass, friction) of the worst cell."""
        row, col = np.unravel_index(int(self.returns.argmin()), self.returns.shape)
        return self.masses[row], self.frictions[col]

    def to_markdown(self) -> str:
        header = (
            f"| {self.body} mass (kg) \\ friction | " + " | ".join(f"{f:.2f}" for f in self.frictions) + " |"
        )
        rule = "| --- |" + " ---: |" * len(self.frictions)
        rows = [
            f"| {m:.2f} | " + " | ".join(f"{r:.1f}" for r in row) + " |"
            for m, row in zip(self.masses, self.returns)
        ]
        mass, friction = self.worst_cell
        summary = (
            f"{self.task}: grid mean {self.mean:.1f}, worst cell {self.worst:.1f} "
            f"(mass {mass:.2f} kg, friction x{friction:.2f}); nominal {self.body} mass {self.nominal_mass:.2f} kg; "
            f"{self.episodes} episode(s) per cell, seed {self.seed}"
        )
        return "\n".join([summary, "", header, rule, *rows]) + "\n"

    def to_csv(self, path: str | Path | None = None) -> str:
        """Long-format CSV (mass_kg, friction_scale, mean_return, std_return); written atomically if path."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["mass_kg", "friction_scale", "mean_return", "std_return"])
        for i, mass in enumerate(self.masses):
            for j, friction in enumerate(self.frictions):
                writer.writerow([mass, friction, float(self.returns[i, j]), float(self.stds[i, j])])
        text = buffer.getvalue()
        if path is not None:
            atomic_write_text(path, text)
        return text

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["returns"] = self.returns.tolist()
        out["stds"] = self.stds.tolist()
        out.update(mean=self.mean, worst=self.worst)
        return out


def perturbable(env: gym.Env) -> gym.Env:
    """``env`` able to take perturbation reset options: MuJoCo envs get a :class:`ModelPerturbation`;
    envs whose ``perturbs_itself`` is true (the point mass) take the options as they are."""
    return env if getattr(env.unwrapped, "perturbs_itself", False) else ModelPerturbation(env)


def grid_ranges(
    env: gym.Env, body: str | None = None
) -> tuple[str, float, tuple[float, float], tuple[float, float]]:
    """The task's default grid of a :func:`perturbable` env: body, its nominal mass (kg), the mass range
    (kg) and the friction-scale range (``DEFAULT_GRIDS``; 0.5x-1.5x the nominal mass where it has none)."""
    grid = DEFAULT_GRIDS.get(task_name(env), GridRange("torso", None))
    body = body or grid.body
    nominal_mass = env.get_wrapper_attr("nominal").nominal_mass(body)
    masses = grid.masses or (0.5 * nominal_mass, 1.5 * nominal_mass)
    return body, nominal_mass, masses, grid.frictions


class DomainRandomization(gym.Wrapper):
    """Each episode at a (mass, friction) drawn uniformly from ranges: the domain-randomisation baseline.

    Wraps a :func:`perturbable` env (a MuJoCo env is wrapped here) and passes the draw as reset options;
    options given to ``reset`` win. By default the ranges are the task's robustness-grid ranges, so the
    baseline trains over exactly the models it is evaluated on. Draws come from its own generator.

    Example:
        >>> import gymnasium as gym
        >>> env = DomainRandomization(gym.make("Hopper-v5"), seed=0)
        >>> _ = env.reset(seed=0)
        >>> 1.0 <= env.unwrapped.model.body_mass[1] <= 9.0, env.last_draw["mass_bodies"]
        (True, ('torso',))
    """

    def __init__(
        self,
        env: gym.Env,
        masses: tuple[float, float] | None = None,
        frictions: tuple[float, float] | None = None,
        body: str | None = None,
        seed: int | None = None,
    ) -> None:
        env = perturbable(env)
        super().__init__(env)
        self.body, self.nominal_mass, default_masses, default_frictions = grid_ranges(env, body)
        self.masses = tuple(float(m) for m in (masses or default_masses))
        self.frictions = tuple(float(f) for f in (frictions or default_frictions))
        if len(self.masses) != 2 or not 0.0 < self.masses[0] <= self.masses[1]:
            raise ValueError(f"masses={list(self.masses)} must be (low, high) kg with 0 < low <= high")
        if len(self.frictions) != 2 or not 0.0 <= self.frictions[0] <= self.frictions[1]:
            raise ValueError(f"frictions={list(self.frictions)} must be (low, high) with 0 <= low <= high")
        self.rng = np.random.default_rng(seed)
        self.last_draw: dict[str, Any] = {}
        """The perturbation options of the current episode."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.last_draw = {
            "mass_scale": float(self.rng.uniform(*self.masses)) / self.nominal_mass,
            "mass_bodies": (self.body,),
            "friction_scale": float(self.rng.uniform(*self.frictions)),
        }
        return self.env.reset(seed=seed, options={**self.last_draw, **(options or {})})


def robustness_grid(
    make_env: Callable[[], gym.Env],
    policy: Callable[[Any], Any],
    masses: Sequence[float] | None = None,
    frictions: Sequence[float] | None = None,
    episodes: int = 1,
    seed: int = 0,
    body: str | None = None,
    points: int = 11,
    max_steps: int = 10_000,
    progress: bool = False,
) -> GridResult:
    """Mean return of ``policy`` (obs -> action) on every (mass of ``body``, friction scale) cell.

    ``make_env`` returns an unperturbed MuJoCo env (e.g. ``lambda: gym.make("Hopper-v5")``).
    Masses are absolute (kg); by default ``points`` values over the task's range in ``DEFAULT_GRIDS``.
    Every cell replays the same reset seeds ``seed, seed+1, ...`` so cells differ only by the model.
    """
    if episodes < 1:
        raise ValueError(f"episodes={episodes} must be >= 1")
    env = perturbable(make_env())
    task = task_name(env)
    body, nominal_mass, (mass_low, mass_high), friction_range = grid_ranges(env, body)
    if masses is None:
        masses = np.linspace(mass_low, mass_high, points)
    if frictions is None:
        frictions = np.linspace(*friction_range, points)
    masses, frictions = [float(m) for m in masses], [float(f) for f in frictions]
    returns = np.zeros((len(masses), len(frictions)))
    stds = np.zeros_like(returns)
    cells = [(i, j) for i in range(len(masses)) for j in range(len(frictions))]
    if progress:
        from tqdm.auto import tqdm

        cells = tqdm(cells, desc=f"{task} robustness grid", unit="cell")
    for i, j in cells:
        options = {
            "mass_scale": masses[i] / nominal_mass,
            "mass_bodies": (body,),
            "friction_scale": frictions[j],
        }
        episode_returns = [
            _episode_return(env, policy, seed + k, options, max_steps) for k in range(episodes)
        ]
        returns[i, j] = np.mean(episode_returns)
        stds[i, j] = np.std(episode_returns)
    env.close()
    logger.info("robustness grid %s: mean %.1f worst %.1f", task, returns.mean(), returns.min())
    return GridResult(task, body, nominal_mass, masses, frictions, returns, stds, episodes, seed)


def _episode_return(
    env: gym.Env, policy: Callable[[Any], Any], seed: int, options: dict, max_steps: int
) -> float:
    obs, _ = env.reset(seed=seed, options=options)
    total = 0.0
    for _ in range(max_steps):
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        total += float(reward)
        if terminated or truncated:
            break
    return total


def plot_heatmap(result: GridResult, path: str | Path, title: str | None = None) -> Path:
    """Write the grid as a PNG heatmap (masses on y, frictions on x) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(result.frictions), 1.0 + 0.45 * len(result.masses)))
    image = ax.imshow(result.returns, origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(result.frictions)), [f"{f:.2f}" for f in result.frictions], rotation=45)
    ax.set_yticks(range(len(result.masses)), [f"{m:.2f}" for m in result.masses])
    ax.set_xlabel("friction scale")
    ax.set_ylabel(f"{result.body} mass (kg)")
    for i in range(len(result.masses)):
        for j in range(len(result.frictions)):
            ax.text(j, i, f"{result.returns[i, j]:.0f}", ha="center", va="center", fontsize=6, color="w")
    fig.colorbar(image, ax=ax, label="mean return")
    ax.set_title(title or f"{result.task}: mean {result.mean:.0f}, worst {result.worst:.0f}")
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path
