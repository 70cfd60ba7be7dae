"""Every ```python block in README.md and docs/*.md runs as written.

Each page's blocks run in order in one namespace (a later block may use an earlier one's names), in a
fresh subprocess whose working folder is a temp dir, offline, with a time limit. A block preceded by
``<!-- no-run: reason -->`` is not run; each such block is reported as one skipped test with its reason
(pytest's ``-ra`` summary lists them), and their number is capped so the skipped set stays small.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MAX_SKIPPED = 4  # keep the set of blocks that do not run small
PAGE_TIMEOUT_S = 300

_FENCE = re.compile(r"^```(\w*)\s*$")
_NO_RUN = re.compile(r"^<!--\s*no-run:\s*(.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # path relative to the repository root
    line: int  # 1-based line of the opening fence
    code: str
    no_run: str | None  # the reason, when the block is marked not to run


def extract_blocks(text: str, page: str) -> list[Block]:
    """The ```python blocks of a markdown text, with the ``no-run`` reason of the line above (blank lines
    between the comment and the fence are allowed)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    pending_reason: str | None = None
    while i < len(lines):
        line = lines[i]
        reason = _NO_RUN.match(line.strip())
        if reason:
            pending_reason = reason.group(1)
            i += 1
            continue
        fence = _FENCE.match(line.strip())
        if fence:
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if fence.group(1) == "python":
                blocks.append(Block(page, start + 1, textwrap.dedent("\n".join(body)), pending_reason))
            pending_reason = None
        elif line.strip():
            pending_reason = None
        i += 1
    return blocks


def _all_blocks() -> list[Block]:
    return [b for p in PAGES for b in extract_blocks(p.read_text(), str(p.relative_to(ROOT)))]


# The runner: exec each block in one namespace; on failure print which block and the traceback.
_RUNNER = """
import json, sys, traceback
blocks = json.loads(sys.stdin.read())
namespace = {"__name__": "__main__"}
for block in blocks:
    try:
        exec(compile(block["code"], f"{block['page']}:{block['line']}", "exec"), namespace)
    except BaseException:
        print(f"FAILED block at {block['page']}:{block['line']}", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def _run_page(blocks: list[Block], workdir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        MUJOCO_GL=env.get("MUJOCO_GL", "egl"),
        SB3_LOGDIR=str(workdir / "sb3"),
        RAY_TMPDIR=str(workdir / "ray"),
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS="1",
    )
    payload = json.dumps([{"page": b.page, "line": b.line, "code": b.code} for b in blocks])
    return subprocess.run(
        [sys.executable, "-c", _RUNNER],
        check=False,
        input=payload,
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        timeout=PAGE_TIMEOUT_S,
    )


_BLOCKS = _all_blocks()
_RUN_PAGES = sorted({b.page for b in _BLOCKS if b.no_run is None})
_SKIPPED = [b for b in _BLOCKS if b.no_run is not None]


@pytest.mark.parametrize("page", _RUN_PAGES)
def test_docs_page_runs(page: str, tmp_path: Path) -> None:
    blocks = [b for b in _BLOCKS if b.page == page and b.no_run is None]
    result = _run_page(blocks, tmp_path)
    assert result.returncode == 0, f"{page}: a code block failed\n{result.stderr[-6000:]}"


if _SKIPPED:  # (an empty parametrisation would show up as a confusing skip of its own)

    @pytest.mark.parametrize("block", _SKIPPED, ids=[f"{b.page}:{b.line}" for b in _SKIPPED])
    def test_docs_block_marked_no_run(block: Block) -> None:
        """Reported, not hidden: each block that does not run shows up in the summary with its reason."""
        pytest.skip(f"{block.page}:{block.line} not run: {block.no_run}")


def test_docs_skipped_set_is_small() -> None:
    print(f"{len(_SKIPPED)} of {len(_BLOCKS)} docs code blocks marked no-run")
    for b in _SKIPPED:
        print(f"  {b.page}:{b.line}: {b.no_run}")
    assert len(_SKIPPED) <= MAX_SKIPPED, [f"{b.page}:{b.line}" for b in _SKIPPED]
    assert len(_BLOCKS) >= 15  # the extractor finds the docs' blocks (19 on 2026-12-01)


def test_extract_blocks_reads_fences_and_no_run_marks() -> None:
    text = (
        "# t\n```python\nx = 1\n```\n\n<!-- no-run: needs a GPU -->\n\n```python\ny = 2\n```\n"
        "```bash\nls\n```\n<!-- no-run: stale -->\nprose resets the mark\n```python\nz = 3\n```\n"
    )
    blocks = extract_blocks(text, "t.md")
    assert [(b.line, b.code, b.no_run) for b in blocks] == [
        (2, "x = 1", None),
        (8, "y = 2", "needs a GPU"),
        (16, "z = 3", None),
    ]


def test_runner_reports_the_failing_block(tmp_path: Path) -> None:
    blocks = [Block("p.md", 1, "a = 1", None), Block("p.md", 5, "assert a == 2", None)]
    result = _run_page(blocks, tmp_path)
    assert result.returncode == 1 and "p.md:5" in result.stderr
    shared = [Block("p.md", 1, "a = 1", None), Block("p.md", 5, "assert a == 1", None)]
    assert _run_page(shared, tmp_path).returncode == 0
