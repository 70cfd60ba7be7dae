"""Robust DPO on TRL: R3M-DPO and Ada-DPO beside TRL's own sigmoid / robust (rDPO) / ipo losses, one config.

``RobustDPOConfig.loss_type`` takes TRL's names (handled by TRL unchanged) or a loss of
``aligngym.rewards.losses`` that TRL lacks (``r3m``, ``adaptive``, ``adaptive_quadratic``, ``bt``,
``smoothing``, any newly registered one), with its parameters in ``loss_params`` (the loss's own names
and defaults). For the latter, ``RobustDPOTrainer.compute_loss`` (the public hook; TRL's private
``_compute_loss`` is not touched) computes the DPO margin
``beta * ((log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l)))`` with TRL's fused LM head and
reference helpers, hands it to the loss and weights it by ``loss_weights`` as TRL does. It logs what
TRL logs (``rewards/chosen|rejected|accuracies|margins``, ``logps/*``, ``logits/chosen|rejected``,
``mean_token_accuracy``, ``entropy``) and what the method sees: ``loss/flagged_fraction`` (R3M) and
``loss/tau_mean|tau_at_min|tau_at_max`` (adaptive). TRL options this path does not implement
(``ld_alpha``, ``f_divergence_type``, ``use_weighting``, ``label_smoothing``) are refused at construction.

``dpo_loss_arguments(spec)`` turns a ``LossSpec`` into these fields (what the text cells and jobs use).

Example:
    >>> config = RobustDPOConfig(output_dir="out", loss_type="r3m", loss_params={"lam": 0.75}, use_cpu=True, bf16=False)
    >>> config.loss_spec
    LossSpec(name='r3m', params={'lam': 0.75})
    >>> RobustDPOConfig(output_dir="out", loss_type="r3n", use_cpu=True, bf16=False)
    Traceback (most recent call last):
    ...
    ValueError: unknown DPO loss_type 'r3n'; valid: ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from trl import DPOConfig, DPOTrainer

from aligngym.alignment.loss_arguments import MarginLossArguments, diagnostic_scalars
from aligngym.rewards.losses import LOSSES, LossSpec

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
# Registered losses that TRL's DPOTrainer implements itself: a LossSpec of these runs on TRL's code
# (as the committed text benchmark did). name -> (TRL loss_type, the parameter that is label_smoothing).
TRL_IMPLEMENTS: dict[str, tuple[str, str | None]] = {"bt": ("sigmoid", None), "robust": ("robust", "eps")}
_NON_MODEL_KEYS = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}


def margin_dpo_losses() -> tuple[str, ...]:
    """Registered losses that TRL lacks, run by ``RobustDPOTrainer`` (TRL's ``robust`` keeps TRL's code)."""
    return tuple(name for name in LOSSES if name not in TRL_DPO_LOSSES)


def dpo_loss_arguments(loss: LossSpec | str) -> dict[str, Any]:
    """The ``RobustDPOConfig`` fields that train with ``loss``: a ``LossSpec`` or one of TRL's loss names."""
    if isinstance(loss, str):
        if loss in TRL_DPO_LOSSES:
            return {"loss_type": loss}
        if loss not in LOSSES:
            valid = ", ".join(sorted({*LOSSES, *TRL_DPO_LOSSES}))
            raise ValueError(f"unknown DPO loss {loss!r}; valid: {valid}")
        loss = LossSpec(loss)
    if loss.name in TRL_IMPLEMENTS:
        trl_name, smoothing = TRL_IMPLEMENTS[loss.name]
        fields: dict[str, Any] = {"loss_type": trl_name}
        if smoothing is not None:
            fields["label_smoothing"] = loss.resolved_params()[smoothing]
        return fields
    return {"loss_type": loss.name, "loss_params": dict(loss.params)}


