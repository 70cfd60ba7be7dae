"""Env steps per second of SAC on SB3 (torch) vs SBX (JAX), plain and temperature-conditioned, side by side.

Four learners per (task, net) cell, each the class the adversarial trainers build for a SAC player:

- ``sb3-sac`` / ``sbx-sac``: SAC with automatic entropy tuning (the protagonist, RARL's adversary);
- ``sb3-tempered`` / ``sbx-tempered``: ``TemperedSAC`` / ``TemperedSBXSAC`` on the game with alpha appended to
  the observation (QARL's adversary, per-sample entropy coefficient).

Each learns on the task's protagonist view with no force (the env loop is the game's), batch 256, one
gradient step per env step. A warm-up fills the buffers to ``learning_starts`` with random actions, then one
learning step is timed on its own: for SBX it holds the JIT compilation of the update loop and the policy
(reported separately, not in the rates). Then every round times ``steps`` env steps of every learner, the
order rotated per round so that load from other jobs on a shared machine hits all alike. Rates are medians
over rounds, per second of wall time and per second of this process's CPU time (``time.process_time``: all
threads, XLA's included); ratios are SBX / SB3 of the same round. One process, so not a sweep.

    aligngym bench sac-backends --rounds 5 --publish benchmarks/results
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from typing import Any

from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.runs.bench.options import add_output_arguments, command_line, out_dir, publish

NAME = "sac-backends"
DESCRIPTION = (
    "env steps/s of SB3 vs SBX SAC and TemperedSAC (interleaved rounds, one process, JIT time apart)"
)
LEARNERS = ("sb3-sac", "sbx-sac", "sb3-tempered", "sbx-tempered")
PAIRS = (("sbx-sac", "sb3-sac"), ("sbx-tempered", "sb3-tempered"))
STEM = "sac_backends"


def build(learner: str, task: str, net: int, learning_starts: int, seed: int) -> Any:
    """One learner on the protagonist's view of ``aligngym/Adversarial<task>-v0`` (no force)."""
    from aligngym.agents.adversarial.opponents import make_game, protagonist_env
    from aligngym.agents.adversarial.temperature import GammaTemperature

    backend, kind = learner.split("-")
    temperature = GammaTemperature(50.0, 1000.0) if kind == "tempered" else None
    env = protagonist_env(make_game(f"aligngym/Adversarial{task}-v0", {}, 200, temperature))
    if backend == "sb3":
        from stable_baselines3 import SAC

        from aligngym.agents.adversarial.tempered_sac import TemperedSAC
    else:
        from sbx import SAC

        from aligngym.agents.adversarial.sbx_sac import TemperedSBXSAC as TemperedSAC
    cls = TemperedSAC if kind == "tempered" else SAC
    return cls(
        "MlpPolicy",
        env,
        seed=seed,
        learning_starts=learning_starts,
        batch_size=256,
        buffer_size=100_000,
        policy_kwargs={"net_arch": [net, net]},
        verbose=0,
    )


def measure_cell(task: str, net: int, steps: int, rounds: int, learning_starts: int) -> dict[str, Any]:
    """Warm-up, the first learning step (JIT) apart, then ``rounds`` interleaved timings of every learner."""
    from stable_baselines3.common.logger import Logger

    models = {name: build(name, task, net, learning_starts, seed=0) for name in LEARNERS}
    first_step_s = {}
    for name, model in models.items():
        model.set_logger(Logger(None, []))
        model.learn(learning_starts, reset_num_timesteps=False)  # random actions, no update yet
        start = time.perf_counter()
        model.learn(1, reset_num_timesteps=False)  # first predict + first update: SBX compiles here
        first_step_s[name] = time.perf_counter() - start
    per_round = []
    for r in range(rounds):
        order = LEARNERS[r % len(LEARNERS) :] + LEARNERS[: r % len(LEARNERS)]
        rates = {}
        for name in order:
            start, cpu_start = time.perf_counter(), time.process_time()
            models[name].learn(steps, reset_num_timesteps=False)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            rates[name] = {"wall_s": wall, "cpu_s": cpu, "per_s": steps / wall, "per_cpu_s": steps / cpu}
        per_round.append(rates)
    summary: dict[str, Any] = {}
    for name in LEARNERS:
        summary[name] = {
            clock: statistics.median(r[name][clock] for r in per_round) for clock in ("per_s", "per_cpu_s")
        }
        summary[name]["first_step_s"] = first_step_s[name]
    ratios = {}
    for fast, slow in PAIRS:
        ratios[fast.split("-")[1]] = {
            clock: {
                "median": statistics.median(r[fast][clock] / r[slow][clock] for r in per_round),
                "min_max": [
                    min(r[fast][clock] / r[slow][clock] for r in per_round),
                    max(r[fast][clock] / r[slow][clock] for r in per_round),
                ],
            }
            for clock in ("per_s", "per_cpu_s")
        }
    return {
        "task": task,
        "net_arch": [net, net],
        "summary": summary,
        "ratios": ratios,
        "rounds_raw": per_round,
    }


