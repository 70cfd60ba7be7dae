"""Rankers of the ReST loop: score the K sampled candidates of each step; the best becomes its target.

- ``outcome`` (default, CPU): an outcome verifier that uses the gold answer. A ``Finish`` candidate scores
  its exact match; a ``Search`` candidate scores the exact match that the current policy reaches when it
  continues greedily from it. Only steps whose best candidate reaches the gold answer are kept.
- ``reward_model``: a scalar reward model (``ranker_model``: any sequence-classification folder, e.g. one
  trained with the alignment reward trainer) scores transcript + candidate; every step is kept.
- ``judge``: an LLM judge (``ranker_model``, default the policy itself) sees the transcript and the K
  numbered candidates and is scored on the number it would name as best, as in the paper.

``relabel`` turns sampled trajectories into per-step SFT examples whose target is the ranker's choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aligngym.agents.react.agent import ReActAgent, Trajectory
from aligngym.envs.text.knowledge_base import KnowledgeBase, Question
from aligngym.envs.text.react import StepError, exact_match, parse_step

JUDGE_INTRO = "Candidate next steps:"
JUDGE_QUESTION = "The best candidate is ("
# Fixed texts of the judge prompt: a tiny policy's vocabulary includes them.
JUDGE_TEXTS = (JUDGE_INTRO, JUDGE_QUESTION, " ".join(f"({i})" for i in range(1, 10)))


@dataclass
class RankItem:
    """One step to relabel: its transcript, the steps before it, its K candidates, and its question."""

    question: Question
    prefix: list[str]
    prompt: str
    candidates: list[str]
    perplexities: list[float]


class Ranker:
    """Scores the K candidates of each step (higher is better); ``min_score`` drops steps whose best
    candidate scores lower (None keeps every step)."""

    min_score: float | None = None

    def score(self, items: Sequence[RankItem]) -> list[list[float]]:
        raise NotImplementedError

    def select(self, items: Sequence[RankItem]) -> list[tuple[int | None, list[float]]]:
        """The index of each step's best candidate (ties: lowest perplexity), or None when dropped."""
        out = []
        for item, scores in zip(items, self.score(items)):
            best = max(range(len(scores)), key=lambda i: (scores[i], -item.perplexities[i]))
            keep = self.min_score is None or scores[best] >= self.min_score
            out.append((best if keep else None, scores))
        return out


def canonical_step(text: str) -> str | None:
    """The env's canonical text of a step, or None when it does not parse."""
    try:
        return parse_step(text).text()
    except StepError:
        return None


class OutcomeVerifier(Ranker):
    """Scores a candidate by the exact match its episode reaches: directly for Finish, by a greedy rollout
    of ``agent`` for Search (rollouts are shared between identical states). Uses the gold answer."""

    min_score = 1.0

    def __init__(self, agent: ReActAgent, env_kwargs: dict[str, Any], seed: int = 0):
        self.agent = agent
        self.env_kwargs = env_kwargs
        self.seed = seed

    def score(self, items: Sequence[RankItem]) -> list[list[float]]:
        scores: list[list[float]] = []
        pending: dict[tuple[str, tuple[str, ...]], list[tuple[int, int]]] = {}
        for i, item in enumerate(items):
            row = []
            for j, candidate in enumerate(item.candidates):
                step = canonical_step(candidate)
                if step is None:
                    row.append(0.0)
                elif parse_step(step).kind == "finish":
                    row.append(exact_match(parse_step(step).argument, item.question.answer))
                else:
                    row.append(math.nan)
                    pending.setdefault((item.question.id, (*item.prefix, step)), []).append((i, j))
            scores.append(row)
        if pending:
            keys = list(pending)
            questions = {item.question.id: item.question for item in items}
            rollouts = self.agent.run_episodes(
                [questions[qid] for qid, _ in keys],
                self.env_kwargs,
                seed=self.seed,
                prefixes=[p for _, p in keys],
                samples=1,
            )
            for key, rollout in zip(keys, rollouts):
                for i, j in pending[key]:
                    scores[i][j] = rollout.reward
        return scores


class RewardModelRanker(Ranker):
    """A scalar reward model scores ``transcript + candidate`` (no gold answer is used)."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 32):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    @torch.no_grad()
    def score(self, items: Sequence[RankItem]) -> list[list[float]]:
        texts = [item.prompt + c for item in items for c in item.candidates]
        values: list[float] = []
        self.model.eval()
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start : start + self.batch_size], return_tensors="pt", padding=True)
            values += self.model(**enc.to(self.model.device)).logits[:, 0].float().tolist()
        out, k = [], 0
        for item in items:
            out.append(values[k : k + len(item.candidates)])
            k += len(item.candidates)
        return out


class JudgeRanker(Ranker):
    """An LLM judge: the transcript, the numbered candidates, then ``The best candidate is (``; a candidate
    scores the judge's log-probability of its number (no gold answer is used)."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        self.model, self.tokenizer = model, tokenizer

    def prompt(self, item: RankItem) -> str:
        lines = [f"({i}) {c}" for i, c in enumerate(item.candidates, start=1)]
        return item.prompt + JUDGE_INTRO + "\n" + "\n".join(lines) + "\n" + JUDGE_QUESTION

    @torch.no_grad()
    def score(self, items: Sequence[RankItem]) -> list[list[float]]:
        self.tokenizer.padding_side = "left"
        out = []
        self.model.eval()
        for item in items:
            enc = self.tokenizer([self.prompt(item)], return_tensors="pt").to(self.model.device)
            logp = torch.log_softmax(self.model(**enc).logits[0, -1].float(), dim=-1)
            ids = [
                self.tokenizer.encode(str(i), add_special_tokens=False)[0]
                for i in range(1, len(item.candidates) + 1)
            ]
            out.append([float(logp[i]) for i in ids])
        return out


def relabel(
    trajectories: Sequence[Trajectory], kb: KnowledgeBase, ranker: Ranker
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per-step examples whose target is the ranker's best candidate (deduplicated; each row names the index of
    its first trajectory in ``trajectories``), and statistics."""
    items, sources = [], []
    for index, trajectory in enumerate(trajectories):
        question = kb.question_by_id[trajectory.question_id]
        prefix: list[str] = []
        for step in trajectory.steps:
            items.append(RankItem(question, list(prefix), step.prompt, step.candidates, step.perplexities))
            sources.append(index)
            prefix.append(step.text)
    selections = ranker.select(items)
    seen, rows, relabelled = set(), [], 0
    for item, source, (best, scores) in zip(items, sources, selections):
        if best is None:
            continue
        target = canonical_step(item.candidates[best]) or item.candidates[best]
        chosen = min(range(len(item.candidates)), key=lambda c: item.perplexities[c])
        relabelled += best != chosen
        if (item.prompt, target) in seen:
            continue
        seen.add((item.prompt, target))
        rows.append(
            {
                "prompt": item.prompt,
                "completion": target,
                "question_id": item.question.id,
                "trajectory": source,
                "scores": scores,
            }
        )
    stats = {
        "steps": float(len(items)),
        "kept_steps": float(sum(b is not None for b, _ in selections)),
        "relabelled_steps": float(relabelled),
        "examples": float(len(rows)),
    }
    return rows, stats
