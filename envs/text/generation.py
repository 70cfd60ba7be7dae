"""Text tasks with a known programmatic reward, and the one-step ``aligngym/TextGeneration-v0`` env.

A task samples prompts, writes demonstrations (the SFT corpus) and scores a response with its TRUE
reward, so that robustness to corrupted preference labels can be measured without a human or an LLM
judge. The env is the sequence-level bandit of RLHF: observation a prompt, action the whole response,
reward from the task, a user function, or a saved reward model; the episode ends after one step.

Example:
    >>> import gymnasium as gym
    >>> import aligngym  # noqa: F401
    >>> env = gym.make("aligngym/TextGeneration-v0", task="sentiment")
    >>> prompt, info = env.reset(seed=0)
    >>> _, reward, terminated, truncated, _ = env.step(" The food was great and the staff was friendly.")
    >>> round(reward, 3), terminated
    (0.667, True)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# Every printable character of Unicode's Basic Multilingual Plane (Latin, Greek, Cyrillic, CJK,
# punctuation, ...) plus emoji and whitespace: wide enough for real text, small enough (~56k) to sample.
WIDE_CHARSET = (
    "".join(
        chr(c)
        for c in (*range(0x20, 0xD800), *range(0xE000, 0xFFFE), *range(0x1F300, 0x1FAFF))
        if chr(c).isprintable()
    )
    + "\n\t"
)

RewardFunction = Callable[[str, str], float]

# --- the sentiment task ---------------------------------------------------------------------------

POSITIVE = (
    "good",
    "great",
    "excellent",
    "lovely",
    "friendly",
    "clean",
    "fresh",
    "amazing",
    "pleasant",
    "superb",
)
NEGATIVE = ("bad", "awful", "terrible", "rude", "dirty", "stale", "noisy", "poor", "horrible", "boring")
NEUTRAL = (
    "ordinary",
    "typical",
    "standard",
    "modest",
    "simple",
    "regular",
    "usual",
    "average",
    "plain",
    "normal",
)
SUBJECTS = ("hotel", "restaurant", "movie", "phone", "book", "cafe", "train", "museum", "concert", "shop")
ASPECTS = (
    "service",
    "staff",
    "food",
    "price",
    "room",
    "music",
    "design",
    "ending",
    "screen",
    "story",
    "seat",
)
_WORD = re.compile(r"[a-z]+")
_POSITIVE, _NEGATIVE = frozenset(POSITIVE), frozenset(NEGATIVE)


def sentiment_reward(prompt: str, response: str) -> float:
    """``(pos - neg) / (pos + neg + 1)`` over lexicon words of the response, in (-1, 1).

    More positive lexicon words and fewer negative ones score higher; the ``+1`` keeps the score
    finite and makes "great" (0.5) worse than "great and lovely" (0.667). The prompt is ignored.
    """
    words = _WORD.findall(response.lower())
    pos = sum(w in _POSITIVE for w in words)
    neg = sum(w in _NEGATIVE for w in words)
    return (pos - neg) / (pos + neg + 1)


def _sentiment_prompt(rng: np.random.Generator) -> str:
    return f"Review of the {SUBJECTS[rng.integers(len(SUBJECTS))]}:"


def _sentiment_demonstration(rng: np.random.Generator, prompt: str) -> str:
    """Two or three clauses whose adjectives are uniform over positive, negative and neutral words."""
    lexicon = POSITIVE + NEGATIVE + NEUTRAL
    aspects = rng.choice(len(ASPECTS), size=3, replace=False)
    adjectives = [lexicon[i] for i in rng.integers(len(lexicon), size=3)]
    text = (
        f" The {ASPECTS[aspects[0]]} was {adjectives[0]} and the {ASPECTS[aspects[1]]} was {adjectives[1]}."
    )
    if rng.random() < 0.5:
        text += f" The {ASPECTS[aspects[2]]} was {adjectives[2]}."
    return text


# --- the arithmetic task --------------------------------------------------------------------------

_PROMPT_SUM = re.compile(r"(-?\d+)\s*\+\s*(-?\d+)\s*=")
_INTEGER = re.compile(r"-?\d+")


def arithmetic_reward(prompt: str, response: str) -> float:
    """1 if the first integer of the response is the sum asked for in the prompt ``"a + b ="``, else 0."""
    asked = _PROMPT_SUM.search(prompt)
    answer = _INTEGER.search(response)
    if asked is None or answer is None:
        return 0.0
    left, right, given = (_significant(text) for text in (asked.group(1), asked.group(2), answer.group()))
    if len(given) > max(len(left), len(right)) + 2:  # too many digits to be the sum: no need to convert
        return 0.0
    return float(_decimal(given) == _decimal(left) + _decimal(right))


def _significant(digits: str) -> str:
    """An integer's text without leading zeros (``-007`` -> ``-7``), so its length bounds its size."""
    sign, digits = ("-", digits[1:]) if digits.startswith("-") else ("", digits)
    return sign + (digits.lstrip("0") or "0")


def _decimal(digits: str) -> int:
    """``int(digits)`` for any length: Python refuses str -> int beyond 4,300 digits (a DoS guard), and a
    response may be that long. Chunks of 4,000 digits stay under the limit; cost grows with the length."""
    sign, digits = (-1, digits[1:]) if digits.startswith("-") else (1, digits)
    value = 0
    for start in range(0, len(digits), 4000):
        chunk = digits[start : start + 4000]
        value = value * 10 ** len(chunk) + int(chunk)
    return sign * value


