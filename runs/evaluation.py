"""``aligngym eval robustness RUN_DIR``: re-evaluate a finished adversarial run (argparse only at import)."""

from __future__ import annotations

import argparse
from pathlib import Path

from aligngym.runs.errors import UsageError


def _robustness_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", type=Path, metavar="RUN_DIR", help="a finished rarl, qarl or adversarial-baseline run"
    )
    parser.add_argument("--episodes", type=int, help="episodes for the nominal / against-adversary returns")
    parser.add_argument(
        "--worst-case-steps", type=int, help="steps to train the fresh worst-case adversary (0: skip)"
    )
    parser.add_argument("--grid-points", type=int, help="points per axis of the mass x friction grid")
    parser.add_argument("--grid-episodes", type=int, help="episodes per grid cell")


def _robustness(args: argparse.Namespace) -> int:
    import dataclasses

    from aligngym.runs.recipes import read_yaml, recipe_from_dict

    config_path = args.run_dir / "config.yaml"
    if not config_path.is_file():
        raise UsageError(f"{str(args.run_dir)!r} is not a run folder (no config.yaml)")
    recipe = recipe_from_dict(read_yaml(config_path, "run config"), source=str(config_path))
    if recipe.job not in ("rarl", "qarl", "adversarial-baseline"):
        raise UsageError(
            f"{str(args.run_dir)!r} is a {recipe.job!r} run; valid jobs: adversarial-baseline, qarl, rarl"
        )
    changes = {
        key: value
        for key, value in (
            ("episodes", args.episodes),
            ("worst_case_steps", args.worst_case_steps),
            ("grid_points", args.grid_points),
            ("grid_episodes", args.grid_episodes),
        )
        if value is not None
    }
    try:
        evaluation = dataclasses.replace(recipe.config.evaluation, **changes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from aligngym.agents.adversarial.training import evaluate_run

    try:
        results = evaluate_run(recipe.config, recipe.seed, args.run_dir, evaluation)
    except (FileNotFoundError, ValueError) as exc:  # no weights, or weights for another model / altered
        raise UsageError(str(exc)) from None
    for key, value in results.items():
        print(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}")
    print(f"wrote {args.run_dir / 'robustness.md'} and {args.run_dir / 'robustness_heatmap.png'}")
    return 0


COMMANDS = {
    "robustness": (
        "robustness of a rarl/qarl/baseline run: nominal, vs adversaries, mass x friction grid",
        _robustness_arguments,
        _robustness,
    ),
}
