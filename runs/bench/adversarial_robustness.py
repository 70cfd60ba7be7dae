"""SAC vs RARL vs QARL (and optionally SAC vs random forces): robustness of the trained protagonists.

Each (method, seed) cell runs the built-in recipe ``<method>-<task>`` through ``aligngym train``'s code
path (run folders under ``OUT/runs``), which trains and then evaluates: nominal return, return against the
training adversary, against a fresh worst-case adversary, and the mass x friction grid. Cells run through
the project's sweep runner (``aligngym.runs.sweep``): a local process pool or Ray, one JSONL row per
finished cell, so a killed benchmark re-run with the same ``--out`` skips finished cells. The table gives
mean and standard deviation over seeds; the heatmaps show each method's grid averaged over seeds.

    nice -n 10 aligngym bench adversarial-robustness --seeds 3 --workers 2     # InvertedPendulum
    aligngym bench adversarial-robustness --task hopper --seeds 5 --workers 2 \
        --set iterations=30 --set protagonist_steps=2000 --set adversary_steps=2000 \
        --set hyperparams.learning_starts=5000 --set hyperparams.buffer_size=100000 \
        --set hyperparams.batch_size=128 --set "policy_kwargs.net_arch=[128,128]" \
        --set evaluation.worst_case_steps=60000 --publish benchmarks/results       # Hopper, about 2 h
    aligngym bench adversarial-robustness --seeds 1 --methods sac qarl --set iterations=2 --out /tmp/quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from aligngym.runs.bench.options import (
    DEFAULT_ROOT,
    add_output_arguments,
    add_sweep_arguments,
    command_line,
    publish,
    sweep_options,
)

NAME = "adversarial-robustness"
DESCRIPTION = "robustness of SAC, RARL and QARL protagonists: methods x seeds, heatmaps (sweep)"
RECIPES = {
    "sac": "sac-{task}",
    "random": "sac-random-{task}",
    "dr": "sac-dr-{task}",
    "rarl": "rarl-{task}",
    "qarl": "qarl-{task}",
}
METRICS = (
    "nominal_return",
    "vs_adversary_return",
    "vs_worst_case_return",
    "vs_constant_push_return",
    "grid_mean",
    "grid_worst",
)


def run_cell(cell: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Sweep cell function: train + evaluate one (method, seed) recipe; return its summary and run folder."""
    from aligngym.runs.training import run_recipe

    config = cell["config"]
    overrides = [f"seed={cell['seed']}", *config["overrides"]]
    run_dir, summary = run_recipe(config["recipe"], overrides, out=cell["runs"])
    return {**{k: v for k, v in summary.items() if isinstance(v, (int, float, str))}, "run_dir": str(run_dir)}


def averaged_grid(rows: list[dict[str, Any]]) -> Any:
    """The GridResult of a method with each cell averaged over its seeds."""
    from aligngym.envs.perturbations import GridResult

    grids = [json.loads((Path(r["run_dir"]) / "robustness.json").read_text())["grid"] for r in rows]
    first = grids[0]
    returns = np.mean([g["returns"] for g in grids], axis=0)
    stds = np.std([g["returns"] for g in grids], axis=0)
    return GridResult(
        first["task"],
        first["body"],
        first["nominal_mass"],
        first["masses"],
        first["frictions"],
        returns,
        stds,
        first["episodes"],
        first["seed"],
    )


def heatmap_title(method: str, grid: Any, seeds: int) -> str:
    return f"{method}, {seeds} seeds: mean {grid.mean:.0f}, worst {grid.worst:.0f}"


def versus_sac(rows: list[dict[str, Any]], sac_rows: list[dict[str, Any]], metric: str) -> str:
    """Relative difference of the seed means to SAC and Welch's t-test p-value (unequal variances)."""
    from scipy.stats import ttest_ind

    if not sac_rows or rows is sac_rows:
        return "-"
    values, sac = [r[metric] for r in rows], [r[metric] for r in sac_rows]
    relative = 100 * (np.mean(values) / np.mean(sac) - 1)
    p_value = (
        ttest_ind(values, sac, equal_var=False).pvalue if min(len(values), len(sac)) > 1 else float("nan")
    )
    return f"{relative:+.1f}% (p={p_value:.2f})"


