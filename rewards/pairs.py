"""Segment pair data: fixed-length segments from rollouts of any policies in any Gymnasium env, with the
true per-step rewards, paired and labelled by a teacher, split honestly into train / validation / test.

Honest split: the segments themselves are partitioned into disjoint pools before pairing, so no test
(or validation) pair shares a segment with a training pair. The teacher labels the training AND the
validation pairs (a user selects models on the labels they have; ``oracle`` keeps the clean label of
every pair, for an explicitly named oracle selection), test pairs always carry ORACLE labels.

Segments never cross an episode boundary (a window that would is dropped). Termination can still
leak reward information in variable-horizon envs (a falling Hopper has short episodes); imitation warns
about the same effect, and for fixed pairs it is harmless.

Example:
    >>> segments = collect_segments("Pendulum-v1", {"random": "random"}, 20, segment_length=10, seed=0)
    >>> config = PairConfig(n_train=30, n_val=10, n_test=10)
    >>> split = make_pair_split(segments, config, make_teacher("mistake", 0.2), seed=0)
    >>> len(split.train), split.test.labels.tolist() == split.test.oracle.tolist()
    (30, True)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from aligngym.rewards.teachers import Teacher, make_teacher

logger = logging.getLogger(__name__)

Policy = Any
"""``"random"`` (uniform actions), a callable ``obs -> action``, or an object with SB3's ``predict(obs)``."""


@dataclass
class SegmentSet:
    """N segments of H steps: flattened observations and actions, true rewards, the producing policy."""

    obs: np.ndarray  # [N, H, obs_dim] float32 (gymnasium.spaces.flatten of each observation)
    actions: np.ndarray  # [N, H, act_dim] float32 (flattened: Discrete actions become one-hot)
    rewards: np.ndarray  # [N, H] float64 true env rewards
    source: np.ndarray  # [N] int index into ``policy_names``
    policy_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n, h = self.rewards.shape
        if self.obs.shape[:2] != (n, h) or self.actions.shape[:2] != (n, h) or self.source.shape != (n,):
            raise ValueError(
                f"inconsistent segment arrays: obs {self.obs.shape}, actions {self.actions.shape}, "
                f"rewards {self.rewards.shape}, source {self.source.shape}"
            )

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def segment_length(self) -> int:
        return self.rewards.shape[1]

    @property
    def returns(self) -> np.ndarray:
        """True segment returns (undiscounted sums of env rewards), shape [N]."""
        return self.rewards.sum(axis=1)

    def subset(self, index: np.ndarray) -> SegmentSet:
        return SegmentSet(
            self.obs[index], self.actions[index], self.rewards[index], self.source[index], self.policy_names
        )

    @staticmethod
    def concatenate(parts: list[SegmentSet]) -> SegmentSet:
        names = parts[0].policy_names
        if any(p.policy_names != names for p in parts):
            raise ValueError("segment sets with different policy_names cannot be concatenated")
        return SegmentSet(
            np.concatenate([p.obs for p in parts]),
            np.concatenate([p.actions for p in parts]),
            np.concatenate([p.rewards for p in parts]),
            np.concatenate([p.source for p in parts]),
            names,
        )


def as_policy(policy: Policy, action_space: spaces.Space) -> Callable[[np.ndarray], Any]:
    """Turn ``"random"``, an SB3 model (``predict``) or a callable into ``obs -> action``."""
    if isinstance(policy, str):
        if policy != "random":
            raise ValueError(f"unknown policy name {policy!r}; valid: 'random', a callable, or an SB3 model")
        return lambda obs: action_space.sample()
    if hasattr(policy, "predict"):
        return lambda obs: policy.predict(obs, deterministic=False)[0]
    if callable(policy):
        return policy
    raise TypeError(
        f"a policy must be 'random', a callable obs -> action or have predict(); got {type(policy)}"
    )


SCRIPTED_POLICIES = ("random", "zero", "noisy-zero", "sine-slow", "sine-fast")
"""Env-agnostic scripted policies by name (all but "random" need a Box action space)."""


