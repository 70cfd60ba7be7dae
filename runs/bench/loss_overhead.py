"""Training time per epoch of each preference loss as a ratio to Bradley-Terry, on the same pairs, in one run.

Data: HalfCheetah-v5 segments (25 steps) from random and scripted policies, 2000 training pairs labelled
by a 20%-mistake teacher, a 2x64 reward MLP, Adam, minibatches of 64 pairs (the papers' setting), one
torch thread. Each loss is timed right after a Bradley-Terry run (paired, order rotating every round)
so that load from other processes hits both alike; the headline is the median of the paired ratios of
this process's CPU time (min and max beside it show the machine's noise; wall time is shown too). A second
table times the loss call alone on a batch of 64 margins (the part that differs between losses). Timings
belong side by side in one process, so this benchmark runs directly, not through the sweep runner.

    aligngym bench loss-overhead --rounds 10 --publish benchmarks/results   # the committed table
    aligngym bench loss-overhead --rounds 2 --epochs 1                      # a quick look
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any

import numpy as np

from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.runs.bench.options import add_output_arguments, command_line, out_dir, publish

NAME = "loss-overhead"
DESCRIPTION = "preference loss time per epoch as a ratio to Bradley-Terry (paired, one process)"
FILES = ("loss_overhead.md", "loss_overhead.json")
TARGET = 1.10  # issue 4: R3M and adaptive cost at most 10% more time per epoch than Bradley-Terry
TARGET_ISSUE_15 = 1.15  # issue 15: RIME and R3M at most 15% more
# name -> (loss, params); the first two rows after BT are the issue's targets
LOSSES: dict[str, tuple[str, dict]] = {
    "bt": ("bt", {}),
    "r3m (lam 0.5)": ("r3m", {"lam": 0.5}),
    "adaptive (exact tau)": ("adaptive", {"tau0": 0.1, "tau_max": 1.0, "rho0": 0.1}),
    "adaptive (paper Newton, 5 steps)": (
        "adaptive",
        {"tau0": 0.1, "tau_max": 1.0, "rho0": 0.1, "solver": "newton"},
    ),
    "adaptive_quadratic (8 steps)": ("adaptive_quadratic", {"tau0": 0.1, "rho0": 0.1}),
    "smoothing (eps 0.1)": ("smoothing", {"eps": 0.1}),
    "robust (eps 0.2)": ("robust", {"eps": 0.2}),
    "rime (official defaults)": ("rime", {}),
}
TARGETS = {
    "r3m (lam 0.5)": TARGET,
    "adaptive (exact tau)": TARGET,
    "rime (official defaults)": TARGET_ISSUE_15,
}


def scripted_policies(seed: int) -> dict:
    """Random actions and open-loop gaits of several speeds: diverse true segment returns."""
    rng = np.random.default_rng(seed)

    def gait(freq: float, amp: float):
        phase = rng.uniform(0, 2 * np.pi, 6)
        t = [0]

        def act(obs: np.ndarray) -> np.ndarray:
            t[0] += 1
            return (amp * np.sin(freq * t[0] + phase)).astype(np.float32)

        return act

    return {
        "random": "random",
        "slow gait": gait(0.2, 0.5),
        "fast gait": gait(0.8, 0.9),
        "still": lambda obs: np.zeros(6, np.float32),
    }


def time_epoch(split, loss: str, params: dict, epochs: int, seed: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per training epoch. CPU time of this process is what a loss costs; on a
    shared machine it is far less disturbed than wall time. It includes the fit's one final evaluation
    pass over the training pairs (the same for every loss), spread over the epochs."""
    from aligngym.rewards.fitting import FitConfig, fit_reward
    from aligngym.rewards.reward_nets import RewardNet

    net = RewardNet(obs_dim=17, act_dim=6, seed=seed)
    spec = {"name": loss, "params": params}
    config = FitConfig(loss=spec, epochs=epochs, batch_size=64, patience=None, seed=seed)
    start = time.process_time()
    result = fit_reward(net, split.train, None, config)
    return (time.process_time() - start) / epochs, result.seconds_per_epoch


def time_loss_call(loss: str, params: dict, repeats: int, seed: int) -> float:
    """CPU seconds per forward + backward of the loss alone on 64 margins."""
    import torch

    from aligngym.rewards.losses import make_loss

    loss_fn = make_loss(loss, **params)
    margins = torch.randn(64, generator=torch.Generator().manual_seed(seed)).mul_(3.0).requires_grad_(True)
    start = time.process_time()
    for _ in range(repeats):
        loss_fn(margins).loss.backward()
    return (time.process_time() - start) / repeats


