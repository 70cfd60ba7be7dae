"""Atomic writes and the offline tiny language model fixture."""

from __future__ import annotations

import pytest
import torch

from aligngym.files import atomic_path, atomic_write_json


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_json(target, {"step": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("torn")
        raise RuntimeError("killed mid-write")
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_tiny_lm_is_offline_seeded_and_trains(tiny_lm, tmp_path):
    model, tokenizer = tiny_lm
    ids = tokenizer("unicode: café 東京", return_tensors="pt").input_ids
    assert tokenizer.decode(ids[0]) == "unicode: café 東京"
    out = model(input_ids=ids, labels=ids)
    assert out.logits.shape == (1, ids.shape[1], len(tokenizer))
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.save_pretrained(tmp_path / "m")
    tokenizer.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
    from aligngym.alignment.tiny import build_tiny_causal_lm

    again = build_tiny_causal_lm(tokenizer, seed=0, hidden_size=64, layers=2, heads=2)
    for a, b in zip(
        again.parameters(),
        build_tiny_causal_lm(tokenizer, seed=0, hidden_size=64, layers=2, heads=2).parameters(),
    ):
        assert torch.equal(a, b)
