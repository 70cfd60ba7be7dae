"""ReST at matched compute: which training data helps when the number of examples AND of gradient steps are equal.

The paper's Table 3 (Aksitov et al. 2023) trains the small model on generation-1 data and on generation-2 data
subsampled to the same size (+9 points from data quality) but does not match gradient steps;
``rest-generations`` showed that here most of the generations' gain comes from extra steps. This benchmark
fixes both. Per seed, shared by every arm (built once under a lock in ``OUT/runs/seed_<s>``, by the ReST loop's
own stages, from the recipe with ``generations=2 trajectories_per_question=[1,4]``):

- generation 0 (SFT on the scripted demonstrations ``D``) and its dev/test scores;
- gen-1 data ``E1``: generation 0 plays 1 trajectory per training question, outcome-verified and relabelled;
- the loop's generation-1 policy (generation 0 + ``finetune.max_steps`` on ``D + E1``), which plays 4
  trajectories per training question: gen-2 data. ``E2xM`` = the relabelled rows of each question's first
  M of those 4 trajectories (M = 1, 2, 4; nested, deduplicated; ``relabel`` names each row's trajectory).

Every arm is one sweep cell (seed x arm): a model trained on ``D + X`` and scored on all dev / test questions
(greedy, exact match). Settings, fixed before any run:

- policy arms start from generation 0's weights and take ``--steps`` (600: what generations 1 + 2 of the loop
  take together, and the steps of ``rest-generations``' control) SFT steps with the recipe's ``finetune``
  learning rate, batch and warm-up; student arms start from scratch (the recipe's 32-wide ``student``) with
  its ``distill`` settings (900 steps). Arms of one kind share the SFT seed, so they differ only in ``X``;
- ``N`` = min(|E1|, |E2x1|) per seed; a *matched* arm trains on N rows of its pool drawn uniformly without
  replacement (numpy ``default_rng(1000 * seed + 300 + pool index)``, so arms with the same pool get the same
  rows); the ``-all`` arms train on their whole pool (the paper's 2x / 4x rows: more data, here same steps);
- the demonstrations ``D`` are in every mix (as in the loop), so arms differ only in the ReST part ``X``.

Arms: ``demos`` (X empty: the control), ``gen1`` (E1), ``gen2`` (E2x1), ``gen2-x2`` / ``gen2-x4`` (N rows of
E2x2 / E2x4: more trajectories per question at equal examples), ``gen2-x2-all`` / ``gen2-x4-all`` (all of
E2x2 / E2x4, equal steps), ``student-demos`` and ``student-gen2`` (the student on D and on D + the ``gen2`` rows).
The report gives each arm's mean with a bootstrap 95 % CI over seeds, paired differences (same seed) with
Student-t 95 % CIs, and the teacher's exact match the student keeps (student-gen2 / gen2, per seed).

    nice -n 15 aligngym bench rest-matched --seeds 0 1 2 --workers 1 --publish benchmarks/results
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aligngym.files import atomic_write_text
from aligngym.runs.bench.options import (
    add_output_arguments,
    add_sweep_arguments,
    command_line,
    out_dir,
    publish,
    sweep_options,
)
from aligngym.runs.errors import UsageError

if TYPE_CHECKING:
    from aligngym.agents.react.rest import RestLoop
    from aligngym.agents.react.rest_config import RestConfig, SFTSettings

NAME = "rest-matched"
DESCRIPTION = (
    "ReST data at matched examples and gradient steps: gen 1 vs gen 2, 1x/2x/4x, control, student (sweep)"
)
FILES = ("rest_matched.md", "rest_matched.json")
SHARED_OVERRIDES = ("generations=2", "trajectories_per_question=[1,4]")
POOLS = ("demos", "gen1", "gen2x1", "gen2x2", "gen2x4")
"""Data pools: ``demos`` adds nothing to D; the pool index seeds the subsample of a matched arm."""


@dataclass(frozen=True)
class Arm:
    """One trained model: which model, which ReST pool added to the demonstrations, N rows of it or all."""

    name: str
    label: str
    pool: str
    matched: bool
    student: bool = False


ARMS = (
    Arm("demos", "control: demonstrations only", "demos", False),
    Arm("gen1", "gen-1 data (N rows)", "gen1", True),
    Arm("gen2", "gen-2 data, 1 trajectory/question (N rows)", "gen2x1", True),
    Arm("gen2-x2", "gen-2 data, 2 trajectories/question (N rows)", "gen2x2", True),
    Arm("gen2-x4", "gen-2 data, 4 trajectories/question (N rows)", "gen2x4", True),
    Arm("gen2-x2-all", "gen-2 data, 2 trajectories/question (all rows)", "gen2x2", False),
    Arm("gen2-x4-all", "gen-2 data, 4 trajectories/question (all rows)", "gen2x4", False),
    Arm("student-demos", "student: demonstrations only", "demos", False, student=True),
    Arm("student-gen2", "student: gen-2 data (the gen2 arm's rows)", "gen2x1", True, student=True),
)
ARMS_BY_NAME = {a.name: a for a in ARMS}
COMPARISONS = (
    ("gen2", "gen1", "data quality (the paper's Table 3: +9 points)"),
    ("gen1", "demos", "gen-1 data vs more steps on demonstrations"),
    ("gen2", "demos", "gen-2 data vs more steps on demonstrations"),
    ("gen2-x2", "gen2", "2 vs 1 trajectories/question, equal examples"),
    ("gen2-x4", "gen2", "4 vs 1 trajectories/question, equal examples"),
    ("gen2-x2-all", "gen2", "2x data vs 1x, equal steps"),
    ("gen2-x4-all", "gen2", "4x data vs 1x, equal steps"),
    ("student-gen2", "student-demos", "student: gen-2 data vs demonstrations"),
)
SPLITS = ("dev", "test")


def check_arms(names: Sequence[str]) -> list[str]:
    """The arms in table order; UsageError (one line) for an unknown name."""
    for name in names:
        if name not in ARMS_BY_NAME:
            raise UsageError(f"arm {name!r} is not valid; valid arms: {', '.join(ARMS_BY_NAME)}")
    return [a.name for a in ARMS if a.name in names]


def nested_pools(
    gen1_rows: Sequence[dict], gen2_rows: Sequence[dict], replicates: Sequence[int]
) -> dict[str, list[dict]]:
    """The ReST pools; ``replicates[i]`` = how many earlier gen-2 trajectories have trajectory i's question."""
    pools = {"demos": [], "gen1": list(gen1_rows)}
    for m in (1, 2, 4):
        pools[f"gen2x{m}"] = [r for r in gen2_rows if replicates[r["trajectory"]] < m]
    return pools


