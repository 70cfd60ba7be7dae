"""aligngym/ReActQA-v0: Gymnasium API, step parsing, robustness to bad actions, solvability."""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env, data_equivalence

import aligngym  # noqa: F401
from aligngym.agents.react.expert import ScriptedExpert
from aligngym.envs.text.react import ReActQAEnv, StepError, exact_match, f1_score, parse_step

ENV_ID = "aligngym/ReActQA-v0"


def test_check_env_without_warnings():
    env = gym.make(ENV_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=True)


def test_seeded_rollout_with_sampled_actions_is_deterministic():
    envs = [gym.make(ENV_ID, max_transcript_chars=2048), gym.make(ENV_ID, max_transcript_chars=2048)]
    for env in envs:
        env.action_space.seed(7)
    obs = [env.reset(seed=11) for env in envs]
    assert data_equivalence(obs[0], obs[1], exact=True)
    for _ in range(50):
        results = [env.step(env.action_space.sample()) for env in envs]
        assert data_equivalence(results[0], results[1], exact=True)
        assert envs[0].observation_space.contains(results[0][0])
        if results[0][2] or results[0][3]:
            obs = [env.reset() for env in envs]
            assert data_equivalence(obs[0], obs[1], exact=True)


def test_pickle_round_trip():
    env = ReActQAEnv(split="dev", top_k=2)
    clone = pickle.loads(pickle.dumps(env))
    assert data_equivalence(env.reset(seed=5), clone.reset(seed=5), exact=True)
    assert data_equivalence(env.step("Search[x]"), clone.step("Search[x]"), exact=True)


def test_reset_picks_questions_by_seed_id_or_index():
    env = ReActQAEnv(split="test")
    assert env.reset(seed=1)[0] == env.reset(seed=1)[0]
    question = env.questions[3]
    obs, info = env.reset(options={"question_id": question.id})
    assert obs == f"Question: {question.text}\n" and info["question_id"] == question.id
    assert env.reset(options={"question_index": 3})[1]["question_id"] == question.id
    with pytest.raises(ValueError, match="not a test question"):
        env.reset(options={"question_id": "nope"})
    with pytest.raises(ValueError, match="out of range"):
        env.reset(options={"question_index": 10_000})
    with pytest.raises(ValueError, match="valid choices: train, dev, test"):
        ReActQAEnv(split="val")


@pytest.mark.parametrize(
    "action",
    [
        "",
        "   ",
        "hello",
        "Search[]",
        "Finish[ ]",
        "Search[unclosed",
        "x" * 100_000,
        "東京 🙂 Search",
        "\x00\x01",
        None,
        42,
    ],
)
def test_malformed_actions_get_an_error_observation(action):
    env = ReActQAEnv(split="dev", top_k=1)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)
    assert env.observation_space.contains(obs)
    assert "Observation: Invalid step" in obs and "Write Search[query] or Finish[answer]." in obs
    assert (reward, terminated, truncated, info["step_kind"]) == (0.0, False, False, "invalid")
    assert len(obs) < 600  # a long action is echoed clipped
    assert info["searches_left"] == env.max_searches


def test_unicode_and_very_long_queries_are_searched_without_crashing():
    env = ReActQAEnv(split="dev", top_k=1)
    env.reset(seed=0)
    obs, _, terminated, _, info = env.step("Search[東京 café 🙂]")
    assert obs.endswith("Observation: No results.\n") and info["step_kind"] == "search" and not terminated
    name = env.question.start
    obs, *_ = env.step(f"Search[{name} {'y' * 50_000}]")
    assert env.observation_space.contains(obs)
    assert obs.splitlines()[-1].startswith(f"Observation: {name} is a ")


def test_search_budget_and_finish_scoring():
    env = ReActQAEnv(split="dev", top_k=1, max_searches=2)
    env.reset(options={"question_index": 0})
    for left in (1, 0):
        assert env.step(f"Search[{env.question.start}]")[4]["searches_left"] == left
    obs, reward, terminated, _, info = env.step(f"Search[{env.question.start}]")
    assert "No searches left" in obs and info["step_kind"] == "invalid" and not terminated
    obs, reward, terminated, _, info = env.step(
        f"Thought: done.\nAction: Finish[ the {env.question.answer}. ]"
    )
    assert (reward, terminated, info["exact_match"], info["f1"]) == (1.0, True, 1.0, 1.0)
    assert info["gold_answer"] == env.question.answer
    assert env.step("Search[x]")[4]["step_kind"] == "invalid"  # stepping after the end is harmless
    env.reset(options={"question_index": 0})
    assert env.step("Finish[somewhere else]")[1] == 0.0


def test_transcript_is_canonical_and_bounded():
    env = ReActQAEnv(split="train", top_k=3, max_transcript_chars=600)
    obs, _ = env.reset(options={"question_index": 0})
    question_line = obs
    for _ in range(15):
        obs, *_ = env.step(f"action :  search [ {env.question.start} ]")
        assert len(obs) <= 600 and obs.startswith(question_line)
    assert "(earlier steps omitted)" in obs
    assert f"Action: Search[{env.question.start}]" in obs


def test_parse_step():
    assert (
        parse_step("Search[Kelmar]")
        == parse_step("Action : Search [ Kelmar ]")
        == parse_step("search[kelmar]".replace("k", "K", 1))
    )
    step = parse_step("Thought: I need the city.\nAction: Finish[Tarsia] trailing text Search[x]")
    assert (step.kind, step.argument, step.thought) == ("finish", "Tarsia", "I need the city.")
    assert step.text() == "Thought: I need the city.\nAction: Finish[Tarsia]"
    with pytest.raises(StepError, match="query is empty"):
        parse_step("Search[  ]")
    with pytest.raises(StepError):
        parse_step("Lookup[x]")


def test_answer_metrics():
    assert exact_match("The Kelmar.", "kelmar") == 1.0
    assert exact_match("Kelmar city", "Kelmar") == 0.0
    assert f1_score("Kelmar city", "Kelmar") == pytest.approx(2 / 3)
    assert f1_score("", "Kelmar") == 0.0


@pytest.mark.parametrize("top_k", [1, 3])
@pytest.mark.parametrize("split", ["dev", "test"])
def test_scripted_expert_solves_at_least_95_percent(split, top_k):
    env = ReActQAEnv(split=split, top_k=top_k)
    expert = ScriptedExpert()
    rewards = []
    for index in range(len(env.questions)):
        env.reset(options={"question_index": index})
        episode = expert.run_episode(env)
        rewards.append(episode.reward)
        assert len(episode.steps) == env.question.hops + 1
    assert sum(rewards) / len(rewards) >= 0.95
