"""Tensor (CP) policy vs MLP policies under the same PPO settings and budget, several seeds per cell.

Each cell is one ``aligngym train`` recipe run (tensor-ppo-<env>, mlp-ppo-<env> with the paper's one tanh
hidden layer, and mlp-ppo-<env> with policy_kwargs={} for SB3's default 2x64), run by the sweep runner
(local process pool or Ray): every finished cell is one row of ``OUT/results.jsonl`` as it ends, so a killed
run re-run with the same ``--out`` resumes; run folders go to ``OUT/runs/``. Outputs: final deterministic
evaluation return (median and IQR over seeds), parameter count (actor + critic + log-std), learning curves
(SB3's rollout/ep_rew_mean, a moving average over the last 100 training episodes) as a table, JSON and PNG.

    nice -n 10 aligngym bench tensor-vs-mlp --seeds 5 --workers 2 --publish benchmarks/results
    aligngym bench tensor-vs-mlp --seeds 1 --envs Pendulum-v1 --timesteps 2048 --set n_envs=1   # a quick look
"""

from __future__ import annotations

import argparse
import csv
import os
import time
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

NAME = "tensor-vs-mlp"
DESCRIPTION = "CP tensor policy vs MLP policies under the same PPO budget: policies x envs x seeds (sweep)"
FILES = ("tensor_vs_mlp.md", "tensor_vs_mlp.json", "tensor_vs_mlp.png")
ENVS = {"Pendulum-v1": "pendulum", "MountainCarContinuous-v0": "mountaincar"}
# variant -> (recipe prefix, extra overrides)
VARIANTS = {
    "tensor": ("tensor-ppo", []),
    "mlp-paper": ("mlp-ppo", []),
    "mlp-sb3-2x64": ("mlp-ppo", ["policy_kwargs={}"]),
}


def cells(
    envs: list[str], variants: list[str], seeds: int, overrides: list[str], runs: Path
) -> list[dict[str, Any]]:
    """The sweep's grid: one cell per (env, seed, variant); the recipe and its overrides are its config."""
    return [
        {
            "domain": "control",
            "env": env_id,
            "method": variant,
            "noise": None,
            "rate": None,
            "seed": seed,
            "config": {
                "recipe": f"{VARIANTS[variant][0]}-{ENVS[env_id]}",
                "overrides": [*VARIANTS[variant][1], f"name={variant}-{ENVS[env_id]}", *overrides],
            },
            "runs": str(runs),  # where the run folders go; not part of the cell's identity
        }
        for env_id in envs
        for seed in range(seeds)
        for variant in variants
    ]


