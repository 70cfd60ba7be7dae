"""Robust DPO on TRL: R3M-DPO and Ada-DPO beside TRL's own sigmoid / robust (rDPO) / ipo losses, one config.

``RobustDPOConfig.loss_type`` takes TRL's names (handled by TRL unchanged) or a margin loss of
``aligngym.rewards.losses`` (``r3m``, ``adaptive``, ``adaptive_quadratic``, ``bt``, ``smoothing``). For
the latter, ``RobustDPOTrainer.compute_loss`` (the public hook; TRL's private ``_compute_loss`` is not
touched) computes the DPO margin ``beta * ((log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)))``
with TRL's fused LM head and reference helpers, and hands it to the loss. It logs what TRL logs for the
rewards (``rewards/chosen|rejected|accuracies|margins``, ``logps/*``, ``entropy``) and what the method
sees: ``loss/flagged_fraction`` (R3M) and ``loss/tau_mean|tau_at_min|tau_at_max`` (adaptive).

Example:
    >>> config = RobustDPOConfig(output_dir="out", loss_type="r3m", r3m_lambda=0.75, use_cpu=True, bf16=False)
    >>> RobustDPOConfig(output_dir="out", loss_type="r3n")
    Traceback (most recent call last):
    ...
    ValueError: unknown DPO loss_type 'r3n'; valid: ...
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from trl import DPOConfig, DPOTrainer

from aligngym.alignment.loss_arguments import MarginLossArguments, diagnostic_scalars
from aligngym.rewards.losses import LOSSES

# TRL 1.16's DPO loss names (DPOTrainer checks them only at the first step; we check at construction).
TRL_DPO_LOSSES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
# Margin losses of rewards.losses that TRL lacks (TRL's "robust" keeps TRL's implementation).
MARGIN_DPO_LOSSES = tuple(name for name in LOSSES if name not in TRL_DPO_LOSSES)
_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}


@dataclass
class RobustDPOConfig(MarginLossArguments, DPOConfig):
    """TRL's DPOConfig plus the margin-loss parameters, validated when the config is built.

    ``loss_type`` is one name (or TRL's list of names): TRL's, or one of ``MARGIN_DPO_LOSSES`` alone.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        valid = TRL_DPO_LOSSES + MARGIN_DPO_LOSSES
        for name in self.loss_type:
            if name not in valid:
                raise ValueError(f"unknown DPO loss_type {name!r}; valid: {', '.join(valid)}")
        margin = [name for name in self.loss_type if name in MARGIN_DPO_LOSSES]
        if margin:
            if len(self.loss_type) > 1:
                raise ValueError(
                    f"loss_type {margin[0]!r} cannot be combined with others; got {self.loss_type}"
                )
            unsupported = {
                "ld_alpha": self.ld_alpha is not None,
                "f_divergence_type": self.f_divergence_type != "reverse_kl",
                "use_weighting": self.use_weighting,
            }
            for option, is_set in unsupported.items():
                if is_set:
                    raise ValueError(
                        f"{option} is only supported with TRL's loss types, not with {margin[0]!r}"
                    )
            self.build_margin_loss(
                margin[0], eps=self.label_smoothing
            )  # validates lambda, tau0 <= tau_max, ...
        if "robust" in self.loss_type and not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(
                f"loss_type 'robust' needs label_smoothing in [0, 0.5), got {self.label_smoothing}"
            )
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")

    @property
    def margin_loss_name(self) -> str | None:
        """The rewards.losses name this config trains with, or None for TRL's own losses."""
        return self.loss_type[0] if self.loss_type[0] in MARGIN_DPO_LOSSES else None


class RobustDPOTrainer(DPOTrainer):
    """DPOTrainer whose ``compute_loss`` sends DPO margins to an ``aligngym.rewards.losses`` loss.

    With a TRL loss name it is TRL's DPOTrainer unchanged. Use exactly as DPOTrainer (datasets with
    ``prompt`` / ``chosen`` / ``rejected``; a ``ref_model``, a saved model path, peft or precomputed
    reference log-probs).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, RobustDPOConfig):
            raise TypeError(f"RobustDPOTrainer needs a RobustDPOConfig, got {type(self.args).__name__}")
        name = self.args.margin_loss_name
        self.margin_loss = (
            None if name is None else self.args.build_margin_loss(name, eps=self.args.label_smoothing)
        )

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.margin_loss is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        outputs, chosen_logps, rejected_logps, model_kwargs = self.policy_log_probs(model, inputs)
        ref_chosen_logps, ref_rejected_logps = self.reference_log_probs(inputs)
        chosen_logratios = chosen_logps - ref_chosen_logps
        rejected_logratios = rejected_logps - ref_rejected_logps
        margins = self.beta * (chosen_logratios - rejected_logratios)
        out = self.margin_loss(margins)
        loss = out.loss
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss
        self._log_margin_metrics(
            mode, inputs, outputs, chosen_logps, rejected_logps, chosen_logratios, rejected_logratios, out
        )
        if return_outputs:
            with torch.no_grad():
                outputs = model(**model_kwargs)
            return loss, outputs
        return loss

    def policy_log_probs(self, model, inputs):
        """Sequence log-probs of the chosen and rejected completions under ``model`` (TRL's fused LM head)."""
        model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
        model_kwargs["use_cache"] = False
        if self.aux_loss_enabled:
            model_kwargs["output_router_logits"] = True
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        seq_len = completion_mask.size(1) - 1
        chosen_logps, rejected_logps = outputs.log_probs[:, -seq_len:].sum(dim=1).chunk(2, dim=0)
        return outputs, chosen_logps, rejected_logps, model_kwargs

    def reference_log_probs(self, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference log-probs: precomputed in the batch, or TRL's ``compute_ref_log_probs`` (peft-aware)."""
        if self.precompute_ref_logps:
            return inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        reference = self.ref_model if self.ref_model is not None else self.model
        return self.compute_ref_log_probs(reference, inputs)

    @torch.no_grad()
    def pair_margins(self, dataset=None) -> torch.Tensor:
        """DPO margins of every pair of ``dataset`` (default: the training set) under the current policy, in order."""
        was_training = self.model.training
        self.model.eval()
        margins = []
        for inputs in self.get_eval_dataloader(dataset if dataset is not None else self.train_dataset):
            _, chosen, rejected, _ = self.policy_log_probs(self.model, inputs)
            ref_chosen, ref_rejected = self.reference_log_probs(inputs)
            margins.append(
                self.accelerator.gather_for_metrics(
                    self.beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
                )
            )
        self.model.train(was_training)
        return torch.cat(margins).float().cpu()

    def flagged_pairs(self, dataset=None) -> np.ndarray | None:
        """The pairs the margin loss flags as outliers at the current policy (R3M: ``delta > 0``); None if it flags none."""
        if self.margin_loss is None:
            return None
        flagged = self.margin_loss(self.pair_margins(dataset)).diagnostics.get("flagged")
        return None if flagged is None else flagged.numpy().astype(bool)

    def _log_margin_metrics(
        self, mode, inputs, outputs, chosen_logps, rejected_logps, chosen_logratios, rejected_logratios, out
    ) -> None:
        metrics, gather = self._metrics[mode], self.accelerator.gather_for_metrics
        mask = inputs["completion_mask"][..., 1:]
        entropy_sum = gather((outputs.entropy[:, -mask.size(1) :].detach() * mask).sum()).sum()
        total_tokens = gather(mask.sum()).sum()
        metrics["entropy"].append((entropy_sum / total_tokens).item() if total_tokens > 0 else 0.0)
        if mode == "train":
            self._total_train_tokens += gather(inputs["attention_mask"].sum()).sum().item() // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]
        chosen_rewards = gather(self.beta * chosen_logratios.detach())
        rejected_rewards = gather(self.beta * rejected_logratios.detach())
        metrics["rewards/chosen"].append(chosen_rewards.mean().item())
        metrics["rewards/rejected"].append(rejected_rewards.mean().item())
        metrics["rewards/accuracies"].append((chosen_rewards > rejected_rewards).float().mean().item())
        metrics["rewards/margins"].append((chosen_rewards - rejected_rewards).mean().item())
        metrics["logps/chosen"].append(gather(chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(gather(rejected_logps.detach()).mean().item())
        for key, value in diagnostic_scalars(out).items():
            metrics[f"loss/{key}"].append(gather(value.to(chosen_logps.device)).mean().item())
