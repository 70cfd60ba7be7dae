"""A ReAct agent over any causal LM: the prompt is the env's transcript, the output one step.

Prompt format: ``prompt_prefix`` (few-shot examples for a pretrained model; empty for a policy trained on
the task) followed by the transcript of ``aligngym/ReActQA-v0``, which ends with a newline; the model
writes the next step (``Action: Search[...]`` or ``Action: Finish[...]``, optionally after a
``Thought: ...`` line) and stops at its end-of-sequence token or at ``stop`` (text after it is cut:
a pretrained model tends to go on and invent the observation). As in ReST-meets-ReAct, each step draws
``samples`` candidates at ``temperature`` and the one of LOWEST PERPLEXITY (under the model at
temperature 1) continues the trajectory; ``samples=1`` is greedy decoding.

Episodes run in lock-step batches: one ``generate`` call serves up to ``batch_size`` open episodes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

from aligngym.envs.text.knowledge_base import KnowledgeBase, Question
from aligngym.envs.text.react import ReActQAEnv, StepError, normalize_answer, parse_step


@dataclass
class AgentConfig:
    """How the agent samples steps."""

    samples: int = 1
    """Candidates per step; the lowest-perplexity one is taken. 1 = greedy decoding."""
    temperature: float = 0.5
    """Sampling temperature when samples > 1 (the paper uses 0.5)."""
    max_new_tokens: int = 24
    """Longest step in tokens (word-level tiny models need ~8; a pretrained model with thoughts ~64)."""
    max_steps: int = 8
    """Steps per episode before the agent gives up (the episode then counts as failed)."""
    batch_size: int = 64
    """Prompts per generate call (times ``samples`` sequences)."""
    prompt_prefix: str = ""
    """Text before every transcript: few-shot examples for a pretrained model."""
    stop: str = "Observation:"
    """A generated step is cut where this text starts."""

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.samples > 1 and self.temperature <= 0:
            raise ValueError(
                f"temperature must be > 0 when sampling (samples={self.samples}), got {self.temperature}"
            )
        for name in ("max_new_tokens", "max_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class Candidate:
    text: str
    nll: float
    """Mean negative log-likelihood per generated token (end-of-sequence included), at temperature 1."""

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll)


@dataclass
class StepRecord:
    """One step of a trajectory: what the policy saw, what it proposed, what it took."""

    prompt: str
    """The transcript before the step (without the agent's prompt prefix)."""
    candidates: list[str]
    perplexities: list[float]
    chosen: int
    kind: str
    """The env's verdict on the chosen step: search, finish or invalid."""

    @property
    def text(self) -> str:
        return self.candidates[self.chosen]


@dataclass
class Trajectory:
    question_id: str
    steps: list[StepRecord] = field(default_factory=list)
    reward: float = 0.0
    """Exact match of the final answer (0 when the episode did not finish)."""
    f1: float = 0.0
    answer: str | None = None
    finished: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        return cls(**{**data, "steps": [StepRecord(**s) for s in data["steps"]]})


class ReActAgent:
    """Wraps a causal LM and its tokenizer; proposes steps and plays batches of episodes."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: AgentConfig | None = None
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or AgentConfig()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @torch.no_grad()
    def propose(self, transcripts: Sequence[str], samples: int | None = None) -> list[list[Candidate]]:
        """``samples`` candidate steps (default ``config.samples``) for each transcript."""
        n = samples or self.config.samples
        out: list[list[Candidate]] = []
        was_training = self.model.training
        self.model.eval()
        for start in range(0, len(transcripts), self.config.batch_size):
            chunk = [
                self.config.prompt_prefix + t for t in transcripts[start : start + self.config.batch_size]
            ]
            out += self._generate(chunk, n)
        self.model.train(was_training)
        return out

    def _generate(self, prompts: list[str], n: int) -> list[list[Candidate]]:
        encoded = self.tokenizer(prompts, return_tensors="pt", padding=True).to(self.model.device)
        eos = self.tokenizer.eos_token_id
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": self.config.temperature, "top_k": 0}
            if n > 1
            else {"do_sample": False}
        )
        if self.config.stop:
            stop = _StopText(self.tokenizer, self._stop_pattern, encoded["input_ids"].shape[1])
            sampling["stopping_criteria"] = StoppingCriteriaList([stop])
        result = self.model.generate(
            **encoded,
            **sampling,
            num_return_sequences=n,
            max_new_tokens=self.config.max_new_tokens,
            return_dict_in_generate=True,
            output_logits=True,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=eos,
        )
        new = result.sequences[:, encoded["input_ids"].shape[1] :]
        logp = torch.log_softmax(torch.stack(result.logits, dim=1).float(), dim=-1)
        token_logp = logp.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        is_eos = (new == eos).long()
        # Tokens up to and including the first end-of-sequence count; generate pads after it (and after a stop).
        keep = (torch.cumsum(is_eos, dim=1) - is_eos) == 0
        if self.tokenizer.pad_token_id != eos:
            keep &= torch.cumsum((new == self.tokenizer.pad_token_id).long(), dim=1) == 0
        nll = -(token_logp * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
        texts = self.tokenizer.batch_decode(
            new.masked_fill(~keep, self.tokenizer.pad_token_id), skip_special_tokens=True
        )
        candidates = [Candidate(self._cut(t), float(v)) for t, v in zip(texts, nll.tolist())]
        return [candidates[i * n : (i + 1) * n] for i in range(len(prompts))]

    @property
    def _stop_pattern(self) -> re.Pattern[str]:
        # Whitespace may appear anywhere inside the stop text (a word-level tokenizer decodes "Observation :").
        return re.compile(r"\s*".join(map(re.escape, self.config.stop.replace(" ", ""))))

    def _cut(self, text: str) -> str:
        if self.config.stop:
            text = self._stop_pattern.split(text, maxsplit=1)[0]
        return text.strip()

    def run_episodes(
        self,
        questions: Sequence[Question],
        env_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
        prefixes: Sequence[Sequence[str]] | None = None,
        samples: int | None = None,
    ) -> list[Trajectory]:
        """Play one episode per question (lock-step batches), after replaying ``prefixes[i]`` steps if given.

        The replayed steps are not part of the returned trajectories. ``seed`` seeds the sampling.
        """
        torch.manual_seed(seed)
        env_kwargs = env_kwargs or {}
        envs = [ReActQAEnv(split=q.split, **env_kwargs) for q in questions]
        trajectories = [Trajectory(q.id) for q in questions]
        observations = [env.reset(options={"question_id": q.id})[0] for env, q in zip(envs, questions)]
        for i, steps in enumerate(prefixes or []):
            for text in steps:
                observations[i], reward, terminated, _, info = envs[i].step(text)
                if terminated:
                    self._finish(trajectories[i], reward, info)
        for _ in range(self.config.max_steps):
            active = [i for i, t in enumerate(trajectories) if not t.finished]
            if not active:
                break
            proposals = self.propose([observations[i] for i in active], samples=samples)
            for i, candidates in zip(active, proposals):
                chosen = min(range(len(candidates)), key=lambda c: candidates[c].nll)
                prompt = observations[i]
                observations[i], reward, terminated, _, info = envs[i].step(candidates[chosen].text)
                trajectories[i].steps.append(
                    StepRecord(
                        prompt,
                        [c.text for c in candidates],
                        [c.perplexity for c in candidates],
                        chosen,
                        info["step_kind"],
                    )
                )
                if terminated:
                    self._finish(trajectories[i], reward, info)
        return trajectories

    @staticmethod
    def _finish(trajectory: Trajectory, reward: float, info: dict[str, Any]) -> None:
        trajectory.finished = True
        trajectory.reward = float(reward)
        trajectory.f1 = float(info.get("f1", 0.0))
        trajectory.answer = info.get("answer")


class _StopText(StoppingCriteria):
    """Stops a sequence once its generated text contains the stop pattern (any tokenizer)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, pattern: re.Pattern[str], prompt_length: int):
        self.tokenizer, self.pattern, self.prompt_length = tokenizer, pattern, prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([self.pattern.search(t) is not None for t in texts], device=input_ids.device)


