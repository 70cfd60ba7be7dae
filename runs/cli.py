"""The ``aligngym`` command line: ``envs``, ``train``, ``bench``, ``eval``.

Bad input (unknown job, key, type, recipe, id) prints one ``aligngym: error: ...`` line and exits 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from aligngym.extras import missing_extra
from aligngym.runs.bench.registry import COMMANDS as BENCHMARK_COMMANDS
from aligngym.runs.benchmark import COMMANDS as REWARD_ROBUSTNESS_COMMANDS
from aligngym.runs.errors import SweepError, UsageError
from aligngym.runs.evaluation import COMMANDS as EVALUATION_COMMANDS

# Subcommand groups: name -> (help, add_arguments, run); run(args) -> exit code. Their modules import argparse only.
BenchCommand = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
BENCHES: dict[str, BenchCommand] = {**REWARD_ROBUSTNESS_COMMANDS, **BENCHMARK_COMMANDS}
EVALS: dict[str, BenchCommand] = dict(EVALUATION_COMMANDS)


def _envs(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from aligngym.envs.registration import DESCRIPTIONS

    table = Table("id", "description", title="aligngym environments", title_justify="left")
    for env_id, description in sorted(DESCRIPTIONS.items()):
        table.add_row(env_id, description)
    Console(width=max(100, len(max(DESCRIPTIONS, key=len, default="")) + 60)).print(table)
    return 0


def _train(args: argparse.Namespace) -> int:
    from aligngym.runs.jobs import JOBS
    from aligngym.runs.recipes import builtin_recipes
    from aligngym.runs.training import run_recipe

    if args.list:
        print("jobs:")
        for job in sorted(JOBS.values(), key=lambda j: j.name):
            print(f"  {job.name:<16} {job.description}")
        print("built-in recipes:")
        for name, path in builtin_recipes().items():
            print(f"  {name:<24} {path}")
        return 0
    if args.recipe is None:
        raise UsageError("train needs a RECIPE (a YAML path or a built-in name; see `aligngym train --list`)")
    run_dir, summary = run_recipe(args.recipe, args.overrides, out=args.out)
    for key, value in summary.items():
        print(f"{key}: {value}")
    print(f"run folder: {run_dir}")
    return 0


def _add_group(
    sub: argparse._SubParsersAction, name: str, help_text: str, commands: dict[str, BenchCommand]
) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    group = parser.add_subparsers(dest="command", metavar="NAME", title="available")
    for command, (command_help, add_arguments, run) in sorted(commands.items()):
        child = group.add_parser(command, help=command_help, description=command_help)
        add_arguments(child)
        child.set_defaults(func=run)
    parser.add_argument(
        "--list", action="store_true", help=f"list the {name} names with one-line descriptions"
    )
    parser.set_defaults(func=lambda args: _list_or_missing(args, name, commands))


def _list_or_missing(args: argparse.Namespace, group: str, commands: dict[str, BenchCommand]) -> int:
    if args.list:
        width = max(map(len, commands), default=0)
        for command, (command_help, _, _) in sorted(commands.items()):
            print(f"  {command:<{width}}  {command_help}")
        return 0
    raise UsageError(f"{group} needs a NAME; valid names: {', '.join(sorted(commands)) or '(none yet)'}")


class _Parser(argparse.ArgumentParser):
    """Argument errors (an unknown benchmark name, a bad option) as one ``aligngym: error:`` line, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"aligngym: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from aligngym import __version__

    parser = _Parser(
        prog="aligngym",
        description="Robust RL and LLM alignment: environments, training recipes, benchmarks.",
    )
    parser.add_argument("--version", action="version", version=f"aligngym {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")

    envs = sub.add_parser("envs", help="list the registered aligngym/... environment ids")
    envs.set_defaults(func=_envs)

    train = sub.add_parser(
        "train",
        help="train from a recipe: aligngym train RECIPE.yaml [key=value ...]",
        description="Run the job a recipe names. Overrides are key=value (YAML values): seed=3, "
        "total_timesteps=1000, policy_kwargs.net_arch=[32,32].",
    )
    train.add_argument("recipe", nargs="?", help="a recipe YAML file or a built-in recipe name")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="typed overrides of recipe fields")
    train.add_argument("--out", type=Path, default=Path("results"), help="root folder for run folders")
    train.add_argument("--list", action="store_true", help="list jobs and built-in recipes")
    train.set_defaults(func=_train)

    _add_group(sub, "bench", "run a benchmark: aligngym bench NAME [options]", BENCHES)
    _add_group(sub, "eval", "evaluate a finished run: aligngym eval NAME RUN_DIR", EVALS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # the command as typed, for reports
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"aligngym: error: {exc}", file=sys.stderr)
        return 2
    except SweepError as exc:  # some cells failed; their error rows and every other row are on disk
        print(f"aligngym: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aligngym: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `aligngym train --list | head`: the reader left; exit quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    except Exception as exc:
        command = " ".join(["aligngym", *(a for a in args.argv[:2] if not a.startswith("-"))])
        message = missing_extra(exc, f"`{command}`")  # an extra not installed: one line naming the fix
        if message is None:
            raise
        print(f"aligngym: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
