"""Distil a trained MLP PPO policy into CP tensor policies: reconstruction error per rank and the return kept.

The MLP's mean action and value are evaluated on the tensor policy's grid, decomposed with
tensorly.decomposition.parafac at each rank, loaded into a TensorActorCriticPolicy (the MLP's log-std is
copied too) and evaluated deterministically next to the MLP on the same episodes. One model, one process.

    aligngym bench tensor-distillation \
        results/bench/tensor-vs-mlp/runs/sb3__mlp-paper-pendulum__2__<stamp>/model.safetensors --publish benchmarks/results
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.runs.bench.options import add_output_arguments, command_line, out_dir, publish
from aligngym.runs.errors import UsageError

NAME = "tensor-distillation"
DESCRIPTION = "distil a trained MLP PPO policy into CP tensor policies: error per rank, return kept"
FILES = ("tensor_distillation.md", "tensor_distillation.json")
PENDULUM_GRID = {"bins": 10, "low": [-1, -1, -5], "high": [1, 1, 5]}


def evaluate(model: Any, env_id: str, episodes: int, seed: int) -> float:
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    env = make_vec_env(env_id, n_envs=1, seed=seed)
    mean, _ = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True)
    return float(mean)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        type=Path,
        help="model.safetensors of an sb3-job PPO run on Pendulum-v1 (its .zip is not read: loading one unpickles)",
    )
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 3, 5, 8, 12])
    parser.add_argument(
        "--save-rank", type=int, default=5, help="save this rank's actor CPTensor to --cp-out"
    )
    parser.add_argument(
        "--cp-out", type=Path, help="where to save that CPTensor (default OUT/actor_cp.safetensors)"
    )
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=10_000)
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    import torch
    from stable_baselines3 import PPO

    from aligngym.agents.sb3_training import load_trained_model
    from aligngym.agents.tensor.distillation import distill_policy, save_cp_tensor
    from aligngym.agents.tensor.policies import TensorActorCriticPolicy

    stem = (
        args.model.with_suffix("") if args.model.suffix in (".safetensors", ".zip", ".json") else args.model
    )
    if not stem.with_name(stem.name + ".json").is_file():
        raise UsageError(
            f"model {str(args.model)!r}: no {stem.name}.safetensors + {stem.name}.json beside it "
            "(an sb3-job run folder's model.safetensors; runs made before those files existed need re-training)"
        )
    torch.set_num_threads(1)
    out = out_dir(args, NAME)
    cp_out = args.cp_out or out / "actor_cp.safetensors"
    env_id = "Pendulum-v1"
    try:
        source = load_trained_model(stem)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    source_return = evaluate(source, env_id, args.episodes, args.seed)
    rows = []
    for rank in args.ranks:
        target = PPO(
            TensorActorCriticPolicy,
            env_id,
            policy_kwargs={"rank": rank, **PENDULUM_GRID},
            seed=0,
            device="cpu",
        )
        report = distill_policy(source.policy, target.policy)
        with torch.no_grad():
            target.policy.log_std.copy_(source.policy.log_std)
        rows.append(
            {
                "rank": rank,
                "parameters": sum(p.numel() for p in target.policy.parameters()),
                "actor_error": report.actor_error,
                "critic_error": report.critic_error,
                "return": evaluate(target, env_id, args.episodes, args.seed),
            }
        )
        # Same factors, read by multilinear interpolation between grid points instead of nearest point.
        target.policy.action_net.interpolate = target.policy.value_net.interpolate = True
        rows[-1]["return_interpolated"] = evaluate(target, env_id, args.episodes, args.seed)
        if rank == args.save_rank:
            save_cp_tensor(cp_out, target.policy.action_net.to_cp_tensor())
    command = command_line(args, NAME)
    source_params = sum(p.numel() for p in source.policy.parameters())
    lines = [
        "# Distilling a trained MLP policy into CP tensor policies (Pendulum-v1, 10x10x10 grid)",
        "",
        f"Command: `{command}`",
        "",
        (
            f"Source: {args.model} ({source_params} parameters), deterministic return over "
            f"{args.episodes} episodes: {source_return:.1f}. Errors are relative Frobenius errors "
            "||T - T_cp|| / ||T|| of the grid tensors (1,000 cells); the distilled policy is evaluated on the "
            "same episodes, with no further training, reading the tensor at the nearest grid point (the "
            "paper's form) and by multilinear interpolation."
        ),
        "",
        "| rank | parameters | actor error | critic error | return (nearest grid point) | return (interpolated) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['rank']} | {r['parameters']} | {r['actor_error']:.3f} | {r['critic_error']:.3f} | {r['return']:.1f} | "
        f"{r['return_interpolated']:.1f} |"
        for r in rows
    ]
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "tensor_distillation.md", text)
    atomic_write_json(
        out / "tensor_distillation.json",
        {"command": command, "source": str(args.model), "source_return": source_return, "rows": rows},
    )
    print(text)
    for path in publish(out, FILES, args.publish):
        print(f"published: {path}")
    return 0