def trajectory_metrics(trajectories: Sequence[Trajectory], questions: Sequence[Question]) -> dict[str, float]:
    """Success (exact match), F1, finished and invalid-step rates, and first-search accuracy
    (the first step searches the question's start entity: the copying skill a tiny model lacks first)."""
    by_id = {q.id: q for q in questions}
    n = max(len(trajectories), 1)
    steps = [s for t in trajectories for s in t.steps]
    first_ok = 0
    for t in trajectories:
        if not t.steps:
            continue
        try:
            step = parse_step(t.steps[0].text)
        except StepError:
            continue
        first_ok += step.kind == "search" and normalize_answer(step.argument) == normalize_answer(
            by_id[t.question_id].start
        )
    return {
        "success": sum(t.reward for t in trajectories) / n,
        "f1": sum(t.f1 for t in trajectories) / n,
        "finished": sum(t.finished for t in trajectories) / n,
        "invalid_steps": sum(s.kind == "invalid" for s in steps) / max(len(steps), 1),
        "first_search_accuracy": first_ok / n,
        "episodes": float(len(trajectories)),
    }


def evaluate_policy(
    agent: ReActAgent,
    kb: KnowledgeBase,
    env_kwargs: dict[str, Any],
    splits: Sequence[str] = ("dev", "test"),
    questions_per_split: int = 0,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Closed-loop success (exact match) etc. on each split (the first ``questions_per_split``; 0 = all)."""
    scores = {}
    for split in splits:
        questions = kb.questions(split)
        if questions_per_split:
            questions = questions[:questions_per_split]
        trajectories = agent.run_episodes(questions, env_kwargs, seed=seed)
        scores[split] = trajectory_metrics(trajectories, questions)
    return scores
