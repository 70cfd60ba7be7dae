"""Uniform per-dimension discretisation of continuous states: the index space of a tensor policy.

Dimension d gets ``bins[d]`` grid points spaced evenly over ``[low[d], high[d]]`` (both ends included).
A state is clipped into the box first, so out-of-range states land in the edge bins, then mapped to its
nearest grid point: ``idx = round((s - low) / (high - low) * (B - 1))`` (Rozada et al., 2025). For the
optional multilinear interpolation the two neighbouring grid points and the weight of the upper one are
returned instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from gymnasium import spaces
from torch import nn


class Discretization(nn.Module):
    """Grid of ``bins[d]`` points over ``[low[d], high[d]]`` per state dimension (buffers follow .to())."""

    low: torch.Tensor
    high: torch.Tensor
    bins: torch.Tensor
    scale: torch.Tensor

    def __init__(self, low: Sequence[float], high: Sequence[float], bins: Sequence[int]) -> None:
        super().__init__()
        if not (len(low) == len(high) == len(bins)) or len(bins) == 0:
            raise ValueError(
                "low, high and bins need one entry per state dimension, "
                f"got {len(low)}, {len(high)}, {len(bins)}"
            )
        for d, (lo, hi, b) in enumerate(zip(low, high, bins)):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"dimension {d}: need finite low < high, got low={lo}, high={hi}")
            if int(b) < 2:
                raise ValueError(f"dimension {d}: bins must be >= 2, got {b}")
        self.register_buffer("low", torch.tensor([float(x) for x in low]))
        self.register_buffer("high", torch.tensor([float(x) for x in high]))
        self.register_buffer("bins", torch.tensor([int(b) for b in bins]))
        self.register_buffer("scale", (self.bins - 1).to(self.low.dtype) / (self.high - self.low))
        self._shape = tuple(int(b) for b in bins)

    @classmethod
    def from_space(
        cls,
        space: spaces.Space,
        bins: int | Sequence[int],
        low: float | Sequence[float | None] | None = None,
        high: float | Sequence[float | None] | None = None,
    ) -> Discretization:
        """Bins and ranges from a 1-D Box space; ``low``/``high`` entries (not None) override its bounds.

        Spaces with infinite bounds (most MuJoCo tasks) need explicit ranges for those dimensions.
        """
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise TypeError(f"tensor policies need a 1-D Box observation space, got {space}")
        dims = space.shape[0]
        bins_list = [int(bins)] * dims if isinstance(bins, int) else [int(b) for b in bins]
        lows = _per_dimension(low, space.low.tolist(), "low")
        highs = _per_dimension(high, space.high.tolist(), "high")
        for d in range(dims):
            if not (math.isfinite(lows[d]) and math.isfinite(highs[d])):
                raise ValueError(
                    f"observation dimension {d} has infinite bounds ({lows[d]}, {highs[d]}); "
                    "give finite ranges with low=[...] and high=[...]"
                )
        if len(bins_list) != dims:
            raise ValueError(
                f"bins has {len(bins_list)} entries but the observation space has {dims} dimensions"
            )
        return cls(lows, highs, bins_list)

    @property
    def dims(self) -> int:
        return len(self._shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Number of grid points per dimension (the state modes of the tensor)."""
        return self._shape

    def _position(self, states: torch.Tensor) -> torch.Tensor:
        """Continuous grid coordinate in ``[0, B - 1]`` per dimension, after clipping into the box."""
        states = states.reshape(-1, self.dims).to(self.low.dtype)
        return (torch.clamp(states, self.low, self.high) - self.low) * self.scale

    def indices(self, states: torch.Tensor) -> torch.Tensor:
        """Nearest grid point per dimension: long tensor of shape (batch, dims)."""
        return torch.round(self._position(states)).long()

    def neighbours(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Lower and upper grid points and the weight of the upper one, each of shape (batch, dims)."""
        position = self._position(states)
        lower = torch.clamp(torch.floor(position), max=(self.bins - 2).to(position.dtype))
        weight = position - lower
        lower = lower.long()
        return lower, lower + 1, weight

    def points(self) -> list[torch.Tensor]:
        """The grid values per dimension (``torch.linspace(low, high, bins)``)."""
        return [
            torch.linspace(float(lo), float(hi), int(b), device=self.low.device)
            for lo, hi, b in zip(self.low, self.high, self.bins)
        ]

    def grid(self) -> torch.Tensor:
        """Every grid state, shape (prod(bins), dims), in C order (the last dimension varies fastest)."""
        return torch.cartesian_prod(*self.points()).reshape(-1, self.dims)


def _per_dimension(
    value: float | Sequence[float | None] | None, default: list[float], name: str
) -> list[float]:
    if value is None:
        return list(default)
    if isinstance(value, (int, float)):
        return [float(value)] * len(default)
    if len(value) != len(default):
        raise ValueError(
            f"{name} has {len(value)} entries but the observation space has {len(default)} dimensions"
        )
    return [float(d) if v is None else float(v) for v, d in zip(value, default)]
