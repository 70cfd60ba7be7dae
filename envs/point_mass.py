"""A point mass pushed by wind: the QARL code's cheapest two-player test bed, in pure Python.

A 4 x 4 m square, seen from above. The protagonist (a 5 kg point mass, forces of at most 1 N along x and
y, viscous friction 1 N s/m) starts at (0, -1.5) and must reach the goal at (0, 1.5) through a 1 m gap
in a wall along y = 0. In the band -1 <= y <= 0 below the wall the adversary blows a horizontal wind of
at most 10 N, ten times the protagonist's force: strong enough to keep a protagonist off the gap, which
is what makes a fully rational adversary too hard an opponent to learn against (the case QARL's
bounded-rationality curriculum is for). Reward ``exp(-distance to goal) - 1`` per step, 0 and the end of
the episode at the goal (within 0.1 m). Each step is ten Euler substeps of 0.01 s.

Dynamics, reward and constants follow ``PointMassBidirectionalWind`` of github.com/AryamanReddi99/
quantal-adversarial-rl (``point_mass_envs/abstract_point_mass_vs_wind.py``); its horizon is 500 steps.
The model perturbations of the robustness grid act on the mass (body ``mass``), the friction coefficient
and the protagonist's force (``gear_scale``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from aligngym.envs.adversarial import Policy, ProtagonistView
from aligngym.envs.perturbations import PERTURBATION_KEYS, Perturbation

BODY = "mass"
"""The one body of the task: what ``mass_scale`` (with ``mass_bodies=("mass",)``) scales."""


@dataclass(frozen=True)
class PointMassModel:
    """The physical constants of the task: the nominal ones, or one episode's perturbed copy."""

    mass: float = 5.0
    """kg"""
    friction: float = 1.0
    """Viscous friction coefficient, N s/m."""
    force: float = 1.0
    """Bound of each protagonist force component, N."""

    def nominal_mass(self, body: str) -> float:
        """The mass of ``body`` (only ``mass`` exists), as the robustness grid asks MuJoCo models."""
        if body != BODY:
            raise ValueError(f"unknown body {body!r}; the point mass has one body: {BODY!r}")
        return self.mass

    def perturbed(self, perturbation: Perturbation) -> PointMassModel:
        """This model scaled by ``perturbation`` (mass, friction, gear = protagonist force)."""
        if perturbation.gravity_scale != 1.0:
            raise ValueError(
                f"gravity_scale={perturbation.gravity_scale!r}: the point mass moves in a horizontal plane "
                "without gravity; valid perturbations: mass_scale, friction_scale, gear_scale"
            )
        if perturbation.mass_scale != 1.0:
            for body in perturbation.mass_bodies:
                self.nominal_mass(body)
        return PointMassModel(
            mass=self.mass * perturbation.mass_scale,
            friction=self.friction * perturbation.friction_scale,
            force=self.force * perturbation.gear_scale,
        )