def scripted_policy(name: str, action_space: spaces.Space, seed: int = 0) -> Callable[[np.ndarray], Any]:
    """A named scripted policy: uniform random actions, zero actions, zero plus Gaussian noise (0.3 of the
    action range), or an open-loop sine gait (slow: 0.3 rad/step at 30% of the range; fast: 0.8 at 80%)."""
    if name not in SCRIPTED_POLICIES:
        raise ValueError(f"unknown scripted policy {name!r}; valid: {', '.join(SCRIPTED_POLICIES)}")
    if name == "random":
        return as_policy("random", action_space)
    if not isinstance(action_space, spaces.Box):
        raise TypeError(f"scripted policy {name!r} needs a Box action space, got {action_space}")
    rng = np.random.default_rng(seed)
    low, high = action_space.low, action_space.high
    centre, half = (high + low) / 2.0, (high - low) / 2.0
    if name == "zero":
        return lambda obs: np.clip(np.zeros_like(centre), low, high)
    if name == "noisy-zero":
        return lambda obs: np.clip(rng.normal(0.0, 0.3, centre.shape) * half, low, high).astype(
            action_space.dtype
        )
    freq, amp = (0.3, 0.3) if name == "sine-slow" else (0.8, 0.8)
    phase = rng.uniform(0.0, 2.0 * np.pi, centre.shape)
    step = [0]

    def sine(obs: np.ndarray) -> np.ndarray:
        step[0] += 1
        return (centre + amp * half * np.sin(freq * step[0] + phase)).astype(action_space.dtype)

    return sine


def collect_segments(
    env: str | gym.Env | Callable[[], gym.Env],
    policies: Mapping[str, Policy],
    segments_per_policy: int,
    segment_length: int = 25,
    seed: int = 0,
    env_kwargs: Mapping[str, Any] | None = None,
    max_steps_per_policy: int | None = None,
) -> SegmentSet:
    """Roll out each policy and cut its episodes into non-overlapping H-step segments.

    Each episode is cut from a random offset in [0, H), so segments do not always start at reset.
    ``max_steps_per_policy`` (default 50 x the steps needed) stops a policy whose episodes are too
    short to hold a segment, with an error naming it.
    """
    if segments_per_policy < 1 or segment_length < 1:
        raise ValueError(
            f"segments_per_policy={segments_per_policy} and segment_length={segment_length} must be >= 1"
        )
    if not policies:
        raise ValueError("collect_segments needs at least one policy")
    own_env = not isinstance(env, gym.Env)
    environment = _make_env(env, env_kwargs)
    if isinstance(environment.action_space, spaces.Space) and hasattr(environment.action_space, "seed"):
        environment.action_space.seed(seed)
    rng = np.random.default_rng(seed)
    names = tuple(policies)
    parts = []
    try:
        for index, (name, policy) in enumerate(policies.items()):
            act = as_policy(policy, environment.action_space)
            limit = max_steps_per_policy or 50 * segments_per_policy * segment_length
            obs, actions, rewards = _rollout_segments(
                environment, act, segments_per_policy, segment_length, rng, limit, name
            )
            parts.append(SegmentSet(obs, actions, rewards, np.full(len(rewards), index), names))
    finally:
        if own_env:
            environment.close()
    return SegmentSet.concatenate(parts)


def _make_env(env: str | gym.Env | Callable[[], gym.Env], env_kwargs: Mapping[str, Any] | None) -> gym.Env:
    if isinstance(env, gym.Env):
        return env
    if isinstance(env, str):
        return gym.make(env, **dict(env_kwargs or {}))
    return env()


