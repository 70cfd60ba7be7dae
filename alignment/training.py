"""Build and run the TRL trainers (SFT, robust DPO, robust reward model) with one set of defaults.

The defaults follow the device: on CPU ``use_cpu=True`` and fp32; on a CUDA GPU bf16 when the model
spec asks for it; gradient checkpointing for real models only. Under ``accelerate launch`` the same
calls run data-parallel (TRL and accelerate do the distribution).
"""

from __future__ import annotations

from collections.abc import Callable
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
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 10,
        "disable_tqdm": True,
        "gradient_checkpointing": spec.checkpointing(),
        "dataloader_num_workers": 0,
    }
    values.update(overrides)
    return values


def _callbacks(progress: ProgressFn | None) -> list[TrainerCallback]:
    return [ProgressCallback(progress)] if progress is not None else []


def _quiet(trainer, quiet: bool):
    """Drop the callback that prints every log dict (sweeps show a progress bar instead)."""
    if quiet:
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
            callbacks=_callbacks(progress),
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
            callbacks=_callbacks(progress),
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
    return RobustRewardTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(eval_rows) if eval_rows else None,
        processing_class=tokenizer,
        peft_config=spec.peft_config("SEQ_CLS"),
        callbacks=_callbacks(progress),
    )
