"""Mutation testing: plant one-line bugs one at a time in a copy of the project and run its tests.

Each mutant of ``mutants.yaml`` names a source file, an exact fragment of it, the mutated fragment and what
the bug breaks. For every mutant the script copies the tree once (``git archive REV``, or the working
tree's tracked and unignored files), replaces the fragment (it must occur exactly once), runs the test
files that cover the module against the copy (``PYTHONPATH`` points at the copy, whose ``aligngym/``
holds symlinks to its package folders, so the editable install of the real tree is not used), and
restores the file. A mutant is *caught* when a test fails (or the run exceeds its time limit),
*survived* when every test passes, *stale* when its fragment is no longer in the file (code moved: update
the list, keeping the bug), *ambiguous* when the fragment occurs more than once. The unmutated copy's
tests must pass first (a failing baseline makes every mutant look caught).

Usage (from the repository root):

    .venv/bin/python tests/mutation/run.py --label after                 # the working tree
    .venv/bin/python tests/mutation/run.py --label before --rev 7b56479  # a commit
    .venv/bin/python tests/mutation/run.py --label after --only sweep-nan-as-null,dpo-beta-dropped

Results go to ``benchmarks/results/mutation.json`` (one entry per label, merged with what is there) and
``benchmarks/results/mutation.md`` (per-module scores of every label side by side, then each mutant).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = Path(__file__).with_name("mutants.yaml")
RESULTS = ROOT / "benchmarks" / "results"
CAUGHT = ("caught", "timeout")


@dataclass
class Mutant:
    id: str
    files: list[str]
    """Where the fragment may be: the first of these files that holds it is mutated (code moves)."""
    original: str
    mutated: str
    alternatives: list[tuple[str, str]]
    """(original, mutated) of the same bug in an older or newer version of the code, tried in order."""
    breaks: str
    tests: list[str]
    module: str


def load_mutants(path: Path = MUTANTS) -> list[Mutant]:
    """The mutants of ``path``; each gets the test files of its module unless it lists its own."""
    spec = yaml.safe_load(path.read_text())
    modules: dict[str, dict[str, Any]] = spec["modules"]
    mutants, seen = [], set()
    for raw in spec["mutants"]:
        if raw["id"] in seen:
            raise ValueError(f"mutant id {raw['id']!r} is listed twice")
        seen.add(raw["id"])
        files = [raw["file"]] if isinstance(raw["file"], str) else list(raw["file"])
        module = next((name for name, m in modules.items() if set(files) <= set(m["files"])), None)
        if module is None:
            raise ValueError(f"mutant {raw['id']!r}: {files} belong to no single module of {path.name}")
        mutants.append(
            Mutant(
                id=raw["id"],
                files=files,
                original=raw["original"],
                mutated=raw["mutated"],
                alternatives=[(a["original"], a["mutated"]) for a in raw.get("alternatives", [])],
                breaks=raw["breaks"],
                tests=list(raw.get("tests") or modules[module]["tests"]),
                module=module,
            )
        )
    return mutants


def make_copy(dest: Path, rev: str | None) -> None:
    """The tree at ``rev`` (or the working tree's tracked + unignored files) in ``dest``, importable."""
    dest.mkdir(parents=True)
    if rev is not None:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    else:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        ).stdout.split(b"\0")
        for name in filter(None, (n.decode() for n in listed)):
            source = ROOT / name
            if source.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dest / name)
    # aligngym.X lives in folder X (pyproject's package-dir): link it under the copy's aligngym/.
    package_dirs = tomllib.loads((dest / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in package_dirs.items():
        if package != "aligngym":
            link = dest / "aligngym" / package.split(".", 1)[1]
            if not link.exists():
                link.symlink_to(Path("..") / folder)


def _env_for(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(copy), HF_HUB_OFFLINE="1", MUJOCO_GL=env.get("MUJOCO_GL", "egl"))
    env.pop("PYTEST_ADDOPTS", None)
    return env


def check_copy_is_imported(copy: Path) -> None:
    """Fail loudly if ``aligngym`` would resolve to the editable install instead of the copy."""
    out = subprocess.run(
        [sys.executable, "-c", "import aligngym.rewards.losses as m; print(m.__file__)"],
        cwd=copy,
        env=_env_for(copy),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(out).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"mutation: the copy is not what gets imported ({out}); aborting")


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, str, float]:
    """(status, first failing test or last output line, seconds) of the tests in ``copy``."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow and not gpu",
        "--timeout",
        str(int(timeout)),
        *tests,
    ]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command,
            cwd=copy,
            env=_env_for(copy),
            capture_output=True,
            text=True,
            timeout=timeout + 60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "timeout", f"more than {timeout:.0f} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    lines = proc.stdout.splitlines()
    failed = [
        line.split(" ", 1)[1].split(" - ")[0] for line in lines if line.startswith(("FAILED ", "ERROR "))
    ]
    if proc.returncode == 0:
        return "survived", "", seconds
    if "Timeout" in proc.stdout and not failed:
        return "timeout", "pytest-timeout", seconds
    if proc.returncode in (1, 2, 3):  # tests failed / interrupted (e.g. a collection error) / internal error
        return "caught", failed[0] if failed else (lines[-1] if lines else f"exit {proc.returncode}"), seconds
    return "error", f"pytest exit {proc.returncode}: {(lines or [''])[-1]}", seconds


def mutate(copy: Path, mutant: Mutant) -> tuple[str, str, str | None]:
    """Plant the mutant: ("planted", file, original text), or (stale / ambiguous, why, None)."""
    for original, mutated in [(mutant.original, mutant.mutated), *mutant.alternatives]:
        for name in mutant.files:
            path = copy / name
            text = path.read_text() if path.is_file() else ""
            count = text.count(original)
            if count > 1:
                return "ambiguous", f"fragment occurs {count} times in {name}", None
            if count == 1:
                path.write_text(text.replace(original, mutated))
                return "planted", name, text
    return "stale", f"fragment not found in {', '.join(mutant.files)}", None


def run(args: argparse.Namespace) -> dict[str, Any]:
    mutants = load_mutants()
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {m.id for m in mutants}
        if unknown:
            raise SystemExit(f"mutation: unknown mutant id(s): {', '.join(sorted(unknown))}")
        mutants = [m for m in mutants if m.id in wanted]
    workdir = Path(tempfile.mkdtemp(prefix="aligngym-mutation-"))
    copy = workdir / "tree"
    rev = args.rev
    commit = subprocess.run(
        ["git", "rev-parse", "--short", rev or "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        make_copy(copy, rev)
        check_copy_is_imported(copy)
        needed = sorted({t for m in mutants for t in m.tests if (copy / t.split("::")[0]).exists()})
        print(f"mutation: baseline of {len(needed)} test file(s) in {copy}", flush=True)
        status, detail, seconds = (
            ("survived", "", 0.0) if args.no_baseline else run_tests(copy, needed, args.timeout * 3)
        )
        if status != "survived":
            raise SystemExit(
                f"mutation: the unmutated tests do not pass ({status}: {detail}); fix them first"
            )
        results = []
        for number, mutant in enumerate(mutants, start=1):
            tests = [t for t in mutant.tests if (copy / t.split("::")[0]).exists()]
            status, where, original = mutate(copy, mutant)
            detail, seconds = where, 0.0
            if status == "planted":
                if tests:
                    status, detail, seconds = run_tests(copy, tests, args.timeout)
                else:
                    status, detail = "stale", "none of its test files exists"
                (copy / where).write_text(original)
            results.append(
                {
                    "id": mutant.id,
                    "module": mutant.module,
                    "file": where if original is not None else None,
                    "status": status,
                    "detail": detail,
                    "seconds": round(seconds, 1),
                }
            )
            print(f"[{number}/{len(mutants)}] {status:9s} {mutant.id}  {detail}", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "label": args.label,
        "commit": commit if rev else f"{commit} + working tree",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["tests/mutation/run.py", *sys.argv[1:]]),
        "results": results,
    }


def module_scores(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    scores: dict[str, dict[str, int]] = {}
    for r in report["results"]:
        s = scores.setdefault(r["module"], {"caught": 0, "survived": 0, "stale": 0})
        key = "caught" if r["status"] in CAUGHT else "survived" if r["status"] == "survived" else "stale"
        s[key] += 1
    return scores


def _score_text(s: dict[str, int] | None) -> str:
    if not s:
        return "-"
    total = s["caught"] + s["survived"]
    pct = f"{100 * s['caught'] / total:.0f} %" if total else "n/a"
    stale = f", {s['stale']} stale" if s["stale"] else ""
    return f"{s['caught']}/{total} ({pct}){stale}"


HOLDOUT = "h-"
"""Id prefix of the hold-out mutants: written after the new tests passed, without reading them."""


def write_reports(new: dict[str, Any]) -> None:
    """Merge ``new`` into mutation.json by label and rewrite mutation.md from all labels.

    A partial run (``--only``) updates its label's results and is added to the label's list of runs."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "mutation.json"
    reports = json.loads(path.read_text()) if path.exists() else {}
    run_info = {k: new[k] for k in ("commit", "date", "command")}
    old = reports.get(new["label"])
    if old is not None and "--only" in new["command"]:
        merged = {r["id"]: r for r in old["results"]}
        merged.update({r["id"]: r for r in new["results"]})
        runs = old.get("runs") or [{k: old[k] for k in ("commit", "date", "command")}]
        new = {"label": new["label"], "runs": [*runs, run_info], "results": list(merged.values())}
    else:
        new = {"label": new["label"], "runs": [run_info], "results": new["results"]}
    reports[new["label"]] = new
    path.write_text(json.dumps(reports, indent=2) + "\n")
    write_markdown(reports)


def _score_table(reports: dict[str, Any], mutants: list[Mutant]) -> list[str]:
    labels = list(reports)
    ids = {m.id for m in mutants}
    scores = {
        label: module_scores({"results": [x for x in r["results"] if x["id"] in ids]})
        for label, r in reports.items()
    }
    lines = ["| module | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for module in dict.fromkeys(m.module for m in mutants):
        lines.append(f"| {module} | " + " | ".join(_score_text(scores[l].get(module)) for l in labels) + " |")
    totals = {
        label: {k: sum(s[k] for s in scores[label].values()) for k in ("caught", "survived", "stale")}
        for label in labels
    }
    lines.append("| **all** | " + " | ".join(f"**{_score_text(totals[l])}**" for l in labels) + " |")
    return lines


def write_markdown(reports: dict[str, Any]) -> None:
    """mutation.md from every label's results, restricted to the mutants listed now (a mutant found to be
    equivalent to the original and removed from the list no longer counts)."""
    labels = list(reports)
    mutants = load_mutants()
    listed = {m.id: m for m in mutants}
    reports = {
        label: {
            **r,
            "results": [{**x, "module": listed[x["id"]].module} for x in r["results"] if x["id"] in listed],
        }
        for label, r in reports.items()
    }
    main = [m for m in mutants if not m.id.startswith(HOLDOUT)]
    holdout = [m for m in mutants if m.id.startswith(HOLDOUT)]
    lines = [
        "# Mutation testing",
        "",
        "One-line bugs from `tests/mutation/mutants.yaml`, planted one at a time in a copy of the tree; the",
        "module's test files (`-m 'not slow and not gpu'`) run against each. Caught = a test fails (or the",
        "run times out); stale = the fragment is no longer in the file (not counted). Only the listed test",
        "files run per mutant, so a score is a lower bound of what the whole default suite catches.",
        "",
        "Runs (`--no-baseline` only after a full run of the same label had passed the unmutated baseline):",
        "",
    ]
    for label in labels:
        for run_info in reports[label].get("runs", []):
            lines.append(
                f"- **{label}**: {run_info['commit']}, {run_info['date']}: "
                f"`.venv/bin/python {run_info['command']}`"
            )
    lines += [
        "",
        f"## The main list ({len(main)} mutants)",
        "",
        "Written before the new tests, from the code and the bugs named in issue 20; the *before* run's",
        "survivors guided which tests were written, so *after* is not an unbiased estimate.",
        "",
        *_score_table(reports, main),
    ]
    if holdout:
        lines += [
            "",
            f"## Hold-out ({len(holdout)} mutants, ids `{HOLDOUT}...`)",
            "",
            "Written after the new tests passed, without reading them: how far the tests carry over.",
            "",
            *_score_table(reports, holdout),
        ]
    lines += ["", "## Mutants", "", "| id | module | what it breaks | " + " | ".join(labels) + " |"]
    lines.append("|---|---|---|" + "---|" * len(labels))
    by_label = {label: {r["id"]: r for r in reports[label]["results"]} for label in labels}
    for m in mutants:
        cells = []
        for label in labels:
            r = by_label[label].get(m.id)
            cells.append(
                "-"
                if r is None
                else r["status"] + (f" (`{r['detail']}`)" if r["status"] in CAUGHT and r["detail"] else "")
            )
        lines.append(f"| `{m.id}` | {m.module} | {m.breaks} | " + " | ".join(cells) + " |")
    (RESULTS / "mutation.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="after", help="the report column, e.g. before / after")
    parser.add_argument("--rev", help="a git revision to test instead of the working tree")
    parser.add_argument("--only", help="comma-separated mutant ids")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant's test run")
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the unmutated run (only after a full run of the same tree passed it; shown in the report)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave the reports alone")
    parser.add_argument("--report-only", action="store_true", help="rewrite mutation.md from mutation.json")
    args = parser.parse_args()
    if args.report_only:
        write_markdown(json.loads((RESULTS / "mutation.json").read_text()))
        return
    report = run(args)
    if not args.no_write:
        write_reports(report)
    for module, s in module_scores(report).items():
        print(f"{module:28s} {_score_text(s)}")


if __name__ == "__main__":
    main()
