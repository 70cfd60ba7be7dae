"""Tensor low-rank (CP) actor-critic policies for SB3 and their distillation from trained MLP policies."""

from aligngym.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".policies": ["CPTable", "FactorCycleCallback", "TensorActorCriticPolicy", "TensorPolicyConfig"],
        ".discretization": ["Discretization"],
        ".distillation": [
            "DistillationReport",
            "decompose",
            "distill_policy",
            "evaluate_on_grid",
            "load_cp_tensor",
            "policy_tensors",
            "reconstruction_errors",
            "relative_error",
            "save_cp_tensor",
        ],
    },
)
