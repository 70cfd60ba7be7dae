"""Which optional extra provides which import, and the one-line message that names the fix."""

from __future__ import annotations

import importlib

# top-level module -> the extra of pyproject.toml that installs it
EXTRA_OF_MODULE = {
    "trl": "llm",
    "transformers": "llm",
    "peft": "llm",
    "datasets": "llm",
    "accelerate": "llm",
    "tokenizers": "llm",
    "bm25s": "llm",
    "ray": "ray",
    "wandb": "wandb",
    "sbx": "sbx",
    "jax": "sbx",
    "flax": "sbx",
}


def fix_line(module: str, purpose: str | None = None) -> str:
    """``"<purpose> needs trl, which is not installed: pip install 'aligngym[llm]'"``."""
    extra = EXTRA_OF_MODULE[module]
    return f"{purpose or 'this'} needs {module}, which is not installed: pip install 'aligngym[{extra}]'"


def missing_extra(exc: BaseException | None, purpose: str | None = None) -> str | None:
    """The fix line when ``exc`` (or an exception it was raised from) is a missing module of an extra."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            module = exc.name.split(".")[0]
            if module in EXTRA_OF_MODULE:
                return str(exc) if "pip install 'aligngym[" in str(exc) else fix_line(module, purpose)
        exc = exc.__cause__ or exc.__context__
    return None


def require(module: str, purpose: str) -> None:
    """Import ``module`` or raise ModuleNotFoundError whose message names the extra (for library code)."""
    try:
        importlib.import_module(module)
    except ModuleNotFoundError:
        raise ModuleNotFoundError(fix_line(module, purpose), name=module) from None
