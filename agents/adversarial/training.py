"""RARL, QARL and their SAC baselines on the adversarial-force games, with stable-baselines3 learners.

One runner, four methods (each a job of ``aligngym train``):

- ``adversarial-baseline`` with ``adversary: none``: plain SAC on the task (zero force);
- ``adversarial-baseline`` with ``adversary: random``: SAC against uniform random forces;
- ``adversarial-baseline`` with ``domain_randomization: true``: SAC with each episode at a (mass,
  friction) drawn uniformly from the robustness grid's ranges (domain randomisation, Tobin et al. 2017;
  Peng et al. 2018), no force;
- ``rarl``: alternate, every iteration, ``adversary_steps`` of adversary learning against the frozen
  protagonist, then ``protagonist_steps`` of protagonist learning against the frozen adversary (Pinto et
  al. 2017); both plain SB3 SAC (or PPO);
- ``qarl``: the same alternation, but the adversary's entropy temperature alpha is drawn per episode from
  a curriculum, appended to both players' observations, and used by the adversary (``TemperedSAC``) as its
  per-sample entropy coefficient; after each iteration the curriculum updates from the (alpha, discounted
  return) pairs of the finished episodes (Reddi et al. 2024).

Each learner keeps its own env (its view of the game with the other player frozen inside) and its SB3
state across iterations (``learn(..., reset_num_timesteps=False)``). The run folder receives both agents
(``protagonist.zip``, ``adversary.zip``), per-agent SB3 logs, ``iterations.csv`` (returns and the
curriculum per iteration) and, every ``checkpoint_every`` iterations, a checkpoint that a killed run
resumes from (same folder, or ``resume_from=OLD_RUN_DIR``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import configure
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv

import aligngym.envs  # noqa: F401  (registers the aligngym/... ids)
from aligngym.agents.adversarial.checkpoints import CheckpointFolder, load_replay_buffer, save_replay_buffer
from aligngym.agents.adversarial.curriculum import (
    LinearAnnealCurriculum,
    PointCurriculum,
    SelfPacedGammaCurriculum,
    TemperatureCurriculum,
)
from aligngym.agents.adversarial.evaluation import EvaluationConfig, evaluate_players
from aligngym.agents.adversarial.opponents import (
    ModelPolicy,
    RandomForce,
    adversary_env,
    make_game,
    protagonist_env,
)
from aligngym.agents.adversarial.tempered_sac import TemperedSAC
from aligngym.agents.sb3_algorithms import ALGORITHMS
from aligngym.agents.sb3_logging import DEFAULT_LOGGERS, check_loggers, sb3_formats, tracking
from aligngym.agents.sb3_training import (
    check_hyperparams,
    constructor_arguments,
    resolve_policy_kwargs,
    save_model,
)
from aligngym.agents.sb3_weights import load_policy, save_policy
from aligngym.envs.perturbations import DomainRandomization
from aligngym.extras import require
from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.progress import Progress

logger = logging.getLogger(__name__)

Method = Literal["sac", "random", "dr", "rarl", "qarl"]


@dataclass
class CurriculumConfig:
    """QARL's temperature curriculum (defaults: the QARL paper's self-paced Gamma curriculum)."""

    kind: Literal["self_paced", "linear", "point"] = "self_paced"
    """self_paced (SPDL on Gamma(k, rate)); ablations: linear anneal, point (a single self-paced alpha)."""
    initial_concentration: float = 50.0
    """Start Gamma(50, 1000): mean alpha 0.05. Linear/point start at the same mean."""
    target_concentration: float = 1.0
    """Target Gamma(1, 1000): mean alpha 0.001. Linear/point end at the same mean."""
    rate: float = 1000.0
    performance_threshold: float = 1.0
    """xi: the importance-weighted discounted return the protagonist must keep (task-specific)."""
    max_kl: float = 0.5
    """Trust region KL(new || old) per update."""
    stop_kl: float = 0.01
    """Stop once KL(current || target) is at most this."""
    min_episodes: int = 30
    """Buffered (alpha, J) pairs needed before an update."""
    anneal_iterations: int = 100
    """linear: iterations from the start to the end temperature."""
    point_step: float = 0.005
    """point: how much alpha drops per successful update."""

    def __post_init__(self) -> None:
        if self.initial_concentration <= 0 or self.target_concentration <= 0 or self.rate <= 0:
            raise ValueError("curriculum concentrations and rate must be > 0")
        if self.min_episodes < 1 or self.anneal_iterations < 1:
            raise ValueError(
                f"curriculum.min_episodes={self.min_episodes} and anneal_iterations must be >= 1"
            )

    def build(self) -> TemperatureCurriculum:
        start, end = self.initial_concentration / self.rate, self.target_concentration / self.rate
        if self.kind == "linear":
            return LinearAnnealCurriculum(start, end, self.anneal_iterations)
        if self.kind == "point":
            return PointCurriculum(start, end, self.point_step, self.performance_threshold, self.min_episodes)
        return SelfPacedGammaCurriculum(
            initial_concentration=self.initial_concentration,
            target_concentration=self.target_concentration,
            rate=self.rate,
            performance_threshold=self.performance_threshold,
            max_kl=self.max_kl,
            stop_kl=self.stop_kl,
            min_episodes=self.min_episodes,
            buffer_size=max(100, self.min_episodes),
        )


@dataclass
class AdversarialConfig:
    """Settings shared by RARL, QARL and the baselines."""

    env_id: str = "aligngym/AdversarialInvertedPendulum-v0"
    """A two-player game id, aligngym/Adversarial<Task>-v0."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Passed to the game (force_bound, bodies, torque, task kwargs)."""
    max_episode_steps: int = 1000
    """Horizon of training and evaluation episodes."""
    iterations: int = 20
    protagonist_steps: int = 1000
    """Env steps of protagonist learning per iteration."""
    adversary_steps: int = 1000
    """Env steps of adversary learning per iteration (RARL/QARL)."""
    protagonist_algo: Literal["sac", "ppo"] = "sac"
    adversary_algo: Literal["sac", "ppo"] = "sac"
    """QARL's adversary must be SAC (its entropy temperature is the point)."""
    sac_backend: Literal["sb3", "sbx"] = "sb3"
    """SAC players on SB3 (torch, default) or SBX (JAX, the ``sbx`` extra; QARL's adversary as
    ``TemperedSBXSAC``). SBX runs save SB3-style zips only: no checkpoints, resume or safetensors weights,
    so they are evaluated at the end of training; the worst-case adversary stays SB3 SAC."""
    gamma: float = 0.99
    """Discount of both learners and of the curriculum's returns J."""
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """SB3 constructor arguments for both players (learning_rate, batch_size, buffer_size, ...)."""
    protagonist_hyperparams: dict[str, Any] = field(default_factory=dict)
    """Overrides of ``hyperparams`` for the protagonist."""
    adversary_hyperparams: dict[str, Any] = field(default_factory=dict)
    """Overrides of ``hyperparams`` for the adversary (also the fresh worst-case adversary)."""
    policy_kwargs: dict[str, Any] = field(default_factory=lambda: {"net_arch": [256, 256]})
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    checkpoint_every: int = 1
    """Iterations between checkpoints (0: none)."""
    save_replay_buffers: bool = True
    """Checkpoint replay buffers too (exact continuation; costs disk for large buffers)."""
    resume_from: str | None = None
    """A killed run's folder to continue from (a run folder holding a checkpoint resumes by itself)."""
    torch_threads: int = 1
    """torch.set_num_threads: small MLPs run fastest on one thread, and runs share the machine."""
    device: str = "cpu"
    progress_bar: bool = True
    """A bar with ETA over the iterations on a terminal, a status line every 30 s otherwise."""
    loggers: list[str] = field(default_factory=lambda: list(DEFAULT_LOGGERS))
    """Both players' SB3 logger formats (stdout, csv, tensorboard, json, log) and/or wandb."""

    def __post_init__(self) -> None:
        import gymnasium as gym

        check_loggers(self.loggers)
        games = sorted(i for i in gym.registry if i.startswith("aligngym/Adversarial"))
        if self.env_id not in games:
            raise ValueError(f"env_id {self.env_id!r} is not a two-player game; valid: {', '.join(games)}")
        for name in ("max_episode_steps", "iterations", "protagonist_steps", "torch_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.adversary_steps < 0 or self.checkpoint_every < 0:
            raise ValueError("adversary_steps and checkpoint_every must be >= 0")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma={self.gamma} must be in (0, 1]")
        for name in ("hyperparams", "protagonist_hyperparams", "adversary_hyperparams"):
            for reserved in ("gamma", "seed", "device", "policy_kwargs", "env"):
                if reserved in getattr(self, name):
                    raise ValueError(f"{name}.{reserved} is set by the runner; use the config field instead")
        if self.sac_backend == "sbx":
            check_sbx_backend(self)
        protagonist_cls, adversary_cls = player_class(self, "protagonist"), player_class(self, "adversary")
        check_hyperparams(protagonist_cls, self.hyperparams, "hyperparams")
        check_hyperparams(protagonist_cls, self.protagonist_hyperparams, "protagonist_hyperparams")
        if self.has_learning_adversary:
            check_hyperparams(adversary_cls, self.hyperparams, "hyperparams")
            check_hyperparams(adversary_cls, self.adversary_hyperparams, "adversary_hyperparams")
        resolve_policy_kwargs(self.policy_kwargs)

    def preflight(self) -> None:
        """Checks that build things, run before a run folder exists: the game and both players once (bad env
        kwargs, hyperparameter values), and ``resume_from`` (a checkpoint there, trained with this config)."""
        if self.resume_from is not None:
            check_resume_folder(self, Path(self.resume_from))
        game = make_game(self.env_id, self.env_kwargs, self.max_episode_steps)
        try:  # the protagonist's constructor checks its hyperparameter values (its spaces do not matter here)
            no_buffer = {"buffer_size": 1} if self.protagonist_algo == "sac" else {}
            build_player(self, "protagonist", DummyVecEnv([lambda: protagonist_env(game)]), 0, **no_buffer)
        finally:
            game.close()

    @property
    def method(self) -> Method:
        """Fixed by the job (and, for the baselines, by ``adversary``)."""
        raise NotImplementedError

    @property
    def conditioned(self) -> bool:
        """Whether observations carry the adversary temperature (QARL)."""
        return self.method == "qarl"

    @property
    def has_learning_adversary(self) -> bool:
        return self.method in ("rarl", "qarl")

    def resolved_policy_kwargs(self) -> dict[str, Any]:
        return resolve_policy_kwargs(self.policy_kwargs)

    def protagonist_settings(self) -> dict[str, Any]:
        return {"gamma": self.gamma, **self.hyperparams, **self.protagonist_hyperparams}

    def adversary_settings(self) -> dict[str, Any]:
        return {"gamma": self.gamma, **self.hyperparams, **self.adversary_hyperparams}

    def worst_case_settings(self) -> dict[str, Any]:
        """SAC settings of the fresh worst-case adversary: the adversary's when it is SAC."""
        settings = {"gamma": self.gamma, **self.hyperparams}
        if self.adversary_algo == "sac":
            settings.update(self.adversary_hyperparams)
        elif self.protagonist_algo != "sac":
            settings = {"gamma": self.gamma}
        settings.pop("ent_coef", None)
        return settings


@dataclass
class BaselineConfig(AdversarialConfig):
    """SAC (or PPO) without a learning adversary: no force, uniform random forces, or domain randomisation."""

    adversary: Literal["none", "random"] = "none"
    domain_randomization: bool = False
    """Train each episode at a uniform draw of the evaluation grid's mass x friction ranges (the grid's
    ``evaluation.masses`` / ``frictions`` when set, else the task's ``DEFAULT_GRIDS``); no force."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.domain_randomization and self.adversary != "none":
            raise ValueError(
                f"domain_randomization=true with adversary={self.adversary!r}: the domain-randomisation "
                "baseline applies no force; use adversary: none"
            )

    @property
    def method(self) -> Method:
        if self.domain_randomization:
            return "dr"
        return "sac" if self.adversary == "none" else "random"


@dataclass
class RARLConfig(AdversarialConfig):
    """RARL: both players fully rational, alternating."""

    @property
    def method(self) -> Method:
        return "rarl"


@dataclass
class QARLConfig(AdversarialConfig):
    """QARL: temperature-conditioned players and a curriculum on the adversary's temperature."""

    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.adversary_algo != "sac":
            raise ValueError(
                f"QARL's adversary must be sac (per-sample entropy temperature), got {self.adversary_algo!r}"
            )
        if "ent_coef" in super().adversary_settings():
            raise ValueError(
                "QARL's adversary reads its entropy coefficient from the observation: set ent_coef in "
                "protagonist_hyperparams, not in hyperparams or adversary_hyperparams"
            )

    @property
    def method(self) -> Method:
        return "qarl"


# Fields a resumed run may change: how long, where and how fast it runs, how it is evaluated.
RESUMABLE_CHANGES = frozenset(
    {
        "iterations",
        "resume_from",
        "evaluation",
        "progress_bar",
        "loggers",
        "device",
        "torch_threads",
        "checkpoint_every",
    }
)


def check_resume_folder(config: AdversarialConfig, folder: Path) -> None:
    """ValueError unless ``folder`` holds a committed checkpoint of a run trained with ``config``'s settings."""
    import dataclasses

    import yaml

    if not (folder / "checkpoints" / "latest.json").is_file():
        raise ValueError(
            f"resume_from={str(folder)!r} holds no checkpoint (no checkpoints/latest.json); "
            "give a run folder of a killed rarl/qarl/adversarial-baseline run"
        )
    recipe_file = folder / "config.yaml"
    if not recipe_file.is_file():
        return
    try:
        old = (yaml.safe_load(recipe_file.read_text()) or {}).get("config") or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError) as exc:
        raise ValueError(f"resume_from={str(folder)!r}: config.yaml is unreadable ({exc})") from None
    new = yaml.safe_load(yaml.safe_dump(dataclasses.asdict(config)))  # tuples -> lists, as on disk
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_CHANGES:
            continue
        difference = _first_difference(old.get(key), new.get(key), key)
        if difference is not None:
            raise ValueError(
                f"resume_from={str(folder)!r} was trained with {difference[0]}={difference[1]!r}, this recipe has "
                f"{difference[2]!r}; resume with the same settings (only {', '.join(sorted(RESUMABLE_CHANGES))} "
                "may change)"
            )


