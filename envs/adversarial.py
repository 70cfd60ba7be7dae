"""The adversarial-force game of RARL/QARL over Gymnasium's MuJoCo v5 tasks, and its single-agent views.

The protagonist sends the task's actuator action; the adversary sends forces (and optionally torques)
that are written to ``data.xfrc_applied`` of chosen bodies before the physics steps (world frame, at
each body's centre of mass; held over the frame-skip substeps; zeroed by reset). The game is zero-sum:
``step`` returns the protagonist's reward and ``info["adversary_reward"]`` is its negation.
Planar models are pushed only within their plane: x and z for Hopper, Walker2d, HalfCheetah and
InvertedPendulum, x and y for Swimmer (which swims in the horizontal plane); Ant gets x, y and z.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import EzPickle

from aligngym.entry_points import load_entry_point
from aligngym.envs.perturbations import PERTURBATION_KEYS, NominalModel, Perturbation

Policy = Callable[[Any], Any]
"""A policy is any callable obs -> action (an SB3 model's ``predict`` wrapped in a lambda, a script, ...)."""


@dataclass(frozen=True)
class TaskDefaults:
    """How to build one task and where its adversary pushes by default."""

    entry_point: str
    bodies: tuple[str, ...]
    force_bound: float
    """Newtons per force component (and N m per torque component)."""
    force_axes: tuple[int, ...]
    """Columns 0-2 of ``xfrc_applied`` (fx, fy, fz) the adversary controls: the model's plane."""
    torque_axes: tuple[int, ...]
    """Columns 3-5 (tx, ty, tz) used when ``torque=True``: rotations within the plane."""


_XZ, _XY, _XYZ = (0, 2), (0, 1), (0, 1, 2)
# Bodies follow the RARL paper / QARL code (hopper foot; cheetah torso and both feet; walker both feet;
# pendulum pole; swimmer centre segment; ant torso). Bounds are starting points: gym-adv used 5 N;
# Ant weighs 0.9 kg in total, so it gets a smaller bound.
TASKS: dict[str, TaskDefaults] = {
    "Hopper": TaskDefaults("gymnasium.envs.mujoco.hopper_v5:HopperEnv", ("foot",), 5.0, _XZ, (4,)),
    "HalfCheetah": TaskDefaults(
        "gymnasium.envs.mujoco.half_cheetah_v5:HalfCheetahEnv", ("torso", "bfoot", "ffoot"), 5.0, _XZ, (4,)
    ),
    "Walker2d": TaskDefaults(
        "gymnasium.envs.mujoco.walker2d_v5:Walker2dEnv", ("foot", "foot_left"), 5.0, _XZ, (4,)
    ),
    "Ant": TaskDefaults("gymnasium.envs.mujoco.ant_v5:AntEnv", ("torso",), 1.0, _XYZ, (3, 4, 5)),
    "InvertedPendulum": TaskDefaults(
        "gymnasium.envs.mujoco.inverted_pendulum_v5:InvertedPendulumEnv", ("pole",), 5.0, _XZ, (4,)
    ),
    "Swimmer": TaskDefaults("gymnasium.envs.mujoco.swimmer_v5:SwimmerEnv", ("mid",), 5.0, _XY, (5,)),
}

_AXIS_NAMES = ("fx", "fy", "fz", "tx", "ty", "tz")
_NOMINAL = Perturbation()


def _task_defaults(task: str) -> TaskDefaults:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")
    return TASKS[task]


class AdversarialForceEnv(gym.Env, EzPickle):
    """Two-player zero-sum game: ``step({"protagonist": a, "adversary": f})`` on a MuJoCo v5 task.

    Args:
        task: one of ``TASKS`` (Hopper, HalfCheetah, Walker2d, Ant, InvertedPendulum, Swimmer).
        bodies: names of the pushed bodies; the task's default when None.
        force_bound: bound of each force (N) and torque (N m) component; the task's default when None.
        torque: also let the adversary apply torques (about the plane's normal for planar models).
        render_mode: passed to the MuJoCo env.
        **task_kwargs: passed to the Gymnasium MuJoCo env (``reset_noise_scale``, ``xml_file``, ...).

    ``action["adversary"] = None`` applies no force (what :class:`ProtagonistView` sends without an
    adversary; cheaper than a zero array). A non-finite action of either player raises ValueError (the
    Gymnasium convention is to trust actions, but NaN forces freeze the simulation silently while the
    protagonist keeps its reward). A reset whose perturbation fails (an unknown body) raises and leaves the
    model and ``perturbation`` of the episode before. ``reset(options=...)`` accepts the perturbation keys of :class:`~aligngym.envs.perturbations.Perturbation`
    (``mass_scale``, ``mass_bodies``, ``friction_scale``, ``gravity_scale``, ``gear_scale``) for that
    episode; the next reset restores the nominal model.

    Example:
        >>> env = AdversarialForceEnv("Hopper", force_bound=10.0)
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        >>> bool(info["adversary_reward"] == -reward)
        True
    """

    # The instance's metadata is the task's (it adds render_fps); this lets gym.make check render_mode.
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"]}

    def __init__(
        self,
        task: str = "Hopper",
        bodies: Sequence[str] | None = None,
        force_bound: float | None = None,
        torque: bool = False,
        render_mode: str | None = None,
        **task_kwargs: Any,
    ) -> None:
        EzPickle.__init__(self, task, bodies, force_bound, torque, render_mode, **task_kwargs)
        defaults = _task_defaults(task)
        bodies = (
            defaults.bodies if bodies is None else (bodies,) if isinstance(bodies, str) else tuple(bodies)
        )
        force_bound = defaults.force_bound if force_bound is None else float(force_bound)
        if not bodies:
            raise ValueError("bodies must name at least one body")
        if not np.isfinite(force_bound) or force_bound <= 0:
            raise ValueError(f"force_bound={force_bound!r} must be a positive finite number")
        self.mujoco_env: gym.Env = load_entry_point(defaults.entry_point)(
            render_mode=render_mode, **task_kwargs
        )
        self.task = task
        self.bodies = bodies
        self.force_bound = force_bound
        self.torque = bool(torque)
        self.metadata = self.mujoco_env.metadata
        self.render_mode = self.mujoco_env.render_mode
        self.nominal = NominalModel(self.mujoco_env.model)
        self.perturbation = _NOMINAL
        """The model perturbation of the current episode."""

        axes = defaults.force_axes + (defaults.torque_axes if self.torque else ())
        body_ids = [self.nominal.body_id(name) for name in bodies]
        self.adversary_action_names = [f"{name}:{_AXIS_NAMES[a]}" for name in bodies for a in axes]
        """What each adversary action component pushes, e.g. ``foot:fx``."""
        # Flat indices into xfrc_applied (nbody x 6, C order): one fancy-indexed write per step.
        self._xfrc_index = np.array([6 * body + axis for body in body_ids for axis in axes])
        self._xfrc = self.mujoco_env.data.xfrc_applied.reshape(-1)  # a view: MjData owns the memory
        self._force = np.zeros(len(self._xfrc_index))
        self._pushing = False

        self.protagonist_action_space = self.mujoco_env.action_space
        self.adversary_action_space = spaces.Box(
            -force_bound, force_bound, shape=self._force.shape, dtype=np.float32
        )
        self.action_space = spaces.Dict(
            {"protagonist": self.protagonist_action_space, "adversary": self.adversary_action_space}
        )
        self.observation_space = self.mujoco_env.observation_space

    @property
    def model(self) -> Any:
        """The task's ``mujoco.MjModel``."""
        return self.mujoco_env.model

    @property
    def data(self) -> Any:
        """The task's ``mujoco.MjData``."""
        return self.mujoco_env.data

    def step(self, action: dict[str, Any]) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        force = action["adversary"]
        if force is not None:
            force = np.asarray(force)
            if force.shape != self._force.shape:
                raise ValueError(f"adversary action has shape {force.shape}; expected {self._force.shape}")
            if not np.isfinite(force).all():  # np.minimum/maximum keep NaN: the physics would freeze
                raise ValueError(f"adversary action {force.tolist()} is not finite")
            # np.clip costs more than the two ufuncs on arrays this small.
            np.minimum(
                np.maximum(force, -self.force_bound, out=self._force), self.force_bound, out=self._force
            )
            self._xfrc[self._xfrc_index] = self._force
            self._pushing = True
        elif self._pushing:
            self._xfrc[self._xfrc_index] = 0.0
            self._pushing = False
        protagonist = np.asarray(action["protagonist"])
        if not np.isfinite(protagonist).all():  # MuJoCo would reset the state and warn, the episode goes on
            raise ValueError(f"protagonist action {protagonist.tolist()} is not finite")
        obs, reward, terminated, truncated, info = self.mujoco_env.step(protagonist)
        info["adversary_reward"] = -reward
        return obs, reward, terminated, truncated, info

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        perturbation, unknown = _NOMINAL.updated(options)
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {', '.join(map(repr, unknown))}; valid options: {', '.join(PERTURBATION_KEYS)}"
            )
        self.nominal.apply(perturbation)
        self.perturbation = perturbation
        obs, info = self.mujoco_env.reset(seed=seed)  # mj_resetData zeroes xfrc_applied
        self._xfrc[:] = 0.0
        self._pushing = False
        # One random stream: the task's, which its reset just seeded.
        self._np_random = self.mujoco_env.np_random
        self._np_random_seed = self.mujoco_env.np_random_seed
        return obs, info

    def render(self) -> Any:
        return self.mujoco_env.render()

    def close(self) -> None:
        self.mujoco_env.close()


