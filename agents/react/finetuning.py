"""One supervised fine-tuning stage of the ReST loop (TRL ``SFTTrainer`` on prompt/completion rows)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
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
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    with tempfile.TemporaryDirectory(prefix="aligngym-sft-") as out:
        args = SFTConfig(
            output_dir=out,
            max_steps=settings.max_steps,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            lr_scheduler_type=settings.lr_scheduler,
            warmup_steps=settings.warmup_steps,
            weight_decay=settings.weight_decay,
            max_length=settings.max_length,
            logging_steps=max(1, settings.max_steps // 10),
            save_strategy="no",
            report_to="none",
            use_cpu=not torch.cuda.is_available(),
            bf16=spec.bf16(),
            activation_checkpointing=False,
            seed=seed,
            data_seed=seed,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(list(rows)),
            processing_class=tokenizer,
            peft_config=spec.peft_config(),
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
