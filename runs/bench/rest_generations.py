"""ReST generations on CPU: dev/test success of generation 0, 1, 2, a demonstrations-only control and a
distilled smaller student, for several seeds (one process per seed), from the ``rest-tiny`` recipe.

    nice -n 10 python benchmarks/rest_generations.py --seeds 0 1 --workers 2

Writes benchmarks/results/rest_generations.{md,json}. Each seed's loop lives in
``--work-root/seed_<s>``; rerunning resumes finished stages instead of redoing them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
STAGES = (
    ("gen_00", "generation 0 (SFT on demonstrations)"),
    ("gen_01", "generation 1 (ReST)"),
    ("gen_02", "generation 2 (ReST)"),
    ("control", "control: gen 0 + same SFT steps on demonstrations only"),
    ("distilled", "distilled student (smaller)"),
)


def run_seed(recipe: str, overrides: list[str], seed: int, work_dir: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.INFO, format=f"seed {seed} %(asctime)s %(message)s")
    from aligngym.agents.react.rest import RestLoop
    from aligngym.runs.recipes import load_recipe

    config = load_recipe(recipe, [*overrides, "control=true"]).config
    start = time.perf_counter()
    summary = RestLoop(config, seed, Path(work_dir)).run()
    history = json.loads((Path(work_dir) / "rest_summary.json").read_text())["history"]
    stats = {}
    for g in (1, 2):
        path = Path(work_dir) / f"gen_{g:02d}" / "data_stats.json"
        if path.exists():
            stats[f"gen_{g:02d}"] = json.loads(path.read_text())
    return {
        "seed": seed,
        "summary": summary,
        "history": history,
        "data": stats,
        "wall_s": time.perf_counter() - start,
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
    path_md.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="rest-tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--workers", type=int, default=2, help="seeds run in parallel processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--work-root", type=Path, default=Path("results/rest_generations"))
    parser.add_argument("--out", type=Path, default=RESULTS / "rest_generations.md")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    command = "nice -n 10 python benchmarks/rest_generations.py " + " ".join(
        shlex.quote(a) for a in sys.argv[1:]
    )
    jobs = [
        (args.recipe, args.overrides, s, str(args.work_root / f"seed_{s}"), args.threads) for s in args.seeds
    ]
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn")) as pool:
        results = list(pool.map(run_seed, *zip(*jobs)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"command": command, "results": results}, indent=2) + "\n"
    )
    write_report(results, command, args.out)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
