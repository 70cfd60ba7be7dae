"""Checkpoints of multi-agent runs that survive a kill at any moment.

Each checkpoint is a complete folder ``checkpoints/iteration-NNNNN/`` (SB3 model zips, replay buffers as
``.npz``, ``state.json``); only once it is complete does ``checkpoints/latest.json`` (written atomically)
point to it, and older folders are removed. A kill therefore leaves the previous checkpoint intact.
Replay buffers are stored as plain arrays (no pickle) and loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer

from aligngym.files import atomic_path, atomic_write_json

_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def save_replay_buffer(buffer: ReplayBuffer, path: str | Path) -> None:
    """Write the filled part of an SB3 ``ReplayBuffer`` (with its write position) as ``.npz``, atomically."""
    filled = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {
        name: getattr(buffer, name)[:filled]
        for name in _BUFFER_ARRAYS
        if getattr(buffer, name, None) is not None
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, pos=np.int64(buffer.pos), full=np.bool_(buffer.full), **arrays)


def load_replay_buffer(buffer: ReplayBuffer, path: str | Path) -> None:
    """Fill ``buffer`` (same shapes and size) from :func:`save_replay_buffer`'s file."""
    with np.load(path, allow_pickle=False) as data:
        filled = len(data["rewards"])
        if filled > buffer.buffer_size:
            raise ValueError(
                f"{path} holds {filled} transitions but the buffer has room for {buffer.buffer_size}"
            )
        for name in _BUFFER_ARRAYS:
            if name in data.files and getattr(buffer, name, None) is not None:
                getattr(buffer, name)[:filled] = data[name]
        buffer.pos = int(data["pos"])
        buffer.full = bool(data["full"])


class CheckpointFolder:
    """``root/iteration-NNNNN/`` folders plus the ``root/latest.json`` pointer."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def new(self, iteration: int) -> Path:
        """An empty folder for the checkpoint of ``iteration`` (a half-written one from a kill is discarded)."""
        path = self.root / f"iteration-{iteration:05d}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def commit(self, path: Path, state: dict[str, Any]) -> None:
        """Write ``state.json`` into ``path``, point ``latest.json`` at it, remove older checkpoints."""
        atomic_write_json(path / "state.json", state)
        atomic_write_json(self.root / "latest.json", {"folder": path.name})
        for old in self.root.glob("iteration-*"):
            if old.is_dir() and old.name != path.name:
                shutil.rmtree(old, ignore_errors=True)

    def latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The last committed checkpoint folder and its state, or None."""
        pointer = self.root / "latest.json"
        if not pointer.exists():
            return None
        folder = self.root / json.loads(pointer.read_text())["folder"]
        try:
            state = json.loads((folder / "state.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"checkpoint {folder} is unreadable ({exc}); delete {pointer} to start over"
            ) from None
        return folder, state
