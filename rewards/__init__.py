"""Reward learning from corrupted preferences: losses, teachers, pair data, reward nets, fitting."""

from aligngym.rewards.fitting import (
    FitConfig,
    FitResult,
    clean_accuracy,
    evaluate_reward,
    fit_reward,
    outlier_scores,
)
from aligngym.rewards.losses import LOSSES, LossOutput, PreferenceLoss, make_loss
from aligngym.rewards.pairs import (
    PairConfig,
    PairSplit,
    PreferencePairs,
    SegmentSet,
    collect_segments,
    label_pairs,
    make_pair_split,
    sample_pair_indices,
)
from aligngym.rewards.reward_nets import RewardNet, RewardNetConfig, load_reward_net, save_reward_net
from aligngym.rewards.teachers import NOISE_KINDS, Teacher, TeacherLabels, make_teacher

__all__ = [
    "LOSSES",
    "NOISE_KINDS",
    "FitConfig",
    "FitResult",
    "LossOutput",
    "PairConfig",
    "PairSplit",
    "PreferenceLoss",
    "PreferencePairs",
    "RewardNet",
    "RewardNetConfig",
    "SegmentSet",
    "Teacher",
    "TeacherLabels",
    "clean_accuracy",
    "collect_segments",
    "evaluate_reward",
    "fit_reward",
    "label_pairs",
    "load_reward_net",
    "make_loss",
    "make_pair_split",
    "make_teacher",
    "outlier_scores",
    "sample_pair_indices",
    "save_reward_net",
]