def report(
    rows: list[dict[str, Any]], methods: list[str], task: str, command: str, out: Path, wall_s: float
) -> str:
    from aligngym.envs.perturbations import plot_heatmap

    by_method = {m: [r for r in rows if r["method"] == m] for m in methods}
    lines = [
        f"# Robustness of SAC, RARL and QARL protagonists on {task}",
        "",
        f"Command: `{command}`",
        "",
        (
            f"{platform.machine()}, {os.cpu_count()} CPUs shared with other jobs, wall {wall_s / 60:.1f} min for "
            "the cells run in this "
            "invocation. Mean +- std over seeds; every run evaluated after training "
            "(recipes in runs/recipes/; returns are undiscounted episode returns)."
        ),
        "",
        (
            "| method | seeds | protagonist steps | nominal | vs training adversary | vs fresh worst-case adversary "
            "| vs strongest constant push "
            "| grid mean | grid worst cell | grid mean vs SAC (Welch p) | grid worst vs SAC (Welch p) |"
        ),
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    sac_rows = by_method.get("sac", [])
    for method, method_rows in by_method.items():
        if not method_rows:
            continue
        cells = []
        for metric in METRICS:
            values = [r[metric] for r in method_rows if metric in r]
            cells.append(f"{np.mean(values):.1f} +- {np.std(values):.1f}" if values else "-")
        versus = [versus_sac(method_rows, sac_rows, metric) for metric in ("grid_mean", "grid_worst")]
        steps = int(np.mean([r["protagonist_timesteps"] for r in method_rows]))
        lines.append(f"| {method} | {len(method_rows)} | {steps} | " + " | ".join(cells + versus) + " |")
        grid = averaged_grid(method_rows)
        plot_heatmap(
            grid,
            out / f"adversarial_heatmap_{task}_{method}.png",
            title=heatmap_title(method, grid, len(method_rows)),
        )
    lines += [
        "",
        "Per run:",
        "",
        "| method | seed | " + " | ".join(METRICS) + " | final alpha mean | run folder |",
        "| --- | ---: |" + " ---: |" * (len(METRICS) + 1) + " --- |",
    ]
    for row in sorted(rows, key=lambda r: (methods.index(r["method"]), r["seed"])):
        values = " | ".join(f"{row[m]:.1f}" if m in row else "-" for m in METRICS)
        alpha = f"{row['final_alpha_mean']:.4f}" if "final_alpha_mean" in row else "-"
        lines.append(
            f"| {row['method']} | {row['seed']} | {values} | {alpha} | {Path(row['run_dir']).name} |"
        )
    lines += [
        "",
        "Heatmaps (grid averaged over seeds): "
        + ", ".join(f"adversarial_heatmap_{task}_{m}.png" for m in methods if by_method.get(m)),
    ]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a recipe override for every method (repeatable), e.g. --set iterations=40",
    )
    parser.add_argument(
        "--task", default="invertedpendulum", help="recipe suffix: invertedpendulum, hopper, halfcheetah"
    )
    parser.add_argument("--methods", nargs="+", default=["qarl", "rarl", "sac"], choices=sorted(RECIPES))
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per method")
    add_sweep_arguments(parser, workers=2)
    add_output_arguments(parser, NAME, default=f"{DEFAULT_ROOT / NAME}/TASK")


def run(args: argparse.Namespace) -> int:
    from aligngym.files import atomic_write_json, atomic_write_text
    from aligngym.runs.errors import UsageError
    from aligngym.runs.recipes import builtin_recipes, load_recipe
    from aligngym.runs.sweep import run_sweep

    out = args.out if args.out is not None else DEFAULT_ROOT / NAME / args.task
    recipes = {m: RECIPES[m].format(task=args.task) for m in args.methods}
    missing = sorted(r for r in recipes.values() if r not in builtin_recipes())
    if missing:
        raise UsageError(
            f"--task {args.task!r} has no built-in recipe {', '.join(missing)}; see `aligngym train --list`"
        )
    for recipe in recipes.values():  # a bad --set fails here, before any cell runs
        load_recipe(recipe, args.overrides)
    cells = [
        {
            "domain": "control",
            "env": args.task,
            "method": method,
            "noise": None,
            "rate": None,
            "seed": seed,
            "config": {"recipe": recipes[method], "overrides": args.overrides},
            "runs": str(out / "runs"),  # where the run folders go; not part of the cell's identity
        }
        for seed in range(args.seeds)  # seed-major: a partial sweep holds whole seeds of every method
        for method in args.methods
    ]
    start = time.perf_counter()
    rows = run_sweep(cells, f"{__name__}:run_cell", out, **sweep_options(args))
    text = report(rows, args.methods, args.task, command_line(args, NAME), out, time.perf_counter() - start)
    stem = f"adversarial_robustness_{args.task}"
    atomic_write_text(out / f"{stem}.md", text)
    atomic_write_json(out / f"{stem}.json", rows)
    print(text)
    heatmaps = [f"adversarial_heatmap_{args.task}_{m}.png" for m in args.methods]
    for path in publish(out, [f"{stem}.md", f"{stem}.json", *heatmaps], args.publish):
        print(f"published: {path}")
    return 0
