"""The registry of trainable jobs: name -> config dataclass and run function, imported lazily.

A job's run function has the signature ``run(config, seed: int, run_dir: Path) -> dict`` and returns
a summary of scalar results (also written to ``summary.json`` in the run folder).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from aligngym.runs.errors import UsageError


@dataclass(frozen=True)
class Job:
    """A job named in recipes. ``config`` and ``run`` are ``"module:attribute"`` strings (lazy import)."""

    name: str
    config: str
    run: str
    description: str

    def config_class(self) -> type:
        return _load(self.config)

    def run_function(self) -> Callable[..., dict[str, Any]]:
        return _load(self.run)


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job(
            "sb3",
            "aligngym.agents.sb3_training:SB3Config",
            "aligngym.agents.sb3_training:train_sb3",
            "train a stable-baselines3 algorithm (PPO, SAC, A2C, TD3) on any Gymnasium id",
        ),
    )
}


def get_job(name: str) -> Job:
    """Look a job up by name, failing with the list of valid names."""
    if name not in JOBS:
        raise UsageError(f"unknown job {name!r}; valid jobs: {', '.join(sorted(JOBS))}")
    return JOBS[name]
