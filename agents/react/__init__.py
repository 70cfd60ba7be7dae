"""The ReAct agent over any causal LM, its scripted expert and policies, and the ReST self-improvement loop
(settings, rankers, SFT stage). Needs the ``llm`` extra; importing this package alone imports none of it."""

from aligngym.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".agent": [
            "AgentConfig",
            "Candidate",
            "ReActAgent",
            "StepRecord",
            "Trajectory",
            "evaluate_policy",
            "trajectory_metrics",
        ],
        ".expert": ["Demonstration", "ScriptedExpert"],
        ".models": ["EntityRenamer", "build_word_tokenizer", "load_policy"],
        ".rest_config": ["RANKERS", "RestConfig", "SFTSettings"],
        ".rankers": ["JudgeRanker", "OutcomeVerifier", "RankItem", "Ranker", "RewardModelRanker", "relabel"],
        ".finetuning": ["supervised_finetune"],
        ".rest": ["RestLoop", "train_rest"],
    },
)