def _first_difference(old: Any, new: Any, key: str) -> tuple[str, Any, Any] | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for name in sorted(set(old) | set(new)):
            found = _first_difference(old.get(name), new.get(name), f"{key}.{name}")
            if found is not None:
                return found
        return None
    return None if old == new else (key, old, new)


class AdversarialTrainer:
    """Builds both learners for one method and runs the alternation with checkpoints."""

    def __init__(self, config: AdversarialConfig, seed: int, run_dir: str | Path) -> None:
        self.config = config
        self.seed = seed
        self.run_dir = Path(run_dir)
        self.checkpoints = CheckpointFolder(self.run_dir / "checkpoints")
        self.history: list[dict[str, Any]] = []
        self.iteration = 0
        torch.set_num_threads(config.torch_threads)
        set_random_seed(seed)
        self.curriculum: TemperatureCurriculum | None = (
            config.curriculum.build() if isinstance(config, QARLConfig) else None
        )
        temperature = self.curriculum.distribution() if self.curriculum is not None else None

        def game() -> Any:
            return make_game(
                config.env_id, config.env_kwargs, config.max_episode_steps, temperature, config.gamma
            )

        self.protagonist_game = game()
        self.opponent: Any = None
        if config.method == "random":
            self.opponent = RandomForce(self.protagonist_game.unwrapped.adversary_action_space, seed=seed + 3)
        training_game = self.protagonist_game
        if config.method == "dr":
            training_game = domain_randomized(config, self.protagonist_game, seed + 4)
        protagonist_vec = DummyVecEnv([lambda: protagonist_env(training_game, self.opponent)])
        self.protagonist = build_player(config, "protagonist", protagonist_vec, seed)
        self.adversary: BaseAlgorithm | None = None
        if config.has_learning_adversary:
            self.adversary_game = game()
            adversary_vec = DummyVecEnv(
                [lambda: adversary_env(self.adversary_game, ModelPolicy(self.protagonist))]
            )
            self.adversary = build_player(config, "adversary", adversary_vec, seed + 1)
            self.opponent = ModelPolicy(self.adversary)
            protagonist_vec.env_method("set_opponent", self.opponent)
        for name, model in self.players().items():
            model.set_logger(configure(str(self.run_dir / name), sb3_formats(config.loggers)))

    def players(self) -> dict[str, BaseAlgorithm]:
        players = {"protagonist": self.protagonist}
        if self.adversary is not None:
            players["adversary"] = self.adversary
        return players

    # -- training ---------------------------------------------------------------------------------

    def train(self) -> dict[str, Any]:
        """Run the remaining iterations (resuming from a checkpoint if there is one), save, evaluate."""
        config = self.config
        start = time.perf_counter()
        self.resume()
        progress = Progress(
            config.iterations,
            f"{config.method} {config.env_id}",
            unit="iterations",
            initial=self.iteration,
            enabled=config.progress_bar,
        )
        with tracking(config.loggers, self.run_dir, dataclasses.asdict(config)):
            for _ in range(self.iteration, config.iterations):
                self.run_iteration()
                progress.update()
                if config.checkpoint_every and (
                    self.iteration % config.checkpoint_every == 0 or self.iteration == config.iterations
                ):
                    self.save_checkpoint()
        progress.close()
        for name, model in self.players().items():
            save_model(model, self.run_dir / f"{name}.zip")  # for SB3 users; aligngym reads only:
            if config.sac_backend == "sb3":  # SBX players hold JAX arrays, no torch state dict
                save_policy(model, self.run_dir / name)  # name.safetensors + name.json (no pickle)
        summary: dict[str, Any] = {
            "method": config.method,
            "iterations": self.iteration,
            "protagonist_timesteps": int(self.protagonist.num_timesteps),
            "adversary_timesteps": int(self.adversary.num_timesteps) if self.adversary is not None else 0,
            "train_return": self.history[-1]["protagonist_return"] if self.history else math.nan,
            "train_wall_s": round(time.perf_counter() - start, 2),
        }
        if self.curriculum is not None:
            summary["final_alpha_mean"] = self.curriculum.distribution().mean
        if config.evaluation.at_end:
            results = evaluate_players(
                config,
                self.protagonist,
                self.evaluation_opponent(),
                self.seed + 10_000,
                self.run_dir,
                title=f"{config.method} seed {self.seed}",
            )
            summary.update({k: v for k, v in results.items() if isinstance(v, (int, float))})
        summary["wall_s"] = round(time.perf_counter() - start, 2)
        return summary

    def evaluation_opponent(self) -> Any:
        """The training adversary as evaluation sees it: deterministic; random forces stay random."""
        if self.adversary is not None:
            return ModelPolicy(self.adversary, deterministic=True)
        return self.opponent

    def run_iteration(self) -> dict[str, Any]:
        """Adversary phase, protagonist phase, curriculum update; appends to ``history``."""
        config = self.config
        if self.adversary is not None and config.adversary_steps > 0:
            self.adversary.learn(config.adversary_steps, reset_num_timesteps=False)
        self.protagonist.learn(config.protagonist_steps, reset_num_timesteps=False)
        self.iteration += 1
        returns = [info["r"] for info in self.protagonist.ep_info_buffer or []]
        record: dict[str, Any] = {
            "iteration": self.iteration,
            "protagonist_timesteps": int(self.protagonist.num_timesteps),
            "adversary_timesteps": int(self.adversary.num_timesteps) if self.adversary is not None else 0,
            "protagonist_return": float(np.mean(returns)) if returns else math.nan,
        }
        if self.curriculum is not None:
            record.update(self.update_curriculum())
        self.history.append(record)
        logger.info("%s iteration %d: %s", config.method, self.iteration, record)
        self.write_history()
        return record

    def update_curriculum(self) -> dict[str, Any]:
        """Feed the finished episodes' (alpha, J) to the curriculum, update it, push it into both games."""
        assert self.curriculum is not None
        episodes = []
        for game in (self.protagonist_game, self.adversary_game):
            episodes += game.get_wrapper_attr("pop_episodes")()
        if episodes:
            alphas, returns = zip(*episodes)
            self.curriculum.record(alphas, returns)
        update = self.curriculum.update()
        distribution = self.curriculum.distribution()
        for game in (self.protagonist_game, self.adversary_game):
            game.get_wrapper_attr("set_distribution")(distribution)
        return {"episodes": len(episodes), **{f"curriculum_{k}": v for k, v in update.as_dict().items()}}

    def write_history(self) -> None:
        keys: list[str] = []
        for record in self.history:
            keys += [k for k in record if k not in keys]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(self.run_dir / "iterations.csv", buffer.getvalue())

    # -- checkpoints ------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        folder = self.checkpoints.new(self.iteration)
        for name, model in self.players().items():
            save_model(model, folder / f"{name}.zip")
            if self.config.save_replay_buffers and isinstance(model, OffPolicyAlgorithm):
                save_replay_buffer(model.replay_buffer, folder / f"{name}_buffer.npz")
        state = {
            "iteration": self.iteration,
            "timesteps": {name: int(model.num_timesteps) for name, model in self.players().items()},
            "history": self.history,
            "curriculum": self.curriculum.state_dict() if self.curriculum is not None else None,
        }
        self.checkpoints.commit(folder, state)
        return folder

    def resume(self) -> bool:
        """Load the latest checkpoint of this run folder, else of ``resume_from``; False if none."""
        sources = [self.checkpoints]
        if self.config.resume_from:
            check_resume_folder(self.config, Path(self.config.resume_from))  # same settings, or ValueError
            sources.append(CheckpointFolder(Path(self.config.resume_from) / "checkpoints"))
        for source in sources:
            found = source.latest()
            if found is None:
                continue
            folder, state = found
            for name, model in self.players().items():
                model.set_parameters(str(folder / f"{name}.zip"), exact_match=True, device=self.config.device)
                model.num_timesteps = int(state["timesteps"][name])
                buffer = folder / f"{name}_buffer.npz"
                if isinstance(model, OffPolicyAlgorithm) and buffer.exists():
                    load_replay_buffer(model.replay_buffer, buffer)
                # New episodes, new reset seeds: do not replay the first iteration's.
                model.get_env().seed(
                    self.seed + 1_000 * (int(state["iteration"]) + 1) + (name == "adversary")
                )
            if self.curriculum is not None and state.get("curriculum") is not None:
                self.curriculum.load_state_dict(state["curriculum"])
                for game in (self.protagonist_game, self.adversary_game):
                    game.get_wrapper_attr("set_distribution")(self.curriculum.distribution())
            self.iteration = int(state["iteration"])
            self.history = list(state["history"])
            logger.info("resumed from %s at iteration %d", folder, self.iteration)
            return True
        return False