class PointMassWindEnv(gym.Env, EzPickle):
    """Two-player zero-sum game: ``step({"protagonist": (fx, fy), "adversary": (wind,)})``.

    Same interface as :class:`~aligngym.envs.adversarial.AdversarialForceEnv`: ``info["adversary_reward"]``
    is minus the reward, ``action["adversary"] = None`` blows no wind, non-finite actions raise, and
    ``reset(options=...)`` takes the perturbation keys (``mass_scale``, ``friction_scale``,
    ``gear_scale``; ``gravity_scale`` must stay 1) for one episode. Observation: (x, vx, y, vy).

    Args:
        force_bound: the adversary's wind bound, N (the QARL code: 10, ten times the protagonist's 1 N).
        reset_noise_scale: half-width of a uniform perturbation of the start position, m (the code: 0).

    Example:
        >>> env = PointMassWindEnv()
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step({"protagonist": [0.0, 1.0], "adversary": [10.0]})
        >>> bool(info["adversary_reward"] == -reward), env.adversary_action_names
        (True, ['mass:fx'])
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    task = "PointMass"
    perturbs_itself = True
    """Reset options perturb the model directly (robustness grids need no MuJoCo wrapper)."""

    SIZE = 4.0
    START = (0.0, -1.5)
    GOAL = (0.0, 1.5)
    GAP_WIDTH = 1.0
    WIND_LOW = -1.0
    """The wind blows while -1 <= y <= 0."""
    GOAL_TOLERANCE = 0.1
    DT = 0.01
    SUBSTEPS = 10

    def __init__(self, force_bound: float = 10.0, reset_noise_scale: float = 0.0) -> None:
        EzPickle.__init__(self, force_bound, reset_noise_scale)
        force_bound = float(force_bound)
        if not math.isfinite(force_bound) or force_bound <= 0:
            raise ValueError(f"force_bound={force_bound!r} must be a positive finite number")
        if not 0.0 <= reset_noise_scale < self.SIZE / 2:
            raise ValueError(f"reset_noise_scale={reset_noise_scale!r} must be in [0, {self.SIZE / 2})")
        self.force_bound = force_bound
        self.reset_noise_scale = float(reset_noise_scale)
        self.adversary_action_names = [f"{BODY}:fx"]
        """What each adversary action component pushes (the wind is horizontal)."""
        self.nominal = PointMassModel()
        self.model = self.nominal
        """The constants of the current episode."""
        self.perturbation = Perturbation(mass_bodies=(BODY,))
        self.protagonist_action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        """Unit actions, scaled by the model's force (so ``gear_scale`` changes strength, not the space)."""
        self.adversary_action_space = spaces.Box(-force_bound, force_bound, shape=(1,), dtype=np.float32)
        self.action_space = spaces.Dict(
            {"protagonist": self.protagonist_action_space, "adversary": self.adversary_action_space}
        )
        half = self.SIZE / 2
        self.observation_space = spaces.Box(
            np.array([-half, -np.inf, -half, -np.inf], dtype=np.float32),
            np.array([half, np.inf, half, np.inf], dtype=np.float32),
            dtype=np.float32,
        )
        self._state = (0.0, 0.0, 0.0, 0.0)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        perturbation, unknown = Perturbation(mass_bodies=(BODY,)).updated(options)
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {', '.join(map(repr, unknown))}; valid options: {', '.join(PERTURBATION_KEYS)}"
            )
        self.model = self.nominal.perturbed(perturbation)
        self.perturbation = perturbation
        x, y = self.START
        if self.reset_noise_scale > 0:
            dx, dy = self.np_random.uniform(-self.reset_noise_scale, self.reset_noise_scale, size=2)
            x, y = x + float(dx), y + float(dy)
        self._state = (x, 0.0, y, 0.0)
        return self._observation(), self._info()

    def step(self, action: dict[str, Any]) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        protagonist = np.asarray(action["protagonist"], dtype=np.float64).reshape(-1)
        if protagonist.shape != (2,) or not np.isfinite(protagonist).all():
            raise ValueError(f"protagonist action {protagonist.tolist()} must be 2 finite numbers")
        force = self.model.force
        fx = force * min(max(float(protagonist[0]), -1.0), 1.0)
        fy = force * min(max(float(protagonist[1]), -1.0), 1.0)
        wind = action["adversary"]
        if wind is not None:
            wind = np.asarray(wind, dtype=np.float64).reshape(-1)
            if wind.shape != (1,) or not np.isfinite(wind).all():
                raise ValueError(f"adversary action {wind.tolist()} must be 1 finite number")
            if self.WIND_LOW <= self._state[2] <= 0.0:  # the wind band, at the start of the step
                fx += min(max(float(wind[0]), -self.force_bound), self.force_bound)
        state = self._state
        for _ in range(self.SUBSTEPS):
            state = self._substep(state, fx, fy)
        self._state = state
        info = self._info()
        terminated = info["success"]
        reward = 0.0 if terminated else math.exp(-info["distance"]) - 1.0
        info["adversary_reward"] = -reward
        return self._observation(), reward, terminated, False, info

    def _substep(
        self, state: tuple[float, float, float, float], fx: float, fy: float
    ) -> tuple[float, float, float, float]:
        """One Euler step of F = m a with viscous friction, walls at the border and the gap wall at y = 0."""
        x, vx, y, vy = state
        mass, friction, dt, half = self.model.mass, self.model.friction, self.DT, self.SIZE / 2
        nx, ny = x + dt * vx, y + dt * vy
        nvx = vx + dt * (fx - friction * vx) / mass
        nvy = vy + dt * (fy - friction * vy) / mass
        if not -half <= nx <= half:
            nvx, nx = 0.0, min(max(nx, -half), half)
        if not -half <= ny <= half:
            nvy, ny = 0.0, min(max(ny, -half), half)
        if (y >= 0.0 > ny) or (y <= 0.0 < ny):  # crossing the wall's line
            crossing_x = x + (nx - x) * (0.0 - y) / (ny - y)
            if abs(crossing_x) > 0.5 * self.GAP_WIDTH:  # hit the wall: stop on its side
                return crossing_x, vx, (1e-4 if ny < 0.0 else -1e-4), 0.0
        return nx, nvx, ny, nvy

    def _observation(self) -> np.ndarray:
        return np.array(self._state, dtype=np.float32)

    def _info(self) -> dict[str, Any]:
        x, _, y, _ = self._state
        distance = math.hypot(self.GOAL[0] - x, self.GOAL[1] - y)
        return {"distance": distance, "success": distance <= self.GOAL_TOLERANCE}


def protagonist_env(adversary: Policy | None = None, **kwargs: Any) -> ProtagonistView:
    """Entry point of ``aligngym/PointMassProtagonist-v0``: the protagonist's view, no wind by default."""
    return ProtagonistView(PointMassWindEnv(**kwargs), adversary=adversary)
