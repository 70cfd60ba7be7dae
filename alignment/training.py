"""Build and run the TRL trainers (SFT, robust DPO, robust reward model) with one set of defaults.

The defaults follow the device: on CPU ``use_cpu=True`` and fp32; on a CUDA GPU bf16 when the model
spec asks for it; gradient checkpointing for real models only. Under ``accelerate launch`` the same
calls run data-parallel (TRL and accelerate do the distribution).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase, PrinterCallback, TrainerCallback
from trl import SFTConfig, SFTTrainer

from aligngym.alignment.dpo import RobustDPOConfig, RobustDPOTrainer
from aligngym.alignment.models import ModelSpec
from aligngym.alignment.reward_model import RobustRewardConfig, RobustRewardTrainer

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Tracking:
    """Where the trainers built inside a ``with tracking(...)`` block report, and how they show progress."""

    report_to: tuple[str, ...] = ()
    """transformers integrations (wandb, mlflow, ...); "tensorboard" writes into ``log_dir``. () sends nothing."""
    log_dir: Path | None = None
    """TensorBoard event files, one subfolder per trainer (sft, dpo, reward_model)."""
    progress: bool = False
    """A bar / status lines over the training steps."""
    print_logs: bool = True
    """TRL's printing of every log dict (PrinterCallback); the jobs turn it off (their logs are on disk)."""


_TRACKING: ContextVar[Tracking] = ContextVar("aligngym_tracking", default=Tracking())  # noqa: B039 (frozen)


@contextlib.contextmanager
def tracking(settings: Tracking) -> Iterator[None]:
    """Apply ``settings`` to every trainer built in the block (the jobs set it once, not per call).

    With ``progress`` and output that is not a terminal, the Hub libraries' own carriage-return bars
    (dataset maps, weight loading and saving) are switched off: a log gets the status lines only.
    """
    if settings.progress and not sys.stderr.isatty():
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    token = _TRACKING.set(settings)
    try:
        yield
    finally:
        _TRACKING.reset(token)


class StepProgress(TrainerCallback):
    """Training steps as :class:`aligngym.progress.Progress` (bar on a terminal, status lines otherwise)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.progress: Any = None

    def on_train_begin(self, args, state, control, **kwargs):
        from aligngym.progress import Progress

        self.progress = Progress(state.max_steps, self.desc, unit="steps", initial=state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.update(state.global_step - self.progress.done)

    def on_train_end(self, args, state, control, **kwargs):
        self.progress.close()


class ProgressCallback(TrainerCallback):
    """Report ``(global_step, max_steps)`` to a ``progress(step, total)`` function (e.g. a sweep's bar)."""

    def __init__(self, progress: ProgressFn) -> None:
        self.progress = progress

    def on_step_end(self, args, state, control, **kwargs):
        self.progress(state.global_step, state.max_steps)


def trainer_arguments(spec: ModelSpec, output_dir: str | Path, seed: int, **overrides: Any) -> dict[str, Any]:
    """TrainingArguments shared by every trainer here; ``overrides`` win."""
    cuda = torch.cuda.is_available()
    values: dict[str, Any] = {
        "output_dir": str(output_dir),
        "seed": seed,
        "data_seed": seed,
        "use_cpu": not cuda,
        "bf16": cuda and spec.bf16(),
        "report_to": [name for name in _TRACKING.get().report_to if name != "tensorboard"] or "none",
        "save_strategy": "no",
        "logging_steps": 10,
        "disable_tqdm": True,
        "gradient_checkpointing": spec.checkpointing(),
        "dataloader_num_workers": 0,
    }
    values.update(overrides)
    return values


def _callbacks(progress: ProgressFn | None, name: str) -> list[TrainerCallback]:
    settings = _TRACKING.get()
    callbacks: list[TrainerCallback] = [ProgressCallback(progress)] if progress is not None else []
    if settings.progress and progress is None:
        callbacks.append(StepProgress(name))
    if settings.log_dir is not None and "tensorboard" in settings.report_to:
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        callbacks.append(TensorBoardCallback(SummaryWriter(str(Path(settings.log_dir) / name))))
    return callbacks


def _quiet(trainer, quiet: bool):
    """Drop the callback that prints every log dict (sweeps and jobs show a progress bar instead)."""
    if quiet or not _TRACKING.get().print_logs:
        trainer.remove_callback(PrinterCallback)
    return trainer


def build_sft_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, str]],
    spec: ModelSpec,
    output_dir: str | Path,
    seed: int,
    progress: ProgressFn | None = None,
    quiet: bool = False,
    **config: Any,
) -> SFTTrainer:
    """An SFTTrainer on prompt/completion rows (loss on the completion only); ``config`` holds SFTConfig fields."""
    args = SFTConfig(**trainer_arguments(spec, output_dir, seed, **config))
    return _quiet(
        SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=spec.peft_config("CAUSAL_LM"),
            callbacks=_callbacks(progress, "sft"),
        ),
        quiet,
    )


def train_sft(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict[str, str]],
    spec: ModelSpec,
    output_dir: str | Path,
    seed: int,
    progress: ProgressFn | None = None,
    quiet: bool = False,
    **config: Any,
) -> SFTTrainer:
    """Supervised fine-tuning on prompt/completion rows with TRL's SFTTrainer (``build_sft_trainer``, then train)."""
    trainer = build_sft_trainer(model, tokenizer, rows, spec, output_dir, seed, progress, quiet, **config)
    trainer.train()
    return trainer


def build_dpo_trainer(
    model: PreTrainedModel | str,
    tokenizer: PreTrainedTokenizerBase,
    train_rows: list[dict[str, str]],
    spec: ModelSpec,
    output_dir: str | Path,
    seed: int,
    eval_rows: list[dict[str, str]] | None = None,
    ref_model: PreTrainedModel | None = None,
    progress: ProgressFn | None = None,
    quiet: bool = False,
    **config: Any,
) -> RobustDPOTrainer:
    """A RobustDPOTrainer on prompt/chosen/rejected rows; ``config`` holds RobustDPOConfig fields."""
    args = RobustDPOConfig(**trainer_arguments(spec, output_dir, seed, **config))
    return _quiet(
        RobustDPOTrainer(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
            processing_class=tokenizer,
            peft_config=spec.peft_config("CAUSAL_LM"),
            callbacks=_callbacks(progress, "dpo"),
        ),
        quiet,
    )


def build_reward_trainer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train_rows: list[dict[str, str]],
    spec: ModelSpec,
    output_dir: str | Path,
    seed: int,
    eval_rows: list[dict[str, str]] | None = None,
    progress: ProgressFn | None = None,
    **config: Any,
) -> RobustRewardTrainer:
    """A RobustRewardTrainer on chosen/rejected rows; ``config`` holds RobustRewardConfig fields."""
    args = RobustRewardConfig(**trainer_arguments(spec, output_dir, seed, **config))
    trainer = RobustRewardTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=spec.peft_config("SEQ_CLS"),
        callbacks=_callbacks(progress, "reward_model"),
    )
    return _quiet(trainer, quiet=False)