def paired(names: list[str], rounds: int, run) -> dict[str, list[tuple[Any, Any]]]:
    """name -> (BT time, variant time) measured back to back, the order of the names rotating per round."""
    times: dict[str, list[tuple[Any, Any]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            base = run("bt")
            times[name].append((base, run(name)))
    return times


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--epochs", type=int, default=3, help="epochs per timed fit (time per epoch is their mean)"
    )
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--call-repeats", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    import torch

    from aligngym.rewards.pairs import PairConfig, collect_segments, make_pair_split
    from aligngym.rewards.teachers import make_teacher

    torch.set_num_threads(1)
    out = out_dir(args, NAME)

    segments = collect_segments(
        "HalfCheetah-v5", scripted_policies(args.seed), 300, segment_length=25, seed=args.seed
    )
    split = make_pair_split(
        segments, PairConfig(n_train=args.pairs, n_val=0, n_test=0), make_teacher("mistake", 0.2), args.seed
    )
    names = [n for n in LOSSES if n != "bt"]

    time_epoch(split, "bt", {}, args.epochs, args.seed)  # warm-up
    epoch_times = paired(names, args.rounds, lambda n: time_epoch(split, *LOSSES[n], args.epochs, args.seed))
    call_times = paired(
        names, args.rounds, lambda n: time_loss_call(*LOSSES[n], args.call_repeats, args.seed)
    )
    bt_call = min(base for pairs in call_times.values() for base, _ in pairs)

    rows = []
    for name in names:
        cpu = [variant[0] / base[0] for base, variant in epoch_times[name]]
        wall = [variant[1] / base[1] for base, variant in epoch_times[name]]
        rows.append(
            {
                "loss": name,
                "epoch_cpu_ratio_median": statistics.median(cpu),
                "epoch_cpu_ratio_min": min(cpu),
                "epoch_cpu_ratio_max": max(cpu),
                # timeit's rule: the fastest run of each is the least disturbed by other processes
                "epoch_cpu_best_ratio": min(v[0] for _, v in epoch_times[name])
                / min(b[0] for b, _ in epoch_times[name]),
                "epoch_wall_ratio_median": statistics.median(wall),
                "call_ratio_median": statistics.median(variant / base for base, variant in call_times[name]),
                "target": TARGETS.get(name),
            }
        )
    meta = {
        "command": command_line(args, NAME),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": 1,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "rounds": args.rounds,
        "epochs_per_fit": args.epochs,
        "train_pairs": len(split.train),
        "batch_size": 64,
        "segment_length": 25,
        "bt_cpu_seconds_per_epoch": min(b[0] for pairs in epoch_times.values() for b, _ in pairs),
        "bt_wall_seconds_per_epoch": min(b[1] for pairs in epoch_times.values() for b, _ in pairs),
        "bt_seconds_per_loss_call": bt_call,
    }
    atomic_write_json(out / "loss_overhead.json", {"meta": meta, "rows": rows})
    atomic_write_text(out / "loss_overhead.md", render(meta, rows))
    print(render(meta, rows))
    for path in publish(out, FILES, args.publish):
        print(f"published: {path}")
    return 0


def render(meta: dict, rows: list[dict]) -> str:
    setting = (
        f"HalfCheetah-v5, {meta['train_pairs']} training pairs of {meta['segment_length']}-step segments, "
        f"2x64 reward MLP, Adam, batch {meta['batch_size']}, 1 torch thread; "
        f"{meta['rounds']} rounds of paired runs ({meta['epochs_per_fit']} epochs each); "
        f"torch {meta['torch']}, Python {meta['python']}, {meta['cpus']} CPUs shared with other jobs "
        f"(load average at the end {meta['load_average'][0]:.1f}). "
        f"Bradley-Terry (best runs): {meta['bt_cpu_seconds_per_epoch'] * 1e3:.0f} ms CPU time "
        f"({meta['bt_wall_seconds_per_epoch'] * 1e3:.0f} ms wall) per epoch, "
        f"{meta['bt_seconds_per_loss_call'] * 1e6:.0f} us CPU per loss call (forward + backward, 64 margins). "
        "Times are this process's CPU time (time.process_time), which other jobs on the machine disturb "
        "far less than wall time; the wall-time ratio is shown beside it."
    )
    note = (
        "The loss call is a small part of a training step (the reward net's forward and backward over "
        "2 x 64 x 25 steps dominate), so a loss several times slower than Bradley-Terry on its own still "
        "adds only a few percent per epoch."
    )
    header = (
        "| loss | epoch CPU time / BT (median of paired runs) | min | max | best / best BT | target "
        "| wall time / BT (median) | loss call alone / BT |"
    )
    lines = [
        "# Preference loss overhead: time per epoch relative to Bradley-Terry",
        "",
        f"Command: `{meta['command']}`",
        "",
        setting,
        "",
        header,
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        target = f"<= {row['target']:.2f}" if row["target"] else ""
        lines.append(
            f"| {row['loss']} | {row['epoch_cpu_ratio_median']:.3f} | {row['epoch_cpu_ratio_min']:.3f} | "
            f"{row['epoch_cpu_ratio_max']:.3f} | {row['epoch_cpu_best_ratio']:.3f} | {target} | "
            f"{row['epoch_wall_ratio_median']:.3f} | {row['call_ratio_median']:.2f} |"
        )
    lines += ["", note, ""]
    return "\n".join(lines)
