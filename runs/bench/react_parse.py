"""How ReActQA's step parser scales with leading whitespace: the current parser next to the quadratic one.

The old parser stripped the thought with ``re.sub(r"\\s*action\\s*:\\s*$", ...)``: a trailing-anchored
pattern retried at every position of a whitespace run, O(n^2) in its length (40k spaces took 11 s). Both
parsers run in this one process on the same inputs (``n`` spaces before ``Search[x]``); the growth factor
t(10 n) / t(n) reads 10 for linear time and 100 for quadratic. The old parser stops at ``--old-max``.

    aligngym bench react-parse --publish benchmarks/results
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import time

from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.runs.bench.options import add_output_arguments, command_line, out_dir, publish

NAME = "react-parse"
DESCRIPTION = "ReActQA step parsing time vs leading whitespace: current (linear) vs old (quadratic) parser"
FILES = ("react_parse.md", "react_parse.json")
_OLD_THOUGHT_PREFIX = re.compile(r"^\s*thought\s*:\s*", re.IGNORECASE)
_OLD_ACTION_SUFFIX = re.compile(r"\s*action\s*:\s*$", re.IGNORECASE)


def old_parse(text: str) -> str:
    """The thought extraction of the parser before the fix (the part that was quadratic)."""
    from aligngym.envs.text.react import _STEP

    match = _STEP.search(text)
    assert match is not None
    return _OLD_ACTION_SUFFIX.sub("", _OLD_THOUGHT_PREFIX.sub("", text[: match.start()]))


def best_time(function, text: str, repeats: int) -> float:
    """The fastest of ``repeats`` runs (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(text)
        times.append(time.perf_counter() - start)
    return min(times)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000, 1_000_000], help="leading spaces"
    )
    parser.add_argument("--old-max", type=int, default=100_000, help="largest size given to the old parser")
    parser.add_argument("--repeats", type=int, default=3)
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    from aligngym.envs.text.react import parse_step

    out = out_dir(args, NAME)
    rows = []
    for size in sorted(args.sizes):
        text = " " * size + "Search[x]"
        row = {"spaces": size, "current_s": best_time(parse_step, text, args.repeats)}
        row["old_s"] = best_time(old_parse, text, 1) if size <= args.old_max else None
        rows.append(row)
    for previous, row in itertools.pairwise(rows):
        factor = row["spaces"] / previous["spaces"]
        row["size_factor"] = factor
        row["current_growth"] = row["current_s"] / previous["current_s"]
        if row["old_s"] is not None and previous["old_s"] is not None:
            row["old_growth"] = row["old_s"] / previous["old_s"]
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    command = command_line(args, NAME)

    def cell(value: float | None, digits: str = ".2e") -> str:
        return "-" if value is None else format(value, digits)

    lines = [
        "# ReActQA step parsing vs leading whitespace",
        "",
        f"Command: `{command}`; {meta['machine']}; load average {meta['loadavg']} (other processes ran).",
        "Input: n spaces then `Search[x]`; best of the repeats, seconds. Growth = t(n) / t(previous n):",
        "linear time grows like the size factor, quadratic like its square.",
        "",
        "| spaces | current s | current growth | old s | old growth | size factor |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['spaces']:,} | {cell(row['current_s'])} | {cell(row.get('current_growth'), '.1f')} | "
            f"{cell(row['old_s'])} | {cell(row.get('old_growth'), '.1f')} | {cell(row.get('size_factor'), '.0f')} |"
        )
    markdown = "\n".join(lines) + "\n"
    atomic_write_text(out / "react_parse.md", markdown)
    atomic_write_json(out / "react_parse.json", {"command": command, **meta, "rows": rows})
    print(markdown)
    for path in publish(out, FILES, args.publish):
        print(f"published: {path}")
    return 0
