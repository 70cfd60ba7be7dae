"""The reward-learning robustness benchmark: methods x noise models x levels x envs x seeds.

A control cell (``control_cell``) measures one loss under one teacher in two ways:

1. *Reward learning on fixed pairs* (the quick, sharp part): segments from diverse rollouts (a uniform
   random policy and open-loop periodic "gait" policies, all seeded) are paired, split honestly into
   train / test (disjoint segments), training pairs are labelled by the noisy teacher, test pairs by the
   oracle; a 2x64 reward MLP is fitted for a fixed number of epochs (equal for every method) and scored
   on the clean test pairs: accuracy, accuracy on the quarter with the smallest true gap, Spearman of
   learned vs true segment returns, and for R3M the precision / recall of its flagged outliers.
2. *Preference-based RL* (``aligngym.agents.preference_rl``): PPO on the learned reward with online
   queries, scored by the TRUE return of the final policy, normalised as
   ``(R - R_random) / (R_true_RL - R_random)`` with the references of the same seed, and by the
   clean held-out accuracy of its reward net.

The references (random policy and the same RL algorithm on the true reward, same budget) are cells of
their own, run first and recorded in ``references.jsonl``. A text cell hands the same (method, noise,
level, seed) to ``aligngym.alignment.text_pipeline.run_text_cell`` (DPO variants on a text task).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aligngym.rewards.losses import LOSSES, LossSpec
from aligngym.runs.errors import UsageError
from aligngym.runs.recipes import build_dataclass, parse_override, read_yaml, set_dotted

log = logging.getLogger(__name__)

BENCH_RECIPE_DIR = Path(__file__).parent / "recipes" / "bench"
REFERENCES_FILE = "references.jsonl"
REFERENCE_METHOD = "true-reward"
CONTROL_CELL = "aligngym.runs.reward_benchmark:control_cell"
REFERENCE_CELL = "aligngym.runs.reward_benchmark:reference_cell"
TEXT_CELL = "aligngym.runs.reward_benchmark:text_cell"


@dataclass
class MethodSpec:
    """A method of the grid: a row label and the loss it trains with, in both domains.

    ``loss`` is a ``LossSpec`` (a bare registered name or ``{name, params}`` is converted; empty = ``name``)
    or, for the text domain only, one of TRL's own DPO loss names (``ipo``, ``hinge``, ...). YAML also
    takes the short form ``{name: r3m, params: {lam: 0.2}}`` (``params`` of the loss named by ``loss``
    or ``name``).
    """

    name: str
    loss: LossSpec | str = ""

    def __post_init__(self) -> None:
        name = self.loss or self.name
        if isinstance(name, str) and name not in LOSSES:
            self.loss = name  # a TRL-only DPO loss, or a bad name: BenchRecipe checks it per domain
        else:
            self.loss = LossSpec.of(name)

    @staticmethod
    def from_yaml(raw: Any) -> Any:
        """Fold the short form's ``params`` into ``loss: {name, params}`` (other values pass unchanged)."""
        if not isinstance(raw, dict) or "params" not in raw:
            return raw
        raw = dict(raw)
        params, loss = raw.pop("params"), raw.get("loss") or raw.get("name")
        if not isinstance(loss, str):
            raise UsageError(
                f"method {raw.get('name')!r}: give params inside loss or beside a loss name, not both"
            )
        raw["loss"] = {"name": loss, "params": params}
        return raw


@dataclass
class NoiseSpec:
    """A teacher of ``aligngym.rewards.teachers`` and the levels of its noise parameter to sweep."""

    teacher: str
    levels: list[float]
    """Values of the teacher's parameter (mistake: eps; stochastic: beta; myopic: gamma; irrational: p)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Extra Teacher fields, fixed for every level (e.g. ``batch_size`` of the irrational teacher)."""


