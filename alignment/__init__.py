"""LLM alignment on TRL: robust DPO and reward-model trainers, model loading, text preference pipeline."""

from aligngym.alignment.dpo import RobustDPOConfig, RobustDPOTrainer
from aligngym.alignment.models import ModelSpec, load_causal_lm, load_reward_model, load_tokenizer
from aligngym.alignment.reward_model import RobustRewardConfig, RobustRewardTrainer
from aligngym.alignment.text_pipeline import TextCellBudget, run_text_cell

__all__ = [
    "ModelSpec",
    "RobustDPOConfig",
    "RobustDPOTrainer",
    "RobustRewardConfig",
    "RobustRewardTrainer",
    "TextCellBudget",
    "load_causal_lm",
    "load_reward_model",
    "load_tokenizer",
    "run_text_cell",
]
