"""Robust reward models on TRL: RewardTrainer with the margin losses of ``aligngym.rewards.losses``.

The margin of a pair is ``r(chosen) - r(rejected) - margin`` (the optional ``margin`` column, as in
TRL). ``loss_type`` names any loss of ``aligngym.rewards.losses`` and ``loss_params`` its parameters
(the loss's own names and defaults, e.g. ``{"eps": 0.2}`` for ``robust``). ``loss_type="bt"``
reproduces TRL's RewardTrainer loss exactly; ``r3m``, ``adaptive``, ``adaptive_quadratic``,
``smoothing`` and ``robust`` make it robust to corrupted labels. Besides TRL's metrics it logs
``loss/flagged_fraction`` (R3M) and ``loss/tau_*`` (adaptive).

Example:
    >>> config = RobustRewardConfig(output_dir="rm", loss_type="r3m", loss_params={"lam": 0.3}, use_cpu=True, bf16=False)
    >>> config.loss_spec
    LossSpec(name='r3m', params={'lam': 0.3})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from trl import RewardConfig, RewardTrainer

from aligngym.alignment.loss_arguments import MarginLossArguments, diagnostic_scalars
from aligngym.rewards.losses import LOSSES, LossSpec


def reward_loss_arguments(loss: LossSpec) -> dict[str, Any]:
    """The ``RobustRewardConfig`` fields that train with ``loss``: ``loss_type`` and ``loss_params``."""
    return {"loss_type": loss.name, "loss_params": dict(loss.params)}


@dataclass
class RobustRewardConfig(MarginLossArguments, RewardConfig):
    """TRL's RewardConfig plus a loss name and its parameters, validated when the config is built.

    ``loss_spec`` is the validated ``LossSpec`` of ``loss_type`` and ``loss_params``.
    """

    loss_type: str = field(
        default="bt",
        metadata={"help": f"Preference loss on reward margins; one of {', '.join(LOSSES)}."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss_type not in LOSSES:
            raise ValueError(f"unknown reward-model loss_type {self.loss_type!r}; valid: {', '.join(LOSSES)}")
        self.loss_spec: LossSpec = self.margin_loss_spec(self.loss_type)  # validates the parameters


class RobustRewardTrainer(RewardTrainer):
    """RewardTrainer whose ``compute_loss`` sends reward margins to an ``aligngym.rewards.losses`` loss."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, RobustRewardConfig):
            raise TypeError(f"RobustRewardTrainer needs a RobustRewardConfig, got {type(self.args).__name__}")
        self.margin_loss = self.args.loss_spec.build()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        inputs["use_cache"] = False
        outputs = model(**{k: v for k, v in inputs.items() if k != "margin"})
        rewards_chosen, rewards_rejected = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
        margins = rewards_chosen - rewards_rejected
        if "margin" in inputs:
            margins = margins - inputs["margin"]
        out = self.margin_loss(margins)
        loss = out.loss
        if self.args.center_rewards_coefficient is not None:
            loss = loss + self.args.center_rewards_coefficient * torch.mean(
                (rewards_chosen + rewards_rejected) ** 2
            )
        self._log_metrics(mode, inputs, outputs, rewards_chosen, rewards_rejected, out)
        return (loss, outputs) if return_outputs else loss

    @torch.no_grad()
    def reward_margins_of(self, dataset) -> torch.Tensor:
        """Margins ``r(chosen) - r(rejected)`` of every pair of a prepared dataset, in order (current model)."""
        was_training = self.model.training
        self.model.eval()
        margins = []
        for inputs in self.get_eval_dataloader(dataset):
            logits = self.model(**{k: v for k, v in inputs.items() if k != "margin"}, use_cache=False).logits
            chosen, rejected = torch.chunk(logits.squeeze(-1), chunks=2)
            margins.append(self.accelerator.gather_for_metrics(chosen - rejected))
        self.model.train(was_training)
        return torch.cat(margins).float().cpu()

    def _log_metrics(self, mode, inputs, outputs, rewards_chosen, rewards_rejected, out) -> None:
        metrics, gather = self._metrics[mode], self.accelerator.gather_for_metrics
        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item() // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]
        with torch.no_grad():
            all_rewards = self.accelerator.gather(outputs.logits)
            metrics["min_reward"].append(all_rewards.min().item())
            metrics["mean_reward"].append(all_rewards.mean().item())
            metrics["max_reward"].append(all_rewards.max().item())
            metrics["accuracy"].append(
                gather((rewards_chosen > rewards_rejected).float().mean()).mean().item()
            )
            metrics["margin"].append(gather((rewards_chosen - rewards_rejected).mean()).mean().item())
            for key, value in diagnostic_scalars(out).items():
                metrics[f"loss/{key}"].append(gather(value.to(all_rewards.device)).mean().item())
