"""Tensor (CP) policy vs MLP policies under the same PPO settings and budget, several seeds per cell.

Each cell is one `aligngym train` recipe run (tensor-ppo-<env>, mlp-ppo-<env> with the paper's one tanh
hidden layer, and mlp-ppo-<env> with policy_kwargs={} for SB3's default 2x64), run in a local process
pool. Finished cells are recorded one per line in <runs>/cells.jsonl as they end, so a killed run resumes.
Outputs: final deterministic evaluation return (median and IQR over seeds), parameter count (actor +
critic + log-std), learning curves (SB3's rollout/ep_rew_mean, a moving average over the last 100
training episodes) as a table, JSON and PNG.

    nice -n 10 python benchmarks/tensor_vs_mlp.py --seeds 5 --workers 2
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
ENVS = {"Pendulum-v1": "pendulum", "MountainCarContinuous-v0": "mountaincar"}
# variant -> (recipe prefix, extra overrides)
VARIANTS = {
    "tensor": ("tensor-ppo", []),
    "mlp-paper": ("mlp-ppo", []),
    "mlp-sb3-2x64": ("mlp-ppo", ["policy_kwargs={}"]),
}


def run_cell(env_id: str, variant: str, seed: int, timesteps: int | None, out: str) -> dict:
    """Train one (env, variant, seed) cell in this worker process; return its summary and curve."""
    import torch

    from aligngym.runs.training import run_recipe

    torch.set_num_threads(1)
    prefix, overrides = VARIANTS[variant]
    overrides = [*overrides, f"seed={seed}", f"name={variant}-{ENVS[env_id]}"]
    if timesteps is not None:
        overrides.append(f"total_timesteps={timesteps}")
    run_dir, summary = run_recipe(f"{prefix}-{ENVS[env_id]}", overrides, out=out)
    curve = []
    with open(run_dir / "progress.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("rollout/ep_rew_mean"):
                curve.append((int(row["time/total_timesteps"]), float(row["rollout/ep_rew_mean"])))
    return {
        "env": env_id,
        "variant": variant,
        "seed": seed,
        "run_dir": str(run_dir),
        "curve": curve,
        **summary,
    }


def load_cells(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_all(seeds: int, workers: int, timesteps: int | None, runs: Path) -> list[dict]:
    runs.mkdir(parents=True, exist_ok=True)
    cells_path = runs / "cells.jsonl"
    cells = load_cells(cells_path)
    done = {(c["env"], c["variant"], c["seed"]) for c in cells}
    todo = [
        (env_id, variant, seed)
        for env_id in ENVS
        for seed in range(seeds)
        for variant in VARIANTS
        if (env_id, variant, seed) not in done
    ]
    context = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool,
        open(cells_path, "a") as record,
    ):
        futures = [pool.submit(run_cell, *cell, timesteps, str(runs)) for cell in todo]
        for count, future in enumerate(as_completed(futures), 1):
            cell = future.result()
            record.write(json.dumps(cell) + "\n")
            record.flush()
            cells.append(cell)
            print(
                f"[{count}/{len(todo)}] {cell['env']} {cell['variant']} seed {cell['seed']}: "
                f"return {cell['mean_return']:.1f} in {cell['wall_s']:.0f} s",
                flush=True,
            )
    return cells


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

    fig, axes = plt.subplots(1, len(ENVS), figsize=(6 * len(ENVS), 4))
    for ax, env_id in zip(np.atleast_1d(axes), ENVS):
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


def write(rows: list[dict], cells: list[dict], command: str, out: Path, wall_s: float) -> str:
    from aligngym.files import atomic_write_json, atomic_write_text

    lines = [
        "# Tensor (CP) policy vs MLP policies, PPO",
        "",
        f"Command: `{command}`",
        "",
        (
            "Same PPO hyperparameters and budget per environment (the recipes tensor-ppo-*, mlp-ppo-*); "
            "final return = mean of a deterministic evaluation (10 episodes Pendulum, 5 MountainCar) after "
            "training; median and inter-quartile range over seeds. Parameters = actor + critic + log-std. "
            f"Wall time of the whole benchmark: {wall_s / 60:.1f} min (2 shared CPU cores, other jobs running)."
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timesteps", type=int, default=None, help="override every recipe's total_timesteps")
    parser.add_argument(
        "--runs", type=Path, default=Path("results/tensor_vs_mlp"), help="run folders + cells.jsonl"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "tensor_vs_mlp")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cells = run_all(args.seeds, args.workers, args.timesteps, args.runs)
    cells = [c for c in cells if c["seed"] < args.seeds]
    command = "nice -n 10 python " + " ".join(["benchmarks/tensor_vs_mlp.py", *sys.argv[1:]])
    print(write(summarise(cells), cells, command, args.out, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
