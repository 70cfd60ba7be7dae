"""ReST generations on CPU: dev/test success of generation 0, 1, 2, a demonstrations-only control and a
distilled smaller student, for several seeds, from the ``rest-tiny`` recipe.

Each seed is one cell of the sweep runner (local pool or Ray; ``OUT/results.jsonl``); its loop lives in
``OUT/runs/seed_<s>``, and a re-run resumes finished cells and, inside a cell, finished stages.

    nice -n 10 aligngym bench rest-generations --seeds 0 1 --workers 2 --publish benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from aligngym.files import atomic_write_text
from aligngym.runs.bench.options import (
    add_output_arguments,
    add_sweep_arguments,
    command_line,
    out_dir,
    publish,
    sweep_options,
)

NAME = "rest-generations"
DESCRIPTION = "ReST generations 0-2, a demonstrations-only control and a distilled student, per seed (sweep)"
FILES = ("rest_generations.md", "rest_generations.json")
STAGES = (
    ("gen_00", "generation 0 (SFT on demonstrations)"),
    ("gen_01", "generation 1 (ReST)"),
    ("gen_02", "generation 2 (ReST)"),
    ("control", "control: gen 0 + same SFT steps on demonstrations only"),
    ("distilled", "distilled student (smaller)"),
)


def run_cell(cell: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Sweep cell function: the whole ReST loop of one seed (resuming its finished stages)."""
    config = cell["config"]
    return run_seed(config["recipe"], config["overrides"], cell["seed"], cell["work_dir"], config["threads"])


def run_seed(recipe: str, overrides: list[str], seed: int, work_dir: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format=f"seed {seed} %(asctime)s %(message)s")
    from aligngym.agents.react.rest import RestLoop
    from aligngym.runs.recipes import load_recipe

    config = load_recipe(recipe, [*overrides, "control=true"]).config
    summary = RestLoop(config, seed, Path(work_dir)).run()
    history = json.loads((Path(work_dir) / "rest_summary.json").read_text())["history"]
    stats = {}
    for g in (1, 2):
        path = Path(work_dir) / f"gen_{g:02d}" / "data_stats.json"
        if path.exists():
            stats[f"gen_{g:02d}"] = json.loads(path.read_text())
    return {
        "summary": summary,
        "history": history,
        "data": stats,
    }


def write_report(results: list[dict], command: str, path_md: Path) -> None:
    seeds = [r["seed"] for r in results]
    lines = [
        "# ReST generations on CPU (rest-tiny recipe)",
        "",
        f"Command: `{command}`",
        "",
        "Success = exact match of the final answer, greedy decoding, all dev (156) / test (159) questions of the",
        "shipped knowledge base. `first search` = the first step searches the question's entity (copying skill).",
        "",
        "| stage | "
        + " | ".join(f"dev s{s}" for s in seeds)
        + " | dev mean | "
        + " | ".join(f"test s{s}" for s in seeds)
        + " | test mean | first search (dev, mean) |",
        "|---" * (2 * len(seeds) + 4) + "|",
    ]
    for key, label in STAGES:
        if not all(key in r["history"] for r in results):
            continue
        dev = [r["history"][key]["dev"]["success"] for r in results]
        test = [r["history"][key]["test"]["success"] for r in results]
        first = sum(r["history"][key]["dev"]["first_search_accuracy"] for r in results) / len(results)
        lines.append(
            f"| {label} | "
            + " | ".join(f"{v:.3f}" for v in dev)
            + f" | **{sum(dev) / len(dev):.3f}** | "
            + " | ".join(f"{v:.3f}" for v in test)
            + f" | **{sum(test) / len(test):.3f}** | {first:.3f} |"
        )
    lines += [
        "",
        "ReST data per generation (sampled on training questions with K = 4 candidates per step):",
        "",
        "| seed | gen | trajectories | sampled success | steps | kept (verified) | relabelled | examples |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for gen, stats in sorted(r["data"].items()):
            lines.append(
                f"| {r['seed']} | {gen} | {stats['sampled_episodes']:.0f} | {stats['sampled_success']:.3f} | "
                f"{stats['steps']:.0f} | {stats['kept_steps']:.0f} | {stats['relabelled_steps']:.0f} | {stats['examples']:.0f} |"
            )
    params = results[0]["summary"]
    lines += [
        "",
        f"Policy parameters: {params['policy_parameters']:,}; student parameters: "
        f"{params.get('student_parameters', 0):,}. Wall time per seed (s): "
        + ", ".join(f"{r['wall_s']:.0f}" for r in results)
        + ".",
    ]
    atomic_write_text(path_md, "\n".join(lines) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="rest-tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per cell")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides")
    add_sweep_arguments(parser, workers=2)
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    from aligngym.files import atomic_write_json
    from aligngym.runs.recipes import load_recipe
    from aligngym.runs.sweep import run_sweep

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_recipe(args.recipe, [*args.overrides, "control=true"])  # bad input fails here, before any cell
    out = out_dir(args, NAME)
    cells = [
        {
            "domain": "text",
            "env": "react-qa",
            "method": "rest",
            "noise": None,
            "rate": None,
            "seed": seed,
            "config": {"recipe": args.recipe, "overrides": args.overrides, "threads": args.threads},
            "work_dir": str(out / "runs" / f"seed_{seed}"),  # not part of the cell's identity
        }
        for seed in args.seeds
    ]
    rows = run_sweep(cells, f"{__name__}:run_cell", out, **sweep_options(args))
    keys = ("seed", "summary", "history", "data", "wall_s")
    results = [{k: r[k] for k in keys} for r in rows]
    command = command_line(args, NAME)
    atomic_write_json(out / "rest_generations.json", {"command": command, "results": results})
    write_report(results, command, out / "rest_generations.md")
    print((out / "rest_generations.md").read_text())
    for path in publish(out, FILES, args.publish):
        print(f"published: {path}")
    return 0
