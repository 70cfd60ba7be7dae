"""LLM alignment on TRL: robust DPO and reward-model trainers, model loading, text preference pipeline.

Names are imported on first use, so ``import aligngym.alignment.models`` does not load trl.
"""

from aligngym.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".dpo": ["RobustDPOConfig", "RobustDPOTrainer", "dpo_loss_arguments"],
        ".reward_model": ["RobustRewardConfig", "RobustRewardTrainer", "reward_loss_arguments"],
        ".models": [
            "ModelSpec",
            "load_causal_lm",
            "load_reward_model",
            "load_tokenizer",
            "save_pretrained_atomic",
        ],
        ".training": [
            "build_dpo_trainer",
            "build_reward_trainer",
            "build_sft_trainer",
            "train_sft",
            "trainer_arguments",
        ],
        ".preference_data": ["PairPool", "build_pair_pool", "label_pool"],
        ".sampling": ["sample_completions"],
        ".text_pipeline": ["TextCellBudget", "run_text_cell"],
        ".jobs": [
            "DPOJobConfig",
            "RewardModelJobConfig",
            "SFTJobConfig",
            "run_dpo",
            "run_reward_model",
            "run_sft",
        ],
    },
)
