"""Forward+backward throughput (samples/s) of the CP tensor policy vs MLP policies, side by side.

All three are SB3 ActorCriticPolicy objects for Pendulum-v1 (tensor: 10x10x10 grid, rank 5; MLP: the
paper's one tanh hidden layer of 64, and SB3's default 2x64). One step is what PPO does per minibatch:
evaluate_actions (actor and critic forward), a loss, backward. Timings are interleaved in rounds so that a
busy shared machine slows every model alike; the ratio tensor/MLP is the number to read. Ratios belong side
by side in one process, so this benchmark runs directly, not through the sweep runner.

    aligngym bench tensor-throughput --publish benchmarks/results    # the committed table
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.runs.bench.options import add_output_arguments, command_line, out_dir, publish

NAME = "tensor-throughput"
DESCRIPTION = "forward+backward samples/s of the CP tensor policy vs MLP policies (interleaved, one process)"
FILES = ("tensor_throughput.md", "tensor_throughput.json")
TENSOR_POLICY = "TensorActorCriticPolicy"  # imported when the policies are built
POLICIES = {
    "tensor (rank 5, 10^3 grid)": (
        TENSOR_POLICY,
        {"rank": 5, "bins": 10, "low": [-1, -1, -5], "high": [1, 1, 5]},
    ),
    "MLP 1x64 tanh (paper)": ("MlpPolicy", {"net_arch": [64]}),
    "MLP 2x64 tanh (SB3 default)": ("MlpPolicy", {}),
}


def build_policies() -> dict[str, Any]:
    from stable_baselines3 import PPO

    from aligngym.agents.tensor.policies import TensorActorCriticPolicy

    classes = {TENSOR_POLICY: TensorActorCriticPolicy}
    return {
        name: PPO(
            classes.get(policy, policy), "Pendulum-v1", policy_kwargs=kwargs, seed=0, device="cpu"
        ).policy
        for name, (policy, kwargs) in POLICIES.items()
    }


def step_seconds(policy: Any, obs: Any, actions: Any, steps: int) -> float:
    """Seconds per forward+backward step, averaged over ``steps``."""
    start = time.perf_counter()
    for _ in range(steps):
        values, log_prob, _ = policy.evaluate_actions(obs, actions)
        loss = values.pow(2).mean() - log_prob.mean()
        policy.optimizer.zero_grad()
        loss.backward()
    return (time.perf_counter() - start) / steps


def measure(batch_sizes: list[int], rounds: int, seconds_per_cell: float) -> list[dict]:
    import torch

    policies = build_policies()
    generator = torch.Generator().manual_seed(0)
    rows = []
    for batch in batch_sizes:
        obs = torch.rand(batch, 3, generator=generator) * torch.tensor([2.0, 2.0, 16.0]) - torch.tensor(
            [1.0, 1.0, 8.0]
        )
        actions = torch.rand(batch, 1, generator=generator) * 4 - 2
        # Calibrate the number of steps so each timing takes about seconds_per_cell.
        steps = {}
        for name, policy in policies.items():
            per_step = step_seconds(policy, obs, actions, 5)
            steps[name] = max(5, int(seconds_per_cell / per_step))
        timings: dict[str, list[float]] = {name: [] for name in policies}
        for _ in range(rounds):
            for name, policy in policies.items():
                timings[name].append(step_seconds(policy, obs, actions, steps[name]))
        for name in policies:
            rows.append(
                {
                    "batch": batch,
                    "policy": name,
                    "parameters": sum(p.numel() for p in policies[name].parameters()),
                    "samples_per_s": batch / statistics.median(timings[name]),
                }
            )
    return rows


def write(rows: list[dict], command: str, out: Path) -> str:
    import torch

    tensor_name = next(iter(POLICIES))
    lines = [
        "# Tensor vs MLP policy: forward+backward throughput",
        "",
        f"Command: `{command}`",
        "",
        (
            f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU, Pendulum-v1 policies; "
            "one step = SB3 evaluate_actions (actor + critic) + loss + backward. Median over interleaved rounds."
        ),
        "",
        "| batch | policy | parameters | samples/s | tensor / this |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        tensor = next(r for r in rows if r["batch"] == row["batch"] and r["policy"] == tensor_name)
        row["tensor_ratio"] = tensor["samples_per_s"] / row["samples_per_s"]
        lines.append(
            f"| {row['batch']} | {row['policy']} | {row['parameters']} | {row['samples_per_s']:,.0f} | "
            f"{row['tensor_ratio']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    atomic_write_text(out.with_suffix(".md"), text)
    atomic_write_json(
        out.with_suffix(".json"), {"command": command, "threads": torch.get_num_threads(), "rows": rows}
    )
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256, 2048])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds-per-cell", type=float, default=0.3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)"
    )
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = out_dir(args, NAME)
    rows = measure(args.batch_sizes, args.rounds, args.seconds_per_cell)
    print(write(rows, command_line(args, NAME), out / "tensor_throughput"))
    for path in publish(out, FILES, args.publish):
        print(f"published: {path}")
    return 0
