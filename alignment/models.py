"""Model loading for both worlds: tiny offline models for tests and CPU runs, any local path or hub id on GPUs.

``ModelSpec(name_or_path="tiny")`` builds a small Llama from a config with a tokenizer trained locally on
the task corpus (nothing is downloaded). Any other value is given to ``AutoTokenizer`` /
``AutoModelForCausalLM`` / ``AutoModelForSequenceClassification.from_pretrained``: a folder written by
``save_pretrained`` (ours or anyone's) or a hub id already in the local cache or reachable. On a CUDA
GPU the default dtype is bfloat16; LoRA adapters come from peft. Several GPUs: run the same script
under ``accelerate launch`` (the TRL trainers distribute; leave ``device_map`` unset then).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from aligngym.alignment.tiny import build_tiny_causal_lm, build_tiny_reward_model, train_bpe_tokenizer

TINY = "tiny"
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class ModelSpec:
    """Which model to load and how (YAML-friendly; nested in the job configs)."""

    name_or_path: str = TINY
    """``tiny`` (offline, built from a config), a local ``save_pretrained`` folder, or a hub id."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """``auto``: bfloat16 on a CUDA GPU that supports it, float32 otherwise."""
    device_map: str | None = None
    """e.g. ``auto`` to split one large model over the visible GPUs (single process, not with accelerate launch)."""
    attn_implementation: str | None = None
    """e.g. ``sdpa`` or ``flash_attention_2``; None lets transformers choose."""
    trust_remote_code: bool = False
    lora_r: int = 0
    """LoRA rank; 0 trains all weights."""
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    gradient_checkpointing: bool | None = None
    """Recompute activations in backward to save memory; None: on for real models, off for tiny ones."""
    tiny_hidden_size: int = 64
    tiny_layers: int = 2
    tiny_heads: int = 2
    tiny_vocab_size: int = 512

    def __post_init__(self) -> None:
        if not self.name_or_path:
            raise ValueError("model name_or_path is empty; give 'tiny', a local folder or a hub id")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is not valid; valid choices: {', '.join(DTYPES)}")
        if looks_like_local_path(self.name_or_path) and not Path(self.name_or_path).expanduser().is_dir():
            raise ValueError(f"model path {self.name_or_path!r} does not exist (or is not a folder)")
        if self.lora_r < 0:
            raise ValueError(f"lora_r must be >= 0 (0 = full fine-tuning), got {self.lora_r}")
        if self.tiny_hidden_size % self.tiny_heads:
            raise ValueError(
                f"tiny_hidden_size {self.tiny_hidden_size} must be divisible by tiny_heads {self.tiny_heads}"
            )

    @property
    def is_tiny(self) -> bool:
        return self.name_or_path == TINY

    def torch_dtype(self) -> torch.dtype:
        if self.dtype != "auto":
            return getattr(torch, self.dtype)
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32

    def checkpointing(self) -> bool:
        """Whether trainers should use gradient checkpointing for this model."""
        return self.gradient_checkpointing if self.gradient_checkpointing is not None else not self.is_tiny

    def bf16(self) -> bool:
        """Whether the TRL trainer should run in bf16 mixed precision for this model."""
        return self.torch_dtype() == torch.bfloat16

    def peft_config(self, task_type: Literal["CAUSAL_LM", "SEQ_CLS"] = "CAUSAL_LM"):
        """A peft ``LoraConfig`` when ``lora_r > 0``, else None (full fine-tuning)."""
        if self.lora_r == 0:
            return None
        from peft import LoraConfig

        targets = self.lora_target_modules
        return LoraConfig(
            task_type=task_type,
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=targets[0] if targets == ["all-linear"] else list(targets),
            bias="none",
        )


def looks_like_local_path(name: str) -> bool:
    """A name that can only be a file-system path (a hub id is ``name`` or ``org/name``, one slash at most)."""
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or Path(name).exists()


def load_tokenizer(spec: ModelSpec, corpus: Iterable[str] | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of ``spec``: trained on ``corpus`` for ``tiny``, else loaded; pad token set, left padding."""
    if spec.is_tiny:
        if corpus is None:
            raise ValueError("a tiny model's tokenizer is trained on the task corpus: pass corpus=")
        return train_bpe_tokenizer(corpus, vocab_size=spec.tiny_vocab_size)
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.name_or_path, trust_remote_code=spec.trust_remote_code)
    except OSError as exc:
        raise ValueError(
            f"cannot load a tokenizer from {spec.name_or_path!r}: {str(exc).splitlines()[0]}"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _pretrained_kwargs(spec: ModelSpec) -> dict:
    kwargs: dict = {"dtype": spec.torch_dtype(), "trust_remote_code": spec.trust_remote_code}
    if spec.device_map is not None:
        kwargs["device_map"] = spec.device_map
    if spec.attn_implementation is not None:
        kwargs["attn_implementation"] = spec.attn_implementation
    return kwargs


def load_causal_lm(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> PreTrainedModel:
    """A causal LM: a seeded tiny Llama for ``tiny``, else ``AutoModelForCausalLM.from_pretrained``."""
    if spec.is_tiny:
        return build_tiny_causal_lm(
            tokenizer,
            seed=seed,
            hidden_size=spec.tiny_hidden_size,
            layers=spec.tiny_layers,
            heads=spec.tiny_heads,
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(spec.name_or_path, **_pretrained_kwargs(spec))
    except OSError as exc:
        raise ValueError(
            f"cannot load a causal LM from {spec.name_or_path!r}: {str(exc).splitlines()[0]}"
        ) from None
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def load_reward_model(spec: ModelSpec, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> PreTrainedModel:
    """A scalar reward model (``num_labels=1``), as TRL's RewardTrainer expects."""
    if spec.is_tiny:
        return build_tiny_reward_model(
            tokenizer,
            seed=seed,
            hidden_size=spec.tiny_hidden_size,
            layers=spec.tiny_layers,
            heads=spec.tiny_heads,
        )
    torch.manual_seed(seed)  # the new scalar head is initialised randomly
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            spec.name_or_path, num_labels=1, **_pretrained_kwargs(spec)
        )
    except OSError as exc:
        raise ValueError(
            f"cannot load a reward model from {spec.name_or_path!r}: {str(exc).splitlines()[0]}"
        ) from None
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def save_pretrained_atomic(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path
) -> Path:
    """``save_pretrained`` model and tokenizer into a temporary sibling folder, then rename it into place.

    A run killed mid-save leaves no half-written model folder; an existing folder is replaced.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target
