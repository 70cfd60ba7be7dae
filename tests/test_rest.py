"""The ReST loop: rankers, relabelling, configs, and the loop itself (saves, resumes, distils)."""

from __future__ import annotations

import json

import pytest

from aligngym.agents.react.agent import AgentConfig, ReActAgent, StepRecord, Trajectory
from aligngym.agents.react.models import load_policy
from aligngym.agents.react.rankers import (
    JUDGE_TEXTS,
    JudgeRanker,
    OutcomeVerifier,
    Ranker,
    RankItem,
    RewardModelRanker,
    relabel,
)
from aligngym.agents.react.rest import RestLoop
from aligngym.agents.react.rest_config import RestConfig, SFTSettings
from aligngym.alignment.models import ModelSpec
from aligngym.alignment.tiny import build_tiny_reward_model
from aligngym.envs.text.knowledge_base import KnowledgeBaseConfig, load_knowledge_base

SMALL = KnowledgeBaseConfig(seed=2, people=16, companies=5, universities=3, cities=6, countries=2)
TINY = ModelSpec(tiny_hidden_size=32, tiny_layers=1, tiny_heads=2)


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base(SMALL)


@pytest.fixture(scope="module")
def env_kwargs(kb, tmp_path_factory):
    path = tmp_path_factory.mktemp("kb") / "kb.json"
    kb.save(path)
    return {"knowledge_base": str(path), "top_k": 1}


@pytest.fixture(scope="module")
def policy(kb):
    return load_policy(TINY, kb, seed=0, extra_texts=JUDGE_TEXTS)


def _item(kb, candidates, prefix=()):
    question = kb.questions("train")[0]
    return RankItem(
        question,
        list(prefix),
        f"Question: {question.text}\n",
        candidates,
        [float(i + 1) for i in range(len(candidates))],
    )


def test_outcome_verifier_scores_finish_by_exact_match_and_search_by_rollout(kb, env_kwargs, policy):
    model, tokenizer = policy
    question = kb.questions("train")[0]
    verifier = OutcomeVerifier(
        ReActAgent(model, tokenizer, AgentConfig(max_new_tokens=4, max_steps=1)), env_kwargs
    )
    solved_prefix = [f"Search[{question.path[i]}]" for i in range(question.hops)]
    wrong, right = "Action: Finish[Nowhere]", f"Action : Finish [ {question.answer} ]"
    search = f"Search[{question.path[question.hops - 1]}]"
    item = _item(kb, ["garbage", wrong, right, search], prefix=solved_prefix[:-1])
    scores = verifier.score([item])[0]
    assert scores[:3] == [0.0, 0.0, 1.0]
    assert scores[3] in (0.0, 1.0)  # an untrained policy's rollout after the last search
    best, _ = verifier.select([item])[0]
    assert best == 2
    assert verifier.select([_item(kb, ["garbage", wrong])])[0][0] is None  # nothing verified: step dropped


class _PreferLast(Ranker):
    def score(self, items):
        return [[float(i) for i in range(len(item.candidates))] for item in items]


def test_relabel_targets_the_best_candidate_canonically_and_deduplicates(kb):
    question = kb.questions("train")[0]
    step = StepRecord(
        f"Question: {question.text}\n",
        ["Action: Search[a]", "Action : Search [ b ]"],
        [1.0, 2.0],
        0,
        "search",
    )
    trajectories = [Trajectory(question.id, [step]), Trajectory(question.id, [step])]
    rows, stats = relabel(trajectories, kb, _PreferLast())
    assert (
        len(rows) == 1 and rows[0]["completion"] == "Action: Search[b]" and rows[0]["prompt"] == step.prompt
    )
    assert stats == {"steps": 2.0, "kept_steps": 2.0, "relabelled_steps": 2.0, "examples": 1.0}
    assert rows[0]["trajectory"] == 0  # a deduplicated row names its first trajectory
    other = StepRecord(step.prompt, ["Action: Search[c]", "Action: Search[d]"], [1.0, 2.0], 0, "search")
    rows, _ = relabel([*trajectories, Trajectory(question.id, [other])], kb, _PreferLast())
    assert [r["trajectory"] for r in rows] == [0, 2]


