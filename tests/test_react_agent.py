"""The ReAct agent, its word-level tiny policy and the entity tools (freezing, renaming)."""

from __future__ import annotations

import math

import pytest
import torch

from aligngym.agents.react.agent import AgentConfig, ReActAgent, Trajectory, trajectory_metrics
from aligngym.agents.react.models import (
    EntityRenamer,
    build_word_tokenizer,
    entity_token_ids,
    freeze_embeddings,
    load_policy,
    randomize_embeddings,
)
from aligngym.alignment.models import ModelSpec
from aligngym.envs.text.knowledge_base import KnowledgeBaseConfig, load_knowledge_base
from aligngym.envs.text.react import parse_step

SMALL = KnowledgeBaseConfig(seed=5, people=16, companies=5, universities=3, cities=6, countries=2)


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base(SMALL)


@pytest.fixture()
def policy(kb):
    return load_policy(ModelSpec(tiny_hidden_size=32, tiny_layers=1, tiny_heads=2), kb, seed=0)


def test_word_tokenizer_gives_every_entity_one_token_and_round_trips_steps(kb):
    tokenizer = build_word_tokenizer(kb.texts() + ["Action: Search[x]"])
    assert len(entity_token_ids(tokenizer, kb)) == len(kb.entities)
    name = kb.entities[0].name
    ids = tokenizer.encode(f"Action: Search[{name}]", add_special_tokens=False)
    assert ids == tokenizer.encode(
        f"Action :  Search [ {name} ]", add_special_tokens=False
    )  # whitespace-blind
    assert parse_step(tokenizer.decode(ids)).argument == name
    assert tokenizer.encode("Unseenword", add_special_tokens=False) == [tokenizer.unk_token_id]
    assert tokenizer.encode("a</s>", add_special_tokens=False)[-1] == tokenizer.eos_token_id
    assert build_word_tokenizer(kb.texts()).get_vocab() == build_word_tokenizer(kb.texts()).get_vocab()


def test_propose_returns_k_candidates_with_perplexities(policy):
    model, tokenizer = policy
    agent = ReActAgent(model, tokenizer, AgentConfig(samples=3, temperature=1.0, max_new_tokens=6))
    proposals = agent.propose(["Question: Who?\n", "Question: In which city?\nAction: Search[x]\n"])
    assert [len(p) for p in proposals] == [3, 3]
    for candidates in proposals:
        for candidate in candidates:
            assert isinstance(candidate.text, str)
            assert math.isfinite(candidate.nll) and candidate.perplexity >= 1.0


def test_greedy_proposals_are_deterministic_and_padding_invariant(policy):
    model, tokenizer = policy
    agent = ReActAgent(model, tokenizer, AgentConfig(samples=1, max_new_tokens=5))
    short = "Question: Who?\n"
    alone = agent.propose([short])[0][0]
    batched = agent.propose([short, "Question: " + "In which city? " * 10 + "\n"])[0][0]
    assert alone.text == batched.text
    assert alone.nll == pytest.approx(batched.nll, abs=1e-4)


def test_lowest_perplexity_candidate_is_taken_and_runs_are_seeded(policy, kb, env_kwargs):
    model, tokenizer = policy
    agent = ReActAgent(
        model, tokenizer, AgentConfig(samples=4, temperature=1.0, max_new_tokens=6, max_steps=2)
    )
    questions = kb.questions("dev")[:3]
    trajectories = agent.run_episodes(questions, env_kwargs, seed=0)
    for trajectory in trajectories:
        assert 1 <= len(trajectory.steps) <= 2
        for step in trajectory.steps:
            assert len(step.candidates) == 4
            assert step.perplexities[step.chosen] == min(step.perplexities)
    again = agent.run_episodes(questions, env_kwargs, seed=0)
    assert [t.to_dict() for t in trajectories] == [t.to_dict() for t in again]
    assert Trajectory.from_dict(trajectories[0].to_dict()) == trajectories[0]


def test_prefixes_are_replayed_before_the_agent_acts(policy, kb, env_kwargs):
    model, tokenizer = policy
    agent = ReActAgent(model, tokenizer, AgentConfig(max_new_tokens=4, max_steps=1))
    question = kb.questions("dev")[0]
    solved = [f"Search[{question.path[i]}]" for i in range(question.hops)] + [f"Finish[{question.answer}]"]
    done, partial = agent.run_episodes([question, question], env_kwargs, prefixes=[solved, solved[:1]])
    assert done.finished and done.reward == 1.0 and done.steps == []
    assert len(partial.steps) == 1
    assert partial.steps[0].prompt.startswith(
        f"Question: {question.text}\nAction: Search[{question.start}]\nObservation: "
    )


def test_trajectory_metrics(kb):
    question = kb.questions("dev")[0]
    from aligngym.agents.react.agent import StepRecord

    good = Trajectory(
        question.id,
        [StepRecord("p", [f"Action : Search [ {question.start} ]"], [1.0], 0, "search")],
        1.0,
        1.0,
        "a",
        True,
    )
    bad = Trajectory(question.id, [StepRecord("p", ["junk"], [2.0], 0, "invalid")])
    metrics = trajectory_metrics([good, bad], [question])
    assert metrics == {
        "success": 0.5,
        "f1": 0.5,
        "finished": 0.5,
        "invalid_steps": 0.5,
        "first_search_accuracy": 0.5,
        "episodes": 2.0,
    }


def test_frozen_entity_embeddings_do_not_move_under_training(policy, kb):
    model, tokenizer = policy
    ids = entity_token_ids(tokenizer, kb)
    randomize_embeddings(model, ids, std=0.5, seed=1)
    freeze_embeddings(model, ids)
    freeze_embeddings(model, ids)  # idempotent
    weight = model.get_input_embeddings().weight
    assert weight[ids].std().item() == pytest.approx(0.5, rel=0.2)
    before = weight.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    batch = tokenizer([kb.documents[0][1]], return_tensors="pt")
    for _ in range(3):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    moved = (weight.detach() - before).abs().sum(dim=1)
    assert moved[ids].max().item() == 0.0
    assert moved.sum().item() > 0.0


def test_entity_renamer_is_a_consistent_bijection(kb):
    names = [e.name for e in kb.entities]
    renamer = EntityRenamer(names)
    question = kb.questions("train")[0]
    row = {"prompt": f"Question: {question.text}\n", "completion": f"Action: Search[{question.start}]"}
    out = renamer.augment([row], copies=3, seed=0)
    assert out[0] == row and len(out) == 4
    for copy in out[1:]:
        new_name = copy["completion"][len("Action: Search[") : -1]
        assert new_name in names
        assert copy["prompt"] == row["prompt"].replace(question.start, new_name)
    assert renamer.augment([row], copies=3, seed=0) == out
    assert renamer.rename("Search word", {}) == "Search word"


@pytest.fixture(scope="module")
def env_kwargs(kb, tmp_path_factory):
    path = tmp_path_factory.mktemp("kb") / "kb.json"
    kb.save(path)
    return {"knowledge_base": str(path), "top_k": 1}


def test_generated_steps_are_cut_at_the_stop_text(policy):
    model, tokenizer = policy
    agent = ReActAgent(model, tokenizer, AgentConfig(stop="Observation:"))
    assert agent._cut("Action : Search [ x ]\nObservation : made up") == "Action : Search [ x ]"
    assert agent._cut("Action: Finish[y] Observation: z") == "Action: Finish[y]"
    assert agent._cut("Action: Finish[y]") == "Action: Finish[y]"