class ProtagonistView(gym.Wrapper):
    """The protagonist's single-agent env: the adversary policy (obs -> force) acts inside.

    ``adversary=None`` applies no force. Swap the frozen adversary with ``set_opponent`` (also through
    ``vec_env.env_method("set_opponent", policy)``). Not ``RecordConstructorArgs``: a policy is no config.

    Example:
        >>> env = ProtagonistView(AdversarialForceEnv("Hopper"))
        >>> env.action_space.shape
        (3,)
    """

    def __init__(self, env: gym.Env, adversary: Policy | None = None) -> None:
        if not isinstance(env.action_space, spaces.Dict) or set(env.action_space.spaces) != {
            "protagonist",
            "adversary",
        }:
            raise TypeError(
                f"ProtagonistView needs a two-player env (Dict protagonist/adversary), got {env.action_space}"
            )
        super().__init__(env)
        self.action_space = env.action_space["protagonist"]
        self.adversary = adversary
        self._obs: Any = None

    def set_opponent(self, policy: Policy | None) -> None:
        """Replace the adversary policy (None: no force)."""
        self.adversary = policy

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._obs, info = self.env.reset(seed=seed, options=options)
        return self._obs, info

    def step(self, action: Any):
        force = None if self.adversary is None else self.adversary(self._obs)
        self._obs, reward, terminated, truncated, info = self.env.step(
            {"protagonist": action, "adversary": force}
        )
        return self._obs, reward, terminated, truncated, info