def _rollout_segments(
    env: gym.Env,
    act: Callable[[np.ndarray], Any],
    count: int,
    length: int,
    rng: np.random.Generator,
    limit: int,
    name: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obs_list: list[np.ndarray] = []
    act_list: list[np.ndarray] = []
    rew_list: list[np.ndarray] = []
    steps = 0
    while len(rew_list) < count:
        if steps >= limit:
            raise RuntimeError(
                f"policy {name!r} produced {len(rew_list)} of {count} segments of length {length} "
                f"in {steps} steps: "
                "its episodes are too short; use shorter segments or another policy"
            )
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        ep_obs, ep_act, ep_rew = [], [], []
        done = False
        while not done:
            action = act(obs)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            ep_obs.append(spaces.flatten(env.observation_space, obs))
            ep_act.append(spaces.flatten(env.action_space, action))
            ep_rew.append(float(reward))
            obs, done = next_obs, terminated or truncated
            steps += 1
        offset = int(rng.integers(length))
        for start in range(offset, len(ep_rew) - length + 1, length):
            if len(rew_list) == count:
                break
            obs_list.append(np.asarray(ep_obs[start : start + length], dtype=np.float32))
            act_list.append(np.asarray(ep_act[start : start + length], dtype=np.float32))
            rew_list.append(np.asarray(ep_rew[start : start + length], dtype=np.float64))
    logger.debug("policy %s: %d segments from %d steps", name, count, steps)
    return np.stack(obs_list), np.stack(act_list), np.stack(rew_list)


@dataclass
class PreferencePairs:
    """Labelled pairs of segments: ``labels[i]`` = P(segment ``first[i]`` preferred over ``second[i]``)."""

    segments: SegmentSet
    first: np.ndarray  # [n] int indices into segments
    second: np.ndarray  # [n] int
    labels: np.ndarray  # [n] float32 teacher labels: 1 first preferred, 0 second, 0.5 equal
    oracle: np.ndarray  # [n] float32 oracle labels
    corrupted: np.ndarray  # [n] bool: label differs from the oracle

    def __len__(self) -> int:
        return len(self.first)

    @property
    def true_gap(self) -> np.ndarray:
        """True return difference ``R(first) - R(second)``."""
        returns = self.segments.returns
        return returns[self.first] - returns[self.second]

    @property
    def segment_ids(self) -> np.ndarray:
        """The segments these pairs use (sorted, unique)."""
        return np.unique(np.concatenate([self.first, self.second]))


def sample_pair_indices(
    n_segments: int, n_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random pairs of distinct segments (with replacement across pairs)."""
    if n_segments < 2:
        raise ValueError(f"pairing needs at least 2 segments, got {n_segments}")
    first = rng.integers(n_segments, size=n_pairs)
    second = (first + rng.integers(1, n_segments, size=n_pairs)) % n_segments  # never equal to first
    return first, second


def label_pairs(
    segments: SegmentSet,
    first: np.ndarray,
    second: np.ndarray,
    teacher: Teacher,
    rng: np.random.Generator,
) -> PreferencePairs:
    """Ask ``teacher`` about each pair (it sees per-step true rewards); skipped queries are dropped."""
    answers = teacher.label(segments.rewards[first], segments.rewards[second], rng)
    keep = answers.keep
    return PreferencePairs(
        segments,
        first[keep],
        second[keep],
        answers.labels[keep],
        answers.oracle[keep],
        answers.corrupted[keep],
    )


@dataclass(frozen=True)
class PairConfig:
    """How many pairs each split gets and which share of the segments each split may use.

    n_train, n_val, n_test: pairs sampled per split (training pairs the teacher skips are dropped).
    val_fraction, test_fraction: shares of the segments reserved for validation / test pairs.
    """

    n_train: int = 1000
    n_val: int = 200
    n_test: int = 500
    val_fraction: float = 0.15
    test_fraction: float = 0.25

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_test"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"PairConfig {name}={value!r} must be an integer >= 0")
        if self.n_train < 1:
            raise ValueError(f"PairConfig n_train={self.n_train} must be >= 1")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"PairConfig {name}={value!r} must lie in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"PairConfig val_fraction + test_fraction = {self.val_fraction + self.test_fraction} "
                "must be < 1"
            )


@dataclass
class PairSplit:
    """Disjoint-segment train / validation / test pairs; train and validation carry the teacher's labels
    (and ``oracle``), test the oracle's."""

    train: PreferencePairs
    val: PreferencePairs | None
    test: PreferencePairs | None


def make_pair_split(segments: SegmentSet, config: PairConfig, teacher: Teacher, seed: int = 0) -> PairSplit:
    """Split the segments into pools, pair within each pool; ``teacher`` labels train and validation pairs,
    the oracle the test pairs."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(segments))
    n_val = round(config.val_fraction * len(segments)) if config.n_val else 0
    n_test = round(config.test_fraction * len(segments)) if config.n_test else 0
    pools = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    oracle = make_teacher("oracle")
    result: dict[str, PreferencePairs | None] = {}
    for split, n_pairs, who in (
        ("train", config.n_train, teacher),
        ("val", config.n_val, teacher),
        ("test", config.n_test, oracle),
    ):
        pool = pools[split]
        if n_pairs == 0:
            result[split] = None
            continue
        i, j = sample_pair_indices(len(pool), n_pairs, rng)
        result[split] = label_pairs(segments, pool[i], pool[j], who, rng)
    return PairSplit(train=result["train"], val=result["val"], test=result["test"])  # type: ignore[arg-type]
