"""The text domain of the robustness benchmark: one cell = (DPO loss, noise model, rate, seed).

Pipeline per seed (cached on disk, shared by every method and noise of that seed): SFT a model on
the task's demonstrations, sample completion pairs per prompt, score them with the task's TRUE
reward. Per cell: label the training pairs with a teacher of ``aligngym.rewards.teachers`` (same noise
models, parameters and corruption mask as the control domain), train DPO with the cell's loss (a
``LossSpec`` of ``aligngym.rewards.losses`` with its parameters, or one of TRL's own DPO losses such as
``ipo``; see ``aligngym.alignment.dpo.dpo_loss_arguments``), and evaluate:

- ``true_return``: mean true reward of the policy's samples on held-out prompts;
- ``normalized_return``: ``(true_return - R_sft) / (R_oracle - R_sft)`` where ``R_sft`` is the SFT
  model's and ``R_oracle`` that of stock sigmoid DPO trained on noise-free (oracle) labels with the
  same seed and budget: 0 = no better than SFT, 1 = as good as clean-label DPO (the text analogue of
  the control normalisation ``(R - R_random) / (R_true_reward_RL - R_random)``);
- ``win_rate_vs_sft``: share of held-out prompts where the policy's sample has the higher true
  reward than the SFT sample (ties count one half);
- ``clean_accuracy``: share of held-out pairs with oracle labels whose DPO implicit reward margin
  has the right sign;
- ``outlier_precision`` / ``outlier_recall`` / ``flagged_fraction``: the training pairs the loss flags
  as outliers (R3M's ``delta > 0`` at the final policy) against the pairs the teacher corrupted; NaN
  for losses that flag nothing.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
import transformers

from aligngym.alignment.dpo import dpo_loss_arguments
from aligngym.alignment.models import TINY, ModelSpec, load_causal_lm, load_tokenizer, save_pretrained_atomic
from aligngym.alignment.preference_data import PairPool, build_pair_pool, label_pool
from aligngym.alignment.sampling import sample_completions
from aligngym.alignment.training import ProgressFn, build_dpo_trainer, train_sft
from aligngym.envs.text.generation import TextTask, get_task
from aligngym.files import atomic_write_json
from aligngym.rewards.fitting import outlier_scores
from aligngym.rewards.losses import LossSpec

log = logging.getLogger(__name__)


@dataclass
class TextCellBudget:
    """Sizes and hyperparameters of one text cell (the ``**budget`` of ``run_text_cell``)."""

    task: str = "sentiment"
    model: str = "tiny"
    """``tiny`` (offline) or a local path / hub id of a causal LM to fine-tune (bf16 on a CUDA GPU)."""
    lora_r: int = 0
    """LoRA rank for SFT and DPO (0: train all weights); for real models on a GPU."""
    sft_examples: int = 2000
    sft_epochs: float = 2.0
    sft_learning_rate: float = 3e-3
    train_prompts: int = 320
    """Prompts whose sampled pairs form the DPO training set (a prompt whose samples all tie is dropped)."""
    heldout_prompts: int = 160
    """Prompts for the clean held-out pairs (clean_accuracy) and the policy samples (true_return)."""
    samples_per_prompt: int = 4
    max_new_tokens: int = 32
    dpo_epochs: float = 4.0
    dpo_learning_rate: float = 1e-3
    dpo_batch_size: int = 32
    beta: float = 0.1
    threads: int = 1
    """torch CPU threads (1 is fastest for tiny models on a busy machine); ignored on GPU."""
    cache_dir: str = "results/cache/text-robustness"

    def __post_init__(self) -> None:
        get_task(self.task)
        self.spec()  # a missing local model path fails here, not after minutes of work
        for name in (
            "sft_examples",
            "train_prompts",
            "heldout_prompts",
            "max_new_tokens",
            "dpo_batch_size",
            "threads",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.samples_per_prompt < 2:
            raise ValueError(f"samples_per_prompt must be >= 2 to form pairs, got {self.samples_per_prompt}")

    def spec(self, path: str | Path | None = None) -> ModelSpec:
        """The model to start from, or (``path``) a folder trained from it such as the SFT model."""
        return ModelSpec(
            name_or_path=str(path or self.model),
            lora_r=self.lora_r,
            gradient_checkpointing=self.model != TINY,
        )

    def seed_key(self) -> str:
        """Hash of the fields that the SFT model and the pair pools depend on."""
        fields = (
            "task",
            "model",
            "lora_r",
            "sft_examples",
            "sft_epochs",
            "sft_learning_rate",
            "train_prompts",
            "heldout_prompts",
            "samples_per_prompt",
            "max_new_tokens",
        )
        return _digest({f: getattr(self, f) for f in fields})

    def dpo_key(self) -> str:
        """Hash of every field that a DPO run depends on (the oracle run is cached under it)."""
        skip = {"threads", "cache_dir"}
        return _digest(
            {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in skip}
        )


def _digest(values: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class SeedArtifacts:
    """What every cell of one seed shares: the SFT model folder, the pair pools, the SFT baseline."""

    folder: Path
    train_pool: PairPool
    heldout_pool: PairPool
    eval_prompts: list[str]
    sft_rewards: list[float]

    @property
    def sft_dir(self) -> Path:
        return self.folder / "sft"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive file lock, so that parallel cells of one seed build its artifacts once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def seed_artifacts(
    budget: TextCellBudget, seed: int, folder: Path | None = None, quiet: bool = False
) -> SeedArtifacts:
    """Build (or load) the SFT model and pair pools of ``seed`` in ``folder`` (default: under the cache).

    ``quiet``: no per-log-step printing from the trainers (sweeps show a progress bar).
    """
    folder = folder or Path(budget.cache_dir) / f"{budget.task}-{budget.seed_key()}" / f"seed{seed}"
    with _locked(folder / ".lock"):
        if not (folder / "pools.json").exists():
            _build_seed_artifacts(budget, seed, folder, quiet)
    data = json.loads((folder / "pools.json").read_text())
    return SeedArtifacts(
        folder=folder,
        train_pool=PairPool(**data["train_pool"]),
        heldout_pool=PairPool(**data["heldout_pool"]),
        eval_prompts=data["eval_prompts"],
        sft_rewards=data["sft_rewards"],
    )


def _build_seed_artifacts(budget: TextCellBudget, seed: int, folder: Path, quiet: bool) -> None:
    task = get_task(budget.task)
    corpus = task.corpus(budget.sft_examples, seed)
    spec = budget.spec()
    tokenizer = load_tokenizer(spec, corpus=[r["prompt"] + r["completion"] for r in corpus])
    model = load_causal_lm(spec, tokenizer, seed=seed)
    with tempfile.TemporaryDirectory(prefix="sft-") as scratch:
        trainer = train_sft(
            model,
            tokenizer,
            corpus,
            spec,
            scratch,
            seed,
            num_train_epochs=budget.sft_epochs,
            learning_rate=budget.sft_learning_rate,
            per_device_train_batch_size=32,
            lr_scheduler_type="cosine",
            warmup_steps=10,
            max_length=128,
            quiet=quiet,
        )
        model = trainer.model
        if spec.lora_r:
            model = model.merge_and_unload()  # DPO starts from a plain model folder
    save_pretrained_atomic(model, tokenizer, folder / "sft")
    rng = np.random.default_rng([seed, 1])
    train_prompts = [task.sample_prompt(rng) for _ in range(budget.train_prompts)]
    heldout_prompts = [task.sample_prompt(rng) for _ in range(budget.heldout_prompts)]
    sample = {"samples_per_prompt": budget.samples_per_prompt, "max_new_tokens": budget.max_new_tokens}
    train_pool = build_pair_pool(model, tokenizer, task, train_prompts, seed=seed, **sample)
    heldout_pool = build_pair_pool(model, tokenizer, task, heldout_prompts, seed=seed + 1, **sample)
    sft_rewards = _policy_rewards(model, tokenizer, task, heldout_prompts, seed, budget)
    atomic_write_json(
        folder / "pools.json",
        {
            "train_pool": dataclasses.asdict(train_pool),
            "heldout_pool": dataclasses.asdict(heldout_pool),
            "eval_prompts": heldout_prompts,
            "sft_rewards": sft_rewards,
        },
    )


def _policy_rewards(
    model, tokenizer, task: TextTask, prompts: list[str], seed: int, budget: TextCellBudget
) -> list[float]:
    """True rewards of one sample per prompt (same sampling seed for every policy: common random numbers)."""
    texts = sample_completions(model, tokenizer, prompts, seed=seed + 2, max_new_tokens=budget.max_new_tokens)
    return [task.reward(p, t) for p, t in zip(prompts, texts)]


def train_and_evaluate(
    budget: TextCellBudget,
    artifacts: SeedArtifacts,
    loss: LossSpec | str,
    kept: np.ndarray,
    first_preferred: np.ndarray,
    corrupted: np.ndarray,
    seed: int,
    progress: ProgressFn | None = None,
    save_to: Path | None = None,
    quiet: bool = False,
) -> dict[str, float]:
    """Train DPO with ``loss`` from the seed's SFT model on the kept, labelled pairs; evaluate (see module doc).

    ``loss``: a ``LossSpec`` or one of TRL's DPO loss names; ``save_to``: also save the trained policy
    and its tokenizer there.
    """
    loss_fields = dpo_loss_arguments(loss)
    task = get_task(budget.task)
    sft = budget.spec(artifacts.sft_dir)
    tokenizer = load_tokenizer(sft)
    policy = load_causal_lm(sft, tokenizer)
    with tempfile.TemporaryDirectory(prefix="dpo-") as scratch:
        trainer = build_dpo_trainer(
            policy,
            tokenizer,
            artifacts.train_pool.subset(kept).rows(first_preferred[kept]),
            sft,
            scratch,
            seed,
            eval_rows=artifacts.heldout_pool.rows(artifacts.heldout_pool.oracle_labels()),
            progress=progress,
            quiet=quiet,
            beta=budget.beta,
            **loss_fields,
            num_train_epochs=budget.dpo_epochs,
            learning_rate=budget.dpo_learning_rate,
            per_device_train_batch_size=budget.dpo_batch_size,
            per_device_eval_batch_size=64,
            max_length=128,
            prediction_loss_only=True,
            logging_steps=5,
        )
        trainer.train()
        clean_accuracy = trainer.evaluate()["eval_rewards/accuracies"]
        flagged = trainer.flagged_pairs()
    corrupted = corrupted[kept]
    if save_to is not None:
        save_pretrained_atomic(trainer.model, tokenizer, save_to)
        trainer.state.save_to_json(str(save_to / "trainer_state.json"))
    rewards = _policy_rewards(trainer.model, tokenizer, task, artifacts.eval_prompts, seed, budget)
    policy_r, sft_r = np.asarray(rewards), np.asarray(artifacts.sft_rewards)
    results = {
        "true_return": float(policy_r.mean()),
        "sft_return": float(sft_r.mean()),
        "win_rate_vs_sft": float(np.mean((policy_r > sft_r) + 0.5 * (policy_r == sft_r))),
        "clean_accuracy": float(clean_accuracy),
        "corrupted_fraction": float(np.mean(corrupted)),
        "train_pairs": len(corrupted),
        "final_train_loss": next(
            float(h["train_loss"]) for h in trainer.state.log_history if "train_loss" in h
        ),
    }
    results.update(outlier_scores(flagged, corrupted))
    return results


def oracle_return(budget: TextCellBudget, artifacts: SeedArtifacts, seed: int) -> float:
    """True return of stock DPO on noise-free labels for this seed and budget (cached)."""
    path = artifacts.folder / f"oracle-{budget.dpo_key()}.json"
    with _locked(artifacts.folder / ".lock"):
        if not path.exists():
            labels = artifacts.train_pool.oracle_labels()
            clean = np.zeros(len(labels), bool)
            result = train_and_evaluate(
                budget, artifacts, LossSpec("bt"), ~clean, labels, clean, seed, quiet=True
            )
            atomic_write_json(path, result)
    return float(json.loads(path.read_text())["true_return"])


def run_text_cell(
    loss: LossSpec | str | dict[str, Any],
    noise: str,
    rate: float,
    seed: int,
    progress: ProgressFn | None = None,
    teacher_params: dict[str, Any] | None = None,
    **budget: Any,
) -> dict[str, float]:
    """One cell of the text robustness benchmark; returns the control rows' keys plus text extras.

    ``loss``: a ``LossSpec`` (or ``{name, params}``) of ``aligngym.rewards.losses``, or one of TRL's DPO
    loss names (``ipo``, ...); ``noise`` / ``rate`` / ``teacher_params``: a teacher of
    ``aligngym.rewards.teachers``, its level and further fields (``mistake`` 0.2: 20% flips;
    ``irrational`` 0.5; ``stochastic`` beta; ``oracle`` ignores the level); ``budget``: fields of
    ``TextCellBudget``. Same arguments, same numbers (on CPU).
    """
    loss = loss if isinstance(loss, str) else LossSpec.of(loss)
    dpo_loss_arguments(loss)  # a bad loss fails before any work
    config = TextCellBudget(**budget)
    if not torch.cuda.is_available():
        torch.set_num_threads(config.threads)
    datasets.disable_progress_bars()  # a sweep shows one bar per cell instead
    transformers.utils.logging.disable_progress_bar()
    artifacts = seed_artifacts(config, seed, quiet=True)
    kept, first_preferred, corrupted = label_pool(
        artifacts.train_pool, noise, rate, seed, **(teacher_params or {})
    )
    r_oracle = oracle_return(config, artifacts, seed)
    results = train_and_evaluate(
        config, artifacts, loss, kept, first_preferred, corrupted, seed, progress, quiet=True
    )
    gap = r_oracle - results["sft_return"]
    results["oracle_return"] = r_oracle
    results["normalized_return"] = (
        (results["true_return"] - results["sft_return"]) / gap if abs(gap) > 1e-9 else math.nan
    )
    return results
