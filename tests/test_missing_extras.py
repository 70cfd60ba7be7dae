"""Daily-use failures end in one line that names the fix: a missing extra, a closed pipe."""

from __future__ import annotations

import os
import subprocess
import sys

# Run with the named modules made unimportable (what `pip uninstall` would leave), then `code`.
_BLOCKED = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
{code}
"""
_CLI = "from aligngym.runs.cli import main\nsys.exit(main({argv!r}))"


def _run(blocked: list[str], code: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    script = _BLOCKED.format(blocked=blocked, code=code)
    return subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_text_generation_env_needs_no_bm25s(tmp_path):
    code = "import gymnasium as gym, aligngym\nprint(gym.make('aligngym/TextGeneration-v0').reset(seed=0)[0])"
    result = _run(["bm25s"], code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Review of the")


def test_react_env_without_bm25s_names_the_extra(tmp_path):
    result = _run(["bm25s"], "import gymnasium as gym, aligngym\ngym.make('aligngym/ReActQA-v0')", tmp_path)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: aligngym/ReActQA-v0's search needs bm25s")
    assert last.endswith("pip install 'aligngym[llm]'")


def test_cli_job_without_trl_is_one_error_line(tmp_path):
    argv = ["train", "dpo-sigmoid", "--out", str(tmp_path / "results")]
    result = _run(["trl"], _CLI.format(argv=argv), tmp_path)
    assert result.returncode == 2
    expected = (
        "aligngym: error: `aligngym train dpo-sigmoid` needs trl, which is not installed: "
        "pip install 'aligngym[llm]'"
    )
    assert result.stderr.strip().splitlines() == [expected]
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_cli_missing_transformers_behind_trl_names_the_extra(tmp_path):
    """TRL's lazy modules wrap the ModuleNotFoundError in a RuntimeError: the cause chain is followed."""
    argv = ["train", "sft", "--out", str(tmp_path / "results")]
    result = _run(["transformers"], _CLI.format(argv=argv), tmp_path)
    assert result.returncode == 2, result.stderr
    assert "needs transformers, which is not installed: pip install 'aligngym[llm]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_unrelated_import_error_is_not_hidden(tmp_path):
    """Only the extras' modules get the one-liner; any other missing module keeps its traceback."""
    code = "from aligngym.extras import missing_extra\nprint(missing_extra(ModuleNotFoundError('x', name='yaml')))"
    assert _run([], code, tmp_path).stdout.strip() == "None"


def test_list_into_a_closed_pipe_exits_quietly(tmp_path):
    """`aligngym train --list | head`: the reader is gone; no BrokenPipeError traceback."""
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "aligngym", "train", "--list"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            check=False,
        )
    finally:
        os.close(write)
    assert result.stderr == ""
    assert result.returncode == 141
