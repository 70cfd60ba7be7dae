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


METRIC_TITLES = {
    "nominal_return": "nominal",
    "vs_adversary_return": "vs training adversary",
    "vs_worst_case_return": "vs fresh worst-case adversary",
    "vs_constant_push_return": "vs strongest constant push",
    "grid_mean": "grid mean",
    "grid_worst": "grid worst cell",
}
COMPARED = ("grid_mean", "grid_worst", "vs_worst_case_return", "vs_constant_push_return", "nominal_return")
"""The metrics of the method-vs-baseline table, the robustness ones first."""


def comparisons(methods: list[str]) -> list[tuple[str, str]]:
    """(method, baseline) pairs to test: every method against SAC, and QARL against RARL (the paper's claims)."""
    pairs = [(m, "sac") for m in methods if m != "sac" and "sac" in methods]
    if "qarl" in methods and "rarl" in methods:
        pairs.append(("qarl", "rarl"))
    return pairs


def versus(rows: list[dict[str, Any]], baseline: list[dict[str, Any]], metric: str) -> tuple[str, str]:
    """``P(method > baseline)`` with its bootstrap CI, and the same-seed paired difference with its t CI."""
    from aligngym.runs.statistics import improvement_interval, paired_difference

    x = [r[metric] for r in rows if metric in r]
    y = [r[metric] for r in baseline if metric in r]
    if not x or not y:
        return "-", "-"
    probability = improvement_interval(np.array(x), np.array(y)).text(2)
    by_seed = {r["seed"]: r[metric] for r in baseline if metric in r}
    pairs = [(r[metric], by_seed[r["seed"]]) for r in rows if metric in r and r["seed"] in by_seed]
    if len(pairs) < 2:
        return probability, "-"
    a, b = (np.array(v) for v in zip(*pairs))
    return probability, paired_difference(a, b).text(1, signed=True)


def run_config(row: dict[str, Any]) -> dict[str, Any]:
    """The ``config`` section of a run folder's ``config.yaml`` (plain YAML)."""
    import yaml

    return (yaml.safe_load((Path(row["run_dir"]) / "config.yaml").read_text()) or {}).get("config", {})


def curriculum_trace(row: dict[str, Any]) -> dict[str, Any] | None:
    """A QARL run's curriculum from its ``iterations.csv``: the alpha-mean trace and where it reached its target."""
    import csv

    run_dir = Path(row["run_dir"])
    path = run_dir / "iterations.csv"
    if row["method"] != "qarl" or not path.is_file():
        return None
    records = list(csv.DictReader(path.read_text().splitlines()))
    config = run_config(row)
    stop_kl = float((config.get("curriculum") or {}).get("stop_kl", 0.01))
    reached = next(
        (
            r
            for r in records
            if r.get("curriculum_status") == "done"
            or float(r.get("curriculum_kl_to_target") or "inf") <= stop_kl
        ),
        None,
    )
    statuses = [r.get("curriculum_status", "") for r in records]
    return {
        "seed": row["seed"],
        "steps": [int(r["protagonist_timesteps"]) for r in records],
        "alpha": [float(r["curriculum_alpha_mean"]) for r in records],
        "reached_iteration": int(reached["iteration"]) if reached else None,
        "reached_steps": int(reached["protagonist_timesteps"]) + int(reached["adversary_timesteps"])
        if reached
        else None,
        "final_alpha": float(records[-1]["curriculum_alpha_mean"]),
        "final_kl": float(records[-1]["curriculum_kl_to_target"]),
        "counts": {status: statuses.count(status) for status in ("moved", "frozen", "rejected", "waiting")},
        "iterations": len(records),
    }


def plot_curriculum(traces: list[dict[str, Any]], target: float, path: Path, title: str) -> None:
    """Alpha mean against protagonist steps, one line per seed, the target dashed (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aligngym.files import atomic_path

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for trace in traces:
        ax.plot(trace["steps"], trace["alpha"], marker=".", label=f"seed {trace['seed']}")
    ax.axhline(target, color="k", linestyle="--", linewidth=1, label=f"target mean {target:g}")
    ax.set_yscale("log")
    ax.set_xlabel("protagonist env steps")
    ax.set_ylabel("mean adversary temperature alpha")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def protocol_line(rows: list[dict[str, Any]]) -> str:
    """The settings every run shares, read from the first run's config.yaml."""

    config = run_config(rows[0])
    evaluation = config.get("evaluation") or {}
    return (
        f"Protocol: `{config.get('env_id')}` with env_kwargs {config.get('env_kwargs')}, horizon "
        f"{config.get('max_episode_steps')}, {config.get('iterations')} iterations x "
        f"({config.get('adversary_steps')} adversary + {config.get('protagonist_steps')} protagonist) env steps, "
        f"SAC {config.get('policy_kwargs', {}).get('net_arch')} with {config.get('hyperparams')}; fresh worst-case "
        f"adversary trained {evaluation.get('worst_case_steps')} steps; grid {evaluation.get('grid_points')} x "
        f"{evaluation.get('grid_points')}, {evaluation.get('grid_episodes')} episode(s) per cell; "
        f"{evaluation.get('episodes')} evaluation episodes for the other returns."
    )


