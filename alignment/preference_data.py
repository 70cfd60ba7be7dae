"""Text preference pairs with known true rewards: sample completions, score them, label them with a teacher.

A ``PairPool`` holds, per prompt, two completions sampled from a policy and their TRUE rewards (from the
text task's programmatic scorer). A teacher of ``aligngym.rewards.teachers`` turns the true rewards into
(possibly corrupted) labels and records which labels it corrupted, exactly as for control segments.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aligngym.alignment.sampling import sample_completions
from aligngym.envs.text.generation import TextTask
from aligngym.files import atomic_write_json
from aligngym.rewards.teachers import make_teacher


@dataclass
class PairPool:
    """Pairs ``(first[i], second[i])`` of completions of ``prompts[i]`` with their true rewards."""

    prompts: list[str]
    first: list[str]
    second: list[str]
    first_reward: list[float]
    second_reward: list[float]

    def __len__(self) -> int:
        return len(self.prompts)

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> PairPool:
        return cls(**json.loads(Path(path).read_text()))

    def rows(self, first_preferred: np.ndarray) -> list[dict[str, str]]:
        """TRL preference rows (``prompt``, ``chosen``, ``rejected``) for the given labels."""
        return [
            {"prompt": p, "chosen": a if win else b, "rejected": b if win else a}
            for p, a, b, win in zip(self.prompts, self.first, self.second, first_preferred)
        ]

    def subset(self, mask: np.ndarray) -> PairPool:
        """The pairs where ``mask`` is True."""
        keep = np.flatnonzero(mask)
        return PairPool(*([getattr(self, f.name)[i] for i in keep] for f in dataclasses.fields(self)))

    def oracle_labels(self) -> np.ndarray:
        """Noise-free labels: True where the first completion has the higher true reward."""
        return np.asarray(self.first_reward) > np.asarray(self.second_reward)


def build_pair_pool(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: TextTask,
    prompts: list[str],
    seed: int,
    samples_per_prompt: int = 4,
    max_new_tokens: int = 32,
) -> PairPool:
    """Sample ``samples_per_prompt`` completions per prompt and keep one pair with different true rewards.

    The pair is drawn uniformly among the sample pairs whose rewards differ (so every pair has a
    well-defined oracle label); prompts whose samples all tie are dropped.
    """
    repeated = [p for p in prompts for _ in range(samples_per_prompt)]
    texts = sample_completions(model, tokenizer, repeated, seed=seed, max_new_tokens=max_new_tokens)
    rng = np.random.default_rng(seed)
    pool = PairPool([], [], [], [], [])
    for i, prompt in enumerate(prompts):
        samples = texts[i * samples_per_prompt : (i + 1) * samples_per_prompt]
        rewards = [task.reward(prompt, s) for s in samples]
        candidates = [
            (a, b)
            for a in range(len(samples))
            for b in range(a + 1, len(samples))
            if rewards[a] != rewards[b]
        ]
        if not candidates:
            continue
        a, b = candidates[rng.integers(len(candidates))]
        if rng.random() < 0.5:  # random order: the first item is not the earlier sample
            a, b = b, a
        pool.prompts.append(prompt)
        pool.first.append(samples[a])
        pool.second.append(samples[b])
        pool.first_reward.append(rewards[a])
        pool.second_reward.append(rewards[b])
    return pool


def label_pool(
    pool: PairPool, noise: str, level: float | None, seed: int, **teacher_params: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Teacher labels of the pool: ``(kept, first_preferred, corrupted)``, boolean arrays of shape [n].

    ``noise`` / ``level`` name a teacher of ``aligngym.rewards.teachers`` (``mistake`` 0.2 flips 20% of
    the labels, ``irrational`` 0.5 flips the sqrt(64) clearest pairs of every 64, ``stochastic`` 1.0 is a
    Bradley-Terry teacher with beta = 1, ``oracle`` takes no level). DPO needs hard labels, so pairs the
    teacher skips or labels "equal" (0.5) are dropped: ``kept`` says which. ``teacher_params``: further
    Teacher fields (e.g. ``batch_size`` of the irrational teacher), as in the control domain.
    """
    if noise == "myopic":
        raise ValueError("the myopic teacher needs per-step rewards; a text response has one true reward")
    teacher = make_teacher(noise, None if noise == "oracle" else level, **teacher_params)
    out = teacher.label(
        np.asarray(pool.first_reward), np.asarray(pool.second_reward), np.random.default_rng([seed, 2])
    )
    kept = out.keep & (out.labels != 0.5)
    return kept, out.labels == 1.0, out.corrupted
