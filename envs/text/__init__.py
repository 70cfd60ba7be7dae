"""Text environments: one-step text generation with a known or learned reward; multi-hop ReAct QA with search."""

from aligngym.envs.text.generation import TEXT_TASKS, TextGenerationEnv, TextTask, get_task
from aligngym.envs.text.knowledge_base import (
    KnowledgeBase,
    KnowledgeBaseConfig,
    Question,
    load_knowledge_base,
)
from aligngym.envs.text.react import ReActQAEnv, Step, StepError, parse_step
from aligngym.envs.text.search import SearchTool, Snippet

__all__ = [
    "TEXT_TASKS",
    "KnowledgeBase",
    "KnowledgeBaseConfig",
    "Question",
    "ReActQAEnv",
    "SearchTool",
    "Snippet",
    "Step",
    "StepError",
    "TextGenerationEnv",
    "TextTask",
    "get_task",
    "load_knowledge_base",
    "parse_step",
]
