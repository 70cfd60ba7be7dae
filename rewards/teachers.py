"""Simulated teachers: label a pair from the items' TRUE scores, with the noise models of B-Pref and R3M.

A teacher sees per-item true returns (shape [n]) or per-step true rewards (shape [n, H], needed only
for the myopic teacher), so it labels MuJoCo segments and text responses alike. One ``Teacher`` holds
every knob, so noise models compose (e.g. myopic + mistakes); with all knobs off it is the oracle.
Order of application, following B-Pref (rll-research/BPref ``get_label``) with R3M's irrational flips
added before the mistakes:

1. skip: drop the pair if ``max(R1, R2) < skip_threshold`` (undiscounted returns);
2. label: rational ``[R1' > R2']`` or stochastic ``Bernoulli(sigmoid(beta (R1' - R2')))`` where R' are
   the myopic returns ``sum_t gamma^(H-1-t) r_t`` (``R' = R`` when ``gamma = 1``);
3. irrational: in each consecutive batch of ``batch_size`` pairs, flip the ``floor(B^p)`` pairs with the
   largest true gap ``|R1 - R2|`` (a last, shorter batch of b pairs flips ``floor(b^p)``);
4. mistake: flip each label with probability ``eps``;
5. equal: label 0.5 where ``|R1 - R2| < equal_threshold`` (exact ties are always 0.5).

Labels are floats: 1 = first item preferred, 0 = second, 0.5 = equal. The oracle label is
``[R1 > R2]`` (0.5 on ties); ``corrupted`` marks kept pairs whose label differs from it.

Example:
    >>> import numpy as np
    >>> teacher = make_teacher("mistake", 0.5)
    >>> out = teacher.label(np.array([3.0, 1.0, 2.0]), np.array([1.0, 2.0, 2.0]), np.random.default_rng(0))
    >>> out.oracle.tolist(), out.labels.shape
    ([1.0, 0.0, 0.5], (3,))
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

_FLOOR_TOLERANCE = 1e-9  # 64 ** (1/3) is 3.9999999999999996 in floating point; floor(B^p) must give 4


@dataclass(frozen=True)
class TeacherLabels:
    """A teacher's answers for n pairs (all arrays of shape [n])."""

    labels: (
        np.ndarray
    )  # float32: 1 first preferred, 0 second, 0.5 equal (skipped pairs hold the oracle label)
    oracle: np.ndarray  # float32: the rational, undiscounted label [R1 > R2], 0.5 on ties
    corrupted: np.ndarray  # bool: kept and label != oracle
    keep: np.ndarray  # bool: False where the teacher skipped the query

    @property
    def corruption_rate(self) -> float:
        """Fraction of kept labels that differ from the oracle."""
        kept = int(self.keep.sum())
        return float(self.corrupted.sum()) / kept if kept else 0.0


def irrational_flip_count(batch: int, p: float) -> int:
    """How many pairs the irrational teacher flips in a batch of ``batch`` pairs: ``floor(batch ** p)``."""
    return math.floor(batch**p + _FLOOR_TOLERANCE) if batch > 0 else 0