def domain_randomized(config: AdversarialConfig, game: Any, seed: int) -> Any:
    """``game`` with each episode's model drawn from the evaluation grid's ranges (the DR baseline)."""
    evaluation = config.evaluation
    return DomainRandomization(
        game,
        masses=(min(evaluation.masses), max(evaluation.masses)) if evaluation.masses else None,
        frictions=(min(evaluation.frictions), max(evaluation.frictions)) if evaluation.frictions else None,
        body=evaluation.grid_body,
        seed=seed,
    )


def train_adversarial(config: AdversarialConfig, seed: int, run_dir: Path) -> dict[str, Any]:
    """The run function of the ``rarl``, ``qarl`` and ``adversarial-baseline`` jobs."""
    return AdversarialTrainer(config, seed, run_dir).train()


def player_class(config: AdversarialConfig, role: Literal["protagonist", "adversary"]) -> type[BaseAlgorithm]:
    """The learner class of ``role``: SB3's, or SBX's for a SAC player when ``config.sac_backend`` is sbx."""
    algo = config.protagonist_algo if role == "protagonist" else config.adversary_algo
    tempered = role == "adversary" and config.conditioned
    if config.sac_backend == "sbx" and algo == "sac":
        from sbx import SAC as SBXSAC

        from aligngym.agents.adversarial.sbx_sac import TemperedSBXSAC

        return TemperedSBXSAC if tempered else SBXSAC
    return TemperedSAC if tempered else ALGORITHMS[algo]


