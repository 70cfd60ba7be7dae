"""Fit a reward net to labelled segment pairs with any preference loss, and score it on clean pairs.

One minibatch step: learned segment returns of both items -> margins ``R(first) - R(second)``
oriented by the label (soft labels go to the loss as they are) -> ``loss_fn(margins)`` -> Adam step.
Per-pair variables of robust losses (R3M's delta, adaptive tau) are solved inside the loss on the
detached margins, so every loss shares this loop. Early stopping (and the returned best epoch) uses
validation accuracy, because noisy labels overfit: held-out accuracy peaks after few epochs, then falls.
By default it is measured on the TEACHER's validation labels (``selection="noisy"``), the only labels
a user has; ``selection="oracle"`` uses the clean labels, an optimistic oracle setting that reports must
name as such.

Example:
    >>> from aligngym.rewards.losses import LossSpec
    >>> from aligngym.rewards.pairs import PairConfig, collect_segments, make_pair_split
    >>> from aligngym.rewards.teachers import make_teacher
    >>> segments = collect_segments("Pendulum-v1", {"random": "random"}, 40, segment_length=10, seed=0)
    >>> split = make_pair_split(segments, PairConfig(n_train=64, n_val=16, n_test=16), make_teacher("oracle"))
    >>> net = RewardNet(obs_dim=3, act_dim=1, seed=0)
    >>> config = FitConfig(loss=LossSpec("r3m", {"lam": 0.3}), epochs=2)
    >>> result = fit_reward(net, split.train, split.val, config, split.test)
    >>> sorted(result.test_metrics)[:3]
    ['accuracy', 'accuracy_hardest_quarter', 'n_pairs']
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from scipy import stats

from aligngym.rewards.losses import LossSpec, PreferenceLoss
from aligngym.rewards.pairs import PairConfig, PreferencePairs
from aligngym.rewards.reward_nets import RewardNet
from aligngym.rewards.teachers import Teacher, make_teacher

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    """Reward fitting settings.

    loss: the loss and its parameters (a ``LossSpec``; a bare name or ``{name, params}`` is converted).
    epochs, batch_size, lr, weight_decay: Adam over shuffled minibatches of pairs.
    patience: stop after this many epochs without a better validation accuracy (None: never);
        the net returned is the best-validation one.
    selection: which validation labels pick that epoch: ``noisy`` (the teacher's, what a user has) or
        ``oracle`` (the clean labels: optimistic, name it in every report that uses it).
    seed: shuffling order.
    """

    SELECTIONS: ClassVar[tuple[str, ...]] = ("noisy", "oracle")

    loss: LossSpec | str = "bt"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 5
    selection: str = "noisy"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss", LossSpec.of(self.loss))  # a bad loss fails here, at construction
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"FitConfig {name}={value!r} must be an integer >= 1")
        if not self.lr > 0:
            raise ValueError(f"FitConfig lr={self.lr!r} must be > 0")
        if self.weight_decay < 0:
            raise ValueError(f"FitConfig weight_decay={self.weight_decay!r} must be >= 0")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"FitConfig patience={self.patience!r} must be >= 1 or None")
        if self.selection not in self.SELECTIONS:
            raise ValueError(
                f"FitConfig selection={self.selection!r} is invalid; valid: {', '.join(self.SELECTIONS)}"
            )


@dataclass
class FitResult:
    """What a fit returns: metrics on the test and train pairs, the per-epoch history, timing."""

    test_metrics: dict[str, float]
    train_metrics: dict[str, float]
    history: list[dict[str, float]]
    best_epoch: int
    epochs_run: int
    seconds: float
    seconds_per_epoch: float

    def summary(self) -> dict[str, float]:
        """Flat scalars (``test/...``, ``train/...``) for run summaries and sweep tables."""
        out: dict[str, float] = {f"test/{k}": v for k, v in self.test_metrics.items()}
        out.update({f"train/{k}": v for k, v in self.train_metrics.items()})
        out.update(
            best_epoch=self.best_epoch, epochs_run=self.epochs_run, seconds_per_epoch=self.seconds_per_epoch
        )
        return out


class _PairTensors:
    """Torch views of a pair set: per-segment inputs once, pair indices, oriented labels."""

    def __init__(self, pairs: PreferencePairs) -> None:
        segments = pairs.segments
        self.obs = torch.as_tensor(segments.obs, dtype=torch.float32)
        self.actions = torch.as_tensor(segments.actions, dtype=torch.float32)
        self.first = torch.as_tensor(pairs.first, dtype=torch.long)
        self.second = torch.as_tensor(pairs.second, dtype=torch.long)
        labels = torch.as_tensor(pairs.labels, dtype=torch.float32)
        self.soft = bool(((labels != 0.0) & (labels != 1.0)).any())
        self.labels = labels
        self.sign = 2.0 * labels - 1.0  # for hard labels: +1 first preferred, -1 second

    def margins(self, net: RewardNet, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Margins for the batch and the soft labels to pass with them (None when all labels are hard)."""
        segments = torch.cat([self.first[index], self.second[index]])
        returns = net(self.obs[segments], self.actions[segments]).sum(dim=-1)
        diff = returns[: len(index)] - returns[len(index) :]
        if self.soft:
            return diff, self.labels[index]
        return self.sign[index] * diff, None


def fit_reward(
    net: RewardNet,
    train: PreferencePairs,
    val: PreferencePairs | None,
    config: FitConfig,
    test: PreferencePairs | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``net`` in place on ``train`` (teacher labels); keep the best epoch on ``val``.

    ``on_epoch(record)`` sees each epoch's history record as it is made (progress, TensorBoard).

    ``val_accuracy`` in the history is the accuracy on the labels ``config.selection`` names (the
    teacher's by default, the oracle's for ``selection="oracle"``).
    """
    loss_fn = config.loss.build()
    data = _PairTensors(train)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    best_acc, best_epoch, best_state = -math.inf, 0, None
    start = time.perf_counter()
    train_seconds = 0.0
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        net.train()
        order = torch.randperm(len(train), generator=generator)
        total, batches = 0.0, 0
        for batch in order.split(config.batch_size):
            margins, soft = data.margins(net, batch)
            out = loss_fn(margins, soft)
            optimiser.zero_grad(set_to_none=True)
            out.loss.backward()
            optimiser.step()
            total += float(out.loss.detach())
            batches += 1
        train_seconds += time.perf_counter() - epoch_start
        record: dict[str, float] = {"epoch": epoch, "train_loss": total / batches}
        if val is not None:
            record["val_accuracy"] = _accuracy(
                _learned_gap(net, val), val.oracle if config.selection == "oracle" else val.labels
            )
        if test is not None:
            record["test_accuracy"] = clean_accuracy(net, test)
        history.append(record)
        logger.debug("epoch %d: %s", epoch, record)
        if on_epoch is not None:
            on_epoch(record)
        if val is not None:
            if record["val_accuracy"] > best_acc:
                best_acc, best_epoch, best_state = (
                    record["val_accuracy"],
                    epoch,
                    copy.deepcopy(net.state_dict()),
                )
            elif config.patience is not None and epoch - best_epoch >= config.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        best_epoch = epoch
    net.eval()
    test_metrics = evaluate_reward(net, test) if test is not None else {}
    train_metrics = train_diagnostics(net, train, loss_fn)
    seconds = time.perf_counter() - start
    return FitResult(test_metrics, train_metrics, history, best_epoch, epoch, seconds, train_seconds / epoch)


@torch.no_grad()
def _learned_gap(net: RewardNet, pairs: PreferencePairs) -> np.ndarray:
    """Learned ``R(first) - R(second)``, evaluating only the segments the pairs use (not the whole set)."""
    ids = pairs.segment_ids
    returns = net.segment_returns(pairs.segments.obs[ids], pairs.segments.actions[ids]).double().numpy()
    return returns[np.searchsorted(ids, pairs.first)] - returns[np.searchsorted(ids, pairs.second)]


def clean_accuracy(net: RewardNet, pairs: PreferencePairs) -> float:
    """Share of pairs (oracle label not a tie) whose learned order matches the oracle; ties score 1/2."""
    return _accuracy(_learned_gap(net, pairs), pairs.oracle)


def _accuracy(learned_gap: np.ndarray, oracle: np.ndarray) -> float:
    decided = oracle != 0.5
    if not decided.any():
        return float("nan")
    predicted = np.where(learned_gap > 0, 1.0, np.where(learned_gap < 0, 0.0, 0.5))
    return float(1.0 - np.abs(predicted[decided] - oracle[decided]).mean())


def evaluate_reward(net: RewardNet, pairs: PreferencePairs) -> dict[str, float]:
    """Clean metrics on held-out pairs: accuracy, accuracy on the quarter of pairs with the smallest true
    gap, and Spearman / Pearson correlation of learned vs true returns over the pairs' segments."""
    segments = pairs.segments
    ids = pairs.segment_ids
    learned = net.segment_returns(segments.obs[ids], segments.actions[ids]).double().numpy()
    true = segments.returns[ids]
    position = np.searchsorted(ids, pairs.first), np.searchsorted(ids, pairs.second)
    learned_gap = learned[position[0]] - learned[position[1]]
    hardest = np.argsort(np.abs(pairs.true_gap), kind="stable")[: max(1, len(pairs) // 4)]
    constant = np.ptp(learned) == 0 or np.ptp(true) == 0
    return {
        "accuracy": _accuracy(learned_gap, pairs.oracle),
        "accuracy_hardest_quarter": _accuracy(learned_gap[hardest], pairs.oracle[hardest]),
        "spearman": float("nan") if constant else float(stats.spearmanr(learned, true).statistic),
        "pearson": float("nan") if constant else float(stats.pearsonr(learned, true).statistic),
        "n_pairs": float(len(pairs)),
    }


@torch.no_grad()
def train_diagnostics(net: RewardNet, train: PreferencePairs, loss_fn: PreferenceLoss) -> dict[str, float]:
    """How the final net sees its (possibly corrupted) training pairs.

    label_accuracy / oracle_accuracy: agreement with the teacher's / the oracle's labels; corrupted_recovered:
    share of corrupted pairs ordered as the oracle says; for losses that flag outliers (R3M):
    flagged_fraction and the precision / recall of flagged pairs against the teacher's corruption mask;
    for adaptive losses: tau statistics.
    """
    gap = _learned_gap(net, train)
    metrics = {
        "label_accuracy": _accuracy(gap, train.labels),
        "oracle_accuracy": _accuracy(gap, train.oracle),
        "corruption_rate": float(train.corrupted.mean()),
    }
    if train.corrupted.any():
        metrics["corrupted_recovered"] = _accuracy(gap[train.corrupted], train.oracle[train.corrupted])
    margins = torch.as_tensor(gap, dtype=torch.float32)
    labels = torch.as_tensor(train.labels)
    hard = bool(((labels == 0.0) | (labels == 1.0)).all())
    out = loss_fn((2.0 * labels - 1.0) * margins, None) if hard else loss_fn(margins, labels)
    diagnostics = out.diagnostics
    if "flagged" in diagnostics:
        flagged = diagnostics["flagged"].numpy().astype(bool)
        metrics.update(outlier_scores(flagged, train.corrupted))
    for key in ("tau_mean", "tau_at_min", "tau_at_max"):
        if key in diagnostics:
            metrics[key] = float(diagnostics[key])
    return metrics


RESULT_KEYS = (
    "normalized_return",
    "true_return",
    "clean_accuracy",
    "outlier_precision",
    "outlier_recall",
    "flagged_fraction",
)
"""The metrics every reward-robustness cell reports, control and text alike (null where one does not apply)."""


def outlier_scores(flagged: np.ndarray | None, corrupted: np.ndarray) -> dict[str, float]:
    """Flagged fraction and precision / recall of flagged pairs against the truly corrupted ones.

    A score whose denominator is empty is NaN, not 0: ``flagged=None`` (a loss that flags nothing) and no
    pairs at all give NaN for all three, no flags gives NaN precision, no corrupted pair NaN recall."""
    if flagged is None:
        return {"flagged_fraction": math.nan, "outlier_precision": math.nan, "outlier_recall": math.nan}
    flagged, corrupted = np.asarray(flagged, dtype=bool), np.asarray(corrupted, dtype=bool)
    if flagged.shape != corrupted.shape:
        raise ValueError(f"flagged has shape {flagged.shape} but corrupted has shape {corrupted.shape}")
    true_positive = float((flagged & corrupted).sum())
    return {
        "flagged_fraction": float(flagged.mean()) if flagged.size else math.nan,
        "outlier_precision": true_positive / flagged.sum() if flagged.any() else math.nan,
        "outlier_recall": true_positive / corrupted.sum() if corrupted.any() else math.nan,
    }


@dataclass(frozen=True)
class RewardFitJobConfig:
    """The ``reward-fit`` job: fit a reward net on one env's segment pairs with a chosen loss and teacher."""

    env_id: str = "Hopper-v5"
    """Any Gymnasium id with a Box observation and action space."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policies: tuple[str, ...] = ("random", "zero", "noisy-zero", "sine-slow", "sine-fast")
    """Scripted policies that produce the segments (aligngym.rewards.pairs.SCRIPTED_POLICIES)."""
    segments_per_policy: int = 100
    segment_length: int = 10
    """Steps per segment (random Hopper episodes last only ~15-20 steps)."""
    pairs: PairConfig = field(default_factory=PairConfig)
    teacher: str = "mistake"
    """A noise kind of aligngym.rewards.teachers.NOISE_KINDS; it labels the training pairs only."""
    teacher_level: float | None = 0.2
    teacher_params: dict[str, Any] = field(default_factory=dict)
    """Further Teacher fields, composed with the kind (e.g. {eps: 0.1} on a myopic teacher)."""
    hidden: tuple[int, ...] = (64, 64)
    ensemble_size: int = 1
    fit: FitConfig = field(default_factory=FitConfig)
    progress_bar: bool = True
    """A bar with ETA over the epochs on a terminal, a status line every 30 s otherwise."""

    def __post_init__(self) -> None:
        from aligngym.rewards.pairs import SCRIPTED_POLICIES

        unknown = [p for p in self.policies if p not in SCRIPTED_POLICIES]
        if unknown or not self.policies:
            raise ValueError(
                f"policies {list(self.policies)!r}: valid names are {', '.join(SCRIPTED_POLICIES)}"
            )
        self.make_teacher()

    def make_teacher(self) -> Teacher:
        return make_teacher(self.teacher, self.teacher_level, **self.teacher_params)


def run_reward_fit_job(config: RewardFitJobConfig, seed: int, run_dir: Path) -> dict[str, float]:
    """Collect segments, split and label pairs, fit, save ``reward_net.safetensors`` and ``history.json``."""
    import gymnasium as gym

    from aligngym.files import atomic_write_json
    from aligngym.rewards.pairs import collect_segments, make_pair_split, scripted_policy
    from aligngym.rewards.reward_nets import save_reward_net

    env = gym.make(config.env_id, **config.env_kwargs)
    try:
        policies = {
            name: scripted_policy(name, env.action_space, seed + i) for i, name in enumerate(config.policies)
        }
        segments = collect_segments(
            env, policies, config.segments_per_policy, config.segment_length, seed=seed
        )
    finally:
        env.close()
    split = make_pair_split(segments, config.pairs, config.make_teacher(), seed=seed)
    net = RewardNet(
        obs_dim=segments.obs.shape[-1],
        act_dim=segments.actions.shape[-1],
        hidden=config.hidden,
        ensemble_size=config.ensemble_size,
        seed=seed,
    )
    fit_config = dataclasses.replace(config.fit, seed=seed)
    from torch.utils.tensorboard import SummaryWriter

    from aligngym.progress import Progress

    progress = Progress(
        fit_config.epochs, f"reward-fit {config.env_id}", "epochs", enabled=config.progress_bar
    )
    with SummaryWriter(str(run_dir / "tensorboard")) as writer:  # `tensorboard --logdir results`

        def on_epoch(record: dict[str, float]) -> None:
            for name, value in record.items():
                if name != "epoch":
                    writer.add_scalar(f"fit/{name}", value, int(record["epoch"]))
            progress.update()

        result = fit_reward(net, split.train, split.val, fit_config, split.test, on_epoch=on_epoch)
        for name, value in result.summary().items():
            writer.add_scalar(f"result/{name}", float(value), result.epochs_run)
    progress.close()
    save_reward_net(net, run_dir / "reward_net.safetensors")
    atomic_write_json(run_dir / "history.json", result.history)
    return {key: float(value) for key, value in result.summary().items()}
