"""``aligngym train`` jobs for LLM alignment: ``sft``, ``dpo`` (every loss) and ``reward-model``.

All three work on a text task with a known true reward (``aligngym.envs.text.generation``), so their
summaries report true rewards and clean accuracies, not only training losses. ``budget.model`` is
``tiny`` (offline, CPU) or any local path / hub id (bf16 and optional LoRA on a CUDA GPU).
Run folder layout: ``sft/`` (the SFT model), ``pools.json`` (sampled pairs with true rewards),
``model/`` (the DPO policy) or ``reward_model/``, each with TRL's ``trainer_state.json`` (the logged metrics).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aligngym.alignment.dpo import dpo_loss_arguments
from aligngym.alignment.models import load_reward_model, load_tokenizer, save_pretrained_atomic
from aligngym.alignment.preference_data import label_pool
from aligngym.alignment.reward_model import reward_loss_arguments
from aligngym.alignment.text_pipeline import (
    SeedArtifacts,
    TextCellBudget,
    seed_artifacts,
    train_and_evaluate,
)
from aligngym.alignment.training import Tracking, build_reward_trainer, tracking
from aligngym.rewards.fitting import outlier_scores
from aligngym.rewards.losses import LOSSES, LossSpec
from aligngym.rewards.teachers import NOISE_KINDS


def _validate_noise(noise: str, rate: float) -> None:
    if noise not in NOISE_KINDS or noise == "myopic":
        valid = [k for k in NOISE_KINDS if k != "myopic"]
        raise ValueError(f"unknown text noise {noise!r}; valid: {', '.join(valid)}")
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"rate must be a finite number >= 0, got {rate}")
    if noise in ("mistake", "irrational") and rate > 1:
        raise ValueError(f"rate {rate} of {noise!r} must lie in [0, 1]")


def _artifacts(budget: TextCellBudget, sft_run: str | None, seed: int, run_dir: Path) -> SeedArtifacts:
    """The SFT model and pools of an earlier ``sft`` run, or built here into ``run_dir``."""
    if not torch.cuda.is_available():
        torch.set_num_threads(budget.threads)
    return seed_artifacts(budget, seed, folder=Path(sft_run) if sft_run is not None else run_dir)


def _check_sft_run(sft_run: str | None) -> None:
    if sft_run is not None and not (Path(sft_run) / "pools.json").is_file():
        raise ValueError(f"sft_run {sft_run!r} is not a finished sft run folder (no pools.json)")


@dataclass
class JobTracking:
    """Experiment tracking of a text job (the same fields on ``sft``, ``dpo`` and ``reward-model``)."""

    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    """TRL's ``report_to``: tensorboard (into run_dir/tensorboard), wandb (the aligngym[wandb] extra),
    mlflow, trackio, ...; [] reports nowhere. Nothing is sent anywhere unless listed here."""
    progress_bar: bool = True
    """A bar with ETA over the training steps on a terminal, a status line every 30 s otherwise."""

    def __post_init__(self) -> None:
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

        if isinstance(self.report_to, str):
            raise ValueError(f"report_to must be a list such as [tensorboard], got {self.report_to!r}")  # noqa: TRY004
        bad = [name for name in self.report_to if name not in INTEGRATION_TO_CALLBACK]
        if bad:
            valid = ", ".join(sorted(INTEGRATION_TO_CALLBACK))
            raise ValueError(f"report_to: unknown integration(s) {', '.join(map(repr, bad))}; valid: {valid}")
        if "wandb" in self.report_to:
            from aligngym.extras import require

            require("wandb", "report_to: [wandb]")

    def tracking(self, run_dir: Path) -> Tracking:
        return Tracking(tuple(self.report_to), run_dir / "tensorboard", self.progress_bar, print_logs=False)


@dataclass
class SFTJobConfig(JobTracking):
    """Supervised fine-tuning on the task's demonstrations, then pair pools sampled from the SFT model."""

    budget: TextCellBudget = field(default_factory=TextCellBudget)


def run_sft(config: SFTJobConfig, seed: int, run_dir: Path) -> dict[str, Any]:
    """Train the SFT model into ``run_dir/sft`` and sample its pair pools; report its mean true reward."""
    with tracking(config.tracking(run_dir)):
        artifacts = _artifacts(config.budget, None, seed, run_dir)
    return {
        "sft_true_return": float(np.mean(artifacts.sft_rewards)),
        "train_pairs": len(artifacts.train_pool),
        "heldout_pairs": len(artifacts.heldout_pool),
        "model_dir": str(artifacts.sft_dir),
    }


