"""What SB3 jobs log to (the user's choice of SB3 logger formats, and wandb), and their progress display.

``loggers`` is a list of SB3 logger formats (``stdout``, ``csv``, ``tensorboard``, ``json``, ``log``) plus
``wandb``; the default ``["csv", "tensorboard"]`` writes only into the run folder. ``wandb`` (the
``aligngym[wandb]`` extra) starts a wandb run that mirrors the TensorBoard scalars
(``sync_tensorboard``); it honours wandb's own settings (``WANDB_MODE=offline``, ``WANDB_PROJECT``). Nothing
is sent anywhere unless ``wandb`` is listed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from aligngym.progress import Progress

SB3_FORMATS = ("stdout", "csv", "tensorboard", "json", "log")
LOGGERS = (*SB3_FORMATS, "wandb")
DEFAULT_LOGGERS = ("csv", "tensorboard")


def check_loggers(loggers: Sequence[str], field: str = "loggers") -> None:
    """ValueError naming the bad entry and the valid ones."""
    if isinstance(loggers, str):
        raise ValueError(f"{field} must be a list such as [csv, tensorboard], got {loggers!r}")  # noqa: TRY004
    bad = [name for name in loggers if name not in LOGGERS]
    if bad:
        raise ValueError(
            f"{field}: unknown logger(s) {', '.join(map(repr, bad))}; valid: {', '.join(LOGGERS)}"
        )


def sb3_formats(loggers: Sequence[str]) -> list[str]:
    """The SB3 ``configure`` formats; wandb reads the TensorBoard files, so it implies ``tensorboard``."""
    formats = [name for name in loggers if name in SB3_FORMATS]
    if "wandb" in loggers and "tensorboard" not in formats:
        formats.append("tensorboard")
    return formats


@contextlib.contextmanager
def tracking(loggers: Sequence[str], run_dir: Path, config: dict[str, Any]) -> Iterator[None]:
    """A wandb run around training when ``wandb`` is among ``loggers``; nothing otherwise."""
    if "wandb" not in loggers:
        yield
        return
    from aligngym.extras import require

    require("wandb", "the wandb logger")
    import wandb

    run = wandb.init(
        project="aligngym", name=run_dir.name, dir=str(run_dir), config=config, sync_tensorboard=True
    )
    try:
        yield
    finally:
        run.finish()


class StepProgress(BaseCallback):
    """Env steps of one ``learn`` call as :class:`aligngym.progress.Progress` (bar or status lines)."""

    def __init__(self, desc: str, enabled: bool = True) -> None:
        super().__init__()
        self.desc, self.enabled = desc, enabled
        self.progress: Progress | None = None

    def _on_training_start(self) -> None:
        total = self.locals["total_timesteps"]  # learn()'s target, counted from model.num_timesteps
        self.progress = Progress(
            total, self.desc, unit="steps", initial=self.model.num_timesteps, enabled=self.enabled
        )

    def _on_step(self) -> bool:
        self.progress.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.progress.close()