def run_cell(cell: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Sweep cell function: train one (env, variant, seed) recipe; return its summary and learning curve."""
    import torch

    from aligngym.runs.training import run_recipe

    torch.set_num_threads(1)
    config = cell["config"]
    run_dir, summary = run_recipe(
        config["recipe"], [*config["overrides"], f"seed={cell['seed']}"], cell["runs"]
    )
    curve = []
    with open(run_dir / "progress.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("rollout/ep_rew_mean"):
                curve.append((int(row["time/total_timesteps"]), float(row["rollout/ep_rew_mean"])))
    return {
        "mean_return": summary["mean_return"],
        "std_return": summary["std_return"],
        "timesteps": summary["timesteps"],
        "parameters": summary["parameters"],
        "train_wall_s": summary["wall_s"],
        "run_dir": str(run_dir),
        "curve": curve,
    }


def cell_results(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweep's rows as the per-cell records of the report (``variant``, training ``wall_s``)."""
    keys = ("mean_return", "std_return", "timesteps", "parameters", "run_dir", "curve")
    return [
        {"env": r["env"], "variant": r["method"], "seed": r["seed"], "wall_s": r["train_wall_s"]}
        | {k: r[k] for k in keys}
        for r in rows
    ]


def summarise(cells: list[dict]) -> list[dict]:
    rows = []
    for env_id in ENVS:
        for variant in VARIANTS:
            group = [c for c in cells if c["env"] == env_id and c["variant"] == variant]
            if not group:
                continue
            returns = np.array([c["mean_return"] for c in group])
            q1, median, q3 = np.percentile(returns, [25, 50, 75])
            rows.append(
                {
                    "env": env_id,
                    "variant": variant,
                    "seeds": len(group),
                    "timesteps": group[0]["timesteps"],
                    "parameters": group[0]["parameters"],
                    "median_return": float(median),
                    "iqr_low": float(q1),
                    "iqr_high": float(q3),
                    "returns": returns.tolist(),
                    "wall_s_median": float(np.median([c["wall_s"] for c in group])),
                }
            )
    return rows


def plot(cells: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aligngym.files import atomic_save

    envs = [env_id for env_id in ENVS if any(c["env"] == env_id for c in cells)]
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4))
    for ax, env_id in zip(np.atleast_1d(axes), envs):
        for variant in VARIANTS:
            curves = [
                c["curve"] for c in cells if c["env"] == env_id and c["variant"] == variant and c["curve"]
            ]
            if not curves:
                continue
            end = min(curve[-1][0] for curve in curves)
            grid = np.linspace(max(curve[0][0] for curve in curves), end, 50)
            values = np.array([np.interp(grid, *zip(*curve)) for curve in curves])
            q1, median, q3 = np.percentile(values, [25, 50, 75], axis=0)
            params = next(c["parameters"] for c in cells if c["env"] == env_id and c["variant"] == variant)
            ax.plot(grid, median, label=f"{variant} ({params} params)")
            ax.fill_between(grid, q1, q3, alpha=0.25)
        ax.set_title(f"{env_id}: PPO, median and IQR over seeds")
        ax.set_xlabel("environment steps")
        ax.set_ylabel("training return (last 100 episodes)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def write(rows: list[dict], cells: list[dict], command: str, out: Path, wall_s: float, load: str) -> str:
    from aligngym.files import atomic_write_json, atomic_write_text

    lines = [
        "# Tensor (CP) policy vs MLP policies, PPO",
        "",
        f"Command: `{command}`",
        "",
        (
            "Same PPO hyperparameters and budget per environment (the recipes tensor-ppo-*, mlp-ppo-*); "
            "final return = mean of a deterministic evaluation (the recipes' eval_episodes: 10 Pendulum, 5 MountainCar) after "
            "training; median and inter-quartile range over seeds. Parameters = actor + critic + log-std. "
            f"Wall time of this invocation: {wall_s / 60:.1f} min (cells finished by an earlier invocation are "
            f"not re-run; load average at start {load}). Median wall s = training time of one cell."
        ),
        "",
        "| env | policy | parameters | steps | seeds | median return | IQR | per-seed returns | median wall s |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    for r in rows:
        per_seed = ", ".join(f"{x:.0f}" for x in r["returns"])
        lines.append(
            f"| {r['env']} | {r['variant']} | {r['parameters']} | {r['timesteps']} | {r['seeds']} | "
            f"{r['median_return']:.1f} | [{r['iqr_low']:.1f}, {r['iqr_high']:.1f}] | {per_seed} | "
            f"{r['wall_s_median']:.0f} |"
        )
    lines += ["", f"![learning curves]({out.with_suffix('.png').name})", ""]
    text = "\n".join(lines)
    atomic_write_text(out.with_suffix(".md"), text)
    slim = [{k: v for k, v in c.items() if k != "run_dir"} for c in cells]
    atomic_write_json(
        out.with_suffix(".json"), {"command": command, "wall_s": wall_s, "rows": rows, "cells": slim}
    )
    plot(cells, out.with_suffix(".png"))
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per (env, policy)")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--timesteps", type=int, default=None, help="override every recipe's total_timesteps")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a recipe override for every cell (repeatable), e.g. --set n_envs=1",
    )
    add_sweep_arguments(parser, workers=2)
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    from aligngym.runs.sweep import run_sweep

    out = out_dir(args, NAME)
    overrides = [*([f"total_timesteps={args.timesteps}"] if args.timesteps else []), *args.overrides]
    grid = cells(args.envs, args.variants, args.seeds, overrides, out / "runs")
    start, load = time.perf_counter(), " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = run_sweep(grid, f"{__name__}:run_cell", out, **sweep_options(args))
    results = cell_results(rows)
    text = write(
        summarise(results),
        results,
        command_line(args, NAME),
        out / "tensor_vs_mlp",
        time.perf_counter() - start,
        load,
    )
    print(text)
    for path in publish(out, FILES, args.publish):
        print(f"published: {path}")
    return 0
