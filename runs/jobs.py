"""The registry of trainable jobs: name -> config dataclass and run function, imported lazily.

A job's run function has the signature ``run(config, seed: int, run_dir: Path) -> dict`` and returns
a summary of scalar results (also written to ``summary.json`` in the run folder).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aligngym.entry_points import load_entry_point
from aligngym.runs.errors import UsageError


@dataclass(frozen=True)
class Job:
    """A job named in recipes. ``config`` and ``run`` are ``"module:attribute"`` strings (lazy import)."""

    name: str
    config: str
    run: str
    description: str

    def config_class(self) -> type:
        return load_entry_point(self.config)

    def run_function(self) -> Callable[..., dict[str, Any]]:
        return load_entry_point(self.run)


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "sb3",
            "aligngym.agents.sb3_training:SB3Config",
            "aligngym.agents.sb3_training:train_sb3",
            "train a stable-baselines3 algorithm (PPO, SAC, A2C, TD3) on any Gymnasium id",
        ),
        Job(
            "rest",
            "aligngym.agents.react.rest_config:RestConfig",
            "aligngym.agents.react.rest:train_rest",
            "ReST self-improvement of a ReAct agent on aligngym/ReActQA-v0 (bootstrap SFT, generations, distillation)",
        ),
        Job(
            "rarl",
            "aligngym.agents.adversarial.training:RARLConfig",
            "aligngym.agents.adversarial.training:train_adversarial",
            "RARL: protagonist vs force adversary, alternating SB3 SAC/PPO learners",
        ),
        Job(
            "qarl",
            "aligngym.agents.adversarial.training:QARLConfig",
            "aligngym.agents.adversarial.training:train_adversarial",
            "QARL: RARL with a temperature-conditioned adversary and a self-paced temperature curriculum",
        ),
        Job(
            "adversarial-baseline",
            "aligngym.agents.adversarial.training:BaselineConfig",
            "aligngym.agents.adversarial.training:train_adversarial",
            "SAC on an adversarial game with no force or random forces (RARL/QARL baselines)",
        ),
        Job(
            "sft",
            "aligngym.alignment.jobs:SFTJobConfig",
            "aligngym.alignment.jobs:run_sft",
            "TRL SFT of a tiny or real LM on a text task with a known true reward; samples its pair pools",
        ),
        Job(
            "dpo",
            "aligngym.alignment.jobs:DPOJobConfig",
            "aligngym.alignment.jobs:run_dpo",
            "DPO (TRL sigmoid/robust/ipo or R3M/adaptive) on teacher-labelled pairs; true-reward evaluation",
        ),
        Job(
            "reward-model",
            "aligngym.alignment.jobs:RewardModelJobConfig",
            "aligngym.alignment.jobs:run_reward_model",
            "robust reward model (TRL RewardTrainer + bt/r3m/adaptive/...) on teacher-labelled text pairs",
        ),
        Job(
            "reward-fit",
            "aligngym.rewards.fitting:RewardFitJobConfig",
            "aligngym.rewards.fitting:run_reward_fit_job",
            "fit a reward net on an env's segment pairs with a chosen preference loss and noisy teacher",
        ),
    )
}


def get_job(name: str) -> Job:
    """Look a job up by name, failing with the list of valid names."""
    if name not in JOBS:
        raise UsageError(f"unknown job {name!r}; valid jobs: {', '.join(sorted(JOBS))}")
    return JOBS[name]