@dataclass
class DPOJobConfig(JobTracking):
    """DPO (any loss) from an SFT model on teacher-labelled pairs of its own samples."""

    loss: LossSpec | str = "r3m"
    """A loss of aligngym.rewards.losses with its parameters (``r3m`` or ``{name: r3m, params: {lam: 0.5}}``;
    bt and robust run on TRL's sigmoid / rDPO code), or one of TRL's DPO loss names (sigmoid, ipo, ...)."""
    noise: str = "mistake"
    """A teacher of aligngym.rewards.teachers: oracle, mistake, irrational, stochastic, skip, equal."""
    rate: float = 0.2
    """The teacher's level: flip probability for mistake, p for irrational, beta for stochastic."""
    sft_run: str | None = None
    """Run folder of an ``sft`` job to start from (its model and pools); None trains the SFT model here."""
    budget: TextCellBudget = field(default_factory=TextCellBudget)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (isinstance(self.loss, str) and self.loss not in LOSSES):
            self.loss = LossSpec.of(self.loss)
        dpo_loss_arguments(self.loss)  # an unknown loss or a bad parameter fails here
        _validate_noise(self.noise, self.rate)
        _check_sft_run(self.sft_run)


def run_dpo(config: DPOJobConfig, seed: int, run_dir: Path) -> dict[str, Any]:
    """Label the pairs, train the DPO variant, save ``run_dir/model``, evaluate against the true reward."""
    with tracking(config.tracking(run_dir)):
        artifacts = _artifacts(config.budget, config.sft_run, seed, run_dir)
        kept, first_preferred, corrupted = label_pool(artifacts.train_pool, config.noise, config.rate, seed)
        results = train_and_evaluate(
            config.budget,
            artifacts,
            config.loss,
            kept,
            first_preferred,
            corrupted,
            seed,
            save_to=run_dir / "model",
        )
    results["model_dir"] = str(run_dir / "model")
    return results


@dataclass
class RewardModelJobConfig(JobTracking):
    """A scalar reward model (initialised from the SFT model) on teacher-labelled pairs, any robust loss."""

    loss: LossSpec | str = "r3m"
    """A loss of aligngym.rewards.losses with its parameters (``r3m`` or ``{name: robust, params: {eps: 0.2}}``)."""
    noise: str = "mistake"
    rate: float = 0.2
    sft_run: str | None = None
    epochs: float = 3.0
    learning_rate: float = 1e-3
    batch_size: int = 32
    budget: TextCellBudget = field(default_factory=TextCellBudget)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.loss = LossSpec.of(self.loss)  # an unknown loss or a bad parameter fails here
        _validate_noise(self.noise, self.rate)
        _check_sft_run(self.sft_run)


def run_reward_model(config: RewardModelJobConfig, seed: int, run_dir: Path) -> dict[str, Any]:
    """Train the reward model, save ``run_dir/reward_model``; clean held-out accuracy and outlier scores."""
    with tracking(config.tracking(run_dir)):
        return _run_reward_model(config, seed, run_dir)


def _run_reward_model(config: RewardModelJobConfig, seed: int, run_dir: Path) -> dict[str, Any]:
    artifacts = _artifacts(config.budget, config.sft_run, seed, run_dir)
    kept, first_preferred, corrupted = label_pool(artifacts.train_pool, config.noise, config.rate, seed)
    spec = config.budget.spec(artifacts.sft_dir)
    tokenizer = load_tokenizer(spec)
    model = load_reward_model(spec, tokenizer, seed=seed)
    train_rows = _reward_rows(artifacts.train_pool.subset(kept).rows(first_preferred[kept]))
    heldout = artifacts.heldout_pool
    eval_rows = _reward_rows(heldout.rows(heldout.oracle_labels()))
    with tempfile.TemporaryDirectory(prefix="rm-") as scratch:
        trainer = build_reward_trainer(
            model,
            tokenizer,
            train_rows,
            spec,
            scratch,
            seed,
            eval_rows=eval_rows,
            **reward_loss_arguments(config.loss),
            num_train_epochs=config.epochs,
            learning_rate=config.learning_rate,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=64,
            max_length=128,
            logging_steps=5,
            prediction_loss_only=True,
        )
        trainer.train()
        clean_accuracy = trainer.evaluate()["eval_accuracy"]
        margins = trainer.reward_margins_of(trainer.train_dataset)
        flagged = trainer.margin_loss(margins).diagnostics.get("flagged")
    save_pretrained_atomic(trainer.model, tokenizer, run_dir / "reward_model")
    trainer.state.save_to_json(str(run_dir / "reward_model" / "trainer_state.json"))
    results = {
        "clean_accuracy": float(clean_accuracy),
        "train_pairs": int(kept.sum()),
        "corrupted_fraction": float(np.mean(corrupted[kept])),
        "model_dir": str(run_dir / "reward_model"),
    }
    results.update(outlier_scores(None if flagged is None else flagged.numpy(), corrupted[kept]))
    return results


def _reward_rows(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """TRL reward rows: the prompt is part of both texts (implicit-prompt format)."""
    return [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in rows]
