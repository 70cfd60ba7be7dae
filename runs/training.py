"""Run one recipe: resolve it, make its run folder, call the job, record the summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from aligngym.files import atomic_write_json
from aligngym.runs.folders import create_run_folder, write_run_metadata
from aligngym.runs.jobs import get_job
from aligngym.runs.recipes import load_recipe


def run_recipe(
    recipe: str, overrides: list[str] | tuple[str, ...] = (), out: str | Path = "results"
) -> tuple[Path, dict[str, Any]]:
    """Validate everything first (so bad input fails before any folder exists), then run the job."""
    resolved = load_recipe(recipe, overrides)
    job = get_job(resolved.job)
    run = job.run_function()
    run_dir = create_run_folder(out, resolved.job, resolved.name, resolved.seed)
    write_run_metadata(run_dir, resolved.to_dict(), resolved.seed, argv=sys.argv)
    summary = run(resolved.config, resolved.seed, run_dir)
    atomic_write_json(run_dir / "summary.json", summary)
    return run_dir, summary