def verdict(cells: list[dict[str, Any]], threshold: float) -> str:
    """Clearly faster: every cell's median CPU-time AND wall-time ratio, plain and tempered, >= ``threshold``."""
    lows = [
        cell["ratios"][kind][clock]["median"]
        for cell in cells
        for kind in ("sac", "tempered")
        for clock in ("per_s", "per_cpu_s")
    ]
    if min(lows) >= threshold:
        return (
            f"SBX is clearly faster here: every median ratio is >= {threshold:g} (lowest {min(lows):.2f}); "
            "worth using for long SAC runs."
        )
    return (
        f"SBX is not clearly faster everywhere here: the lowest median ratio is {min(lows):.2f} (< {threshold:g}); "
        "SB3 stays the default."
    )


def markdown(result: dict[str, Any], command: str) -> str:
    import jax
    import sbx
    import stable_baselines3
    import torch

    lines = [
        "# SAC throughput: SB3 (torch) vs SBX (JAX), plain and temperature-conditioned",
        "",
        f"Command: `{command}`",
        "",
        f"Load (`uptime`) before: `{result['uptime_before']}`; after: `{result['uptime_after']}`.",
        "",
        (
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s) shared with other "
            f"jobs; torch {torch.__version__} (1 thread), SB3 {stable_baselines3.__version__}, jax {jax.__version__} "
            f"(default XLA threads), sbx {sbx.__version__}. Each learner: the protagonist's view of the game with no "
            f"force, horizon 200, batch 256, one gradient step per env step, {result['steps']} env steps per round "
            f"after {result['learning_starts']} random warm-up steps; median of {result['rounds']} interleaved rounds. "
            "Ratios: SBX / SB3 in the same round (median, min-max)."
        ),
        "",
        "| task | net | learner | env steps/s (wall) | env steps/s (CPU) | first update incl. JIT (s) |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for cell in result["cells"]:
        net = "x".join(map(str, cell["net_arch"]))
        for name, entry in cell["summary"].items():
            lines.append(
                f"| {cell['task']} | {net} | {name} | {entry['per_s']:.0f} | {entry['per_cpu_s']:.0f} | "
                f"{entry['first_step_s']:.2f} |"
            )
    lines += [
        "",
        "| task | net | SBX / SB3 | wall (min-max) | CPU (min-max) |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for cell in result["cells"]:
        net = "x".join(map(str, cell["net_arch"]))
        for kind, ratio in cell["ratios"].items():
            wall, cpu = ratio["per_s"], ratio["per_cpu_s"]
            lines.append(
                f"| {cell['task']} | {net} | {kind} | {wall['median']:.2f} ({wall['min_max'][0]:.2f}-"
                f"{wall['min_max'][1]:.2f}) | {cpu['median']:.2f} ({cpu['min_max'][0]:.2f}-{cpu['min_max'][1]:.2f}) |"
            )
    lines += ["", f"Verdict: {result['verdict']}"]
    return "\n".join(lines) + "\n"


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tasks", nargs="+", default=["PointMass", "Hopper"], help="games aligngym/Adversarial<TASK>-v0"
    )
    parser.add_argument(
        "--nets", type=int, nargs="+", default=[64, 256], help="hidden widths of the 2-layer MLPs"
    )
    parser.add_argument("--steps", type=int, default=300, help="env steps per learner per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--learning-starts", type=int, default=300)
    parser.add_argument(
        "--threshold",
        type=float,
        default=1.5,
        help="'clearly faster': every median SBX/SB3 ratio at least this",
    )
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(1)
    out = out_dir(args, NAME)
    result: dict[str, Any] = {
        "steps": args.steps,
        "rounds": args.rounds,
        "learning_starts": args.learning_starts,
        "uptime_before": _uptime(),
        "cells": [],
    }
    cells = [(task, net) for task in args.tasks for net in args.nets]
    for task, net in cells:
        result["cells"].append(measure_cell(task, net, args.steps, args.rounds, args.learning_starts))
        # After every cell, so that a killed run leaves its finished cells reported.
        result["uptime_after"] = _uptime()
        result["verdict"] = verdict(result["cells"], args.threshold)
        if len(result["cells"]) < len(cells):
            result["verdict"] += f" (after {len(result['cells'])} of {len(cells)} cells)"
        text = markdown(result, command_line(args, NAME))
        atomic_write_text(out / f"{STEM}.md", text)
        atomic_write_json(out / f"{STEM}.json", result)
    print(text)
    for path in publish(out, (f"{STEM}.md", f"{STEM}.json"), args.publish):
        print(f"published: {path}")
    return 0
