"""A scripted expert for ``aligngym/ReActQA-v0``: searches the start entity, reads the next entity off the
search result, searches it, ..., and finishes with the last one.

It knows the question's relation chain (from its template) but reads every entity from the tool's
observations, never from the knowledge base: it shows the env is solvable, and its transcripts are the
demonstrations that bootstrap a policy before ReST.

Example:
    >>> from aligngym.envs.text.react import ReActQAEnv
    >>> env = ReActQAEnv(split="dev", top_k=1)
    >>> _ = env.reset(options={"question_index": 0})
    >>> episode = ScriptedExpert().run_episode(env)
    >>> episode.reward
    1.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aligngym.envs.text.knowledge_base import RELATIONS, Question
from aligngym.envs.text.react import ReActQAEnv, Step


@dataclass
class Demonstration:
    """One expert episode as (prompt, step) pairs: prompt = transcript before the step."""

    question_id: str
    prompts: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    reward: float = 0.0


def _relation_pattern(relation: str, subject: str) -> re.Pattern[str]:
    sentence = RELATIONS[relation].sentence.format(s=re.escape(subject), o="(?P<object>\\w+)")
    return re.compile(sentence.replace(".", r"\."))


class ScriptedExpert:
    """Follows the question's hops through search results; finishes early with its best guess if stuck."""

    def next_step(self, question: Question, observations: list[str]) -> Step:
        """The step after ``observations`` (the tool's outputs so far, one per search)."""
        entity = question.start
        for hop, relation in enumerate(question.relations):
            if hop >= len(observations):
                return Step("search", entity)
            match = _relation_pattern(relation, entity).search(observations[hop])
            if match is None:
                return Step("finish", entity)
            entity = match.group("object")
        return Step("finish", entity)

    def run_episode(self, env: ReActQAEnv) -> Demonstration:
        """Play the env's current question (call ``env.reset`` first) to the end."""
        question = env.question
        demo = Demonstration(question.id)
        observation = env.transcript
        observations: list[str] = []
        for _ in range(len(question.relations) + 1):
            step = self.next_step(question, observations)
            demo.prompts.append(observation)
            demo.steps.append(step.text())
            observation, reward, terminated, truncated, _ = env.step(step.text())
            if terminated or truncated:
                demo.reward = float(reward)
                break
            observations.append(observation.rsplit("Observation: ", 1)[-1])
        return demo