def _arithmetic_prompt(rng: np.random.Generator) -> str:
    a, b = rng.integers(0, 50, size=2)
    return f"{a} + {b} ="


def _arithmetic_demonstration(rng: np.random.Generator, prompt: str) -> str:
    asked = _PROMPT_SUM.search(prompt)
    assert asked is not None  # prompts come from _arithmetic_prompt
    return f" {int(asked.group(1)) + int(asked.group(2))}"


# --- registry -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextTask:
    """A prompt distribution, a demonstration writer (SFT data) and the true reward of a response."""

    name: str
    description: str
    sample_prompt: Callable[[np.random.Generator], str]
    demonstration: Callable[[np.random.Generator, str], str]
    reward: RewardFunction
    reward_range: tuple[float, float]

    def corpus(self, n: int, seed: int) -> list[dict[str, str]]:
        """``n`` seeded prompt/completion demonstrations (TRL's prompt-completion format)."""
        rng = np.random.default_rng(seed)
        rows = []
        for _ in range(n):
            prompt = self.sample_prompt(rng)
            rows.append({"prompt": prompt, "completion": self.demonstration(rng, prompt)})
        return rows


TEXT_TASKS: dict[str, TextTask] = {
    task.name: task
    for task in (
        TextTask(
            "sentiment",
            "write a review; true reward = lexicon sentiment (pos - neg) / (pos + neg + 1)",
            _sentiment_prompt,
            _sentiment_demonstration,
            sentiment_reward,
            (-1.0, 1.0),
        ),
        TextTask(
            "arithmetic",
            "answer 'a + b ='; true reward = 1 for the right sum, else 0",
            _arithmetic_prompt,
            _arithmetic_demonstration,
            arithmetic_reward,
            (0.0, 1.0),
        ),
    )
}


def get_task(name: str) -> TextTask:
    """Look a text task up by name, failing with the valid names."""
    if name not in TEXT_TASKS:
        raise ValueError(f"unknown text task {name!r}; valid tasks: {', '.join(sorted(TEXT_TASKS))}")
    return TEXT_TASKS[name]


class RewardModelScorer:
    """Score ``prompt + response`` with a saved sequence-classification reward model (scalar head).

    Loaded lazily from a local path or hub id, so that envs import no ``transformers`` unless asked.
    """

    def __init__(self, path: str, device: str = "cpu", max_length: int = 512) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).to(device).eval()
        self.device, self.max_length = device, max_length

    def __call__(self, prompt: str, response: str) -> float:
        import torch

        batch = self.tokenizer(
            prompt + response, return_tensors="pt", truncation=True, max_length=self.max_length
        )
        with torch.no_grad():
            return float(self.model(**batch.to(self.device)).logits[0, 0])


class TextGenerationEnv(gym.Env[str, str]):
    """One-step text generation: observe a prompt, act with a response, get its reward.

    Args:
        task: a name from ``TEXT_TASKS`` (prompts, demonstrations, true reward).
        reward_fn: ``f(prompt, response) -> float`` replacing the task's reward (e.g. a learned one).
        reward_model: a local path or hub id of a saved scalar reward model used as the reward.
        max_prompt_chars / max_response_chars: lengths of the ``spaces.Text`` observation / action.
        charset: characters of both spaces (default: printable BMP + emoji).
        render_mode: ``"ansi"`` returns the last prompt and response as text.

    ``info`` after a step holds ``true_reward`` (the task's) beside the reward used, so reward hacking
    of a learned reward is visible. ``reset(options={"prompt": ...})`` fixes the prompt.
    Token-level actions (RL4LMs style) are not provided: the action is the whole response.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        task: str = "sentiment",
        reward_fn: RewardFunction | None = None,
        reward_model: str | None = None,
        max_prompt_chars: int = 256,
        max_response_chars: int = 512,
        charset: str = WIDE_CHARSET,
        render_mode: str | None = None,
    ) -> None:
        self.task = get_task(task)
        if reward_fn is not None and reward_model is not None:
            raise ValueError("give either reward_fn or reward_model, not both")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode {render_mode!r} is not supported; valid: {self.metadata['render_modes']}"
            )
        self.reward_source = (
            "function" if reward_fn is not None else "model" if reward_model is not None else "task"
        )
        self.reward_fn: RewardFunction = (
            reward_fn
            if reward_fn is not None
            else RewardModelScorer(reward_model)
            if reward_model is not None
            else self.task.reward
        )
        self.render_mode = render_mode
        self.observation_space = spaces.Text(max_prompt_chars, min_length=0, charset=charset)
        self.action_space = spaces.Text(max_response_chars, min_length=0, charset=charset)
        self._prompt = ""
        self._response: str | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        prompt = (options or {}).get("prompt")
        self._prompt = str(prompt) if prompt is not None else self.task.sample_prompt(self.np_random)
        self._response = None
        return self._prompt, {"task": self.task.name}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if not isinstance(action, str):
            raise TypeError(f"the action is the response text (str), got {type(action).__name__}")
        self._response = action
        reward = float(self.reward_fn(self._prompt, action))
        info = {
            "true_reward": float(self.task.reward(self._prompt, action)),
            "reward_source": self.reward_source,
        }
        return self._prompt, reward, True, False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return f"{self._prompt}{self._response or ''}"
        return None
