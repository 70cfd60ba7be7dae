"""ReST's data decisions: which candidate becomes a step's target, what goes into each training mix,
what the judge scores, how long the demonstrations-only control trains."""

from __future__ import annotations

import pytest
import torch

from aligngym.agents.react.models import load_policy
from aligngym.agents.react.rankers import JUDGE_TEXTS, JudgeRanker, Ranker, RankItem
from aligngym.agents.react.rest import RestLoop
from aligngym.agents.react.rest_config import RestConfig, SFTSettings
from aligngym.agents.react.rest_data import write_jsonl
from aligngym.alignment.models import ModelSpec
from aligngym.envs.text.knowledge_base import KnowledgeBaseConfig, load_knowledge_base

SMALL = KnowledgeBaseConfig(seed=2, people=16, companies=5, universities=3, cities=6, countries=2)
TINY = ModelSpec(tiny_hidden_size=32, tiny_layers=1, tiny_heads=2)


class FixedScores(Ranker):
    def __init__(self, scores, min_score=None):
        self.scores, self.min_score = scores, min_score

    def score(self, items):
        return self.scores


def _item(question, perplexities):
    return RankItem(
        question,
        [],
        "Question: q\n",
        [f"Action: Search[{i}]" for i in range(len(perplexities))],
        perplexities,
    )


@pytest.fixture(scope="module")
def kb():
    return load_knowledge_base(SMALL)


@pytest.mark.parametrize(
    ("scores", "perplexities", "best"),
    [
        ([1.0, 1.0, 1.0], [3.0, 1.0, 2.0], 1),  # a three-way tie: the lowest perplexity
        ([0.0, 1.0, 1.0], [0.5, 4.0, 2.0], 2),  # the tie among the best two only
        ([0.0, 1.0, 0.5], [0.5, 4.0, 0.1], 1),  # no tie: the score decides, not the perplexity
    ],
)
def test_ties_between_equally_scored_candidates_go_to_the_lowest_perplexity(kb, scores, perplexities, best):
    question = kb.questions("train")[0]
    assert FixedScores([scores]).select([_item(question, perplexities)])[0][0] == best


def test_steps_below_min_score_are_dropped(kb):
    question = kb.questions("train")[0]
    selected = FixedScores([[0.0, 0.5], [1.0, 0.0]], min_score=1.0).select(
        [_item(question, [1.0, 2.0]), _item(question, [1.0, 2.0])]
    )
    assert [best for best, _ in selected] == [None, 0]


def _loop(tmp_path, **overrides) -> RestLoop:
    values = {
        "kb": SMALL,
        "policy": TINY,
        "demonstrations": 2,
        "generations": 2,
        "finetune": SFTSettings(max_steps=3, batch_size=8, warmup_steps=0),
    }
    return RestLoop(RestConfig(**{**values, **overrides}), seed=0, work_dir=tmp_path)


def test_training_mix_holds_the_demonstrations_and_every_generation_so_far(tmp_path):
    loop = _loop(tmp_path)
    demos = [{"prompt": f"demo {i}", "completion": "Action: Finish[x]"} for i in range(2)]
    write_jsonl(tmp_path / "demonstrations.jsonl", demos)
    generations = {
        g: [
            {"prompt": f"gen {g} step {i}", "completion": f"c{g}{i}", "question_id": "q", "scores": [1.0]}
            for i in range(g + 1)
        ]
        for g in (1, 2)
    }
    for g, rows in generations.items():
        loop.gen_dir(g).mkdir()
        write_jsonl(loop.gen_dir(g) / "examples.jsonl", rows)
    strip = [{"prompt": r["prompt"], "completion": r["completion"]} for r in generations[1] + generations[2]]
    assert loop.training_mix(0) == demos
    assert loop.training_mix(1) == demos + strip[:2]
    assert loop.training_mix(2) == demos + strip  # generation 1's examples stay in generation 2's mix


def test_demonstrations_only_control_trains_as_many_steps_as_all_generations(tmp_path, monkeypatch):
    loop = _loop(tmp_path, control=True, generations=3)
    write_jsonl(tmp_path / "demonstrations.jsonl", [{"prompt": "p", "completion": "c"}])
    trained = []
    monkeypatch.setattr(loop, "_load", lambda folder, spec: (None, None))
    monkeypatch.setattr(loop, "_evaluate", lambda *args: {})
    monkeypatch.setattr(
        loop, "_train", lambda model, tok, rows, settings, *rest: trained.append((rows, settings))
    )
    loop.demonstrations_only_control()
    ((rows, settings),) = trained
    assert rows == [{"prompt": "p", "completion": "c"}]
    assert settings.max_steps == 9 and settings.learning_rate == loop.config.finetune.learning_rate


def test_judge_scores_candidate_i_by_the_log_probability_of_its_number(kb):
    model, tokenizer = load_policy(TINY, kb, seed=0, extra_texts=JUDGE_TEXTS)
    judge = JudgeRanker(model, tokenizer)
    item = _item(kb.questions("train")[0], [1.0, 2.0, 3.0])
    (scores,) = judge.score([item])
    with torch.no_grad():
        ids = tokenizer(judge.prompt(item), return_tensors="pt")
        logp = torch.log_softmax(model(**ids).logits[0, -1].float(), dim=-1)
    expected = [float(logp[tokenizer.convert_tokens_to_ids(str(i))]) for i in (1, 2, 3)]
    assert scores == pytest.approx(expected, abs=1e-6)
    assert len(set(scores)) == 3  # the numbers' log-probs differ, so an off-by-one shows


def test_the_bootstrap_demonstrates_exactly_the_configured_number_of_questions(tmp_path):
    loop = _loop(tmp_path, demonstrations=3)
    rows = loop.demonstrations()
    questions = {row["prompt"].split("\n", 1)[0] for row in rows}
    assert len(questions) == 3 and all(q.startswith("Question:") for q in questions)
