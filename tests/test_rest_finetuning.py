"""ReST's SFT stage goes through alignment's SFT builder: one set of TrainingArguments defaults for the
project, and the real-model path (LoRA, gradient checkpointing) trains and merges."""

from __future__ import annotations

import json

import pytest
import torch

from aligngym.agents.react.finetuning import supervised_finetune
from aligngym.agents.react.models import entity_token_ids, load_policy
from aligngym.agents.react.rest_config import SFTSettings
from aligngym.agents.react.rest_data import scripted_demonstrations
from aligngym.alignment import training
from aligngym.alignment.models import ModelSpec, load_causal_lm, load_tokenizer
from aligngym.envs.text.knowledge_base import KnowledgeBaseConfig, load_knowledge_base

SMALL = KnowledgeBaseConfig(seed=2, people=16, companies=5, universities=3, cities=6, countries=2)
TINY = ModelSpec(tiny_hidden_size=32, tiny_layers=1, tiny_heads=2)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    kb = load_knowledge_base(SMALL)
    path = tmp_path_factory.mktemp("kb") / "kb.json"
    kb.save(path)
    return kb, scripted_demonstrations(str(path), kb.questions("train")[:8], 1, 5)


def test_sft_stage_takes_alignments_trainer_arguments(task, monkeypatch, tmp_path) -> None:
    kb, rows = task
    calls, original = [], training.trainer_arguments

    def recording(spec, output_dir, seed, **overrides):
        calls.append((spec, seed, overrides))
        return original(spec, output_dir, seed, **overrides)

    monkeypatch.setattr(training, "trainer_arguments", recording)
    model, tokenizer = load_policy(TINY, kb, seed=0)
    frozen = entity_token_ids(tokenizer, kb)
    before = model.get_input_embeddings().weight[frozen].clone()
    settings = SFTSettings(max_steps=3, batch_size=4, learning_rate=1e-2, warmup_steps=1, max_length=256)
    supervised_finetune(model, tokenizer, rows, settings, TINY, 7, tmp_path / "log.json", frozen)
    [(spec, seed, overrides)] = calls
    assert spec is TINY and seed == 7
    assert overrides == {
        "max_steps": 3,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-2,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 1,
        "weight_decay": 0.0,
        "max_length": 256,
        "logging_steps": 1,
    }
    assert sum("loss" in r for r in json.loads((tmp_path / "log.json").read_text())) == 3
    assert torch.equal(model.get_input_embeddings().weight[frozen], before)  # frozen entity embeddings


def test_real_model_path_trains_with_lora_and_gradient_checkpointing(task, tmp_path) -> None:
    """A non-tiny spec (a saved folder) gets alignment's default of gradient checkpointing; the LoRA model
    comes back merged, and checkpointing does not change the numbers."""
    kb, rows = task
    model, tokenizer = load_policy(TINY, kb, seed=0)
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    settings = SFTSettings(max_steps=4, batch_size=4, learning_rate=1e-2, warmup_steps=1, max_length=256)
    losses = {}
    for checkpointing in (None, False):
        spec = ModelSpec(name_or_path=str(tmp_path / "base"), lora_r=4, gradient_checkpointing=checkpointing)
        tok = load_tokenizer(spec)
        trained = supervised_finetune(
            load_causal_lm(spec, tok, seed=0), tok, rows, settings, spec, 3, tmp_path / "log.json"
        )
        assert not hasattr(trained, "peft_config")  # merged back into a plain causal LM
        losses[spec.checkpointing()] = [
            r["loss"] for r in json.loads((tmp_path / "log.json").read_text()) if "loss" in r
        ]
    assert len(losses[True]) == 4 and losses[True] == pytest.approx(losses[False], rel=1e-5)