def replicate_indices(question_ids: Sequence[str]) -> list[int]:
    """For each trajectory, how many trajectories before it share its question (0 for the first)."""
    seen: dict[str, int] = {}
    out = []
    for qid in question_ids:
        out.append(seen.get(qid, 0))
        seen[qid] = out[-1] + 1
    return out


def matched_size(pools: dict[str, list[dict]]) -> int:
    """N: the size at which gen-1 and gen-2 data are compared (the smaller of the two 1x pools)."""
    return min(len(pools["gen1"]), len(pools["gen2x1"]))


def arm_rows(arm: Arm, pools: dict[str, list[dict]], seed: int) -> list[dict[str, str]]:
    """The ReST rows of an arm (the demonstrations are added by the caller): N of its pool, or all of it."""
    pool = pools[arm.pool]
    if arm.matched:
        rng = np.random.default_rng(1000 * seed + 300 + POOLS.index(arm.pool))
        pool = [pool[i] for i in sorted(rng.choice(len(pool), size=matched_size(pools), replace=False))]
    return [{"prompt": r["prompt"], "completion": r["completion"]} for r in pool]


def arm_steps(arm: Arm, config: RestConfig, steps: int) -> SFTSettings:
    """The SFT settings of an arm: the recipe's ``finetune`` with ``steps`` steps, or its ``distill`` for a student."""
    from aligngym.agents.react.rest_config import SFTSettings

    if arm.student:
        return config.distill
    return SFTSettings(**{**asdict(config.finetune), "max_steps": steps})


