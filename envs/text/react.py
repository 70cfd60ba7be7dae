"""``aligngym/ReActQA-v0``: multi-hop question answering with a search tool, one ReAct step per env step.

The observation is the transcript so far (question, past thoughts, actions and tool observations) as text;
the action is the next step as text: ``Search[query]`` or ``Finish[answer]``, optionally preceded by a
thought (``Thought: ...\\nAction: Search[...]``). A malformed step gets an error observation (never an
exception), searches are limited by a budget, and ``Finish`` ends the episode with reward = exact match
against the gold answer (token F1 in ``info``). Truncation is left to the TimeLimit wrapper
(``max_episode_steps`` at registration). Memory per episode is bounded without it too: the env keeps only
the newest steps that can still appear in a ``max_transcript_chars`` observation (each step's echo and
search result are bounded), and parsing a step takes time linear in its length.

Transcript format (what a policy reads, one block per step)::

    Question: In which country was Zorvani born?
    Action: Search[Zorvani]
    Observation: Zorvani is a person. Zorvani was born in Kelmar. ...
    Action: Finish[Tarsia]

Example:
    >>> import gymnasium as gym
    >>> import aligngym  # noqa: F401
    >>> env = gym.make("aligngym/ReActQA-v0", split="dev", top_k=1)
    >>> obs, info = env.reset(seed=0)
    >>> obs.startswith("Question: ")
    True
    >>> obs, reward, terminated, truncated, info = env.step("Search[]")
    >>> obs.splitlines()[-1]
    'Observation: Invalid step: the query is empty. Write Search[query] or Finish[answer].'
"""

from __future__ import annotations

import copy
import functools
import re
import string
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces
from gymnasium.utils import EzPickle

from aligngym.envs.text.generation import WIDE_CHARSET
from aligngym.envs.text.knowledge_base import SPLITS, KnowledgeBase, Question, load_knowledge_base
from aligngym.envs.text.search import SearchTool

ACTION_KINDS = ("search", "finish")
ECHO_CHARS = 200
"""Longest thought / argument / malformed step echoed into the transcript."""
_STEP = re.compile(r"\b(search|finish)\s*\[([^\[\]]*)\]", re.IGNORECASE)
_THOUGHT_PREFIX = re.compile(r"thought\s*:", re.IGNORECASE)  # matched at the start of stripped text only
_CHARSET = frozenset(WIDE_CHARSET)
FORMAT_HINT = "Write Search[query] or Finish[answer]."
NO_RESULTS = "No results."
NO_SEARCHES_LEFT = "No searches left. Answer with Finish[answer]."
EPISODE_OVER = "The episode is over; call reset()."
OMITTED = "(earlier steps omitted)"
# Every fixed text the env writes (a word-level tokenizer for this task must cover these words).
ENV_TEXTS = (
    "Question: Thought: Action: Search[ ] Finish[ ] Observation: [1] [2] [3] [4] [5] Invalid step:",
    "no Search[...] or Finish[...] found. the query is empty. the answer is empty.",
    FORMAT_HINT,
    NO_RESULTS,
    NO_SEARCHES_LEFT,
    EPISODE_OVER,
    OMITTED,
)


@dataclass(frozen=True)
class Step:
    """One parsed ReAct step."""

    kind: str
    """``search`` or ``finish``."""
    argument: str
    thought: str = ""

    def text(self) -> str:
        """The canonical text of the step, as the transcript shows it."""
        action = f"Action: {self.kind.capitalize()}[{self.argument}]"
        return f"Thought: {self.thought}\n{action}" if self.thought else action


class StepError(ValueError):
    """A step that is not ``Search[...]`` / ``Finish[...]`` (the message says what is wrong)."""


