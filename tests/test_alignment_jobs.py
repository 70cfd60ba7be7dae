"""`aligngym train` jobs sft -> dpo -> reward-model on the tiny offline setup, and their validation."""

from __future__ import annotations

import json
import math

import gymnasium as gym
import pytest
from transformers import AutoModelForCausalLM

from aligngym.runs.errors import UsageError
from aligngym.runs.recipes import recipe_from_dict
from aligngym.runs.training import run_recipe

SMALL = [
    "budget.sft_examples=96",
    "budget.sft_epochs=1.0",
    "budget.train_prompts=24",
    "budget.heldout_prompts=16",
    "budget.samples_per_prompt=3",
    "budget.max_new_tokens=12",
    "budget.dpo_epochs=1.0",
    "budget.dpo_batch_size=8",
]


def test_sft_then_dpo_then_reward_model_through_recipes(tmp_path):
    sft_dir, sft = run_recipe("sft", SMALL, out=tmp_path)
    assert (sft_dir / "sft" / "model.safetensors").is_file() and sft["train_pairs"] > 0
    dpo_dir, dpo = run_recipe("dpo-r3m", [*SMALL, f"sft_run={sft_dir}"], out=tmp_path)
    # a plumbing test (values at this budget mean nothing): the metrics are measured, not NaN
    assert math.isfinite(dpo["clean_accuracy"]) and math.isfinite(dpo["flagged_fraction"])
    policy = AutoModelForCausalLM.from_pretrained(dpo["model_dir"])
    assert policy.config.model_type == "llama"
    history = json.loads((dpo_dir / "model" / "trainer_state.json").read_text())["log_history"]
    assert any("loss/flagged_fraction" in h for h in history)
    _, rm = run_recipe(
        "reward-model", [f"sft_run={sft_dir}", "epochs=1.0", "budget.dpo_batch_size=8"], out=tmp_path
    )
    assert math.isfinite(rm["clean_accuracy"]) and rm["train_pairs"] > 0
    env = gym.make("aligngym/TextGeneration-v0", reward_model=rm["model_dir"])
    env.reset(seed=0)
    _, reward, *_ = env.step(" The food was great.")
    assert isinstance(reward, float)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"loss": "dpo2"}, "unknown DPO loss 'dpo2'; valid: adaptive"),
        ({"loss": {"name": "r3m", "params": {"lam": 1.5}}}, r"lam=1.5 is outside the valid range"),
        ({"method": "r3m"}, "unknown config key 'method' for DPOJobConfig"),
        ({"noise": "myopic"}, "unknown text noise 'myopic'"),
        ({"noise": "mistake", "rate": 1.5}, r"rate 1.5 of 'mistake' must lie in \[0, 1\]"),
        ({"sft_run": "/nowhere"}, "not a finished sft run folder"),
        ({"budget": {"task": "poetry"}}, "unknown text task 'poetry'"),
        ({"budget": {"model": "/nowhere/model"}}, "model path '/nowhere/model' does not exist"),
    ],
)
def test_dpo_job_config_errors_name_the_bad_value(config, message):
    with pytest.raises(UsageError, match=message):
        recipe_from_dict({"job": "dpo", "config": config})


def test_reward_model_job_rejects_an_unknown_loss():
    with pytest.raises(UsageError, match="unknown loss 'sigmoid'; valid names: adaptive, .*r3m"):
        recipe_from_dict({"job": "reward-model", "config": {"loss": "sigmoid"}})
