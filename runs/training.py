"""Run one recipe: resolve it, make its run folder, call the job, record the summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aligngym.files import atomic_write_json
from aligngym.runs.errors import UsageError
from aligngym.runs.folders import check_writable_folder, create_run_folder, write_run_metadata
from aligngym.runs.jobs import get_job
from aligngym.runs.recipes import Recipe, load_recipe


def run_recipe(
    recipe: str, overrides: list[str] | tuple[str, ...] = (), out: str | Path = "results"
) -> tuple[Path, dict[str, Any]]:
    """Validate everything first (so bad input fails before any folder exists), then run the job."""
    resolved = load_recipe(recipe, overrides)
    job = get_job(resolved.job)
    run = job.run_function()
    check_writable_folder(out)
    preflight(resolved)
    run_dir = create_run_folder(out, resolved.job, resolved.name, resolved.seed)
    write_run_metadata(run_dir, resolved.to_dict(), resolved.seed, argv=sys.argv)
    summary = run(resolved.config, resolved.seed, run_dir)
    atomic_write_json(run_dir / "summary.json", summary)
    return run_dir, summary


def preflight(resolved: Recipe) -> None:
    """Run the config's ``preflight()`` (checks that build things, e.g. the env once), or build its ``env_id``.

    Whatever it raises about the recipe (an unknown env id or kwarg, a bad hyperparameter value, a resume
    folder without a checkpoint) becomes one UsageError line, before any run folder exists.
    """
    import gymnasium as gym

    config = resolved.config
    check = getattr(config, "preflight", None)
    if check is None and isinstance(getattr(config, "env_id", None), str):
        # A job without its own preflight that names an env: build that env once.
        def check() -> None:
            gym.make(config.env_id, **(getattr(config, "env_kwargs", None) or {})).close()

    if check is None:
        return
    try:
        check()
    except (ValueError, TypeError, KeyError, AssertionError, gym.error.Error) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(f"{resolved.job} recipe {resolved.name!r}: {message}") from None
