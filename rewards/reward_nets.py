"""Reward networks ``r_phi(s, a)``: an MLP over (observation, action), optionally an ensemble.

The papers' control reward model is a 2x64 MLP; an ensemble runs all members in one batched matmul
per layer (weights [E, in, out]) and its reward is the members' mean. Saved as safetensors with the
architecture and a SHA-256 of the weights in the file's metadata, so ``load_reward_net(path)`` needs nothing
else and refuses an altered file: sizes are checked against ``MAX_PARAMETERS`` and the file's own tensor
shapes before anything is allocated, then the checksum and that every weight is finite.

Like the Hub's models, ``net.save_pretrained(folder)`` writes ``model.safetensors`` + ``config.json``,
``RewardNet.from_pretrained(folder_or_file_or_repo_id)`` reads them back (a single ``.safetensors`` file
of ``save_reward_net`` too) and ``net.push_to_hub(repo_id)`` uploads (huggingface_hub's
``PyTorchModelHubMixin``).

Example:
    >>> import torch
    >>> net = RewardNet(obs_dim=3, act_dim=1, seed=0)
    >>> net(torch.zeros(5, 3), torch.zeros(5, 1)).shape
    torch.Size([5])
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from aligngym.files import atomic_save

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}
MAX_PARAMETERS = 50_000_000
"""Largest reward net built or loaded (200 MB of float32): the papers' nets have ~10^4 parameters, and a
file's header is checked against this before its sizes are trusted."""
WEIGHTS_NAME = "model.safetensors"


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
        if self.parameter_count() > MAX_PARAMETERS:
            raise ValueError(
                f"a reward net of obs_dim={self.obs_dim}, act_dim={self.act_dim}, hidden={self.hidden}, "
                f"ensemble_size={self.ensemble_size} has {self.parameter_count():,} parameters; "
                f"at most {MAX_PARAMETERS:,}"
            )

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """The state dict's tensor shapes (names as ``RewardNet.state_dict()``), computed without building it."""
        widths = (self.input_dim, *self.hidden, 1)
        shapes = {}
        for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
            shapes[f"body.{2 * index}.weight"] = (self.ensemble_size, width_in, width_out)
            shapes[f"body.{2 * index}.bias"] = (self.ensemble_size, 1, width_out)
        return shapes

    def parameter_count(self) -> int:
        return sum(math.prod(shape) for shape in self.tensor_shapes().values())

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


class RewardNet(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="aligngym",
    tags=["reward-model", "preference-learning"],
):
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

    # -- the Hub's interface (PyTorchModelHubMixin): our checked file format inside its folder layout ------

    def _save_pretrained(self, save_directory: Path) -> None:
        save_reward_net(self, Path(save_directory) / WEIGHTS_NAME)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> RewardNet:
        """A folder of ``save_pretrained``, a ``.safetensors`` file of ``save_reward_net``, or a Hub repo id."""
        if Path(pretrained_model_name_or_path).is_file():
            return load_reward_net(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **kwargs: Any) -> RewardNet:
        """Load ``model.safetensors`` (its own metadata holds the architecture; config.json is for readers)."""
        if Path(model_id).is_dir():
            return load_reward_net(Path(model_id) / WEIGHTS_NAME)
        from huggingface_hub import hf_hub_download

        hub_kwargs = ("revision", "cache_dir", "force_download", "local_files_only", "token")
        path = hf_hub_download(model_id, WEIGHTS_NAME, **{k: kwargs[k] for k in hub_kwargs if k in kwargs})
        return load_reward_net(path)


def _checksum(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_reward_net(net: RewardNet, path: str | os.PathLike) -> None:
    """Write the weights as safetensors, with the architecture and their checksum as metadata (atomic).

    ValueError (nothing written) for non-finite weights."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    for name, tensor in tensors.items():  # a diverged fit (e.g. lr=inf) must not leave a file that loads
        if not torch.isfinite(tensor).all():
            raise ValueError(
                f"reward net tensor {name!r} holds non-finite values (training diverged); not saved"
            )
    metadata = {"aligngym_reward_net": json.dumps(asdict(net.config)), "aligngym_sha256": _checksum(tensors)}
    atomic_save(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_reward_net(path: str | os.PathLike) -> RewardNet:
    """Read a reward net written by ``save_reward_net``, checking it before trusting it.

    ValueError for a file that is not ours, an architecture over ``MAX_PARAMETERS`` or unlike the file's
    tensors (checked before allocating), a checksum mismatch (files from before checksums: none to check),
    or non-finite weights.
    """
    from safetensors import safe_open

    where = repr(os.fspath(path))
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{where} is not a readable safetensors file ({exc})") from None
    if "aligngym_reward_net" not in metadata:
        raise ValueError(f"{where} is not a saved aligngym reward net (no architecture metadata)")
    try:
        fields = json.loads(metadata["aligngym_reward_net"])
        fields["hidden"] = tuple(fields["hidden"])
        config = RewardNetConfig(**fields)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: the architecture metadata is invalid ({exc})") from None
    expected = config.tensor_shapes()
    if shapes != expected:
        raise ValueError(f"{where}: tensors {shapes} do not match the architecture's {expected}")
    state = load_file(str(path))
    if "aligngym_sha256" in metadata and metadata["aligngym_sha256"] != _checksum(state):
        raise ValueError(f"{where}: the weights do not match their checksum (the file is altered or damaged)")
    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise ValueError(f"{where}: tensor {name!r} holds non-finite values")
    net = RewardNet(config=config)
    net.load_state_dict(state)
    return net
