"""One supervised fine-tuning stage of the ReST loop: alignment's SFT trainer (the same TrainingArguments
defaults as every other trainer of the project) on prompt/completion rows, with frozen entity embeddings."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aligngym.agents.react.models import freeze_embeddings
from aligngym.agents.react.rest_config import SFTSettings
from aligngym.alignment.models import ModelSpec
from aligngym.files import atomic_write_json


def supervised_finetune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict[str, str]],
    settings: SFTSettings,
    spec: ModelSpec,
    seed: int,
    log_path: Path | None = None,
    frozen_token_ids: Sequence[int] = (),
) -> PreTrainedModel:
    """TRL ``SFTTrainer`` on prompt/completion rows (loss on the completion only); LoRA when ``spec.lora_r``;
    the embeddings of ``frozen_token_ids`` get no gradient."""
    from aligngym.alignment.training import build_sft_trainer  # trl and datasets load only when training

    with tempfile.TemporaryDirectory(prefix="aligngym-sft-") as out:
        trainer = build_sft_trainer(
            model,
            tokenizer,
            list(rows),
            spec,
            out,
            seed,
            max_steps=settings.max_steps,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            lr_scheduler_type=settings.lr_scheduler,
            warmup_steps=settings.warmup_steps,
            weight_decay=settings.weight_decay,
            max_length=settings.max_length,
            logging_steps=max(1, settings.max_steps // 10),
        )
        if frozen_token_ids:
            freeze_embeddings(trainer.model, frozen_token_ids)
        trainer.train()
        if log_path is not None:
            atomic_write_json(log_path, trainer.state.log_history)
        trained = trainer.model
    if hasattr(trained, "merge_and_unload"):
        trained = trained.merge_and_unload()
    return trained
