"""How hard do pushes of a given strength hit trained protagonists? Constant pushes and fresh SAC adversaries.

For every finished run folder of ``aligngym bench adversarial-robustness`` (``--runs``: its ``OUT/runs``),
the protagonist is evaluated (deterministic, 10 episodes, alpha = 0 for QARL) against, for each force bound B:

- the strongest constant push: the worst of the four constant forces (+-B along x, +-B along z) applied
  at the task's bodies every step - a crude adversary that needs no training;
- optionally (``--worst-case-steps N > 0``) a fresh SAC adversary trained for N steps at bound B against the
  frozen protagonist, as in the robustness evaluation.

This answers whether the force bound used in training is strong enough to matter, and whether a learned
worst-case adversary finds at least what a constant push does. Each (run, bound) is one cell of the sweep
runner (local pool or Ray; rows in ``OUT/<name>.jsonl``, so a re-run resumes).

    aligngym bench force-bound-probe --runs results/bench/adversarial-robustness/hopper/runs \
        --bounds 5 20 50 100 --publish benchmarks/results
    aligngym bench force-bound-probe --runs results/bench/adversarial-robustness/hopper/runs --methods sac \
        --bounds 50 --worst-case-steps 20000 --name force_bound_probe_hopper_fresh_adversary
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from aligngym.runs.bench.options import (
    add_output_arguments,
    add_sweep_arguments,
    command_line,
    out_dir,
    publish,
    sweep_options,
)
from aligngym.runs.errors import UsageError

NAME = "force-bound-probe"
DESCRIPTION = (
    "constant pushes (and fresh SAC adversaries) per force bound against trained protagonists (sweep)"
)
SEED = 10_000  # episode seed of every evaluation here


def probe(run_dir: Path, bound: float, episodes: int, worst_case_steps: int) -> dict[str, Any]:
    """Returns under constant pushes (and a fresh adversary) at one bound for one run folder."""
    import dataclasses

    from aligngym.agents.adversarial.evaluation import (
        evaluation_game,
        mean_return,
        train_worst_case_adversary,
        worst_constant_push,
    )
    from aligngym.agents.adversarial.opponents import ModelPolicy, protagonist_env
    from aligngym.agents.adversarial.training import load_players
    from aligngym.runs.recipes import load_recipe

    recipe = load_recipe(str(run_dir / "config.yaml"))
    summary = json.loads((run_dir / "summary.json").read_text())
    protagonist, _ = load_players(recipe.config, run_dir)
    config = dataclasses.replace(recipe.config, env_kwargs={**recipe.config.env_kwargs, "force_bound": bound})

    def game() -> Any:
        return evaluation_game(config)

    worst, push = worst_constant_push(protagonist, game, episodes, SEED)
    row = {
        "run": run_dir.name,
        "method": summary["method"],
        "seed": recipe.seed,
        "bound": bound,
        "nominal": mean_return(protagonist, lambda: protagonist_env(game()), episodes, SEED)[0],
        "worst_constant": worst,
        "worst_constant_push": push,
    }
    if worst_case_steps > 0:
        adversary = train_worst_case_adversary(config, protagonist, worst_case_steps, SEED + 2)
        opponent = ModelPolicy(adversary, deterministic=True)
        row["fresh_adversary"] = mean_return(
            protagonist, lambda: protagonist_env(game(), opponent), episodes, SEED
        )[0]
    return row


def run_cell(cell: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Sweep cell function: probe one run folder at one bound."""
    import torch

    torch.set_num_threads(1)
    config = cell["config"]
    return probe(Path(cell["run_dir"]), config["bound"], config["episodes"], config["worst_case_steps"])


def markdown(rows: list[dict[str, Any]], bounds: list[float], command: str) -> str:
    methods = sorted({r["method"] for r in rows})
    fresh = any("fresh_adversary" in r for r in rows)
    lines = [
        "# Force-bound probe: constant pushes (and fresh adversaries) against trained protagonists",
        "",
        f"Command: `{command}`",
        "",
        (
            "Mean +- std over seeds of the protagonist's mean return (deterministic episodes); the worst constant "
            "push is the worst of +-bound along each force axis (on every pushed body), applied every step."
        ),
        "",
        "| method | bound (N) | nominal | worst constant push | which push (runs) |"
        + (" fresh SAC adversary |" if fresh else ""),
        "| --- | ---: | ---: | ---: | --- |" + (" ---: |" if fresh else ""),
    ]
    for method in methods:
        for bound in bounds:
            sel = [r for r in rows if r["method"] == method and r["bound"] == bound]
            cells = [
                f"{np.mean([r[k] for r in sel]):.1f} +- {np.std([r[k] for r in sel]):.1f}"
                for k in ("nominal", "worst_constant") + (("fresh_adversary",) if fresh else ())
                if all(k in r for r in sel)
            ]
            which = ", ".join(
                f"{push} ({n})" for push, n in Counter(r["worst_constant_push"] for r in sel).most_common()
            )
            cells.insert(2, which)
            lines.append(f"| {method} | {bound:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs",
        type=Path,
        required=True,
        help="the run folders of adversarial-robustness (its OUT/runs folder)",
    )
    parser.add_argument("--bounds", type=float, nargs="+", default=[5.0, 20.0, 50.0, 100.0])
    parser.add_argument(
        "--methods", nargs="+", default=None, help="only runs of these methods (sac, rarl, qarl, random)"
    )
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--worst-case-steps", type=int, default=0)
    parser.add_argument("--name", default="force_bound_probe_hopper", help="file stem of the results")
    add_sweep_arguments(parser, workers=2)
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    from aligngym.files import atomic_write_json, atomic_write_text
    from aligngym.runs.sweep import run_sweep

    out = out_dir(args, NAME)
    run_dirs = sorted(p.parent for p in args.runs.glob("*/protagonist.zip"))
    methods = {d: json.loads((d / "summary.json").read_text())["method"] for d in run_dirs}
    if args.methods:
        run_dirs = [d for d in run_dirs if methods[d] in args.methods]
    if not run_dirs:
        raise UsageError(f"no finished run folders (*/protagonist.zip) under {str(args.runs)!r}")
    cells = [
        {
            "domain": "control",
            "env": run_dir.name,
            "method": methods[run_dir],
            "noise": None,
            "rate": None,
            "seed": None,
            "config": {
                "run": run_dir.name,
                "bound": bound,
                "episodes": args.episodes,
                "worst_case_steps": args.worst_case_steps,
            },
            "run_dir": str(run_dir),  # where the run lies; not part of the cell's identity
        }
        for run_dir in run_dirs
        for bound in args.bounds
    ]
    rows = run_sweep(
        cells, f"{__name__}:run_cell", out, results_file=f"{args.name}.jsonl", **sweep_options(args)
    )
    keys = (
        "run",
        "method",
        "seed",
        "bound",
        "nominal",
        "worst_constant",
        "worst_constant_push",
        "fresh_adversary",
    )
    rows = [{k: r[k] for k in keys if k in r} for r in rows]
    text = markdown(rows, args.bounds, command_line(args, NAME))
    atomic_write_text(out / f"{args.name}.md", text)
    atomic_write_json(out / f"{args.name}.json", rows)
    print(text)
    for path in publish(out, (f"{args.name}.md", f"{args.name}.json"), args.publish):
        print(f"published: {path}")
    return 0
