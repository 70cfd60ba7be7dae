"""How hard do pushes of a given strength hit trained protagonists? Constant pushes and fresh SAC adversaries.

For every finished run folder of ``benchmarks/adversarial_robustness.py`` (``--runs``), the protagonist is
evaluated (deterministic, 10 episodes, alpha = 0 for QARL) against, for each force bound B:

- the strongest constant push: the worst of the four constant forces (+-B along x, +-B along z) applied
  at the task's bodies every step - a crude adversary that needs no training;
- optionally (``--worst-case-steps N > 0``) a fresh SAC adversary trained for N steps at bound B against the
  frozen protagonist, as in the robustness evaluation.

This answers whether the force bound used in training is strong enough to matter, and whether a learned
worst-case adversary finds at least what a constant push does.

    python benchmarks/force_bound_probe.py --runs results/adversarial-robustness-hopper --bounds 5 20 50 100
    python benchmarks/force_bound_probe.py --runs results/adversarial-robustness-hopper --methods sac \
        --bounds 50 --worst-case-steps 20000 --name force_bound_probe_hopper_fresh_adversary
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aligngym.agents.adversarial.evaluation import (
    evaluation_game,
    mean_return,
    train_worst_case_adversary,
    worst_constant_push,
)
from aligngym.agents.adversarial.opponents import ModelPolicy, protagonist_env
from aligngym.agents.adversarial.training import load_players
from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.runs.recipes import load_recipe

RESULTS = Path(__file__).parent / "results"
SEED = 10_000  # episode seed of every evaluation here


def probe(run_dir: Path, bounds: list[float], episodes: int, worst_case_steps: int) -> list[dict[str, Any]]:
    """Returns under constant pushes (and a fresh adversary) at each bound for one run folder."""
    recipe = load_recipe(str(run_dir / "config.yaml"))
    summary = json.loads((run_dir / "summary.json").read_text())
    protagonist, _ = load_players(recipe.config, run_dir)
    rows = []
    for bound in bounds:
        config = dataclasses.replace(
            recipe.config, env_kwargs={**recipe.config.env_kwargs, "force_bound": bound}
        )

        def game(config: Any = config) -> Any:
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
                protagonist, lambda o=opponent: protagonist_env(game(), o), episodes, SEED
            )[0]
        rows.append(row)
    return rows


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=Path, required=True, help="the --runs folder of adversarial_robustness.py"
    )
    parser.add_argument("--bounds", type=float, nargs="+", default=[5.0, 20.0, 50.0, 100.0])
    parser.add_argument(
        "--methods", nargs="+", default=None, help="only runs of these methods (sac, rarl, qarl, random)"
    )
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--worst-case-steps", type=int, default=0)
    parser.add_argument("--name", default="force_bound_probe_hopper", help="file stem of the results")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run_dirs = sorted(p.parent for p in args.runs.glob("*/protagonist.zip"))
    if args.methods:
        run_dirs = [
            d for d in run_dirs if json.loads((d / "summary.json").read_text())["method"] in args.methods
        ]
    if not run_dirs:
        raise SystemExit(f"error: no finished run folders (*/protagonist.zip) under {args.runs}")
    rows = [
        row
        for run_dir in run_dirs
        for row in probe(run_dir, args.bounds, args.episodes, args.worst_case_steps)
    ]
    command = "python benchmarks/force_bound_probe.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    text = markdown(rows, args.bounds, command)
    atomic_write_text(args.out / f"{args.name}.md", text)
    atomic_write_json(args.out / f"{args.name}.json", rows)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