@dataclass
class FixedPairsConfig:
    """Phase 1 of a control cell: reward learning on a fixed set of pairs from diverse rollouts."""

    segment_length: int = 25
    segments_per_policy: int = 150
    gait_policies: int = 8
    """Open-loop periodic policies (random amplitude, frequency, phase, bias per seed) besides random."""
    n_train: int = 1000
    n_test: int = 500
    test_fraction: float = 0.3
    epochs: int = 30
    """Equal for every method: every fit runs all of them (no early stop)."""
    batch_size: int = 64
    lr: float = 1e-3
    hidden: tuple[int, ...] = (64, 64)
    n_val: int = 0
    """Validation pairs, labelled by the TEACHER like the training pairs (disjoint segments). With n_val > 0
    the fit returns the epoch with the best validation accuracy; 0 returns the last epoch."""
    val_fraction: float = 0.15
    selection: str = "noisy"
    """Which validation labels pick the epoch: ``noisy`` (the teacher's, what a user has) or ``oracle``
    (clean labels: an optimistic setting, named in every report that uses it)."""
    quality: bool = True
    """Also score the reward without RL: EPIC distance to the true reward (HalfCheetah / Hopper / Walker2d,
    whose true reward the simulator evaluates off-trajectory), policy-ranking Kendall tau, ECE and the
    binned learned-vs-true gap curve (``aligngym.rewards.reward_quality``)."""

    def __post_init__(self) -> None:
        for name in ("segment_length", "segments_per_policy", "n_train", "n_test", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"pairs.{name}={getattr(self, name)!r} must be >= 1")
        if self.gait_policies < 0:
            raise ValueError(f"pairs.gait_policies={self.gait_policies} must be >= 0")
        if self.n_val < 0:
            raise ValueError(f"pairs.n_val={self.n_val!r} must be >= 0")
        if self.selection not in ("noisy", "oracle"):
            raise ValueError(f"pairs.selection={self.selection!r} is invalid; valid: noisy, oracle")


@dataclass
class TextConfig:
    """The text domain: tasks (the ``env`` column) and the budget passed to ``run_text_cell``."""

    tasks: list[str] = field(default_factory=lambda: ["sentiment"])
    budget: dict[str, Any] = field(default_factory=dict)


def _preference_rl_config() -> type:
    from aligngym.agents.preference_rl import PreferenceRLConfig

    return PreferenceRLConfig


