"""Config fields of the margin losses of ``aligngym.rewards.losses``, shared by the DPO and reward-model trainers.

The formulas live in ``rewards/losses.py`` only; this module maps config fields to ``make_loss``
parameters and turns a loss's diagnostics into the scalars a trainer logs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aligngym.rewards.losses import LossOutput, PreferenceLoss, make_loss

# Diagnostics worth a curve: R3M's share of flagged pairs, adaptive scaling's temperatures.
LOGGED_DIAGNOSTICS = ("flagged_fraction", "tau_mean", "tau_at_min", "tau_at_max")


@dataclass
class MarginLossArguments:
    """Parameters of the robust margin losses (used only by the loss that names them)."""

    r3m_lambda: float = field(
        default=0.75,
        metadata={
            "help": "R3M's l1 weight lambda in (0, 1): pairs with margin below log(1/lambda - 1) are flagged as "
            "outliers and their gradient is clipped at lambda. The R3M paper uses 0.65-0.85 for LLMs."
        },
    )
    ada_tau0: float = field(
        default=0.1, metadata={"help": "Adaptive scaling: lower bound tau0 > 0 of the per-pair temperature."}
    )
    ada_tau_max: float = field(
        default=1.0,
        metadata={"help": "Adaptive scaling: upper bound tau_max >= tau0 of the per-pair temperature."},
    )
    ada_rho0: float = field(
        default=0.1,
        metadata={
            "help": "Adaptive scaling: KL-constraint weight rho0 > 0 (rho0 >= log 2 puts every tau at tau0)."
        },
    )
    ada_newton_steps: int = field(
        default=5,
        metadata={"help": "Adaptive scaling: Newton steps per batch for the temperatures (newton solver)."},
    )
    ada_solver: str = field(
        default="exact",
        metadata={
            "help": "Adaptive scaling: 'exact' per-pair minimiser or the official code's 'newton' iteration."
        },
    )

    def build_margin_loss(self, name: str, eps: float | None = None) -> PreferenceLoss:
        """``make_loss(name, ...)`` with the fields that loss takes; raises ValueError on bad values."""
        if name == "r3m":
            return make_loss(name, lam=self.r3m_lambda)
        if name in ("adaptive", "adaptive_quadratic"):
            params = {
                "tau0": self.ada_tau0,
                "tau_max": self.ada_tau_max,
                "rho0": self.ada_rho0,
                "newton_steps": self.ada_newton_steps,
            }
            if name == "adaptive":
                params["solver"] = self.ada_solver
            return make_loss(name, **params)
        if name in ("smoothing", "robust"):
            return make_loss(name, eps=eps if eps is not None else 0.0)
        return make_loss(name)


def diagnostic_scalars(out: LossOutput) -> dict[str, torch.Tensor]:
    """The batch-level diagnostics of a loss output that trainers log (detached 0-d tensors)."""
    return {
        key: torch.as_tensor(out.diagnostics[key], dtype=torch.float32)
        for key in LOGGED_DIAGNOSTICS
        if key in out.diagnostics
    }
