"""Tensor low-rank (PARAFAC / CP) policies and values for policy-gradient RL, as SB3 policy classes.

After Rozada, Wai, Marques, "Multilinear Tensor Low-Rank Approximation for Policy-Gradient Methods in
Reinforcement Learning" (arXiv 2501.04879). The policy parameters form a tensor with one mode per
discretised state dimension (plus an output mode when there is more than one output); the tensor is kept
in CP form with rank K, one factor matrix per mode, and is never built: a state's entry is the product of
one gathered row per mode, summed over the rank (O(D*K) per sample).

Usage::

    from stable_baselines3 import PPO
    from aligngym.agents.tensor.policies import TensorActorCriticPolicy

    kwargs = dict(rank=5, bins=10, low=[-1, -1, -5], high=[1, 1, 5])  # the paper's Pendulum grid
    PPO(TensorActorCriticPolicy, "Pendulum-v1", policy_kwargs=kwargs).learn(100_000)

How it plugs into SB3's ActorCriticPolicy: the ``mlp_extractor`` is the identity (latent = observation),
``action_net`` is a CP table giving the Gaussian mean (or the softmax logits) and ``value_net`` is a CP
table giving V(s). SB3's own forward / evaluate_actions / predict_values therefore run unchanged, and PPO,
A2C and anything else built on ActorCriticPolicy work, truncation bootstrapping included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import tensorly as tl
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import MlpExtractor
from stable_baselines3.common.type_aliases import Schedule
from tensorly.cp_tensor import CPTensor
from torch import nn

from aligngym.agents.tensor.discretization import Discretization

# ActorCriticPolicy arguments that only shape an MLP; a tensor policy rejects them instead of ignoring them.
MLP_ONLY_KWARGS = ("net_arch", "activation_fn", "ortho_init")


class CPTable(nn.Module):
    """A function on discretised states stored as a rank-K CP tensor; output shape (batch, outputs).

    With ``outputs == 1`` the tensor has only the state modes; otherwise a last factor of shape
    (outputs, K) forms the output mode (actions of a softmax policy, dimensions of a Gaussian mean).
    ``interpolate=True`` replaces nearest-grid-point lookup by multilinear interpolation between the
    two neighbouring grid points per dimension; for a CP tensor that is exactly the product over modes of
    the interpolated factor rows, so it stays O(D*K).
    """

    def __init__(
        self,
        discretization: Discretization,
        rank: int,
        outputs: int = 1,
        interpolate: bool = False,
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        if outputs < 1:
            raise ValueError(f"outputs must be >= 1, got {outputs}")
        self.discretization = discretization
        self.rank = rank
        self.outputs = outputs
        self.interpolate = interpolate
        modes = list(discretization.shape) + ([outputs] if outputs > 1 else [])
        self.factors = nn.ParameterList(
            [nn.Parameter(init_scale * torch.randn(size, rank)) for size in modes]
        )

    @property
    def has_output_mode(self) -> bool:
        return self.outputs > 1

    @property
    def tensor_shape(self) -> tuple[int, ...]:
        return tuple(int(f.shape[0]) for f in self.factors)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        # Index the ParameterList item by item: slicing it would build a new module on every call.
        factors, dims = self.factors, self.discretization.dims
        if self.interpolate:
            lower, upper, weight = self.discretization.neighbours(states)
            weight = weight.to(factors[0].dtype)
            rows = None
            for d in range(dims):
                w = weight[:, d : d + 1]
                row = (1 - w) * factors[d][lower[:, d]] + w * factors[d][upper[:, d]]
                rows = row if rows is None else rows * row
        else:
            index = self.discretization.indices(states)
            rows = factors[0][index[:, 0]]
            for d in range(1, dims):
                rows = rows * factors[d][index[:, d]]
        if self.has_output_mode:
            return rows @ self.factors[-1].T
        return rows.sum(dim=-1, keepdim=True)

    def to_cp_tensor(self) -> CPTensor:
        """The factors as a tensorly CPTensor (unit weights, detached numpy arrays)."""
        factors = [f.detach().cpu().numpy().copy() for f in self.factors]
        return CPTensor((tl.ones(self.rank, **tl.context(factors[0])), factors))

    @torch.no_grad()
    def load_cp_tensor(self, cp: CPTensor) -> None:
        """Copy a CPTensor of the same shape and rank in, absorbing its weights into the first factor."""
        weights, factors = cp
        shapes = tuple(tuple(f.shape) for f in factors)
        expected = tuple((size, self.rank) for size in self.tensor_shape)
        if shapes != expected:
            raise ValueError(f"CP tensor factor shapes {shapes} do not match this table's {expected}")
        for i, (param, factor) in enumerate(zip(self.factors, factors)):
            value = torch.as_tensor(tl.to_numpy(factor), dtype=param.dtype, device=param.device)
            if i == 0:
                value = value * torch.as_tensor(tl.to_numpy(weights), dtype=param.dtype, device=param.device)
            param.copy_(value)


@dataclass
class TensorPolicyConfig:
    """The tensor-specific settings of TensorActorCriticPolicy (its policy_kwargs besides SB3's own)."""

    rank: int = 5
    """CP rank K of the actor tensor."""
    bins: int | tuple[int, ...] = 10
    """Grid points per state dimension (one int for all, or one per dimension)."""
    value_rank: int | None = None
    """CP rank of the critic tensor; None = rank."""
    low: tuple[float | None, ...] | None = None
    """Lower range per state dimension; None (or a None entry) = the observation space's bound."""
    high: tuple[float | None, ...] | None = None
    """Upper range per state dimension; None (or a None entry) = the observation space's bound."""
    interpolate: bool = False
    """Multilinear interpolation between grid points instead of nearest grid point (not the paper's form)."""
    log_std_bounds: tuple[float, float] = (-2.5, 0.0)
    """Clamp of the learned state-independent log standard deviation (Gaussian policies)."""
    beta: float = 1.0
    """Inverse temperature of softmax policies: logits = clamp(beta * T[s, :])."""
    logit_clip: float = 20.0
    """Logits are clamped to [-logit_clip, logit_clip]."""
    actor_init_scale: float = 0.1
    """Actor factors start as N(0, scale^2) (the public code's 0.1: a near-zero initial mean)."""
    critic_init_scale: float = 1.0
    """Critic factors start as N(0, scale^2)."""

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if self.value_rank is not None and self.value_rank < 1:
            raise ValueError(f"value_rank must be >= 1 or None, got {self.value_rank}")
        bins = (self.bins,) if isinstance(self.bins, int) else tuple(self.bins)
        if not bins or any(int(b) < 2 for b in bins):
            raise ValueError(f"bins must be >= 2 per dimension, got {self.bins}")
        lo, hi = self.log_std_bounds
        if not lo < hi:
            raise ValueError(f"log_std_bounds must be (low, high) with low < high, got {self.log_std_bounds}")
        for name in ("beta", "logit_clip", "actor_init_scale", "critic_init_scale"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


class TensorActorCriticPolicy(ActorCriticPolicy):
    """SB3 actor-critic policy whose actor and critic are CP tables over the discretised observation.

    Box actions: Gaussian with the tensor as mean and a learned, clamped, state-independent log-std.
    Discrete actions: softmax over ``clamp(beta * T[s, :])``. Keyword arguments: the fields of
    TensorPolicyConfig plus ActorCriticPolicy's own (optimizer_class, log_std_init, ...) except the
    MLP-only ones (net_arch, activation_fn, ortho_init) and gSDE.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        rank: int = 5,
        bins: int | Sequence[int] = 10,
        value_rank: int | None = None,
        low: Sequence[float | None] | None = None,
        high: Sequence[float | None] | None = None,
        interpolate: bool = False,
        log_std_bounds: Sequence[float] = (-2.5, 0.0),
        beta: float = 1.0,
        logit_clip: float = 20.0,
        actor_init_scale: float = 0.1,
        critic_init_scale: float = 1.0,
        use_sde: bool = False,
        **kwargs: Any,
    ) -> None:
        passed = [key for key in MLP_ONLY_KWARGS if key in kwargs]
        if passed:
            raise ValueError(
                f"TensorActorCriticPolicy takes no {passed[0]!r} (it has no MLP); "
                f"its own settings are: {', '.join(TensorPolicyConfig.__dataclass_fields__)}"
            )
        if use_sde:
            raise ValueError(
                "TensorActorCriticPolicy does not support gSDE (use_sde=True); use use_sde=False"
            )
        if not isinstance(action_space, (spaces.Box, spaces.Discrete)):
            raise TypeError(f"TensorActorCriticPolicy supports Box or Discrete actions, got {action_space}")
        self.tensor_config = TensorPolicyConfig(
            rank=rank,
            bins=bins if isinstance(bins, int) else tuple(int(b) for b in bins),
            value_rank=value_rank,
            low=None if low is None else tuple(low),
            high=None if high is None else tuple(high),
            interpolate=interpolate,
            log_std_bounds=(float(log_std_bounds[0]), float(log_std_bounds[1])),
            beta=beta,
            logit_clip=logit_clip,
            actor_init_scale=actor_init_scale,
            critic_init_scale=critic_init_scale,
        )
        super().__init__(
            observation_space, action_space, lr_schedule, net_arch=[], ortho_init=False, **kwargs
        )

    def _build_mlp_extractor(self) -> None:
        # No hidden layers: the latent of both heads is the (flattened) observation itself.
        self.mlp_extractor = MlpExtractor(
            self.features_dim, net_arch=[], activation_fn=nn.Tanh, device=self.device
        )

    def _build(self, lr_schedule: Schedule) -> None:
        cfg = self.tensor_config
        self._build_mlp_extractor()
        discretization = Discretization.from_space(self.observation_space, cfg.bins, cfg.low, cfg.high)
        if discretization.dims != self.features_dim:
            raise ValueError(
                f"the features extractor gives {self.features_dim} features but the observation has "
                f"{discretization.dims} dimensions; tensor policies discretise the raw observation"
            )
        if isinstance(self.action_dist, DiagGaussianDistribution):
            outputs = self.action_dist.action_dim
            self.log_std = nn.Parameter(torch.full((outputs,), float(self.log_std_init)))
        elif isinstance(self.action_dist, CategoricalDistribution):
            outputs = self.action_dist.action_dim
        else:
            raise TypeError(f"unsupported action distribution {type(self.action_dist).__name__}")
        self.action_net = CPTable(discretization, cfg.rank, outputs, cfg.interpolate, cfg.actor_init_scale)
        self.value_net = CPTable(
            discretization, cfg.value_rank or cfg.rank, 1, cfg.interpolate, cfg.critic_init_scale
        )
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor) -> Distribution:
        cfg = self.tensor_config
        output = self.action_net(latent_pi)
        if isinstance(self.action_dist, DiagGaussianDistribution):
            log_std = torch.clamp(self.log_std, *cfg.log_std_bounds)
            return self.action_dist.proba_distribution(output, log_std)
        logits = torch.clamp(cfg.beta * output, -cfg.logit_clip, cfg.logit_clip)
        return self.action_dist.proba_distribution(action_logits=logits)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        for key in (*MLP_ONLY_KWARGS, "use_sde", "squash_output", "full_std", "use_expln"):
            data.pop(key, None)
        data.update(asdict(self.tensor_config))
        return data


class FactorCycleCallback(BaseCallback):
    """Block-coordinate updates: each rollout's update trains one factor per CP table (cycling), not all.

    The other factors get ``requires_grad=False`` so the optimizer skips them (their grads stay None);
    the actor and critic tables each cycle through their own factors, and every other parameter
    (the log-std) keeps training.
    """

    def __init__(self, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.updates = 0

    def _on_training_start(self) -> None:
        if not isinstance(self.model.policy, TensorActorCriticPolicy):
            raise TypeError(
                f"FactorCycleCallback needs a TensorActorCriticPolicy, got {type(self.model.policy).__name__}"
            )

    def _on_rollout_end(self) -> None:
        policy = self.model.policy
        for table in (policy.action_net, policy.value_net):
            active = self.updates % len(table.factors)
            for i, factor in enumerate(table.factors):
                factor.requires_grad_(i == active)
        self.updates += 1

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        for table in (self.model.policy.action_net, self.model.policy.value_net):
            for factor in table.factors:
                factor.requires_grad_(True)