@dataclass
class BenchRecipe:
    """A reward-robustness benchmark: the grid and the budget of each cell."""

    name: str
    description: str = ""
    domain: Literal["control", "text"] = "control"
    envs: list[str] = field(default_factory=lambda: ["HalfCheetah-v5"])
    methods: list[MethodSpec] = field(default_factory=list)
    noises: list[NoiseSpec] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    pairs: FixedPairsConfig | None = field(default_factory=FixedPairsConfig)
    """Phase 1 (fixed pairs); null to skip."""
    rl: dict[str, Any] | None = None
    """Phase 2: fields of ``PreferenceRLConfig`` (env_id and loss are set per cell); null to skip."""
    text: TextConfig = field(default_factory=TextConfig)
    published: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per env, the published score of the RL algorithm on the true reward, ``{return, source}``: the
    report says what share of it the reference agent reaches (whether the RL phase has learned)."""

    def __post_init__(self) -> None:
        if not self.methods or not self.noises or not self.seeds:
            raise ValueError("a bench recipe needs at least one method, one noise and one seed")
        if len({m.name for m in self.methods}) != len(self.methods):
            raise ValueError("method names must be unique")
        for method in self.methods:
            if isinstance(method.loss, str):
                _check_trl_only_loss(method, self.domain)
        if self.domain == "control":
            import gymnasium as gym

            unknown = [env for env in self.envs if env not in gym.registry]
            if unknown or not self.envs:
                raise ValueError(
                    f"envs: {unknown[0] if unknown else '(none)'!r} is not a registered Gymnasium id "
                    "(e.g. HalfCheetah-v5, Hopper-v5, Pendulum-v1; `aligngym envs` lists aligngym's own)"
                )
            if self.pairs is None and self.rl is None:
                raise ValueError("a control recipe needs 'pairs', 'rl' or both")
            if self.rl is not None:
                for env in self.envs:
                    self.rl_config(env, self.methods[0])
        else:
            self._check_text_domain()
        from aligngym.rewards.teachers import make_teacher

        for noise in self.noises:
            for level in noise.levels:
                make_teacher(noise.teacher, level, **noise.params)

    def _check_text_domain(self) -> None:
        """What a text worker would refuse, refused at load: the DPO form of each loss, the budget per task,
        teachers that need per-step rewards."""
        from aligngym.alignment.dpo import dpo_loss_arguments
        from aligngym.alignment.text_pipeline import TextCellBudget

        for method in self.methods:
            dpo_loss_arguments(method.loss)
        for task in self.text.tasks:
            TextCellBudget(**{**self.text.budget, "task": task})
        for noise in self.noises:
            if noise.teacher == "myopic":
                raise ValueError("noise 'myopic' needs per-step rewards; a text response has one true reward")

    def rl_config(self, env: str, method: MethodSpec) -> Any:
        """The ``PreferenceRLConfig`` of a cell (for the reference cell: the method's loss is irrelevant)."""
        values = {**(self.rl or {}), "env_id": env, "loss": method.loss}
        return build_dataclass(_preference_rl_config(), values, prefix="rl.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _loss_entry(loss: LossSpec | str) -> dict[str, Any] | str:
    """A method's loss as a cell stores it: ``{name, params}`` (only the given params) or a TRL loss name."""
    return loss if isinstance(loss, str) else loss.to_dict()


def _check_trl_only_loss(method: MethodSpec, domain: str) -> None:
    """A loss name outside the registry is valid only as one of TRL's DPO losses in the text domain."""
    if domain == "text":
        from aligngym.alignment.dpo import TRL_DPO_LOSSES  # the text domain needs TRL anyway

        if method.loss in TRL_DPO_LOSSES:
            return
        valid = sorted({*LOSSES, *TRL_DPO_LOSSES})
    else:
        valid = sorted(LOSSES)
    raise ValueError(
        f"method {method.name!r}: unknown {domain} loss {method.loss!r}; valid: {', '.join(valid)}"
    )


def builtin_bench_recipes() -> dict[str, Path]:
    return {p.stem: p for p in sorted(BENCH_RECIPE_DIR.glob("*.yaml"))}


def load_bench_recipe(
    recipe: str, overrides: list[str] | tuple[str, ...] = (), domain: str | None = None
) -> BenchRecipe:
    """A bench recipe by built-in name (demo, extended, paper) or YAML path, with ``key=value`` overrides."""
    path = Path(recipe)
    builtins = builtin_bench_recipes()
    if not path.is_file():
        if recipe not in builtins:
            raise UsageError(
                f"bench recipe {recipe!r} is neither a file nor built-in; built-in: {', '.join(builtins)}"
            )
        path = builtins[recipe]
    raw = read_yaml(path, "bench recipe")
    if not isinstance(raw, dict):
        raise UsageError(f"bench recipe {str(path)!r} must be a mapping of BenchRecipe fields")
    for item in overrides:
        key, value = parse_override(item)
        set_dotted(raw, key, value)
    if domain is not None:
        raw["domain"] = domain
    if isinstance(raw.get("methods"), list):
        raw["methods"] = [MethodSpec.from_yaml(m) for m in raw["methods"]]
    raw.setdefault("name", path.stem)
    return build_dataclass(BenchRecipe, raw, prefix="")


# ------------------------------------------------------------------------------------------------
# The grid


def reference_cells(recipe: BenchRecipe) -> list[dict[str, Any]]:
    """One reference cell per (env, seed) when the recipe has an RL phase: random and true-reward returns."""
    if recipe.domain != "control" or recipe.rl is None:
        return []
    return [
        {
            "domain": "control",
            "env": env,
            "method": REFERENCE_METHOD,
            "noise": "none",
            "rate": 0.0,
            "seed": seed,
            "config": {"rl": dataclasses.asdict(recipe.rl_config(env, recipe.methods[0]))},
        }
        for env in recipe.envs
        for seed in recipe.seeds
    ]


def grid_cells(
    recipe: BenchRecipe, references: dict[tuple[str, int], dict[str, float]] | None = None
) -> list[dict]:
    """Every (env, noise, level, method, seed) cell with the full description of what it runs."""
    cells = []
    envs = recipe.text.tasks if recipe.domain == "text" else recipe.envs
    for env in envs:
        for noise in recipe.noises:
            for level in noise.levels:
                for method in recipe.methods:
                    for seed in recipe.seeds:
                        config: dict[str, Any] = {
                            "teacher": noise.teacher,
                            "teacher_params": dict(noise.params),
                            "loss": _loss_entry(method.loss),
                        }
                        if recipe.domain == "text":
                            config["budget"] = {**recipe.text.budget, "task": env}
                        else:
                            if recipe.pairs is not None:
                                config["pairs"] = dataclasses.asdict(recipe.pairs)
                            if recipe.rl is not None:
                                config["rl"] = dataclasses.asdict(recipe.rl_config(env, method))
                                config["reference"] = (references or {}).get((env, seed))
                        cells.append(
                            {
                                "domain": recipe.domain,
                                "env": env,
                                "method": method.name,
                                "noise": noise.teacher,
                                "rate": float(level),
                                "seed": seed,
                                "config": config,
                            }
                        )
    return cells


def references_by_cell(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, float]]:
    return {
        (r["env"], r["seed"]): {"random_return": r["random_return"], "true_rl_return": r["true_rl_return"]}
        for r in rows
    }


# ------------------------------------------------------------------------------------------------
# Cell functions (run in pool workers or Ray tasks)


def _set_threads() -> None:
    import torch

    torch.set_num_threads(1)  # parallel cells; and one thread keeps CPU numbers bit-reproducible


def gait_policy(rng: np.random.Generator, low: np.ndarray, high: np.ndarray):
    """An open-loop periodic policy ``bias + amp sin(2 pi f t + phase) + noise`` (seeded; per action dim)."""
    dim = low.shape[0]
    amplitude, phase = rng.uniform(0.1, 1.0, dim), rng.uniform(0.0, 2 * np.pi, dim)
    bias, frequency, noise = rng.uniform(-0.3, 0.3, dim), rng.uniform(0.03, 0.3), rng.uniform(0.0, 0.5)
    step = [0]
    scale, center = (high - low) / 2.0, (high + low) / 2.0

    def act(obs: np.ndarray) -> np.ndarray:
        step[0] += 1
        unit = (
            bias
            + amplitude * np.sin(2 * np.pi * frequency * step[0] + phase)
            + noise * rng.standard_normal(dim)
        )
        return np.clip(center + scale * unit, low, high).astype(np.float32)

    return act


@functools.lru_cache(maxsize=32)
def diverse_segments(env_id: str, seed: int, segment_length: int, per_policy: int, gaits: int):
    """Segments of a random policy and ``gaits`` periodic policies (same arguments, same segments).

    Cached per process: every method and noise level of a seed share them. A policy whose episodes are
    too short for one segment (it falls at once) is left out.
    """
    import gymnasium as gym

    from aligngym.rewards.pairs import SegmentSet, collect_segments

    space = gym.make(env_id).action_space
    rng = np.random.default_rng([seed, 11])
    policies = {
        "random": "random",
        **{f"gait{i}": gait_policy(rng, space.low, space.high) for i in range(gaits)},
    }
    parts = []
    for index, (name, policy) in enumerate(policies.items()):
        try:
            part = collect_segments(
                env_id,
                {name: policy},
                per_policy,
                segment_length,
                seed=seed * 1000 + index,
                max_steps_per_policy=20 * per_policy * segment_length,
            )
        except RuntimeError as exc:
            log.warning("%s", exc)
            continue
        parts.append(
            SegmentSet(part.obs, part.actions, part.rewards, np.full(len(part), index), tuple(policies))
        )
    if not parts:
        raise RuntimeError(f"no policy produced segments of length {segment_length} in {env_id}")
    return SegmentSet.concatenate(parts)


RANKING_POLICIES = ("zero", "noisy-zero", "sine-slow", "sine-fast")
"""Scripted policies of ``aligngym.rewards.pairs`` ranked beside the random policy and the seed's gaits."""
RANKING_EPISODES = 2
EPIC_GAMMA = 0.99


@functools.lru_cache(maxsize=32)
def quality_reference(env_id: str, seed: int, segment_length: int, per_policy: int, gaits: int):
    """What the reward-quality metrics compare a learned reward with, per (env, seed) and cached per process.

    An EPIC sample from the seed's segments with its canonical TRUE rewards (None where the simulator
    cannot evaluate the true reward off-trajectory), and whole-episode rollouts of a fixed policy set:
    uniform random, the seed's gaits (the same parameters as the segments' gaits) and the scripted
    policies of ``RANKING_POLICIES``.
    """
    import gymnasium as gym

    from aligngym.rewards.pairs import scripted_policy
    from aligngym.rewards.reward_quality import (
        canonical_rewards,
        collect_policy_rollouts,
        epic_sample_from_segments,
        simulator_reward,
    )

    segments = diverse_segments(env_id, seed, segment_length, per_policy, gaits)
    sample = epic_sample_from_segments(
        segments.obs, segments.actions, chain_length=min(8, segment_length - 1), seed=seed
    )
    try:
        true_canonical = canonical_rewards(simulator_reward(env_id), sample, EPIC_GAMMA)
    except ValueError as exc:
        log.warning("no EPIC distance for %s: %s", env_id, exc)
        true_canonical = None
    space = gym.make(env_id).action_space
    space.seed(seed)  # the random policy samples from it
    rng = np.random.default_rng([seed, 11])  # as in diverse_segments: the same gait parameters
    policies = {
        "random": scripted_policy("random", space, seed),
        **{f"gait{i}": gait_policy(rng, space.low, space.high) for i in range(gaits)},
        **{name: scripted_policy(name, space, seed + i) for i, name in enumerate(RANKING_POLICIES)},
    }
    rollouts = collect_policy_rollouts(env_id, policies, RANKING_EPISODES, seed=seed)
    return sample, true_canonical, rollouts


def reward_quality_metrics(
    env_id: str, net: Any, test: Any, seed: int, config: FixedPairsConfig
) -> dict[str, Any]:
    """EPIC distance to the true reward, policy-ranking Kendall tau, ECE and the binned gap curve of a net."""
    from aligngym.rewards.reward_quality import epic_distance, policy_ranking, preference_quality

    sample, true_canonical, rollouts = quality_reference(
        env_id, seed, config.segment_length, config.segments_per_policy, config.gait_policies
    )
    reward_fn = net.as_reward_fn()
    returns = net.segment_returns(test.segments.obs, test.segments.actions).double().numpy()
    learned_gap = returns[test.first] - returns[test.second]
    return {
        "epic": epic_distance(true_canonical, reward_fn, sample, EPIC_GAMMA)
        if true_canonical is not None
        else None,
        # mean reward per step, not the return: the learned constant offset is unidentified (see
        # PolicyRollouts.learned_step_means); for HalfCheetah's fixed-length episodes the same ranking
        "policy_tau": policy_ranking(rollouts.learned_step_means(reward_fn), rollouts.true_step_means()),
        **preference_quality(learned_gap, test.true_gap, test.oracle),
    }


def fixed_pairs_metrics(
    env_id: str, loss: LossSpec, teacher: Any, config: FixedPairsConfig, seed: int
) -> dict[str, float]:
    """Phase 1: fit on noisy training pairs for a fixed number of epochs, score on clean test pairs."""
    from aligngym.rewards.fitting import FitConfig, evaluate_reward, fit_reward
    from aligngym.rewards.pairs import PairConfig, make_pair_split
    from aligngym.rewards.reward_nets import RewardNet

    segments = diverse_segments(
        env_id, seed, config.segment_length, config.segments_per_policy, config.gait_policies
    )
    pair_config = PairConfig(
        n_train=config.n_train,
        n_val=config.n_val,
        n_test=config.n_test,
        val_fraction=config.val_fraction if config.n_val else 0.0,
        test_fraction=config.test_fraction,
    )
    split = make_pair_split(segments, pair_config, teacher, seed=seed)
    net = RewardNet(
        segments.obs.shape[-1], segments.actions.shape[-1], hidden=tuple(config.hidden), seed=seed
    )
    fit = FitConfig(
        loss=loss,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        patience=None,
        selection=config.selection,
        seed=seed,
    )
    result = fit_reward(net, split.train, split.val, fit)  # no per-epoch test scores: a third of the time
    test, train = evaluate_reward(net, split.test), result.train_metrics
    quality = reward_quality_metrics(env_id, net, split.test, seed, config) if config.quality else {}
    return {
        **quality,
        "best_epoch": result.best_epoch,
        "selection": config.selection if config.n_val else "last-epoch",
        "clean_accuracy": test["accuracy"],
        "hard_accuracy": test["accuracy_hardest_quarter"],
        "spearman": test["spearman"],
        "outlier_precision": train.get("outlier_precision"),
        "outlier_recall": train.get("outlier_recall"),
        "flagged_fraction": train.get("flagged_fraction"),
        "corrupted_fraction": train["corruption_rate"],
        "train_label_accuracy": train["label_accuracy"],
        "fit_seconds": result.seconds,
    }


def control_cell(cell: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """One control cell: fixed-pairs metrics and/or preference-based RL under one teacher."""
    from aligngym.agents.preference_rl import PreferenceRLConfig, normalized_return, run_preference_rl
    from aligngym.rewards.fitting import RESULT_KEYS
    from aligngym.rewards.teachers import make_teacher

    _set_threads()
    config = cell["config"]
    teacher = make_teacher(config["teacher"], cell["rate"], **config["teacher_params"])
    out: dict[str, Any] = dict.fromkeys(RESULT_KEYS)
    if config.get("pairs") is not None:
        pairs = build_dataclass(FixedPairsConfig, config["pairs"], prefix="pairs.")
        out.update(
            fixed_pairs_metrics(cell["env"], LossSpec.of(config["loss"]), teacher, pairs, cell["seed"])
        )
    if config.get("rl") is not None:
        start = time.perf_counter()
        rl = build_dataclass(PreferenceRLConfig, config["rl"], prefix="rl.")
        result = run_preference_rl(rl, teacher, cell["seed"], progress)
        reference = config.get("reference") or {}
        out.update(
            true_return=result.true_return,
            normalized_return=normalized_return(
                result.true_return, reference["random_return"], reference["true_rl_return"]
            )
            if reference
            else None,
            rl_clean_accuracy=result.clean_accuracy,
            rl_queries=result.queries,
            rl_corrupted_fraction=result.corrupted_fraction,
            rl_seconds=time.perf_counter() - start,
        )
    return out


def reference_cell(cell: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Returns of a uniform random policy and of the same RL algorithm and budget on the true reward."""
    from aligngym.agents.preference_rl import PreferenceRLConfig, random_return, train_on_true_reward

    _set_threads()
    rl = build_dataclass(PreferenceRLConfig, cell["config"]["rl"], prefix="rl.")
    true_rl = train_on_true_reward(rl, cell["seed"], progress)
    return {
        "random_return": random_return(rl.env_id, rl.eval_episodes, cell["seed"]),
        "true_rl_return": true_rl,
    }


def text_cell(cell: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """One text cell: ``run_text_cell`` of the alignment package (imported only for the text domain).

    The one adaptor from a sweep cell to the text pipeline: the method's loss with its parameters, the
    teacher with its level and extra parameters, and the budget, exactly as for a control cell.
    """
    from aligngym.alignment.text_pipeline import run_text_cell

    config = cell["config"]
    loss = config["loss"]
    return run_text_cell(
        loss if isinstance(loss, str) else LossSpec.of(loss),
        config["teacher"],
        cell["rate"],
        cell["seed"],
        progress,
        teacher_params=config["teacher_params"],
        **config["budget"],
    )


# ------------------------------------------------------------------------------------------------
# A whole benchmark


def run_benchmark(
    recipe: BenchRecipe,
    out_dir: str | Path,
    backend: str = "local",
    workers: int | None = None,
    address: str | None = None,
    progress: bool = True,
    argv: list[str] | None = None,
) -> list[dict[str, Any]]:
    """References first (control with an RL phase), then the grid; both resume from their JSONL files."""
    from aligngym.runs.folders import write_run_metadata
    from aligngym.runs.sweep import RESULTS_FILE, check_sweep_options, folder_lock, pending_cells, run_sweep

    out_dir = Path(out_dir)
    check_sweep_options(backend, address)
    with folder_lock(out_dir):  # one writer; every refusal below comes before any file changes
        finished, todo = pending_cells(reference_cells(recipe), out_dir / REFERENCES_FILE)
        if not todo:  # the grid is known: a changed grid is refused now, not after config.yaml is rewritten
            pending_cells(grid_cells(recipe, references_by_cell(finished)), out_dir / RESULTS_FILE)
        write_run_metadata(out_dir, recipe.to_dict(), recipe.seeds[0], argv)
        references = run_sweep(
            reference_cells(recipe),
            REFERENCE_CELL,
            out_dir,
            backend,
            workers,
            address,
            progress,
            results_file=REFERENCES_FILE,
        )
        target = TEXT_CELL if recipe.domain == "text" else CONTROL_CELL
        cells = grid_cells(recipe, references_by_cell(references))
        return run_sweep(cells, target, out_dir, backend, workers, address, progress)
