"""Tiny offline language models: a tokenizer trained locally and a small Llama built from a config.

Nothing is downloaded: tests and CPU runs use these; real runs load any local path or hub id instead.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts`` (any string is encodable: bytes are the alphabet)."""
    tokenizer = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)
    fast.padding_side = "left"
    return fast


def tiny_llama_config(
    vocab_size: int, hidden_size: int = 128, layers: int = 4, heads: int = 4, **overrides
) -> LlamaConfig:
    """About 1M parameters at the defaults (vocab 512): 3 TRL steps take well under a second on CPU."""
    values = {
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": 4 * hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": heads,
        "max_position_embeddings": 256,
        "tie_word_embeddings": True,
    }
    values.update(overrides)
    return LlamaConfig(**values)


def _ids(config: LlamaConfig, tokenizer: PreTrainedTokenizerFast) -> None:
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id


def build_tiny_causal_lm(
    tokenizer: PreTrainedTokenizerFast, seed: int = 0, **config_overrides
) -> LlamaForCausalLM:
    """A randomly initialised (seeded) tiny Llama for ``tokenizer``."""
    config = tiny_llama_config(len(tokenizer), **config_overrides)
    _ids(config, tokenizer)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def build_tiny_reward_model(
    tokenizer: PreTrainedTokenizerFast, seed: int = 0, **config_overrides
) -> LlamaForSequenceClassification:
    """A tiny Llama with a scalar head (num_labels=1), as TRL's RewardTrainer expects."""
    config = tiny_llama_config(len(tokenizer), num_labels=1, **config_overrides)
    _ids(config, tokenizer)
    torch.manual_seed(seed)
    return LlamaForSequenceClassification(config)