class AdversaryView(gym.Wrapper):
    """The adversary's single-agent env: a protagonist policy (obs -> action) acts inside.

    The reward is minus the protagonist's; ``info["protagonist_reward"]`` keeps the protagonist's.

    Example:
        >>> env = AdversaryView(AdversarialForceEnv("Hopper"), protagonist=lambda obs: [0.0, 0.0, 0.0])
        >>> env.action_space.shape
        (2,)
    """

    def __init__(self, env: gym.Env, protagonist: Policy) -> None:
        if not isinstance(env.action_space, spaces.Dict) or set(env.action_space.spaces) != {
            "protagonist",
            "adversary",
        }:
            raise TypeError(
                f"AdversaryView needs a two-player env (Dict protagonist/adversary), got {env.action_space}"
            )
        if not callable(protagonist):
            raise TypeError(f"protagonist must be a callable obs -> action, got {protagonist!r}")
        super().__init__(env)
        self.action_space = env.action_space["adversary"]
        self.protagonist = protagonist
        self._obs: Any = None

    def set_opponent(self, policy: Policy) -> None:
        """Replace the protagonist policy."""
        if not callable(policy):
            raise TypeError(f"protagonist must be a callable obs -> action, got {policy!r}")
        self.protagonist = policy

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._obs, info = self.env.reset(seed=seed, options=options)
        return self._obs, info

    def step(self, action: Any):
        protagonist_action = self.protagonist(self._obs)
        self._obs, reward, terminated, truncated, info = self.env.step(
            {"protagonist": protagonist_action, "adversary": action}
        )
        info["protagonist_reward"] = reward
        return self._obs, -reward, terminated, truncated, info


def protagonist_env(task: str = "Hopper", adversary: Policy | None = None, **kwargs: Any) -> ProtagonistView:
    """Entry point of ``aligngym/<Task>Protagonist-v0``: the task with the force channel, no adversary by default.

    ``kwargs`` go to :class:`AdversarialForceEnv` (bodies, force_bound, torque, render_mode, task kwargs).
    """
    return ProtagonistView(AdversarialForceEnv(task, **kwargs), adversary=adversary)
