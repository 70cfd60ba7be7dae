"""Reward learning from corrupted preferences: losses, teachers, pair data, reward nets, fitting, quality.

Names are imported on first use (``import aligngym.rewards.losses`` does not load the fitting loop).
"""

from aligngym.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".losses": [
            "LOSSES",
            "LossOutput",
            "LossSpec",
            "PreferenceLoss",
            "loss_params",
            "make_loss",
            "register_loss",
        ],
        ".teachers": ["NOISE_KINDS", "Teacher", "TeacherLabels", "make_teacher"],
        ".pairs": [
            "SCRIPTED_POLICIES",
            "PairConfig",
            "PairSplit",
            "PreferencePairs",
            "SegmentSet",
            "collect_segments",
            "label_pairs",
            "make_pair_split",
            "sample_pair_indices",
            "scripted_policy",
        ],
        ".reward_nets": ["RewardNet", "RewardNetConfig", "load_reward_net", "save_reward_net"],
        ".fitting": [
            "FitConfig",
            "FitResult",
            "clean_accuracy",
            "evaluate_reward",
            "fit_reward",
            "outlier_scores",
        ],
        ".reward_quality": [
            "canonical_rewards",
            "epic_distance",
            "epic_distance_tabular",
            "expected_calibration_error",
            "gap_curve",
            "policy_ranking",
            "preference_quality",
        ],
    },
)