def test_judge_and_reward_model_rankers_score_every_candidate(kb, policy, tmp_path):
    model, tokenizer = policy
    items = [_item(kb, ["Action: Search[a]", "Action: Finish[b]", "x"]), _item(kb, ["Action: Search[c]"])]
    judge = JudgeRanker(model, tokenizer)
    assert "Candidate next steps:\n(1) Action: Search[a]\n(2)" in judge.prompt(items[0])
    scores = judge.score(items)
    assert [len(s) for s in scores] == [3, 1]  # the values: tests/test_rest_selection.py
    reward_model = build_tiny_reward_model(tokenizer, seed=0, hidden_size=32, layers=1, heads=2)
    scores = RewardModelRanker(reward_model, tokenizer, batch_size=2).score(items)
    assert [len(s) for s in scores] == [3, 1]
    assert [b for b, _ in RewardModelRanker(reward_model, tokenizer).select(items)] == [
        max(range(3), key=lambda i: scores[0][i]),
        0,
    ]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"ranker": "vibes"}, "valid choices: outcome, reward_model, judge"),
        ({"ranker": "reward_model"}, "needs ranker_model"),
        ({"trajectories_per_question": []}, "trajectories_per_question"),
        ({"eval_splits": ["validation"]}, "valid choices: train, dev, test"),
        ({"demonstrations": 0}, "needs demonstrations"),
        ({"resume_from": "/nonexistent/run"}, "not a rest run folder"),
    ],
)
def test_config_validation(bad, message):
    with pytest.raises(ValueError, match=message):
        RestConfig(**bad)
    with pytest.raises(ValueError, match="max_steps"):
        SFTSettings(max_steps=0)


def _tiny_config(**overrides) -> RestConfig:
    values = {
        "kb": SMALL,
        "policy": TINY,
        "student": ModelSpec(tiny_hidden_size=16, tiny_layers=1, tiny_heads=2),
        "demonstrations": 6,
        "rename_copies": 1,
        "bootstrap": SFTSettings(max_steps=3, batch_size=8, warmup_steps=0),
        "finetune": SFTSettings(max_steps=2, batch_size=8, warmup_steps=0),
        "distill": SFTSettings(max_steps=2, batch_size=8, warmup_steps=0),
        "generations": 2,
        "questions_per_generation": 4,
        "trajectories_per_question": [1, 2],
        "candidates": 2,
        "eval_questions": 3,
        "agent": AgentConfig(max_new_tokens=6, max_steps=3),
    }
    values.update(overrides)
    return RestConfig(**values)


def test_loop_saves_every_generation_and_a_killed_loop_resumes(tmp_path):  # ~5 s on an idle core
    config = _tiny_config()
    summary = RestLoop(config, seed=0, work_dir=tmp_path).run()
    for stage in ("gen_00", "gen_01", "gen_02", "distilled"):
        assert (tmp_path / stage / "model" / "model.safetensors").is_file()
        scores = json.loads((tmp_path / stage / "scores.json").read_text())
        assert set(scores) == {"dev", "test"} and scores["dev"]["episodes"] == 3.0
        assert summary[f"{stage}_dev_success"] == scores["dev"]["success"]
    assert len((tmp_path / "gen_01" / "trajectories.jsonl").read_text().splitlines()) == 4
    assert len((tmp_path / "gen_02" / "trajectories.jsonl").read_text().splitlines()) == 8  # growing batch
    assert summary["student_parameters"] < summary["policy_parameters"]

    # "Kill" the loop during generation 2's fine-tuning: its checkpoint and scores never got written.
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "gen_01").iterdir() if p.is_file()}
    trajectories = (tmp_path / "gen_02" / "trajectories.jsonl").read_text()
    for name in ("model", "scores.json", "sft_log.json"):
        path = tmp_path / "gen_02" / name
        path.unlink() if path.is_file() else __import__("shutil").rmtree(path)
    resumed = RestLoop(_tiny_config(resume_from=str(tmp_path)), seed=0, work_dir=tmp_path).run()
    assert (tmp_path / "gen_02" / "model" / "model.safetensors").is_file()
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "gen_01").iterdir() if p.is_file()} == kept
    assert (tmp_path / "gen_02" / "trajectories.jsonl").read_text() == trajectories
    assert resumed["gen_01_dev_success"] == summary["gen_01_dev_success"]
    with pytest.raises(ValueError, match="other settings: generations"):
        _tiny_config(resume_from=str(tmp_path), generations=3)
    with pytest.raises(ValueError, match="seed 0, not 1"):
        RestLoop(config, seed=1, work_dir=tmp_path)


def test_control_trains_generation_0_on_demonstrations_for_the_generations_steps(tmp_path):
    config = _tiny_config(control=True, generations=1, student=None)
    summary = RestLoop(config, seed=0, work_dir=tmp_path).run()
    log = json.loads((tmp_path / "control" / "sft_log.json").read_text())
    assert log[-1]["step"] == config.finetune.max_steps * config.generations
    assert "control_dev_success" in summary and "distilled_dev_success" not in summary
