"""Distil a trained MLP PPO policy into CP tensor policies: reconstruction error per rank and the return kept.

The MLP's mean action and value are evaluated on the tensor policy's grid, decomposed with
tensorly.decomposition.parafac at each rank, loaded into a TensorActorCriticPolicy (the MLP's log-std is
copied too) and evaluated deterministically next to the MLP on the same episodes.

    python benchmarks/tensor_distillation.py results/tensor_vs_mlp/sb3__mlp-paper-pendulum__0__*/model.zip
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from aligngym.agents.tensor.distillation import distill_policy, save_cp_tensor
from aligngym.agents.tensor.policies import TensorActorCriticPolicy
from aligngym.files import atomic_write_json, atomic_write_text

RESULTS = Path(__file__).parent / "results"
PENDULUM_GRID = {"bins": 10, "low": [-1, -1, -5], "high": [1, 1, 5]}


def evaluate(model: PPO, env_id: str, episodes: int, seed: int) -> float:
    env = make_vec_env(env_id, n_envs=1, seed=seed)
    mean, _ = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True)
    return float(mean)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a trained SB3 PPO model.zip on Pendulum-v1")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 3, 5, 8, 12])
    parser.add_argument(
        "--save-rank", type=int, default=5, help="save this rank's actor CPTensor to --cp-out"
    )
    parser.add_argument(
        "--cp-out", type=Path, default=Path("results/tensor_distillation/actor_cp.safetensors")
    )
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=RESULTS / "tensor_distillation")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    env_id = "Pendulum-v1"
    source = PPO.load(args.model, device="cpu")
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
            save_cp_tensor(args.cp_out, target.policy.action_net.to_cp_tensor())
    command = "python " + " ".join(["benchmarks/tensor_distillation.py", *sys.argv[1:]])
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
    atomic_write_text(args.out.with_suffix(".md"), text)
    atomic_write_json(
        args.out.with_suffix(".json"),
        {"command": command, "source": str(args.model), "source_return": source_return, "rows": rows},
    )
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
