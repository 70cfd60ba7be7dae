"""Run folders: ``results/<job>__<name>__<seed>__<timestamp>/`` with the resolved config and provenance."""

from __future__ import annotations

import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.runs.errors import UsageError

DEFAULT_ROOT = Path("results")
PROVENANCE_PACKAGES = ("aligngym", "torch", "gymnasium", "mujoco", "stable-baselines3", "trl", "transformers")


def run_folder_name(job: str, name: str, seed: int, timestamp: float | None = None) -> str:
    stamp = time.strftime(
        "%Y%m%d-%H%M%S", time.localtime(timestamp if timestamp is not None else time.time())
    )
    return f"{job}__{name}__{seed}__{stamp}"


def check_writable_folder(folder: str | Path, what: str = "--out") -> None:
    """UsageError unless ``folder`` is a writable folder or could be made as one; leaves nothing behind.

    Checked before any run starts: ``--out`` naming a file, or a read-only place, fails with one line
    instead of a traceback after minutes of work.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: mkdir would fail
            raise UsageError(f"{what} {str(folder)!r}: {str(existing)!r} is a broken symbolic link")
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{what} {str(folder)!r}: {str(existing)!r} is a file, not a folder")
    try:  # a probe file, removed at once: os.access says yes to root even on read-only places like /proc
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise UsageError(
            f"{what} {str(folder)!r}: {str(existing)!r} is not writable (creating a file there fails: {exc.strerror})"
        ) from None


def create_run_folder(root: str | Path, job: str, name: str, seed: int) -> Path:
    """Make a new, unique run folder under ``root``."""
    check_writable_folder(root)
    base = Path(root) / run_folder_name(job, name, seed)
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def git_commit(cwd: Path | None = None) -> str | None:
    """The current commit of the source checkout (None outside git), with ``+dirty`` for local edits."""
    where = cwd or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_run_metadata(
    run_dir: Path, resolved: dict[str, Any], seed: int, argv: list[str] | None = None
) -> None:
    """Write ``config.yaml`` (what ran) and ``meta.json`` (commit, seed, versions, command line)."""
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    atomic_write_json(
        run_dir / "meta.json",
        {
            "seed": seed,
            "git_commit": git_commit(),
            "command": argv if argv is not None else sys.argv,
            "python": platform.python_version(),
            "packages": package_versions(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
