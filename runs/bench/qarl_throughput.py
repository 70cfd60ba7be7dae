"""Env steps per second of one QARL (and RARL) iteration vs plain SAC training, side by side.

Every variant is the real runner (``AdversarialTrainer``) with the same SAC settings. One *round* times
one iteration of each variant (order rotated per round, so load from other processes on a shared machine
hits all alike) after a warm-up iteration that fills the replay buffers past ``learning_starts``:

- ``sac``: ``steps`` protagonist env steps, one gradient step each (plain SB3 SAC, no adversary);
- ``rarl``: ``steps`` adversary steps (SAC) then ``steps`` protagonist steps (SAC), opponent inside;
- ``qarl``: the same with alpha in the observations, the ``TemperedSAC`` adversary and the curriculum update.

Ratios divide a variant's rate by the SAC rate of the same round; the table reports medians over rounds,
per second of CPU time of this process (``time.process_time``: what the method costs, robust to other
jobs on a shared machine) and per second of wall time.
Two ratios are reported: all env steps (both players learn, so each step costs one gradient step plus
one extra forward pass for the frozen opponent) and protagonist env steps only (the honest floor is about
0.5: half of the iteration trains the adversary). Ratios belong side by side in one process, so this
benchmark runs directly, not through the sweep runner.

    aligngym bench qarl-throughput --rounds 3 --publish benchmarks/results    # InvertedPendulum
    aligngym bench qarl-throughput --task Hopper --net 128 --rounds 5 --publish benchmarks/results
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.runs.bench.options import add_output_arguments, command_line, out_dir, publish

NAME = "qarl-throughput"
DESCRIPTION = "env steps/s of one QARL and one RARL iteration vs plain SAC (interleaved, one process)"
VARIANTS = ("sac", "rarl", "qarl")


def build(variant: str, task: str, steps: int, net: int, seed: int, run_dir: Path) -> Any:
    """The real runner (``AdversarialTrainer``) of one variant with the shared SAC settings."""
    from aligngym.agents.adversarial.evaluation import EvaluationConfig
    from aligngym.agents.adversarial.training import (
        AdversarialTrainer,
        BaselineConfig,
        QARLConfig,
        RARLConfig,
    )

    common = {
        "env_id": f"aligngym/Adversarial{task}-v0",
        "max_episode_steps": 200,
        "iterations": 10_000,
        "protagonist_steps": steps,
        "adversary_steps": steps,
        "hyperparams": {"learning_starts": min(steps, 500), "batch_size": 128, "buffer_size": 100_000},
        "policy_kwargs": {"net_arch": [net, net]},
        "evaluation": EvaluationConfig(at_end=False),
        "checkpoint_every": 0,
    }
    config = {"sac": BaselineConfig, "rarl": RARLConfig, "qarl": QARLConfig}[variant](**common)
    return AdversarialTrainer(config, seed=seed, run_dir=run_dir)


def measure(task: str, steps: int, rounds: int, net: int) -> dict:
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {v: build(v, task, steps, net, seed=0, run_dir=Path(tmp) / v) for v in VARIANTS}
        for trainer in trainers.values():
            trainer.run_iteration()  # warm-up: buffers past learning_starts, torch kernels loaded
        per_round = []
        for r in range(rounds):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            rates = {}
            for variant in order:
                trainer = trainers[variant]
                start, cpu_start = time.perf_counter(), time.process_time()
                trainer.run_iteration()
                seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
                total = steps * (2 if trainer.adversary is not None else 1)
                rates[variant] = {
                    "seconds": seconds,
                    "cpu_seconds": cpu_seconds,
                    "env_steps_per_s": total / seconds,
                    "protagonist_steps_per_s": steps / seconds,
                    "env_steps_per_cpu_s": total / cpu_seconds,
                    "protagonist_steps_per_cpu_s": steps / cpu_seconds,
                }
            per_round.append(rates)
    summary = {}
    for variant in VARIANTS:
        entry = {}
        for clock in ("s", "cpu_s"):
            all_key, prot_key = f"env_steps_per_{clock}", f"protagonist_steps_per_{clock}"
            ratio_all = [r[variant][all_key] / r["sac"][all_key] for r in per_round]
            ratio_prot = [r[variant][prot_key] / r["sac"][prot_key] for r in per_round]
            entry[clock] = {
                "env_steps_per_s": statistics.median(r[variant][all_key] for r in per_round),
                "protagonist_steps_per_s": statistics.median(r[variant][prot_key] for r in per_round),
                "ratio_all_steps": statistics.median(ratio_all),
                "ratio_protagonist_steps": statistics.median(ratio_prot),
                "ratio_protagonist_steps_min_max": [min(ratio_prot), max(ratio_prot)],
            }
        summary[variant] = entry
    return {
        "task": task,
        "steps": steps,
        "rounds": rounds,
        "net_arch": [net, net],
        "summary": summary,
        "rounds_raw": per_round,
    }


def markdown(result: dict, command: str) -> str:
    import torch

    lines = [
        "# QARL iteration throughput vs plain SAC",
        "",
        f"Command: `{command}`",
        "",
        (
            f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s) shared with other "
            f"jobs; torch {torch.__version__}, 1 torch thread. Task {result['task']}, {result['steps']} env steps "
            f"per player per iteration, SAC {result['net_arch']} MLPs, batch 128, 1 gradient step per env step; "
            f"median of {result['rounds']} interleaved rounds."
        ),
        "",
        "Rates per second of this process's CPU time (robust to other jobs on the machine) and per second of",
        "wall time (what a user waits; noisy here).",
        "",
        (
            "| variant | clock | env steps/s (all) | protagonist steps/s | ratio all steps vs SAC "
            "| ratio protagonist steps vs SAC (min-max) |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for clock, label in (("cpu_s", "CPU"), ("s", "wall")):
        for variant, entry in result["summary"].items():
            s = entry[clock]
            low, high = s["ratio_protagonist_steps_min_max"]
            lines.append(
                f"| {variant} | {label} | {s['env_steps_per_s']:.0f} | {s['protagonist_steps_per_s']:.0f} | "
                f"{s['ratio_all_steps']:.2f} | {s['ratio_protagonist_steps']:.2f} ({low:.2f}-{high:.2f}) |"
            )
    return "\n".join(lines) + "\n"


def stem(task: str) -> str:
    return f"adversarial_throughput_{task.lower()}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", default="InvertedPendulum")
    parser.add_argument("--steps", type=int, default=1000, help="env steps per player per iteration")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--net", type=int, default=64, help="hidden width of the 2-layer SAC MLPs")
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    out = out_dir(args, NAME)
    result = measure(args.task, args.steps, args.rounds, args.net)
    text = markdown(result, command_line(args, NAME))
    atomic_write_text(out / f"{stem(args.task)}.md", text)
    atomic_write_json(out / f"{stem(args.task)}.json", result)
    print(text)
    for path in publish(out, (f"{stem(args.task)}.md", f"{stem(args.task)}.json"), args.publish):
        print(f"published: {path}")
    return 0