@dataclass(frozen=True)
class Teacher:
    """A simulated teacher; every field at its default gives the oracle.

    beta: stochastic (Bradley-Terry) teacher's rationality; None = deterministic. B-Pref "noisy" is 1;
        R3M uses temperatures 1, 2, 3, i.e. beta = 1, 0.5, 1/3.
    eps: probability of flipping each label (mistake teacher); B-Pref 0.1, R3M 0.1-0.2.
    gamma: myopic discount, weight gamma^(H-1-t) on step t of an H-step item; 1 = not myopic.
    irrational_p: exponent p of the irrational teacher (flip the B^p largest-gap pairs of each batch);
        None = off. R3M uses 1/3, 1/2, 2/3.
    batch_size: B for the irrational teacher (R3M: 64).
    skip_threshold: skip a query whose better item has true return below this; None = never skip.
    equal_threshold: label 0.5 when the true returns differ by less than this.
    """

    beta: float | None = None
    eps: float = 0.0
    gamma: float = 1.0
    irrational_p: float | None = None
    batch_size: int = 64
    skip_threshold: float | None = None
    equal_threshold: float = 0.0

    def __post_init__(self) -> None:
        _check(
            self.beta is None or (math.isfinite(self.beta) and self.beta > 0),
            "beta",
            self.beta,
            "> 0 or None",
        )
        _check(0.0 <= self.eps <= 1.0, "eps", self.eps, "in [0, 1]")
        _check(0.0 < self.gamma <= 1.0, "gamma", self.gamma, "in (0, 1]")
        p = self.irrational_p
        _check(p is None or 0.0 <= p <= 1.0, "irrational_p", p, "in [0, 1] or None")
        _check(
            isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", self.batch_size, ">= 1"
        )
        skip = self.skip_threshold
        _check(skip is None or not math.isnan(skip), "skip_threshold", skip, "a number or None")
        _check(self.equal_threshold >= 0.0, "equal_threshold", self.equal_threshold, ">= 0")

    def label(self, scores_a: np.ndarray, scores_b: np.ndarray, rng: np.random.Generator) -> TeacherLabels:
        """Label n pairs (a_i, b_i) from true scores: returns [n] or per-step rewards [n, H]."""
        a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
        if a.shape != b.shape or a.ndim not in (1, 2):
            raise ValueError(f"scores must both have shape [n] or [n, H]; got {a.shape} and {b.shape}")
        if a.ndim == 1 and self.gamma != 1.0:
            raise ValueError(
                f"the myopic teacher (gamma={self.gamma}) needs per-step rewards of shape [n, H]"
            )
        ret_a, ret_b = (a, b) if a.ndim == 1 else (a.sum(axis=1), b.sum(axis=1))
        oracle = _compare(ret_a, ret_b)
        if a.ndim == 2 and self.gamma != 1.0:
            weights = self.gamma ** np.arange(a.shape[1] - 1, -1, -1, dtype=np.float64)
            seen_a, seen_b = a @ weights, b @ weights
        else:
            seen_a, seen_b = ret_a, ret_b

        keep = np.ones(len(oracle), dtype=bool)
        if self.skip_threshold is not None:
            keep = np.maximum(ret_a, ret_b) >= self.skip_threshold
        if self.beta is None:
            labels = _compare(seen_a, seen_b)
        else:
            prob_first = expit(self.beta * (seen_a - seen_b))
            labels = (rng.random(len(oracle)) < prob_first).astype(np.float64)
        if self.irrational_p is not None:
            labels = _flip(labels, self._irrational_mask(np.abs(ret_a - ret_b)))
        if self.eps > 0.0:
            labels = _flip(labels, rng.random(len(oracle)) < self.eps)
        labels = np.where((np.abs(ret_a - ret_b) < self.equal_threshold) | (ret_a == ret_b), 0.5, labels)
        labels = np.where(keep, labels, oracle)
        return TeacherLabels(
            labels=labels.astype(np.float32),
            oracle=oracle.astype(np.float32),
            corrupted=keep & (labels != oracle),
            keep=keep,
        )

    def _irrational_mask(self, gaps: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(gaps), dtype=bool)
        for start in range(0, len(gaps), self.batch_size):
            batch = gaps[start : start + self.batch_size]
            k = irrational_flip_count(len(batch), self.irrational_p)
            if k:
                # stable sort: among equal gaps the earlier pairs are flipped (deterministic)
                mask[start + np.argsort(-batch, kind="stable")[:k]] = True
        return mask


def _compare(ret_a: np.ndarray, ret_b: np.ndarray) -> np.ndarray:
    return np.where(ret_a > ret_b, 1.0, np.where(ret_a < ret_b, 0.0, 0.5))


def _flip(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, 1.0 - labels, labels)


def _check(ok: bool, name: str, value: object, valid: str) -> None:
    if not ok:
        raise ValueError(f"teacher {name}={value!r} is invalid; valid: {valid}")


NOISE_KINDS: dict[str, str | None] = {
    "oracle": None,
    "stochastic": "beta",
    "mistake": "eps",
    "myopic": "gamma",
    "irrational": "irrational_p",
    "skip": "skip_threshold",
    "equal": "equal_threshold",
}
"""Named teachers and the Teacher field their ``level`` sets (for sweeps over noise kind x level)."""


def make_teacher(kind: str = "oracle", level: float | None = None, **fields: float | None) -> Teacher:
    """A teacher by noise kind and level, e.g. ``make_teacher("mistake", 0.2)``; extra fields compose.

    ``make_teacher("myopic", 0.9, eps=0.1)`` is a myopic teacher that also makes 10% mistakes.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"unknown teacher {kind!r}; valid teachers: {', '.join(NOISE_KINDS)}")
    valid = {f.name for f in dataclasses.fields(Teacher)}
    unknown = sorted(set(fields) - valid)
    if unknown:
        raise ValueError(f"unknown teacher field(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    field_name = NOISE_KINDS[kind]
    if field_name is None:
        if level is not None:
            raise ValueError(f"the oracle teacher takes no level (got {level!r})")
    elif level is not None:
        fields = {**fields, field_name: level}
    elif field_name not in fields:
        raise ValueError(f"teacher {kind!r} needs a level (its {field_name})")
    return Teacher(**fields)