def parse_step(text: str) -> Step:
    """Parse ``[Thought: ...] [Action:] Search[q] | Finish[a]``; whitespace around tokens is tolerated.

    Raises StepError for anything else (the env turns it into an error observation). The first action
    in the text counts; text after it is ignored.
    """
    if not isinstance(text, str):
        raise StepError(f"a step is text, got {type(text).__name__}")
    match = _STEP.search(text)
    if match is None:
        raise StepError("no Search[...] or Finish[...] found")
    argument = _one_line(match.group(2))
    if not argument:
        raise StepError("the query is empty" if match.group(1).lower() == "search" else "the answer is empty")
    return Step(match.group(1).lower(), _clip(argument), _clip(_one_line(_thought(text[: match.start()]))))


def _thought(prefix: str) -> str:
    """The text before the action without a leading ``Thought:`` and a trailing ``Action:``.

    Linear time: a trailing-anchored regex such as ``\\s*action\\s*:\\s*$`` retries at every position of a
    whitespace run (40k spaces took 11 s); stripping first leaves only anchored matches.
    """
    text = prefix.strip()
    head = _THOUGHT_PREFIX.match(text)
    if head is not None:
        text = text[head.end() :].lstrip()
    if text.endswith(":"):
        before = text[:-1].rstrip()
        if before[-6:].lower() == "action" and (len(before) == 6 or not before[-7].isalnum()):
            text = before[:-6]
    return text


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token-overlap F1 between normalised answers (SQuAD)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def sanitize(text: str) -> str:
    """Replace characters outside the observation charset by ``?`` (observations stay in their space)."""
    return "".join(ch if ch in _CHARSET else "?" for ch in text)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str) -> str:
    return sanitize(text[:ECHO_CHARS])


_TOOLS: dict[tuple[str, int], SearchTool] = {}


@functools.cache
def _text_space_prototype(max_length: int, min_length: int) -> spaces.Text:
    return spaces.Text(max_length=max_length, min_length=min_length, charset=WIDE_CHARSET)


def _text_space(max_length: int, min_length: int) -> spaces.Text:
    """A fresh Text space over the wide charset; a shallow copy of a cached prototype, because building the
    charset tables takes ~0.1 s and agents create one env per question. The prototype is never seeded, so
    each copy gets its own random generator."""
    return copy.copy(_text_space_prototype(max_length, min_length))


def _search_tool(kb: KnowledgeBase, key: str, snippet_chars: int) -> SearchTool:
    """One BM25 index per (knowledge base, snippet length), shared by every env in the process."""
    if (key, snippet_chars) not in _TOOLS:
        _TOOLS[(key, snippet_chars)] = SearchTool(kb.documents, snippet_chars=snippet_chars)
    return _TOOLS[(key, snippet_chars)]