def shared_loop(recipe: str, overrides: Sequence[str], seed: int, work_dir: Path) -> tuple[RestLoop, dict]:
    """The seed's ReST loop with its shared stages done (under a lock: parallel arms of one seed build them once)."""
    from aligngym.agents.react.rest import RestLoop
    from aligngym.agents.react.rest_data import read_jsonl
    from aligngym.runs.recipes import load_recipe

    config = load_recipe(recipe, [*overrides, *SHARED_OVERRIDES]).config
    work_dir.mkdir(parents=True, exist_ok=True)
    with open(work_dir / ".shared.lock", "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        loop = RestLoop(config, seed, work_dir)
        model, tokenizer, gen0 = loop.bootstrap()
        model, tokenizer, gen1 = loop.generation(1, model, tokenizer)
        gen2_rows = loop.examples(2, model, tokenizer)
    trajectories = read_jsonl(loop.gen_dir(2) / "trajectories.jsonl")
    pools = nested_pools(
        read_jsonl(loop.gen_dir(1) / "examples.jsonl"),
        gen2_rows,
        replicate_indices([t["question_id"] for t in trajectories]),
    )
    return loop, {"pools": pools, "gen_00": gen0, "gen_01": gen1}


def run_cell(cell: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """Sweep cell function: one arm of one seed (the seed's shared stages first, if not yet done)."""
    import torch

    config = cell["config"]
    torch.set_num_threads(config["threads"])
    logging.basicConfig(level=logging.INFO, format=f"seed {cell['seed']} %(asctime)s %(message)s")
    arm, seed = ARMS_BY_NAME[cell["method"]], cell["seed"]
    loop, shared = shared_loop(config["recipe"], config["overrides"], seed, Path(cell["work_dir"]))
    rest = arm_rows(arm, shared["pools"], seed)
    settings = arm_steps(arm, loop.config, config["steps"])
    scores = loop.variant(f"arm_{arm.name}", loop.training_mix(0) + rest, settings, student=arm.student)
    row = {
        "arm": arm.name,
        "examples": len(rest),
        "demonstration_rows": len(loop.training_mix(0)),
        "max_steps": settings.max_steps,
        "matched_size": matched_size(shared["pools"]),
        "pool_sizes": {k: len(v) for k, v in shared["pools"].items()},
        "parameters": loop.student_parameters if arm.student else None,
        "scores": scores,
        "reference": {"gen_00": shared["gen_00"], "gen_01": shared["gen_01"]},
    }
    for split in SPLITS:
        row[f"{split}_success"] = scores[split]["success"]
    return row


def _mean_interval(values: Sequence[float]) -> str:
    from aligngym.runs.statistics import bootstrap_interval

    array = np.asarray(values, dtype=np.float64)
    if len(array) < 2:
        return f"{array.mean():.3f}"
    low, high = bootstrap_interval(array, lambda s: s.mean(axis=1))
    return f"{array.mean():.3f} [{low:.3f}, {high:.3f}]"


def write_report(rows: Sequence[dict], command: str, path_md: Path) -> None:
    """Per-arm scores (mean, bootstrap CI), paired differences (t CI), the student's share of the teacher."""
    from aligngym.runs.statistics import bootstrap_interval, paired_difference

    by = {(r["arm"], r["seed"]): r for r in rows}
    seeds = sorted({r["seed"] for r in rows})
    arms = [a for a in ARMS if any((a.name, s) in by for s in seeds)]
    lines = [
        "# ReST at matched examples and gradient steps (rest-tiny recipe)",
        "",
        f"Command: `{command}`",
        "",
        f"Seeds: {', '.join(map(str, seeds))}"
        + (" (PARTIAL: fewer than 3 seeds, no confidence intervals)" if len(seeds) < 3 else "")
        + ". Success = exact match, greedy, all dev (156) / test (159) questions. Policy arms: generation 0"
        " + the same SFT steps on D + X; student arms: from scratch, the same steps. N = min(|E1|, |E2x1|).",
        "",
        "| arm | X (added to D) | examples X (per seed) | steps | dev per seed | dev mean [95% CI] | test mean [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in arms:
        mine = [by[(arm.name, s)] for s in seeds if (arm.name, s) in by]
        lines.append(
            f"| {arm.name} | {arm.label} | {', '.join(str(r['examples']) for r in mine)} | "
            f"{', '.join(sorted({str(r['max_steps']) for r in mine}))} | "
            + ", ".join(f"{r['dev_success']:.3f}" for r in mine)
            + f" | {_mean_interval([r['dev_success'] for r in mine])} | "
            f"{_mean_interval([r['test_success'] for r in mine])} |"
        )
    lines += [
        "",
        "Paired differences (same seed), mean [Student-t 95% CI]; `n` = seeds with both arms:",
        "",
        "| comparison | question | n | dev | test |",
        "|---|---|---|---|---|",
    ]
    for x, y, question in COMPARISONS:
        both = [s for s in seeds if (x, s) in by and (y, s) in by]
        if not both:
            continue
        cells = [
            paired_difference(
                np.array([by[(x, s)][f"{split}_success"] for s in both]),
                np.array([by[(y, s)][f"{split}_success"] for s in both]),
            ).text(signed=True)
            for split in SPLITS
        ]
        lines.append(f"| {x} - {y} | {question} | {len(both)} | {cells[0]} | {cells[1]} |")
    kept = [s for s in seeds if ("student-gen2", s) in by and ("gen2", s) in by]
    if kept:
        lines += [
            "",
            "Teacher's exact match the student keeps (student-gen2 / gen2, same data and seed):",
            "",
        ]
        for split in SPLITS:
            ratios = np.array(
                [
                    by[("student-gen2", s)][f"{split}_success"]
                    / max(by[("gen2", s)][f"{split}_success"], 1e-9)
                    for s in kept
                ]
            )
            interval = ""
            if len(ratios) >= 2:
                low, high = bootstrap_interval(ratios, lambda r: r.mean(axis=1))
                interval = f" [{low:.2f}, {high:.2f}] (bootstrap 95% CI)"
            lines.append(
                f"- {split}: {ratios.mean():.2f}{interval}; per seed " + ", ".join(f"{v:.2f}" for v in ratios)
            )
    lines += ["", "Shared stages per seed (the ReST loop's own; every arm reuses them):", ""]
    lines += ["| seed | gen 0 dev / test | loop's gen 1 dev / test | D rows | E1 | E2x1 | E2x2 | E2x4 | N |"]
    lines += ["|---|---|---|---|---|---|---|---|---|"]
    for s in seeds:
        r = next(r for r in rows if r["seed"] == s)
        ref, sizes = r["reference"], r["pool_sizes"]
        lines.append(
            f"| {s} | {ref['gen_00']['dev']['success']:.3f} / {ref['gen_00']['test']['success']:.3f} | "
            f"{ref['gen_01']['dev']['success']:.3f} / {ref['gen_01']['test']['success']:.3f} | "
            f"{r['demonstration_rows']} | {sizes['gen1']} | {sizes['gen2x1']} | {sizes['gen2x2']} | "
            f"{sizes['gen2x4']} | {r['matched_size']} |"
        )
    walls = ", ".join(
        f"{r['arm']}/s{r['seed']} {r['wall_s']:.0f}" for r in rows if r.get("wall_s") is not None
    )
    lines += ["", f"Wall time per cell (s; a seed's first cell includes its shared stages): {walls}."]
    atomic_write_text(path_md, "\n".join(lines) + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", default="rest-tiny")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--arms",
        nargs="+",
        default=[a.name for a in ARMS],
        help=f"arms (default all: {', '.join(ARMS_BY_NAME)})",
    )
    parser.add_argument("--steps", type=int, default=600, help="SFT steps of every policy arm (default 600)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per cell")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="recipe overrides")
    add_sweep_arguments(parser, workers=1)
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    from aligngym.files import atomic_write_json
    from aligngym.runs.recipes import load_recipe
    from aligngym.runs.sweep import run_sweep

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    arms = check_arms(args.arms)
    if args.steps < 1:
        raise UsageError(f"--steps={args.steps} must be >= 1")
    config = load_recipe(args.recipe, [*args.overrides, *SHARED_OVERRIDES]).config  # bad input fails here
    if config.student is None and any(ARMS_BY_NAME[a].student for a in arms):
        raise UsageError(f"recipe {args.recipe!r} has no student; drop the student arms from --arms")
    out = out_dir(args, NAME)
    cells = [
        {
            "domain": "text",
            "env": "react-qa",
            "method": arm,
            "noise": None,
            "rate": None,
            "seed": seed,
            "config": {
                "recipe": args.recipe,
                "overrides": args.overrides,
                "threads": args.threads,
                "steps": args.steps,
            },
            "work_dir": str(out / "runs" / f"seed_{seed}"),  # not part of the cell's identity
        }
        # Arm-major: parallel workers start on different seeds, whose shared stages then run side by side.
        for arm in arms
        for seed in args.seeds
    ]
    rows = run_sweep(cells, f"{__name__}:run_cell", out, **sweep_options(args))
    command = command_line(args, NAME)
    atomic_write_json(out / "rest_matched.json", {"command": command, "results": rows})
    write_report(rows, command, out / "rest_matched.md")
    print((out / "rest_matched.md").read_text())
    for path in publish(out, FILES, args.publish):
        print(f"published: {path}")
    return 0
