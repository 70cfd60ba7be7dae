"""Robust DPO / reward-model trainers against TRL itself, config validation, logging, model loading."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from datasets import Dataset
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

from aligngym.alignment.dpo import RobustDPOConfig, RobustDPOTrainer, margin_dpo_losses
from aligngym.alignment.models import ModelSpec, load_causal_lm, load_reward_model, load_tokenizer
from aligngym.alignment.reward_model import RobustRewardConfig, RobustRewardTrainer
from aligngym.alignment.tiny import build_tiny_causal_lm, build_tiny_reward_model
from aligngym.envs.text.generation import get_task

TINY = {"hidden_size": 32, "layers": 1, "heads": 2}


@pytest.fixture(scope="module")
def corpus():
    return get_task("sentiment").corpus(64, seed=0)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return load_tokenizer(
        ModelSpec(tiny_vocab_size=300), corpus=[r["prompt"] + r["completion"] for r in corpus]
    )


@pytest.fixture(scope="module")
def pairs(corpus):
    return [
        {
            "prompt": corpus[i]["prompt"],
            "chosen": corpus[i]["completion"],
            "rejected": corpus[i + 1]["completion"],
        }
        for i in range(0, 16, 2)
    ]


def _args(tmp_path, cls, **kwargs):
    base = {
        "output_dir": str(tmp_path),
        "use_cpu": True,
        "bf16": False,
        "report_to": "none",
        "per_device_train_batch_size": 8,
        "max_steps": 2,
        "logging_steps": 1,
        "save_strategy": "no",
        "gradient_checkpointing": False,
        "disable_tqdm": True,
        "seed": 0,
    }
    base.update(kwargs)
    return cls(**base)


def _perturbed_policy(tokenizer):
    """A reference model and a policy that differs from it, so DPO margins are far from zero."""
    reference = build_tiny_causal_lm(tokenizer, seed=0, **TINY)
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
    grads = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    return loss.detach(), grads


@pytest.mark.parametrize(
    "robust_kwargs",
    [
        pytest.param({"loss_type": "r3m", "loss_params": {"lam": 1 - 1e-9}}, id="r3m-lambda-to-1"),
        pytest.param(
            {"loss_type": "adaptive", "loss_params": {"tau0": 1.0, "tau_max": 1.0, "rho0": math.log(2)}},
            id="adaptive-tau-1",
        ),
    ],
)
def test_robust_dpo_limits_equal_trl_sigmoid_dpo(tmp_path, tokenizer, pairs, robust_kwargs):
    policy, reference = _perturbed_policy(tokenizer)
    dataset = Dataset.from_list(pairs)
    stock = DPOTrainer(
        model=copy.deepcopy(policy),
        ref_model=copy.deepcopy(reference),
        args=_args(tmp_path, DPOConfig, loss_type="sigmoid", beta=1.0),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    ours = RobustDPOTrainer(
        model=copy.deepcopy(policy),
        ref_model=copy.deepcopy(reference),
        args=_args(tmp_path, RobustDPOConfig, beta=1.0, **robust_kwargs),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    batch = next(iter(stock.get_train_dataloader()))
    stock_loss, stock_grads = _loss_and_grads(stock, batch)
    our_loss, our_grads = _loss_and_grads(ours, batch)
    margins = ours.pair_margins()
    assert margins.abs().max() > 1.0  # a real test: the pairs are far from the tie point
    assert abs(float(stock_loss) - float(our_loss)) < 1e-6
    torch.testing.assert_close(our_grads, stock_grads, rtol=1e-5, atol=1e-6)
    for key in ("rewards/margins", "logits/chosen", "logits/rejected", "mean_token_accuracy", "entropy"):
        assert ours._metrics["train"][key][-1] == pytest.approx(stock._metrics["train"][key][-1]), key


def test_reward_trainer_bt_equals_trl_reward_trainer(tmp_path, tokenizer, pairs):
    model = build_tiny_reward_model(tokenizer, seed=0, **TINY)
    rows = [{"chosen": p["prompt"] + p["chosen"], "rejected": p["prompt"] + p["rejected"]} for p in pairs]
    dataset = Dataset.from_list(rows)
    stock = RewardTrainer(
        model=copy.deepcopy(model),
        args=_args(tmp_path, RewardConfig),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    ours = RobustRewardTrainer(
        model=copy.deepcopy(model),
        args=_args(tmp_path, RobustRewardConfig, loss_type="bt"),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    batch = next(iter(stock.get_train_dataloader()))
    stock_loss, stock_grads = _loss_and_grads(stock, dict(batch))
    our_loss, our_grads = _loss_and_grads(ours, dict(batch))
    assert float(stock_loss) != pytest.approx(math.log(2), abs=1e-4)
    assert abs(float(stock_loss) - float(our_loss)) < 1e-6
    torch.testing.assert_close(our_grads, stock_grads, rtol=1e-5, atol=1e-6)


def test_robust_trainers_train_and_log_what_the_methods_see(tmp_path, tokenizer, pairs):
    policy, reference = _perturbed_policy(tokenizer)
    dataset = Dataset.from_list(pairs)
    logged, initial_margins = {}, {}
    for loss_type in ("r3m", "adaptive_quadratic"):
        trainer = RobustDPOTrainer(
            model=copy.deepcopy(policy),
            ref_model=copy.deepcopy(reference),
            args=_args(tmp_path, RobustDPOConfig, loss_type=loss_type, beta=1.0),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
        initial_margins[loss_type] = trainer.pair_margins()  # the policy of the first step (one batch)
        before = [p.detach().clone() for p in trainer.model.parameters()]
        trainer.train()
        assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
        logged[loss_type] = trainer.state.log_history[0]
    flagged = float((initial_margins["r3m"] < 0).float().mean())  # lam = 0.5: R3M's threshold is 0
    assert 0.0 < flagged < 1.0 and logged["r3m"]["loss/flagged_fraction"] == pytest.approx(flagged)
    assert {"rewards/margins", "rewards/accuracies", "rewards/chosen", "logps/chosen"} <= set(logged["r3m"])
    assert {"loss/tau_mean", "loss/tau_at_min", "loss/tau_at_max"} <= set(logged["adaptive_quadratic"])
    rows = [{"chosen": p["prompt"] + p["chosen"], "rejected": p["prompt"] + p["rejected"]} for p in pairs]
    reward = RobustRewardTrainer(
        model=build_tiny_reward_model(tokenizer, seed=0, **TINY),
        args=_args(tmp_path, RobustRewardConfig, loss_type="r3m", loss_params={"lam": 0.3}),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    reward.train()
    assert reward.state.log_history[0]["loss/flagged_fraction"] == pytest.approx(
        1.0
    )  # margins ~0 < log(1/0.3 - 1)


def test_r3m_flags_the_pairs_the_policy_disagrees_with(tmp_path, tokenizer, pairs):
    policy, reference = _perturbed_policy(tokenizer)
    trainer = RobustDPOTrainer(
        model=policy,
        ref_model=reference,
        args=_args(tmp_path, RobustDPOConfig, loss_type="r3m", loss_params={"lam": 0.5}, beta=1.0),
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
    )
    margins = trainer.pair_margins()
    assert margins.shape == (len(pairs),)
    assert (trainer.flagged_pairs() == (margins < 0).numpy()).all()  # lambda = 0.5: threshold log(1) = 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_type": "r3n"}, r"unknown DPO loss_type 'r3n'; valid: sigmoid, .*r3m"),
        (
            {"loss_type": "r3m", "loss_params": {"lam": 1.0}},
            r"lam=1.0 is outside the valid range \(0.0, 1.0\)",
        ),
        ({"loss_type": "r3m", "loss_params": '{"lam": 0.7'}, "loss_params .* is not valid JSON"),
        (
            {"loss_type": "r3m", "loss_params": {"r3m_lambda": 0.7}},
            r"no parameter\(s\) r3m_lambda; valid: lam",
        ),
        (
            {"loss_type": "adaptive", "loss_params": {"tau0": 2.0, "tau_max": 1.0}},
            r"tau_max=1.0 is outside",
        ),
        ({"loss_type": "ipo", "loss_params": {"lam": 0.5}}, "TRL's ipo takes TRL's own fields"),
        ({"loss_type": "r3m", "label_smoothing": 0.1}, "label_smoothing is only supported with TRL's"),
        ({"loss_type": ["r3m", "sigmoid"]}, "cannot be combined"),
        ({"loss_type": "robust", "label_smoothing": 0.5}, r"label_smoothing in \[0, 0.5\)"),
        ({"loss_type": "r3m", "ld_alpha": 0.5}, "ld_alpha is only supported with TRL's loss types"),
        ({"loss_type": "sigmoid", "beta": 0.0}, "beta must be positive"),
    ],
)
def test_dpo_config_fails_at_construction(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _args(tmp_path, RobustDPOConfig, **kwargs)


def test_config_names_and_reward_config_validation(tmp_path):
    assert set(margin_dpo_losses()) >= {"bt", "r3m", "adaptive", "adaptive_quadratic", "smoothing"}
    assert "robust" not in margin_dpo_losses()  # TRL's own rDPO code runs it
    assert _args(tmp_path, RobustDPOConfig, loss_type="ipo").margin_loss_name is None
    with pytest.raises(ValueError, match="unknown reward-model loss_type 'dpo'; valid: bt, r3m"):
        _args(tmp_path, RobustRewardConfig, loss_type="dpo")
    with pytest.raises(ValueError, match="eps=0.6 is outside"):
        _args(tmp_path, RobustRewardConfig, loss_type="robust", loss_params={"eps": 0.6})


def test_models_load_by_path_and_train_with_dpo(tmp_path, tokenizer, pairs):
    model = build_tiny_causal_lm(tokenizer, seed=3, **TINY)
    model.save_pretrained(tmp_path / "sft")
    tokenizer.save_pretrained(tmp_path / "sft")
    spec = ModelSpec(name_or_path=str(tmp_path / "sft"))
    loaded_tokenizer = load_tokenizer(spec)
    loaded = load_causal_lm(spec, loaded_tokenizer)
    ids = loaded_tokenizer(pairs[0]["prompt"], return_tensors="pt").input_ids
    assert ids.tolist() == tokenizer(pairs[0]["prompt"], return_tensors="pt").input_ids.tolist()
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    # a path as the model: TRL loads the policy and builds the reference from the same folder
    trainer = RobustDPOTrainer(
        model=str(tmp_path / "sft"),
        args=_args(tmp_path, RobustDPOConfig, loss_type="r3m"),
        train_dataset=Dataset.from_list(pairs),
        processing_class=loaded_tokenizer,
    )
    assert trainer.ref_model is not None
    trainer.train()
    reward = load_reward_model(spec, loaded_tokenizer)
    assert reward.config.num_labels == 1 and reward(ids).logits.shape == (1, 1)


def test_lora_dpo_uses_the_adapter_free_model_as_reference(tmp_path, tokenizer, pairs):
    spec = ModelSpec(lora_r=4, lora_target_modules=["q_proj", "v_proj"], tiny_hidden_size=32, tiny_layers=1)
    trainer = RobustDPOTrainer(
        model=build_tiny_causal_lm(tokenizer, seed=0, **TINY),
        args=_args(tmp_path, RobustDPOConfig, loss_type="adaptive"),
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
        peft_config=spec.peft_config(),
    )
    assert trainer.ref_model is None
    assert torch.allclose(trainer.pair_margins(), torch.zeros(len(pairs)), atol=1e-6)  # LoRA B starts at zero
    trainer.train()
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_model_spec_rejects_a_missing_path_and_bad_values(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ModelSpec(name_or_path=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="valid choices: auto, float32, bfloat16, float16"):
        ModelSpec(dtype="fp8")
    assert ModelSpec(name_or_path="Qwen/Qwen2.5-0.5B").is_tiny is False  # a hub id is checked when loaded
    assert ModelSpec().torch_dtype() == (torch.bfloat16 if torch.cuda.is_available() else torch.float32)


@pytest.mark.gpu
def test_robust_dpo_runs_in_bf16_on_gpu(tmp_path, tokenizer, pairs):
    model = build_tiny_causal_lm(tokenizer, seed=0, **TINY).to(torch.bfloat16)
    trainer = RobustDPOTrainer(
        model=model,
        ref_model=copy.deepcopy(model),
        args=_args(tmp_path, RobustDPOConfig, loss_type="r3m", use_cpu=False, bf16=True),
        train_dataset=Dataset.from_list(pairs),
        processing_class=tokenizer,
    )
    trainer.train()
    assert trainer.model.device.type == "cuda"
    assert math.isfinite(trainer.state.log_history[-1]["train_loss"])
