"""The DPO margin at the betas people use (the default 0.1, 0.5, 2), against TRL's own sigmoid DPO.

``bt`` through ``RobustDPOTrainer``'s margin path must equal TRL's ``sigmoid`` loss in value, gradient and
logged rewards at every beta (a margin that loses its beta agrees only at beta = 1). ``pair_margins``,
the second copy of the margin formula (it feeds the text benchmark's outlier precision / recall), must
reproduce TRL's loss and logged mean margin: a sign flip or a lost beta changes both.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from trl import DPOConfig, DPOTrainer

from aligngym.alignment.dpo import RobustDPOConfig, RobustDPOTrainer
from aligngym.alignment.models import ModelSpec, load_tokenizer
from aligngym.alignment.tiny import build_tiny_causal_lm
from aligngym.envs.text.generation import get_task


@pytest.fixture(scope="module")
def corpus():
    return get_task("sentiment").corpus(64, seed=0)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return load_tokenizer(
        ModelSpec(tiny_vocab_size=300), corpus=[r["prompt"] + r["completion"] for r in corpus]
    )


@pytest.fixture(scope="module")
def dataset(corpus):
    return Dataset.from_list(
        [
            {
                "prompt": corpus[i]["prompt"],
                "chosen": corpus[i]["completion"],
                "rejected": corpus[i + 1]["completion"],
            }
            for i in range(0, 16, 2)
        ]
    )


def _args(tmp_path, cls, **kwargs):
    return cls(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=8,
        per_device_eval_batch_size=8,
        max_steps=1,
        logging_steps=1,
        save_strategy="no",
        activation_checkpointing=False,
        disable_tqdm=True,
        seed=0,
        **kwargs,
    )


def _models(tokenizer):
    """A reference model and a policy perturbed away from it (margins far from zero)."""
    reference = build_tiny_causal_lm(tokenizer, seed=0, hidden_size=32, layers=1, heads=2)
    policy = copy.deepcopy(reference)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    return policy, reference


def _loss_and_grads(trainer, batch):
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return loss.detach(), torch.cat(
        [p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None]
    )


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_margin_path_equals_trl_sigmoid_dpo_at_every_beta(tmp_path, tokenizer, dataset, beta):
    policy, reference = _models(tokenizer)
    stock = DPOTrainer(
        model=copy.deepcopy(policy),
        ref_model=copy.deepcopy(reference),
        args=_args(tmp_path, DPOConfig, loss_type="sigmoid", beta=beta),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    ours = RobustDPOTrainer(
        model=copy.deepcopy(policy),
        ref_model=copy.deepcopy(reference),
        args=_args(tmp_path, RobustDPOConfig, loss_type="bt", beta=beta),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    batch = next(iter(stock.get_train_dataloader()))  # all 8 pairs
    stock_loss, stock_grads = _loss_and_grads(stock, batch)
    our_loss, our_grads = _loss_and_grads(ours, batch)
    assert float(stock_loss) == pytest.approx(float(our_loss), abs=1e-6)
    torch.testing.assert_close(our_grads, stock_grads, rtol=1e-5, atol=1e-7)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert ours._metrics["train"][key][-1] == pytest.approx(stock._metrics["train"][key][-1], abs=1e-6)

    margins = ours.pair_margins()
    stock_margin = stock._metrics["train"]["rewards/margins"][-1]
    assert abs(stock_margin) > 0.05 * beta  # far enough from 0 that a flipped sign shows
    assert float(margins.mean()) == pytest.approx(stock_margin, rel=1e-4, abs=1e-6)
    assert float(F.softplus(-margins).mean()) == pytest.approx(float(stock_loss), rel=1e-4, abs=1e-6)
