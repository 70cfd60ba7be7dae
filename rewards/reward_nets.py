"""Reward networks ``r_phi(s, a)``: an MLP over (observation, action), optionally an ensemble.

The papers' control reward model is a 2x64 MLP; an ensemble runs all members in one batched matmul
per layer (weights [E, in, out]) and its reward is the members' mean. Saved as safetensors with the
architecture in the file's metadata, so ``load_reward_net(path)`` needs nothing else.

Example:
    >>> import torch
    >>> net = RewardNet(obs_dim=3, act_dim=1, seed=0)
    >>> net(torch.zeros(5, 3), torch.zeros(5, 1)).shape
    torch.Size([5])
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from aligngym.files import atomic_save

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


@dataclass(frozen=True)
class RewardNetConfig:
    """Architecture of a reward net (stored with its weights)."""

    obs_dim: int
    act_dim: int = 0
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    ensemble_size: int = 1
    use_action: bool = True

    def __post_init__(self) -> None:
        if self.obs_dim < 1 or self.act_dim < 0:
            raise ValueError(f"obs_dim={self.obs_dim} must be >= 1 and act_dim={self.act_dim} >= 0")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden={self.hidden} must hold positive layer widths")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if self.ensemble_size < 1:
            raise ValueError(f"ensemble_size={self.ensemble_size} must be >= 1")

    @property
    def input_dim(self) -> int:
        return self.obs_dim + (self.act_dim if self.use_action else 0)


class EnsembleLinear(nn.Module):
    """E independent linear layers applied in one batched matmul: [E, B, in] -> [E, B, out]."""

    def __init__(
        self, ensemble_size: int, in_features: int, out_features: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default initialisation range
        self.weight = nn.Parameter(
            torch.empty(ensemble_size, in_features, out_features).uniform_(-bound, bound, generator=generator)
        )
        self.bias = nn.Parameter(
            torch.empty(ensemble_size, 1, out_features).uniform_(-bound, bound, generator=generator)
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class RewardNet(nn.Module):
    """MLP reward over concatenated (obs, action); ``forward`` returns the ensemble-mean reward per row."""

    def __init__(
        self,
        obs_dim: int | None = None,
        act_dim: int = 0,
        hidden: tuple[int, ...] = (64, 64),
        activation: str = "relu",
        ensemble_size: int = 1,
        use_action: bool = True,
        seed: int = 0,
        config: RewardNetConfig | None = None,
    ) -> None:
        super().__init__()
        if config is None:
            if obs_dim is None:
                raise ValueError("RewardNet needs obs_dim (or a RewardNetConfig)")
            config = RewardNetConfig(obs_dim, act_dim, tuple(hidden), activation, ensemble_size, use_action)
        self.config = config
        generator = torch.Generator().manual_seed(seed)  # local generator: the global RNG is left alone
        widths = (config.input_dim, *config.hidden, 1)
        layers: list[nn.Module] = []
        for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
            layers.append(EnsembleLinear(config.ensemble_size, width_in, width_out, generator))
            if index < len(widths) - 2:
                layers.append(ACTIVATIONS[config.activation]())
        self.body = nn.Sequential(*layers)

    def members(self, obs: Tensor, actions: Tensor | None = None) -> Tensor:
        """Per-member rewards, shape [E, *batch] for inputs of shape [*batch, dim]."""
        x = self._inputs(obs, actions)
        batch_shape = x.shape[:-1]
        flat = x.reshape(1, -1, x.shape[-1]).expand(self.config.ensemble_size, -1, -1)
        return self.body(flat).reshape(self.config.ensemble_size, *batch_shape)

    def forward(self, obs: Tensor, actions: Tensor | None = None) -> Tensor:
        """Ensemble-mean reward, shape [*batch]."""
        out = self.members(obs, actions)
        return out[0] if self.config.ensemble_size == 1 else out.mean(dim=0)

    def _inputs(self, obs: Tensor, actions: Tensor | None) -> Tensor:
        if not self.config.use_action:
            return obs
        if actions is None:
            raise ValueError("this reward net uses actions: pass actions")
        return torch.cat([obs, actions], dim=-1)

    @torch.no_grad()
    def segment_returns(
        self, obs: Tensor | np.ndarray, actions: Tensor | np.ndarray, batch_size: int = 4096
    ) -> Tensor:
        """Learned returns ``sum_t r(s_t, a_t)`` of segments [N, H, dim], evaluated in chunks of segments."""
        obs_t = torch.as_tensor(obs, dtype=torch.float32)
        act_t = torch.as_tensor(actions, dtype=torch.float32)
        chunk = max(1, batch_size // max(1, obs_t.shape[1]))
        return torch.cat(
            [
                self(obs_t[i : i + chunk], act_t[i : i + chunk]).sum(dim=-1)
                for i in range(0, len(obs_t), chunk)
            ]
        )

    def as_reward_fn(self) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
        """A numpy ``reward_fn(obs, action, next_obs)`` for ``aligngym.envs.learned_reward`` wrappers."""

        def reward_fn(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(len(obs), -1))
                act_t = torch.as_tensor(np.asarray(actions, dtype=np.float32).reshape(len(obs), -1))
                return self(obs_t, act_t).numpy().astype(np.float64)

        return reward_fn


def save_reward_net(net: RewardNet, path: str | os.PathLike) -> None:
    """Write the weights as safetensors, with the architecture as JSON metadata (atomic)."""
    metadata = {"aligngym_reward_net": json.dumps(asdict(net.config))}
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_save(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_reward_net(path: str | os.PathLike) -> RewardNet:
    """Read a reward net written by ``save_reward_net``; a file without our metadata is rejected."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if "aligngym_reward_net" not in metadata:
        raise ValueError(f"{os.fspath(path)!r} is not a saved aligngym reward net (no architecture metadata)")
    fields = json.loads(metadata["aligngym_reward_net"])
    fields["hidden"] = tuple(fields["hidden"])
    net = RewardNet(config=RewardNetConfig(**fields))
    net.load_state_dict(load_file(str(path)))
    return net