SBX_TORCH_POLICY_KWARGS = ("activation_fn", "optimizer_class", "features_extractor_class")


def check_sbx_backend(config: AdversarialConfig) -> None:
    """One error line for what ``sac_backend: sbx`` does not support (a missing extra names its install)."""
    require("sbx", "sac_backend: sbx")
    if config.checkpoint_every or config.resume_from is not None:
        raise ValueError(
            f"sac_backend='sbx' supports no checkpoints and no resume (checkpoint_every={config.checkpoint_every}, "
            f"resume_from={config.resume_from!r}): set checkpoint_every: 0 without resume_from, or use sac_backend: sb3"
        )
    torch_kwargs = [name for name in SBX_TORCH_POLICY_KWARGS if name in config.policy_kwargs]
    if torch_kwargs:
        raise ValueError(
            f"policy_kwargs.{torch_kwargs[0]} names a torch class, which SBX's JAX policies cannot take; with "
            "sac_backend='sbx' use net_arch, n_critics, log_std_init (or sac_backend: sb3)"
        )
    if config.evaluation.worst_case_steps > 0:  # the fresh worst-case adversary is SB3 SAC
        from sbx import SAC as SBXSAC

        sb3_arguments = constructor_arguments(ALGORITHMS["sac"])
        sbx_only = sorted(set(config.worst_case_settings()) - sb3_arguments)
        if sbx_only:
            shared = sorted(
                sb3_arguments & constructor_arguments(SBXSAC) - {"policy", "env", "seed", "device"}
            )
            raise ValueError(
                f"hyperparams {sbx_only[0]!r} is an SBX-only SAC argument, but the worst-case adversary is SB3 SAC: "
                f"with evaluation.worst_case_steps > 0 use the shared ones ({', '.join(shared)})"
            )


