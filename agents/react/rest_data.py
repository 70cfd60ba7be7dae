"""The ReST loop's data on disk: scripted-expert demonstrations and JSON-lines files (atomic writes)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aligngym.agents.react.expert import ScriptedExpert
from aligngym.envs.text.knowledge_base import Question
from aligngym.envs.text.react import ReActQAEnv
from aligngym.files import atomic_write_text


def scripted_demonstrations(
    kb_path: str, questions: Sequence[Question], top_k: int, max_searches: int
) -> list[dict[str, str]]:
    """Per-step ``{"prompt", "completion"}`` examples from the scripted expert on ``questions``."""
    expert = ScriptedExpert()
    rows = []
    for question in questions:
        env = ReActQAEnv(split=question.split, knowledge_base=kb_path, top_k=top_k, max_searches=max_searches)
        env.reset(options={"question_id": question.id})
        demo = expert.run_episode(env)
        rows += [{"prompt": p, "completion": s} for p, s in zip(demo.prompts, demo.steps)]
    return rows


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]
