"""SB3 policies saved and loaded without pickle: ``<stem>.safetensors`` (the policy's state dict) + ``<stem>.json``.

An SB3 ``.zip`` holds a cloudpickled ``data`` entry, and ``SAC.load`` unpickles it: loading a model from a
folder someone sent you runs whatever code they put there. Here the model is rebuilt instead from settings
the caller trusts (its run config), and only tensors are read into it: safetensors is a JSON header plus raw
bytes, the JSON file is read with ``json``. Before anything is copied, the description and the file's
SHA-256 are checked against the rebuilt model, and every weight must be finite.

Example:
    >>> import tempfile, gymnasium as gym
    >>> from stable_baselines3 import PPO
    >>> model = PPO("MlpPolicy", gym.make("Pendulum-v1"), n_steps=64, seed=0)
    >>> stem = tempfile.mkdtemp() + "/policy"
    >>> save_policy(model, stem)
    >>> load_policy(PPO("MlpPolicy", gym.make("Pendulum-v1"), n_steps=64, seed=1), stem).num_timesteps
    0
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from stable_baselines3.common.base_class import BaseAlgorithm

from aligngym.files import atomic_save, atomic_write_json

FORMAT = "aligngym-sb3-policy/1"


def describe(model: BaseAlgorithm) -> dict[str, Any]:
    """What a loader must rebuild: algorithm, policy class, spaces and the shape of every tensor."""
    return {
        "format": FORMAT,
        "algorithm": type(model).__name__,
        "policy_class": type(model.policy).__name__,
        "observation_space": repr(model.observation_space),
        "action_space": repr(model.action_space),
        "tensors": {k: list(v.shape) for k, v in model.policy.state_dict().items()},
    }


def _paths(stem: str | os.PathLike) -> tuple[Path, Path]:
    stem = Path(stem)
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_policy(model: BaseAlgorithm, stem: str | os.PathLike, extra: dict[str, Any] | None = None) -> None:
    """Write ``<stem>.safetensors`` and ``<stem>.json`` (description, ``extra``, checksum), each atomically."""
    weights, description = _paths(stem)
    # Cloned: buffers shared between modules (a tensor policy's discretisation) are stored once per name.
    tensors = {k: v.detach().cpu().clone().contiguous() for k, v in model.policy.state_dict().items()}
    atomic_save(weights, lambda tmp: save_file(tensors, str(tmp)))
    info = describe(model) | (extra or {}) | {"sha256": _sha256(weights)}
    atomic_write_json(description, info)


def read_description(stem: str | os.PathLike) -> dict[str, Any]:
    """The JSON description next to the weights (FileNotFoundError when the policy was never saved so)."""
    _, description = _paths(stem)
    if not description.is_file():
        raise FileNotFoundError(f"{description} does not exist: no policy saved as safetensors at {stem}")
    try:
        info = json.loads(description.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{description} is not a policy description ({exc})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{description} is not an {FORMAT} description")
    return info


def load_policy(model: BaseAlgorithm, stem: str | os.PathLike) -> BaseAlgorithm:
    """Copy the weights at ``stem`` into ``model`` (built by the caller from trusted settings); returns it.

    ValueError when the file was built for another model, was altered (checksum) or holds non-finite weights.
    """
    weights, description_path = _paths(stem)
    info = read_description(stem)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} does not exist")
    expected = describe(model)
    for key in ("algorithm", "policy_class", "observation_space", "action_space", "tensors"):
        if info.get(key) != expected[key]:
            raise ValueError(
                f"{description_path}: {key} is {info.get(key)!r} but the model rebuilt from the run's config has "
                f"{expected[key]!r}; the weights belong to another model"
            )
    if info.get("sha256") != _sha256(weights):
        raise ValueError(
            f"{weights} does not match the checksum in {description_path.name}: the file is altered"
        )
    state = load_file(str(weights))
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"{weights}: tensor {name!r} holds non-finite values")
    model.policy.load_state_dict(state, strict=True)
    return model


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