@dataclass
class RobustDPOConfig(MarginLossArguments, DPOConfig):
    """TRL's DPOConfig plus ``loss_params`` of a registered loss, validated when the config is built.

    ``loss_type`` is one name (or TRL's list of names): TRL's, or one of ``margin_dpo_losses()`` alone.
    ``loss_spec`` is the validated ``LossSpec`` (None for TRL's losses other than ``robust``).
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        margin_names = margin_dpo_losses()
        valid = TRL_DPO_LOSSES + margin_names
        for name in self.loss_type:
            if name not in valid:
                raise ValueError(f"unknown DPO loss_type {name!r}; valid: {', '.join(valid)}")
        params = self._parsed_loss_params()
        margin = [name for name in self.loss_type if name in margin_names]
        self.loss_spec: LossSpec | None = None
        if margin:
            if len(self.loss_type) > 1:
                raise ValueError(
                    f"loss_type {margin[0]!r} cannot be combined with others; got {self.loss_type}"
                )
            unsupported = {
                "ld_alpha": self.ld_alpha is not None,
                "f_divergence_type": self.f_divergence_type != "reverse_kl",
                "use_weighting": self.use_weighting,
                "label_smoothing": self.label_smoothing != 0.0,
            }
            for option, is_set in unsupported.items():
                if is_set:
                    raise ValueError(
                        f"{option} is only supported with TRL's loss types, not with {margin[0]!r}"
                        + (
                            f" (its parameters go in loss_params: {LossSpec(margin[0]).resolved_params()})"
                            if option == "label_smoothing"
                            else ""
                        )
                    )
            self.loss_spec = self.margin_loss_spec(margin[0])  # validates lambda, tau0 <= tau_max, ...
        elif params:
            raise ValueError(
                f"loss_params {params} belong to the losses of aligngym.rewards.losses; TRL's "
                f"{', '.join(self.loss_type)} takes TRL's own fields (beta, label_smoothing, ...)"
            )
        if "robust" in self.loss_type:
            if not 0.0 <= self.label_smoothing < 0.5:
                raise ValueError(
                    f"loss_type 'robust' needs label_smoothing in [0, 0.5), got {self.label_smoothing}"
                )
            if len(self.loss_type) == 1:
                self.loss_spec = LossSpec("robust", {"eps": self.label_smoothing})
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")

    @property
    def margin_loss_name(self) -> str | None:
        """The rewards.losses name that ``RobustDPOTrainer`` computes itself, or None for TRL's own losses."""
        return self.loss_type[0] if self.loss_type[0] in margin_dpo_losses() else None


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
        spec = self.args.loss_spec if self.args.margin_loss_name is not None else None
        self.margin_loss = None if spec is None else spec.build()

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
        loss = out.loss * self.loss_weights[0]  # TRL's loss_weights (one loss here), as TRL applies them
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
        self._log_token_metrics(metrics, outputs, mask)
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

    def _log_token_metrics(self, metrics, outputs, mask) -> None:
        """TRL's ``logits/chosen|rejected`` (mean logit over completion tokens) and ``mean_token_accuracy``
        (share of chosen-completion tokens that are the policy's top-1), computed as TRL 1.16 does."""
        gather = self.accelerator.gather_for_metrics
        chosen_mask, rejected_mask = mask.chunk(2, dim=0)
        chosen_logits, rejected_logits = outputs.mean_logits[:, -mask.size(1) :].chunk(2, dim=0)
        for key, logits, part in (
            ("logits/chosen", chosen_logits, chosen_mask),
            ("logits/rejected", rejected_logits, rejected_mask),
        ):
            total = gather(logits[part.bool()].detach().sum()).sum().item()
            tokens = gather(part.sum()).sum().item()
            metrics[key].append(total / tokens if tokens > 0 else 0.0)
        chosen_top1, _ = outputs.is_top1[:, -mask.size(1) :].chunk(2, dim=0)
        correct = gather((chosen_top1 & chosen_mask.bool()).sum()).sum()
        tokens = gather(chosen_mask.sum()).sum()
        metrics["mean_token_accuracy"].append((correct / tokens).item() if tokens > 0 else 0.0)
