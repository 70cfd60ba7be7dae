"""Preference-based RL (Christiano et al. 2017; the loop of the R3M and adaptive-scaling papers) on SB3.

The agent (PPO, or SAC) learns from a reward net through ``LearnedRewardVecEnv``; the env's true reward
never reaches it. Before learning, ``initial_queries`` pairs of random-policy segments are labelled and
the net is fitted; then after every ``query_every`` env steps (at the end of a rollout, so one rollout
never mixes two reward nets) a round samples new pairs from the most recent segments of the agent's
own rollouts, the teacher labels them (with its noise), and the net is trained further on all pairs so
far with the chosen loss. Each round also keeps oracle-labelled pairs of segments that are never
trained on, for the clean held-out accuracy. SAC's replay buffer is relabelled after every update
(as PEBBLE does), PPO's next rollout simply sees the new reward.

What it reports is measured on the TRUE reward: ``true_return`` of the final policy (deterministic,
``eval_episodes`` episodes), and, given the returns of a random policy and of the same algorithm trained
on the true reward with the same budget (:func:`train_on_true_reward`), the normalised return
``(R - R_random) / (R_true_RL - R_random)`` (the plain ratio breaks for negative or near-zero returns).

Example:
    >>> from aligngym.rewards.teachers import make_teacher
    >>> config = PreferenceRLConfig(env_id="Pendulum-v1", total_timesteps=512, n_envs=1, query_every=256,
    ...     initial_queries=16, query_budget=48, segment_length=10, hyperparams={"n_steps": 256, "batch_size": 64})
    >>> result = run_preference_rl(config, make_teacher("mistake", 0.2), seed=0)
    >>> result.queries, 0.0 <= result.clean_accuracy <= 1.0
    (48, True)
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecNormalize

import aligngym  # noqa: F401  (registers aligngym/... ids)
from aligngym.agents.sb3_algorithms import algorithm_class
from aligngym.envs.learned_reward import LearnedRewardVecEnv, batch_rewards
from aligngym.rewards.fitting import FitConfig, clean_accuracy, fit_reward
from aligngym.rewards.losses import LossSpec
from aligngym.rewards.pairs import (
    PreferencePairs,
    SegmentSet,
    collect_segments,
    label_pairs,
    sample_pair_indices,
)
from aligngym.rewards.reward_nets import RewardNet
from aligngym.rewards.teachers import Teacher, make_teacher

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
PreferenceRLAlgo = Literal["ppo", "sac"]
"""The SB3 algorithms the loop supports (SAC's replay buffer is relabelled after each query round)."""


@dataclass
class PreferenceRLConfig:
    """One preference-based RL run: the agent, the query schedule and the reward net's training."""

    env_id: str = "HalfCheetah-v5"
    """A Gymnasium id with Box observations and a dense true reward (not constant per step)."""
    algo: PreferenceRLAlgo = "ppo"
    total_timesteps: int = 50_000
    n_envs: int = 4
    hyperparams: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the SB3 algorithm (n_steps, batch_size, learning_rate, ...)."""
    normalize: bool = True
    """VecNormalize observations and rewards for PPO (rl-zoo's MuJoCo setting); ignored for SAC."""
    segment_length: int = 25
    query_budget: int = 1000
    """Labelled training pairs in total, the initial ones included."""
    initial_queries: int = 200
    """Pairs of random-policy segments labelled before the agent starts."""
    query_every: int = 10_000
    """Env steps between query rounds; the rest of the budget is spread evenly over the rounds."""
    recent_segments: int = 1000
    """A round samples pairs among this many most recent segments of the agent's rollouts."""
    heldout_fraction: float = 0.2
    """Share of each round's segments kept for oracle-labelled held-out pairs (never trained on)."""
    heldout_pairs_per_round: int = 100
    loss: LossSpec | str = "bt"
    """The reward net's loss and its parameters (a bare name or ``{name, params}`` is converted)."""
    reward_epochs: int = 10
    """Epochs over all pairs so far after each round (fixed: no early stopping on clean labels here)."""
    reward_batch_size: int = 64
    reward_lr: float = 1e-3
    reward_hidden: tuple[int, ...] = (64, 64)
    eval_episodes: int = 5
    threads: int = 1
    """torch CPU threads; 1 keeps parallel cells from competing and runs bit-reproducible."""

    def __post_init__(self) -> None:
        algorithm_class(self.algo, get_args(PreferenceRLAlgo))
        for name in (
            "total_timesteps",
            "n_envs",
            "segment_length",
            "query_budget",
            "query_every",
            "recent_segments",
            "reward_epochs",
            "reward_batch_size",
            "eval_episodes",
            "threads",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"PreferenceRLConfig {name}={getattr(self, name)!r} must be >= 1")
        if not 0 <= self.initial_queries <= self.query_budget:
            raise ValueError(
                f"initial_queries={self.initial_queries} must lie in [0, query_budget={self.query_budget}]"
            )
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction={self.heldout_fraction} must lie in (0, 1)")
        self.loss = LossSpec.of(self.loss)  # an unknown loss or bad loss parameter fails here
        self.fit_config(0)  # and so do bad reward-net training settings

    @property
    def rounds(self) -> int:
        """Query rounds during learning (one after every ``query_every`` steps, none at the very end)."""
        return max(0, math.ceil(self.total_timesteps / self.query_every) - 1)

    def pairs_in_round(self, index: int) -> int:
        """Training pairs of round ``index`` (0-based): the budget after the initial queries, spread evenly."""
        rest = self.query_budget - self.initial_queries
        if self.rounds == 0:
            return 0
        return rest // self.rounds + (1 if index < rest % self.rounds else 0)

    def fit_config(self, seed: int) -> FitConfig:
        return FitConfig(
            loss=self.loss,
            epochs=self.reward_epochs,
            batch_size=self.reward_batch_size,
            lr=self.reward_lr,
            patience=None,
            seed=seed,
        )


@dataclass
class PreferenceRLResult:
    """The outcome of a run; returns are on the TRUE reward."""

    true_return: float
    clean_accuracy: float
    """Oracle-label accuracy of the final reward net on held-out pairs of the agent's own segments."""
    queries: int
    corrupted_fraction: float
    timesteps: int
    reward_net: RewardNet
    model: BaseAlgorithm
    rounds: list[dict[str, float]]


def normalized_return(value: float, random_return: float, true_rl_return: float) -> float:
    """``(R - R_random) / (R_true_RL - R_random)``: 0 = random policy, 1 = RL on the true reward; NaN if equal."""
    gap = true_rl_return - random_return
    return (value - random_return) / gap if abs(gap) > 1e-9 else math.nan


class SegmentRecorder(VecEnvWrapper):
    """Cut the raw vector env's stream into ``length``-step segments with their TRUE per-step rewards.

    Keeps the ``capacity`` most recent segments; a segment never crosses an episode boundary (the
    partial one is dropped), as in :func:`aligngym.rewards.pairs.collect_segments`.
    """

    def __init__(self, venv: VecEnv, length: int, capacity: int) -> None:
        super().__init__(venv)
        self.length = length
        self.segments: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque(maxlen=capacity)
        self._current: list[list[tuple[np.ndarray, np.ndarray, float]]] = [[] for _ in range(self.num_envs)]
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None
        self.emitted = 0

    def reset(self) -> np.ndarray:
        self._obs = self.venv.reset()
        self._current = [[] for _ in range(self.num_envs)]
        return self._obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def step_wait(self):
        obs, rewards, dones, infos = self.venv.step_wait()
        for i in range(self.num_envs):
            steps = self._current[i]
            steps.append((self._obs[i].reshape(-1), self._actions[i].reshape(-1), float(rewards[i])))
            if len(steps) == self.length:
                self.segments.append(
                    tuple(
                        np.asarray(part, dtype=dtype)
                        for part, dtype in zip(zip(*steps), (np.float32, np.float32, np.float64))
                    )
                )
                self.emitted += 1
                steps.clear()
            if dones[i]:
                steps.clear()
        self._obs = obs
        return obs, rewards, dones, infos

    def segment_set(self) -> SegmentSet:
        obs, actions, rewards = (np.stack(part) for part in zip(*self.segments))
        return SegmentSet(obs, actions, rewards, np.zeros(len(rewards), dtype=np.int64), ("agent",))


class PairStore:
    """Every queried pair so far; each round's pairs keep only the segments they use."""

    def __init__(self) -> None:
        self.parts: list[PreferencePairs] = []

    def add(self, pairs: PreferencePairs) -> None:
        used = pairs.segment_ids
        segments = pairs.segments.subset(used)
        self.parts.append(
            PreferencePairs(
                segments,
                np.searchsorted(used, pairs.first),
                np.searchsorted(used, pairs.second),
                pairs.labels,
                pairs.oracle,
                pairs.corrupted,
            )
        )

    def __len__(self) -> int:
        return sum(len(p) for p in self.parts)

    def merged(self) -> PreferencePairs:
        offsets = np.cumsum([0] + [len(p.segments) for p in self.parts[:-1]])
        names = tuple(dict.fromkeys(n for p in self.parts for n in p.segments.policy_names))
        sources = [
            np.array([names.index(n) for n in p.segments.policy_names])[p.segments.source] for p in self.parts
        ]
        segments = SegmentSet(
            np.concatenate([p.segments.obs for p in self.parts]),
            np.concatenate([p.segments.actions for p in self.parts]),
            np.concatenate([p.segments.rewards for p in self.parts]),
            np.concatenate(sources),
            names,
        )
        return PreferencePairs(
            segments,
            np.concatenate([p.first + o for p, o in zip(self.parts, offsets)]),
            np.concatenate([p.second + o for p, o in zip(self.parts, offsets)]),
            np.concatenate([p.labels for p in self.parts]),
            np.concatenate([p.oracle for p in self.parts]),
            np.concatenate([p.corrupted for p in self.parts]),
        )


def query_round(
    segments: SegmentSet,
    n_train: int,
    n_heldout: int,
    heldout_fraction: float,
    teacher: Teacher,
    rng: np.random.Generator,
) -> tuple[PreferencePairs | None, PreferencePairs | None]:
    """Split the segments into disjoint train / held-out pools; teacher labels for train, oracle for held-out."""
    order = rng.permutation(len(segments))
    n_out = max(2, round(heldout_fraction * len(segments))) if n_heldout else 0
    pools = {"heldout": order[:n_out], "train": order[n_out:]}
    out: dict[str, PreferencePairs | None] = {}
    for name, n_pairs, who in (("train", n_train, teacher), ("heldout", n_heldout, make_teacher("oracle"))):
        pool = pools[name]
        if n_pairs == 0 or len(pool) < 2:
            out[name] = None
            continue
        first, second = sample_pair_indices(len(pool), n_pairs, rng)
        subset = segments.subset(pool)
        out[name] = label_pairs(subset, first, second, who, rng)
    return out["train"], out["heldout"]


class PreferenceCallback(BaseCallback):
    """At the end of a rollout, once ``query_every`` more steps have passed: query, label, refit, relabel."""

    def __init__(self, loop: _Loop) -> None:
        super().__init__()
        self.loop = loop
        self.next_round = loop.config.query_every

    def _on_step(self) -> bool:
        self.loop.report(self.num_timesteps)
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps >= self.next_round and self.loop.round_index < self.loop.config.rounds:
            self.next_round += self.loop.config.query_every
            self.loop.run_round(self.num_timesteps)
            if isinstance(self.model, SAC):
                relabel_replay_buffer(self.model, self.loop.net)


def relabel_replay_buffer(model: SAC, net: RewardNet) -> None:
    """Recompute the stored rewards of SAC's replay buffer with the current reward net (PEBBLE)."""
    buffer = model.replay_buffer
    size = buffer.buffer_size if buffer.full else buffer.pos
    if size == 0:
        return
    obs = buffer.observations[:size].reshape(size * buffer.n_envs, -1)
    actions = model.policy.unscale_action(buffer.actions[:size].reshape(size * buffer.n_envs, -1))
    rewards = batch_rewards(net.as_reward_fn(), obs, actions, obs, batch_size=65_536)
    buffer.rewards[:size] = rewards.reshape(size, buffer.n_envs).astype(buffer.rewards.dtype)


class _Loop:
    """The state of one preference-based RL run (reward net, pairs, teacher, recorder)."""

    def __init__(
        self, config: PreferenceRLConfig, teacher: Teacher, seed: int, progress: ProgressFn | None
    ) -> None:
        self.config, self.teacher, self.seed = config, teacher, seed
        self.progress = progress
        self.rng = np.random.default_rng([seed, 7])
        self.train = PairStore()
        self.heldout = PairStore()
        self.round_index = 0
        self.rounds: list[dict[str, float]] = []
        self.recorder: SegmentRecorder | None = None
        self.net: RewardNet | None = None

    def report(self, step: int) -> None:
        if self.progress is not None:
            self.progress(min(step, self.config.total_timesteps), self.config.total_timesteps)

    def fit(self, step: int) -> None:
        start = time.perf_counter()
        fit_reward(
            self.net, self.train.merged(), None, self.config.fit_config(self.seed * 1000 + self.round_index)
        )
        merged = self.train.merged()
        self.rounds.append(
            {
                "step": float(step),
                "pairs": float(len(merged)),
                "corrupted": float(merged.corrupted.mean()),
                "heldout_accuracy": clean_accuracy(self.net, self.heldout.merged())
                if len(self.heldout)
                else math.nan,
                "seconds": time.perf_counter() - start,
            }
        )
        log.info("round %d at step %d: %s", self.round_index, step, self.rounds[-1])

    def initial_round(self, env_id: str) -> None:
        n = self.config.initial_queries
        if n == 0:
            return
        count = max(20, n)  # random-policy segments to pair (pairs may share segments)
        segments = collect_segments(
            env_id,
            {"random": "random"},
            count,
            self.config.segment_length,
            seed=int(self.rng.integers(2**31)),
        )
        self._add(segments, n)
        self.fit(0)

    def run_round(self, step: int) -> None:
        n = self.config.pairs_in_round(self.round_index)
        self.round_index += 1
        if n == 0 or len(self.recorder.segments) < 4:
            return
        self._add(self.recorder.segment_set(), n)
        self.fit(step)

    def _add(self, segments: SegmentSet, n_train: int) -> None:
        train, heldout = query_round(
            segments,
            n_train,
            self.config.heldout_pairs_per_round,
            self.config.heldout_fraction,
            self.teacher,
            self.rng,
        )
        if train is not None:
            self.train.add(train)
        if heldout is not None:
            self.heldout.add(heldout)


def _set_seeds(seed: int, threads: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _build_agent(config: PreferenceRLConfig, venv: VecEnv, seed: int) -> tuple[BaseAlgorithm, VecEnv]:
    if config.algo == "ppo" and config.normalize:
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True)
    model = algorithm_class(config.algo)(
        "MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **config.hyperparams
    )
    return model, venv


def evaluate_true_return(
    model: BaseAlgorithm, train_env: VecEnv, env_id: str, episodes: int, seed: int
) -> float:
    """Mean TRUE episode return of the deterministic policy on a fresh env (Monitor's episode sums)."""
    eval_env: VecEnv = make_vec_env(env_id, n_envs=1, seed=seed + 10_000)
    if isinstance(train_env, VecNormalize):
        eval_env = VecNormalize(eval_env, training=False, norm_obs=train_env.norm_obs, norm_reward=False)
        eval_env.obs_rms = copy.deepcopy(train_env.obs_rms)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=episodes, deterministic=True)
    eval_env.close()
    return float(mean)


def random_return(env_id: str, episodes: int, seed: int) -> float:
    """Mean TRUE episode return of the uniform random policy."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    total = 0.0
    for episode in range(episodes):
        env.reset(seed=seed + 10_000 + episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
    env.close()
    return total / episodes


class _StepReporter(BaseCallback):
    def __init__(self, progress: ProgressFn | None, total: int) -> None:
        super().__init__()
        self.progress, self.total = progress, total

    def _on_step(self) -> bool:
        if self.progress is not None:
            self.progress(min(self.num_timesteps, self.total), self.total)
        return True


def run_preference_rl(
    config: PreferenceRLConfig, teacher: Teacher, seed: int, progress: ProgressFn | None = None
) -> PreferenceRLResult:
    """Train an agent on a reward learned from ``teacher``'s preferences; evaluate on the true reward."""
    _set_seeds(seed, config.threads)
    loop = _Loop(config, teacher, seed, progress)
    raw = make_vec_env(config.env_id, n_envs=config.n_envs, seed=seed)
    recorder = SegmentRecorder(raw, config.segment_length, config.recent_segments)
    obs_dim = int(np.prod(raw.observation_space.shape))
    act_dim = int(np.prod(raw.action_space.shape))
    net = RewardNet(obs_dim, act_dim, hidden=tuple(config.reward_hidden), seed=seed)
    loop.recorder, loop.net = recorder, net
    loop.initial_round(config.env_id)
    model, venv = _build_agent(config, LearnedRewardVecEnv(recorder, net.as_reward_fn()), seed)
    model.learn(total_timesteps=config.total_timesteps, callback=PreferenceCallback(loop))
    true_return = evaluate_true_return(model, venv, config.env_id, config.eval_episodes, seed)
    venv.close()
    heldout = loop.heldout.merged() if len(loop.heldout) else None
    train = loop.train.merged()
    return PreferenceRLResult(
        true_return=true_return,
        clean_accuracy=clean_accuracy(net, heldout) if heldout is not None else math.nan,
        queries=len(train),
        corrupted_fraction=float(train.corrupted.mean()) if len(train) else 0.0,
        timesteps=int(model.num_timesteps),
        reward_net=net,
        model=model,
        rounds=loop.rounds,
    )


def train_on_true_reward(config: PreferenceRLConfig, seed: int, progress: ProgressFn | None = None) -> float:
    """The normaliser: TRUE return of the same algorithm with the same budget trained on the TRUE reward."""
    _set_seeds(seed, config.threads)
    model, venv = _build_agent(config, make_vec_env(config.env_id, n_envs=config.n_envs, seed=seed), seed)
    model.learn(
        total_timesteps=config.total_timesteps, callback=_StepReporter(progress, config.total_timesteps)
    )
    true_return = evaluate_true_return(model, venv, config.env_id, config.eval_episodes, seed)
    venv.close()
    return true_return
