"""The ``loss_params`` config field of the DPO and reward-model trainers, and the diagnostics they log.

The losses, their parameter names and their defaults live in ``aligngym.rewards.losses`` only: a
trainer config names a loss (``loss_type``) and gives any of its parameters in the loss's own names
(``loss_params={"lam": 0.75}``); both become one validated ``LossSpec``. Nothing is re-declared here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch

from aligngym.rewards.losses import LossOutput, LossSpec

# Diagnostics worth a curve: R3M's share of flagged pairs, adaptive scaling's temperatures.
LOGGED_DIAGNOSTICS = ("flagged_fraction", "tau_mean", "tau_at_min", "tau_at_max")


@dataclass
class MarginLossArguments:
    """The parameters of the ``aligngym.rewards.losses`` loss that the config's ``loss_type`` names."""

    loss_params: dict[str, Any] | str | None = field(
        default=None,
        metadata={
            "help": "Parameters of the aligngym.rewards.losses loss named by loss_type, in the loss's own names "
            'and with its defaults for the rest, e.g. {"lam": 0.75} for r3m or {"tau0": 0.1, "tau_max": 4.0} '
            "for adaptive (a JSON string on the command line)."
        },
    )

    def _parsed_loss_params(self) -> dict[str, Any]:
        """``loss_params`` as a dict (the command line passes JSON); stored back parsed."""
        if isinstance(self.loss_params, str):
            try:
                self.loss_params = json.loads(self.loss_params)
            except json.JSONDecodeError as exc:
                raise ValueError(f"loss_params {self.loss_params!r} is not valid JSON: {exc}") from None
        return dict(self.loss_params or {})

    def margin_loss_spec(self, name: str) -> LossSpec:
        """``LossSpec(name, loss_params)``; raises ValueError on an unknown or bad parameter."""
        return LossSpec(name, self._parsed_loss_params())


def diagnostic_scalars(out: LossOutput) -> dict[str, torch.Tensor]:
    """The batch-level diagnostics of a loss output that trainers log (detached 0-d tensors)."""
    return {
        key: torch.as_tensor(out.diagnostics[key], dtype=torch.float32)
        for key in LOGGED_DIAGNOSTICS
        if key in out.diagnostics
    }