def build_player(
    config: AdversarialConfig,
    role: Literal["protagonist", "adversary"],
    env: Any,
    seed: int,
    **overrides: Any,
) -> BaseAlgorithm:
    """A fresh SB3 learner for ``role`` on ``env``, exactly as the config trains it (``overrides`` win)."""
    cls = player_class(config, role)
    settings = config.protagonist_settings() if role == "protagonist" else config.adversary_settings()
    return cls(
        "MlpPolicy",
        env,
        seed=seed,
        device=config.device,
        verbose=0,
        policy_kwargs=config.resolved_policy_kwargs(),
        **(settings | overrides),
    )


def load_players(
    config: AdversarialConfig, run_dir: str | Path
) -> tuple[BaseAlgorithm, BaseAlgorithm | None]:
    """The trained protagonist (and adversary, if the method has one) of a finished run folder.

    Never unpickles: both players are rebuilt from ``config`` (the run's ``config.yaml``, plain YAML) and
    only their ``<name>.safetensors`` weights are read (:mod:`aligngym.agents.sb3_weights`); the SB3
    ``.zip`` files of the folder, whose ``data`` entry is a pickle, are not opened.
    """
    run_dir = Path(run_dir)
    if config.sac_backend == "sbx":
        raise ValueError(
            f"{run_dir} was trained with sac_backend='sbx', whose players have no safetensors weights: only "
            "sac_backend='sb3' runs are re-evaluated from their folder (SBX runs evaluate at the end of training)"
        )
    if not (run_dir / "protagonist.json").exists():
        raise FileNotFoundError(
            f"{run_dir / 'protagonist.safetensors'} does not exist: is {run_dir} a finished rarl/qarl/baseline "
            "run? (folders written before policies were saved as safetensors are not read: their .zip needs pickle)"
        )
    temperature = config.curriculum.build().distribution() if isinstance(config, QARLConfig) else None
    game = make_game(config.env_id, config.env_kwargs, config.max_episode_steps, temperature, config.gamma)
    no_buffer = {"buffer_size": 1} if config.protagonist_algo == "sac" else {}
    protagonist = build_player(
        config, "protagonist", DummyVecEnv([lambda: protagonist_env(game)]), 0, **no_buffer
    )
    load_policy(protagonist, run_dir / "protagonist")
    adversary = None
    if config.has_learning_adversary:
        no_buffer = {"buffer_size": 1} if config.conditioned or config.adversary_algo == "sac" else {}
        adversary_vec = DummyVecEnv([lambda: adversary_env(game, ModelPolicy(protagonist))])
        adversary = build_player(config, "adversary", adversary_vec, 1, **no_buffer)
        load_policy(adversary, run_dir / "adversary")
    return protagonist, adversary


def evaluate_run(
    config: AdversarialConfig, seed: int, run_dir: str | Path, evaluation: EvaluationConfig | None = None
) -> dict[str, Any]:
    """Evaluate a finished run folder (``aligngym eval robustness RUN_DIR``); writes robustness.* there."""
    torch.set_num_threads(config.torch_threads)
    protagonist, adversary = load_players(config, run_dir)
    if adversary is not None:
        opponent: Any = ModelPolicy(adversary, deterministic=True)
    elif config.method == "random":
        game = make_game(config.env_id, config.env_kwargs)
        opponent = RandomForce(game.unwrapped.adversary_action_space, seed=seed + 3)
        game.close()
    else:
        opponent = None
    results = evaluate_players(
        config,
        protagonist,
        opponent,
        seed + 10_000,
        run_dir,
        evaluation,
        title=f"{config.method} seed {seed}",
    )
    atomic_write_json(Path(run_dir) / "robustness_summary.json", results)
    return results
