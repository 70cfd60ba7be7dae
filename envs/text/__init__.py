"""Text environments: one-step text generation with a known or learned reward; multi-hop ReAct QA with search.

Names are imported on first use, so ``aligngym.envs.text.generation`` does not need bm25s (ReActQA's search).
"""

from aligngym.exports import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        ".generation": ["TEXT_TASKS", "TextGenerationEnv", "TextTask", "get_task"],
        ".knowledge_base": ["KnowledgeBase", "KnowledgeBaseConfig", "Question", "load_knowledge_base"],
        ".react": ["ReActQAEnv", "Step", "StepError", "parse_step"],
        ".search": ["SearchTool", "Snippet"],
    },
)
