"""Agents: the generic SB3 job, the preference-based RL loop, and three subpackages that share nothing:
``tensor`` (CP low-rank policies), ``adversarial`` (RARL/QARL) and ``react`` (ReAct agent + ReST loop).

Names are imported on first use: ``from aligngym.agents import TensorActorCriticPolicy`` loads SB3 and
tensorly, never transformers (only the ``react`` names need the ``llm`` extra).
"""

from aligngym.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".sb3_algorithms": ["ALGORITHMS", "algorithm_class"],
        ".sb3_training": ["SB3Config", "build_model", "train_sb3"],
        ".preference_rl": ["PreferenceRLConfig", "PreferenceRLResult", "run_preference_rl"],
        ".tensor": ["TensorActorCriticPolicy", "TensorPolicyConfig", "distill_policy"],
        ".adversarial": [
            "AdversarialTrainer",
            "BaselineConfig",
            "EvaluationConfig",
            "QARLConfig",
            "RARLConfig",
            "TemperedSAC",
            "evaluate_players",
            "train_adversarial",
        ],
        ".react": ["AgentConfig", "ReActAgent", "RestConfig", "RestLoop", "ScriptedExpert", "train_rest"],
    },
)
