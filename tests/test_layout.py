"""Package layout: every package's exports resolve, importing a package pulls no optional dependency, and
imports point one way: runs -> agents -> alignment -> rewards -> envs (no back-edges)."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"envs": 0, "rewards": 1, "alignment": 2, "agents": 3, "runs": 4}
"""Package -> rank: a module may import packages of its own rank or lower, never higher."""
CORE = tuple(
    sorted(p.stem for p in (ROOT / "aligngym").glob("*.py") if p.stem not in ("__init__", "__main__"))
)
"""Modules of the ``aligngym`` package itself (files, exports, ...): under every layer, they import none."""
PACKAGES = (
    "aligngym.envs",
    "aligngym.envs.text",
    "aligngym.rewards",
    "aligngym.alignment",
    "aligngym.agents",
    "aligngym.agents.tensor",
    "aligngym.agents.adversarial",
    "aligngym.agents.react",
    "aligngym.runs",
)
LLM_MODULES = ("transformers", "trl", "bm25s", "peft", "datasets")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_export_resolves(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__, f"{package} exports nothing"
    assert list(module.__all__) == sorted(set(module.__all__))
    for name in module.__all__:
        value = getattr(module, name)
        assert getattr(value, "__module__", package).startswith("aligngym"), (package, name)
    assert set(module.__all__) <= set(dir(module))
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        module.no_such_name  # noqa: B018


def test_top_level_names_are_the_subpackages_objects() -> None:
    from aligngym.agents import ReActAgent, TemperedSAC, TensorActorCriticPolicy
    from aligngym.agents.adversarial.tempered_sac import TemperedSAC as defined_sac
    from aligngym.agents.react.agent import ReActAgent as defined_agent
    from aligngym.agents.tensor.policies import TensorActorCriticPolicy as defined_policy

    assert (TensorActorCriticPolicy, TemperedSAC, ReActAgent) == (defined_policy, defined_sac, defined_agent)


def _loaded_after(statements: list[str]) -> list[tuple[str, list[str]]]:
    """Run ``statements`` one after the other in ONE fresh interpreter; after each, which of LLM_MODULES
    it has imported so far (one interpreter start instead of one per statement: torch loads slowly)."""
    lines = ["import sys"]
    for statement in statements:
        lines += [statement, f"print(' '.join(m for m in {LLM_MODULES!r} if m in sys.modules) + '|')"]
    out = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = [line.rstrip("|").split() for line in out.stdout.splitlines() if line.endswith("|")]
    return list(zip(statements, loaded, strict=True))


CONTROL_IMPORTS = [
    "import aligngym",
    "import aligngym.agents, aligngym.agents.tensor, aligngym.agents.adversarial, aligngym.agents.react",
    "import aligngym.rewards, aligngym.envs, aligngym.envs.text, aligngym.alignment, aligngym.runs",
    "from aligngym.agents import TensorActorCriticPolicy, RARLConfig, PreferenceRLConfig, SB3Config",
    "from aligngym.rewards import fit_reward, LossSpec, make_teacher, RewardNet",
    "from aligngym.envs.text import TextGenerationEnv",
]


def test_importing_packages_and_control_code_pulls_no_llm_dependency() -> None:
    """Control users need no transformers: no package import and no control name loads an LLM library;
    the last statement shows that the check can fail (an LLM name does load transformers)."""
    results = _loaded_after([*CONTROL_IMPORTS, "from aligngym.agents import ReActAgent"])
    assert results[:-1] == [(statement, []) for statement in CONTROL_IMPORTS]
    assert "transformers" in results[-1][1]


def _aligngym_imports(path: Path) -> list[tuple[int, str]]:
    """(line, aligngym module) of every import in ``path``, function-level ones and ``module:attr`` strings
    included: a lazy import is a dependency too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "aligngym":  # a subpackage / core module, or a name of the root package
                found += [
                    (node.lineno, f"aligngym.{a.name}" if a.name in (*LAYERS, *CORE) else "aligngym")
                    for a in node.names
                ]
            else:
                found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.fullmatch(r"aligngym(\.\w+)+(:\w+)?", node.value)
        ):
            found.append((node.lineno, node.value.split(":")[0]))
    return [(line, name) for line, name in found if name == "aligngym" or name.startswith("aligngym.")]


def back_edges(root: Path = ROOT) -> list[str]:
    """Every import that points up the layers (``file:line: layer imports module``)."""
    problems = []
    files = [
        f for d in (*LAYERS, "aligngym") if (root / d).is_dir() for f in sorted((root / d).rglob("*.py"))
    ]
    for path in files:
        rel = path.relative_to(root)
        importer = rel.parts[0]
        for line, module in _aligngym_imports(path):
            target = module.split(".")[1] if "." in module else None
            if importer == "aligngym":
                if rel.name == "__main__.py":
                    continue  # `python -m aligngym` is the command line: it sits above runs
                allowed = target in CORE or (rel.name == "__init__.py" and target == "envs")
            elif target is None or target in CORE:
                allowed = True  # the root package (it imports envs only) and its core modules sit below all
            else:
                allowed = target in LAYERS and LAYERS[target] <= LAYERS[importer]
            if not allowed:
                problems.append(f"{rel}:{line}: {importer} imports {module}")
    return problems


def test_imports_point_one_way() -> None:
    assert back_edges() == []


def test_control_agents_never_import_alignment() -> None:
    """Control code (everything in agents/ but the ReAct agent) works without transformers installed."""
    control = [p for p in sorted((ROOT / "agents").rglob("*.py")) if "react" not in p.relative_to(ROOT).parts]
    offenders = [
        f"{p.relative_to(ROOT)}:{line}: {module}"
        for p in control
        for line, module in _aligngym_imports(p)
        if module.startswith(("aligngym.alignment", "aligngym.agents.react"))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("folder", "source", "edge"),
    [
        (
            "rewards",
            "from aligngym.agents.preference_rl import PreferenceRLConfig\n",
            "rewards imports aligngym.agents.preference_rl",
        ),
        ("envs", "def f():\n    import aligngym.rewards.losses\n", "envs imports aligngym.rewards.losses"),
        ("alignment", 'JOB = "aligngym.runs.jobs:JOBS"\n', "alignment imports aligngym.runs.jobs"),
        ("agents", "from aligngym import runs\n", "agents imports aligngym.runs"),
        ("runs", "from aligngym.runs import cli\nfrom aligngym import __version__, files\n", None),
        ("envs", "import aligngym\nfrom aligngym.files import atomic_write_json\n", None),
        ("aligngym", "from aligngym.agents import SB3Config\n", "aligngym imports aligngym.agents"),
    ],
)
def test_back_edge_checker_finds_planted_edges(
    tmp_path: Path, folder: str, source: str, edge: str | None
) -> None:
    """The checker flags each planted back-edge, and only it (runs importing agents is fine)."""
    (tmp_path / folder).mkdir(exist_ok=True)
    (tmp_path / folder / "planted.py").write_text(source)
    (tmp_path / "runs").mkdir(exist_ok=True)
    (tmp_path / "runs" / "fine.py").write_text(
        "from aligngym.agents import SB3Config\nimport aligngym.files\n"
    )
    assert [p.split(": ", 1)[1] for p in back_edges(tmp_path)] == ([edge] if edge else [])
