"""The options every ``aligngym bench NAME`` shares: its results folder, the committed copy, the sweep backend.

A benchmark writes its files into ``--out`` (default ``results/bench/<name>``) under the names they have in
``benchmarks/results/``; ``--publish DIR`` copies them there too. Benchmarks made of independent cells run
them through the sweep runner (``aligngym.runs.sweep``): a local process pool or Ray, one JSONL row per
finished cell, so a re-run into the same ``--out`` skips the finished cells.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aligngym.runs.errors import UsageError

DEFAULT_ROOT = Path("results") / "bench"


def add_output_arguments(parser: argparse.ArgumentParser, name: str, default: str | None = None) -> None:
    """``--out`` and ``--publish``; ``default`` names the results folder when it is not ``results/bench/NAME``."""
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results folder (default {default or DEFAULT_ROOT / name})",
    )
    parser.add_argument(
        "--publish",
        type=Path,
        metavar="DIR",
        help="also copy the result files into DIR under the same names (e.g. benchmarks/results)",
    )


def out_dir(args: argparse.Namespace, name: str) -> Path:
    return args.out if args.out is not None else DEFAULT_ROOT / name


def add_sweep_arguments(parser: argparse.ArgumentParser, workers: int | None = None) -> None:
    """The sweep runner's options: backend, Ray address, parallel cells, progress bars."""
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local process pool (default) or Ray tasks",
    )
    parser.add_argument(
        "--address", help="Ray cluster address (with --backend ray), e.g. auto or ray://host:10001"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=workers,
        help=f"parallel cells (default: {workers or 'CPU count; Ray: CPUs of a local Ray'})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def sweep_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``run_sweep`` that the sweep options set."""
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers={args.workers} must be >= 1")
    return {
        "backend": args.backend,
        "workers": args.workers,
        "address": args.address,
        "progress": not args.no_progress,
    }


def command_line(args: argparse.Namespace, name: str) -> str:
    """The command as typed (``argv`` is set by ``aligngym.runs.cli.main``), for the report's provenance."""
    argv = getattr(args, "argv", None)
    if argv is not None:
        return "aligngym " + shlex.join(argv)
    options = {k: v for k, v in sorted(vars(args).items()) if k != "func" and v not in (None, False)}
    return f"aligngym bench {name} (called from Python with {options})"


def publish(out: Path, names: Iterable[str], target: Path | None) -> list[Path]:
    """Copy ``out/<name>`` for each name into ``target`` (atomically; sub-folders kept); none if no target."""
    from aligngym.files import atomic_save

    if target is None:
        return []
    copied = []
    for name in names:
        source, destination = out / name, target / name
        if not source.is_file():
            raise UsageError(f"{str(source)!r} was not written, so it cannot be published")
        if source.resolve() != destination.resolve():
            atomic_save(destination, lambda tmp, source=source: shutil.copyfile(source, tmp))
        copied.append(destination)
    return copied