class ReActQAEnv(gym.Env, EzPickle):
    """Answer a multi-hop question from a generated knowledge base by searching it step by step."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        split: str = "train",
        knowledge_base: str | None = None,
        top_k: int = 3,
        max_searches: int = 5,
        snippet_chars: int = 300,
        max_transcript_chars: int = 4096,
        max_action_chars: int = 1024,
        render_mode: str | None = None,
    ):
        EzPickle.__init__(
            self,
            split,
            knowledge_base,
            top_k,
            max_searches,
            snippet_chars,
            max_transcript_chars,
            max_action_chars,
            render_mode,
        )
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not valid; valid choices: {', '.join(SPLITS)}")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if max_searches < 0:
            raise ValueError(f"max_searches must be >= 0, got {max_searches}")
        if max_transcript_chars < 256:
            raise ValueError(f"max_transcript_chars must be >= 256, got {max_transcript_chars}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r} is not valid; valid choices: None, ansi")
        self.kb = load_knowledge_base(knowledge_base)
        self.split = split
        self.top_k = top_k
        self.max_searches = max_searches
        self.max_transcript_chars = max_transcript_chars
        self.render_mode = render_mode
        self._questions = self.kb.questions(split)
        if not self._questions:
            raise ValueError(f"the knowledge base has no {split} questions")
        key = "default" if knowledge_base in (None, "default") else str(Path(knowledge_base).resolve())
        self.tool = _search_tool(self.kb, key, snippet_chars)
        self.observation_space = _text_space(max_transcript_chars, 1)
        self.action_space = _text_space(max_action_chars, 0)
        self.question: Question = self._questions[0]
        self._blocks: deque[str] = deque()
        self._block_chars = 0
        self._omitted = False
        self._searches_left = max_searches
        self._done = False

    @property
    def questions(self) -> list[Question]:
        """The questions of this env's split (reset(options={"question_id": q.id}) picks one)."""
        return list(self._questions)

    @property
    def transcript(self) -> str:
        """The current observation (the transcript so far)."""
        return self._observation()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start a question: ``options={"question_id": id}`` or ``{"question_index": i}``, else a random one."""
        super().reset(seed=seed)
        options = options or {}
        if "question_id" in options:
            question = self.kb.question_by_id.get(options["question_id"])
            if question is None or question.split != self.split:
                raise ValueError(f"question_id {options['question_id']!r} is not a {self.split} question")
        elif "question_index" in options:
            index = int(options["question_index"])
            if not 0 <= index < len(self._questions):
                raise ValueError(f"question_index {index} is out of range [0, {len(self._questions)})")
            question = self._questions[index]
        else:
            question = self._questions[int(self.np_random.integers(len(self._questions)))]
        self.question = question
        self._blocks.clear()
        self._block_chars = 0
        self._omitted = False
        self._searches_left = self.max_searches
        self._done = False
        return self._observation(), self._info("reset")

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._done:
            echo = _clip(_one_line(action if isinstance(action, str) else repr(action)))
            return self._respond(f"Action: {echo}", f"Observation: {EPISODE_OVER}", "invalid")
        try:
            step = parse_step(action)
        except StepError as error:
            echo = _clip(_one_line(action if isinstance(action, str) else repr(action)))
            return self._respond(
                f"Action: {echo}", f"Observation: Invalid step: {error}. {FORMAT_HINT}", "invalid"
            )
        if step.kind == "finish":
            self._done = True
            self._append(step.text())
            em, f1 = (
                exact_match(step.argument, self.question.answer),
                f1_score(step.argument, self.question.answer),
            )
            info = self._info("finish") | {
                "exact_match": em,
                "f1": f1,
                "answer": step.argument,
                "gold_answer": self.question.answer,
            }
            return self._observation(), em, True, False, info
        if self._searches_left == 0:
            return self._respond(step.text(), f"Observation: {NO_SEARCHES_LEFT}", "invalid")
        self._searches_left -= 1
        snippets = self.tool.search(step.argument, k=self.top_k)
        if not snippets:
            found = NO_RESULTS
        elif len(snippets) == 1:
            found = snippets[0].text
        else:
            found = " ".join(f"[{i}] {s.text}" for i, s in enumerate(snippets, start=1))
        return self._respond(step.text(), f"Observation: {found}", "search")

    def _respond(
        self, action_text: str, observation: str, kind: str
    ) -> tuple[str, float, bool, bool, dict[str, Any]]:
        self._append(f"{action_text}\n{observation}")
        return self._observation(), 0.0, self._done, False, self._info(kind)

    def _append(self, block: str) -> None:
        """Keep a step, dropping the oldest ones that no observation could show any more (bounded memory)."""
        self._blocks.append(block)
        self._block_chars += len(block) + 1
        while self._block_chars > self.max_transcript_chars and len(self._blocks) > 1:
            self._block_chars -= len(self._blocks.popleft()) + 1
            self._omitted = True

    def _info(self, kind: str) -> dict[str, Any]:
        return {"question_id": self.question.id, "step_kind": kind, "searches_left": self._searches_left}

    def _observation(self) -> str:
        """Question + step blocks, dropping the oldest blocks if the transcript outgrows its space."""
        head = f"Question: {self.question.text}\n"
        blocks = list(self._blocks)
        text = head + (OMITTED + "\n" if self._omitted else "") + "".join(b + "\n" for b in blocks)
        while len(text) > self.max_transcript_chars and blocks:
            blocks.pop(0)
            text = head + OMITTED + "\n" + "".join(b + "\n" for b in blocks)
        return text[-self.max_transcript_chars :]

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._observation()
        return None
