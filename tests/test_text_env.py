"""aligngym/TextGeneration-v0 and its text tasks: Gymnasium API, true rewards, reward sources."""

from __future__ import annotations

import pickle

import gymnasium as gym
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import aligngym  # noqa: F401
from aligngym.envs.text.generation import (
    TEXT_TASKS,
    WIDE_CHARSET,
    TextGenerationEnv,
    arithmetic_reward,
    get_task,
    sentiment_reward,
)


@pytest.mark.parametrize("task", sorted(TEXT_TASKS))
def test_check_env_and_seeded_prompts(task):
    env = gym.make("aligngym/TextGeneration-v0", task=task)
    check_env(env.unwrapped, skip_render_check=True)
    first = [env.reset(seed=7)[0] for _ in range(2)]
    assert first[0] == first[1] and env.observation_space.contains(first[0])
    other = gym.make("aligngym/TextGeneration-v0", task=task)
    assert [other.reset(seed=s)[0] for s in range(20)] == [env.reset(seed=s)[0] for s in range(20)]


def test_sentiment_reward_counts_lexicon_words():
    assert sentiment_reward("", " The food was great and the staff was friendly.") == pytest.approx(2 / 3)
    assert sentiment_reward("", "The room was DIRTY.") == pytest.approx(-0.5)
    assert sentiment_reward("", "The room was plain.") == 0.0
    assert sentiment_reward("", "great but rude") == 0.0
    assert sentiment_reward("", "great " * 99) == pytest.approx(99 / 100)


def test_arithmetic_reward():
    assert arithmetic_reward("12 + 30 =", " 42") == 1.0
    assert arithmetic_reward("12 + 30 =", " 41, I think") == 0.0
    assert arithmetic_reward("12 + 30 =", " forty-two") == 0.0


def test_demonstrations_follow_the_task():
    task = get_task("arithmetic")
    rows = task.corpus(20, seed=3)
    assert rows == task.corpus(20, seed=3)
    assert all(task.reward(r["prompt"], r["completion"]) == 1.0 for r in rows)
    sentiment = get_task("sentiment").corpus(300, seed=0)
    rewards = [sentiment_reward(r["prompt"], r["completion"]) for r in sentiment]
    assert min(rewards) < -0.4 and max(rewards) > 0.4  # demonstrations span both signs: room for DPO


def test_step_rewards_info_and_fixed_prompt():
    env = TextGenerationEnv(
        task="sentiment", reward_fn=lambda prompt, response: float(len(response)), render_mode="ansi"
    )
    prompt, info = env.reset(seed=0, options={"prompt": "Review of the café 東京:"})
    assert prompt == "Review of the café 東京:" and env.observation_space.contains(prompt)
    _, reward, terminated, truncated, info = env.step(" great 🙂")
    assert (reward, terminated, truncated) == (8.0, True, False)
    assert info == {"true_reward": 0.5, "reward_source": "function"}
    assert env.render() == "Review of the café 東京: great 🙂"
    with pytest.raises(TypeError, match="response text"):
        env.step(3)
    assert "🙂" in WIDE_CHARSET and "é" in WIDE_CHARSET and "東" in WIDE_CHARSET
    restored = pickle.loads(pickle.dumps(TextGenerationEnv(task="arithmetic")))
    assert restored.reset(seed=1)[0] == TextGenerationEnv(task="arithmetic").reset(seed=1)[0]


def test_bad_options_fail_with_the_valid_choices():
    with pytest.raises(ValueError, match="unknown text task 'poetry'; valid tasks: arithmetic, sentiment"):
        gym.make("aligngym/TextGeneration-v0", task="poetry")
    with pytest.raises(ValueError, match="either reward_fn or reward_model"):
        TextGenerationEnv(reward_fn=lambda p, r: 0.0, reward_model="somewhere")
    with pytest.raises(ValueError, match="render_mode 'human' is not supported"):
        TextGenerationEnv(render_mode="human")


def test_reward_from_a_saved_reward_model(tmp_path, tiny_tokenizer):
    from aligngym.alignment.tiny import build_tiny_reward_model

    model = build_tiny_reward_model(tiny_tokenizer, seed=0, hidden_size=32, layers=1, heads=2)
    model.save_pretrained(tmp_path / "rm")
    tiny_tokenizer.save_pretrained(tmp_path / "rm")
    env = gym.make("aligngym/TextGeneration-v0", reward_model=str(tmp_path / "rm"))
    prompt, _ = env.reset(seed=0)
    _, reward, *_, info = env.step(" The food was great.")
    batch = tiny_tokenizer(prompt + " The food was great.", return_tensors="pt")
    with torch.no_grad():
        expected = float(model(**batch).logits[0, 0])
    assert reward == pytest.approx(expected, abs=1e-5)
    assert info["reward_source"] == "model" and info["true_reward"] == 0.5