def report(
    rows: list[dict[str, Any]], methods: list[str], task: str, command: str, out: Path, wall_s: float
) -> str:
    from aligngym.envs.perturbations import plot_heatmap
    from aligngym.runs.statistics import iqm_interval

    by_method = {m: [r for r in rows if r["method"] == m] for m in methods}
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        f"# Robustness of {', '.join(m for m in methods if by_method[m])} protagonists on {task}",
        "",
        f"Command: `{command}`",
        "",
        protocol_line(rows) if rows else "",
        "",
        (
            f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load} when this report was written; wall "
            f"{wall_s / 60:.1f} min for the cells run in this invocation. Returns are undiscounted episode returns "
            "of the deterministic protagonist (recipes in runs/recipes/). Each cell: the interquartile mean (IQM) "
            "over seeds with a stratified-bootstrap 95 % CI (aligngym.runs.statistics)."
        ),
        "",
        "| method | seeds | protagonist steps | " + " | ".join(METRIC_TITLES.values()) + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(METRIC_TITLES),
    ]
    for method, method_rows in by_method.items():
        if not method_rows:
            continue
        cells = []
        for metric in METRIC_TITLES:
            values = [r[metric] for r in method_rows if metric in r]
            cells.append(iqm_interval(np.array(values)).text(1) if values else "-")
        steps = int(np.mean([r["protagonist_timesteps"] for r in method_rows]))
        lines.append(f"| {method} | {len(method_rows)} | {steps} | " + " | ".join(cells) + " |")
        grid = averaged_grid(method_rows)
        plot_heatmap(
            grid,
            out / f"adversarial_heatmap_{task}_{method}.png",
            title=heatmap_title(method, grid, len(method_rows)),
        )
    pairs = [(m, b) for m, b in comparisons(methods) if by_method.get(m) and by_method.get(b)]
    if pairs:
        lines += [
            "",
            (
                "Against the baselines: the probability of improvement P(method > baseline) (a run of the method "
                "beats a run of the baseline; 0.5 = no difference) with a stratified-bootstrap 95 % CI, and the mean "
                "same-seed difference method - baseline with a Student-t 95 % CI."
            ),
            "",
            "| method vs baseline | metric | P(method > baseline) | paired difference |",
            "| --- | --- | ---: | ---: |",
        ]
        for method, baseline in pairs:
            for metric in COMPARED:
                probability, difference = versus(by_method[method], by_method[baseline], metric)
                lines.append(
                    f"| {method} vs {baseline} | {METRIC_TITLES[metric]} | {probability} | {difference} |"
                )
    traces = [t for t in (curriculum_trace(r) for r in by_method.get("qarl", [])) if t is not None]
    if traces:
        config = run_config(by_method["qarl"][0])
        curriculum = config.get("curriculum") or {}
        target = float(curriculum.get("target_concentration", 1.0)) / float(curriculum.get("rate", 1000.0))
        reached = sum(t["reached_iteration"] is not None for t in traces)
        lines += [
            "",
            (
                f"QARL curriculum (target mean alpha {target:g}, stop at KL to the target <= "
                f"{curriculum.get('stop_kl', 0.01)}): reached on {reached} of {len(traces)} seeds. Updates count "
                "the iterations by status (moved; frozen = performance below xi; rejected = no better feasible step; "
                "waiting = fewer than min_episodes episodes). Trace: "
                f"adversarial_curriculum_{task}.png."
            ),
            "",
            (
                "| seed | reached at iteration | env steps (both players) | final alpha mean | final KL to target "
                "| moved / frozen / rejected / waiting |"
            ),
            "| ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for t in sorted(traces, key=lambda t: t["seed"]):
            at = t["reached_iteration"]
            counts = " / ".join(str(t["counts"][k]) for k in ("moved", "frozen", "rejected", "waiting"))
            at_text = str(at) if at is not None else f"not in {t['iterations']}"
            steps_text = str(t["reached_steps"]) if at is not None else "-"
            lines.append(
                f"| {t['seed']} | {at_text} | {steps_text} | {t['final_alpha']:.4f} | {t['final_kl']:.3f} | {counts} |"
            )
        plot_curriculum(
            traces,
            target,
            out / f"adversarial_curriculum_{task}.png",
            f"QARL curriculum on {task}, {len(traces)} seeds",
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
    heatmaps = [
        f"adversarial_heatmap_{args.task}_{m}.png"
        for m in args.methods
        if any(r["method"] == m for r in rows)
    ]
    curriculum = (
        [f"adversarial_curriculum_{args.task}.png"]
        if (out / f"adversarial_curriculum_{args.task}.png").is_file() and "qarl" in args.methods
        else []
    )
    for path in publish(out, [f"{stem}.md", f"{stem}.json", *heatmaps, *curriculum], args.publish):
        print(f"published: {path}")
    return 0
