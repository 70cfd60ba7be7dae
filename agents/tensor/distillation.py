"""Distil a trained policy (any SB3 ActorCriticPolicy, e.g. an MLP) into a CP tensor policy with tensorly.

Evaluate the source's mean action (or logits) and value on every grid state of the target's
discretisation, decompose each tensor with ``tensorly.decomposition.parafac`` at the target's ranks and
load the factors into the target. ``reconstruction_errors`` gives the relative error per rank for rank
selection; ``save_cp_tensor`` / ``load_cp_tensor`` store a CPTensor as safetensors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import tensorly as tl
import torch
from safetensors.numpy import load_file, save_file
from stable_baselines3.common.distributions import CategoricalDistribution, DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from tensorly.cp_tensor import CPTensor
from tensorly.decomposition import parafac

from aligngym.agents.tensor.discretization import Discretization
from aligngym.agents.tensor.policies import CPTable, TensorActorCriticPolicy
from aligngym.files import atomic_save


@dataclass
class DistillationReport:
    """Relative reconstruction errors ||T - T_cp|| / ||T|| of the distilled actor and critic tensors."""

    actor_error: float
    critic_error: float


def evaluate_on_grid(
    function: Callable[[torch.Tensor], torch.Tensor], discretization: Discretization, batch_size: int = 65_536
) -> np.ndarray:
    """``function`` (states (N, D) -> outputs (N, O)) on every grid state; shape bins (+ (O,) if O > 1)."""
    grid = discretization.grid()
    with torch.no_grad():
        outputs = torch.cat(
            [function(chunk).reshape(len(chunk), -1) for chunk in torch.split(grid, batch_size)]
        )
    shape = discretization.shape + ((outputs.shape[1],) if outputs.shape[1] > 1 else ())
    return outputs.cpu().numpy().astype(np.float64).reshape(shape)


def policy_tensors(
    policy: ActorCriticPolicy, discretization: Discretization
) -> tuple[np.ndarray, np.ndarray]:
    """(actor tensor, value tensor) of an SB3 actor-critic policy on the grid.

    The actor tensor holds the Gaussian mean, or the softmax logits (log-probabilities) for discrete actions.
    """
    device = policy.device

    def actor(states: torch.Tensor) -> torch.Tensor:
        distribution = policy.get_distribution(states.to(device))
        if isinstance(distribution, DiagGaussianDistribution):
            return distribution.distribution.mean
        if isinstance(distribution, CategoricalDistribution):
            return distribution.distribution.logits
        raise TypeError(
            f"distillation supports Gaussian or categorical policies, got {type(distribution).__name__}"
        )

    def value(states: torch.Tensor) -> torch.Tensor:
        return policy.predict_values(states.to(device))

    was_training = policy.training
    policy.set_training_mode(False)
    try:
        return evaluate_on_grid(actor, discretization), evaluate_on_grid(value, discretization)
    finally:
        policy.set_training_mode(was_training)


def decompose(
    tensor: np.ndarray, rank: int, seed: int = 0, n_iter_max: int = 500, tol: float = 1e-10
) -> CPTensor:
    """Rank-``rank`` CP decomposition by alternating least squares (tensorly, numpy backend)."""
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    with tl.backend_context("numpy"):
        return parafac(
            np.asarray(tensor, dtype=np.float64),
            rank,
            n_iter_max=n_iter_max,
            init="svd",
            tol=tol,
            random_state=seed,
        )


def relative_error(tensor: np.ndarray, cp: CPTensor) -> float:
    """||T - T_cp|| / ||T|| (0 for a zero tensor reproduced exactly)."""
    with tl.backend_context("numpy"):
        approx = tl.cp_to_tensor(cp)
    norm = float(np.linalg.norm(tensor))
    diff = float(np.linalg.norm(np.asarray(tensor) - approx))
    return diff / norm if norm > 0 else diff


def reconstruction_errors(tensor: np.ndarray, ranks: Iterable[int], seed: int = 0) -> dict[int, float]:
    """Relative reconstruction error of the best rank-r CP fit found, per rank (for choosing a rank)."""
    return {int(r): relative_error(tensor, decompose(tensor, int(r), seed=seed)) for r in ranks}


def _fit_table(table: CPTable, tensor: np.ndarray, seed: int) -> float:
    if tuple(tensor.shape) != table.tensor_shape:
        raise ValueError(f"tensor shape {tensor.shape} does not match the CP table's {table.tensor_shape}")
    cp = decompose(tensor, table.rank, seed=seed)
    table.load_cp_tensor(cp)
    return relative_error(tensor, cp)


def distill_policy(
    source: ActorCriticPolicy, target: TensorActorCriticPolicy, seed: int = 0
) -> DistillationReport:
    """Fit the target's actor and critic CP tables to the source policy on the target's grid (in place).

    The target keeps its own log-std; copy ``source.log_std`` over yourself if you want it too.
    """
    discretization = target.action_net.discretization
    actor, value = policy_tensors(source, discretization)
    return DistillationReport(
        actor_error=_fit_table(target.action_net, actor, seed),
        critic_error=_fit_table(target.value_net, value, seed),
    )


def save_cp_tensor(path: str | os.PathLike, cp: CPTensor) -> None:
    """Write a CPTensor (weights and factors) as a safetensors file, atomically."""
    weights, factors = cp
    arrays = {"weights": np.ascontiguousarray(tl.to_numpy(weights))}
    arrays.update({f"factor_{i}": np.ascontiguousarray(tl.to_numpy(f)) for i, f in enumerate(factors)})
    atomic_save(path, lambda tmp: save_file(arrays, str(tmp)))


def load_cp_tensor(path: str | os.PathLike) -> CPTensor:
    """Read a CPTensor written by ``save_cp_tensor``."""
    arrays = load_file(str(path))
    count = sum(1 for key in arrays if key.startswith("factor_"))
    if "weights" not in arrays or count == 0:
        raise ValueError(f"{path} is not a CP tensor file (needs 'weights' and 'factor_0'...)")
    return CPTensor((arrays["weights"], [arrays[f"factor_{i}"] for i in range(count)]))
