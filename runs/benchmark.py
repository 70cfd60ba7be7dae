"""``aligngym bench reward-robustness`` and ``aligngym bench report``: the CLI side of the benchmark.

Importing this module is cheap (argparse only); the sweep, torch and SB3 load when a command runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
from pathlib import Path

from aligngym.runs.bench.options import add_sweep_arguments, sweep_options
from aligngym.runs.errors import UsageError

DEFAULT_ROOT = Path("results") / "reward-robustness"


def add_robustness_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="typed overrides of recipe fields, e.g. seeds=[0,1,2] rl.total_timesteps=50000",
    )
    parser.add_argument("--recipe", default="demo", help="demo (default), extended, paper, or a YAML path")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results folder (default {DEFAULT_ROOT}/<recipe name>); "
        "re-running into the same folder skips finished cells",
    )
    add_sweep_arguments(parser)
    parser.add_argument("--domain", choices=("control", "text"), help="override the recipe's domain")
    parser.add_argument(
        "--publish",
        type=Path,
        metavar="DIR",
        help="also write reward_robustness_<recipe>.{md,csv,png,jsonl} into DIR (e.g. benchmarks/results)",
    )


def run_robustness(args: argparse.Namespace) -> int:
    from aligngym.runs.reward_benchmark import load_bench_recipe, run_benchmark

    sweep = sweep_options(args)
    try:
        recipe = load_bench_recipe(args.recipe, args.overrides, domain=args.domain)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = args.out or DEFAULT_ROOT / recipe.name
    try:
        saved = saved_cells(recipe, out)
        run_benchmark(
            recipe,
            out,
            sweep["backend"],
            sweep["workers"],
            sweep["address"],
            sweep["progress"],
            argv=command_line(args, out),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if saved:
        print(
            f"{saved} of {saved} cells already done in {out}, showing saved results "
            "(another --out, or delete the folder, for fresh numbers)"
        )
    return _print_report(out, args.publish, f"reward_robustness_{recipe.name}")


def saved_cells(recipe, out: Path) -> int:
    """The number of cells when every reference and grid cell of ``recipe`` is finished in ``out``, else 0."""
    from aligngym.runs.reward_benchmark import (
        REFERENCES_FILE,
        grid_cells,
        reference_cells,
        references_by_cell,
    )
    from aligngym.runs.sweep import RESULTS_FILE, pending_cells

    references, todo = pending_cells(reference_cells(recipe), out / REFERENCES_FILE)
    if todo:
        return 0
    done, todo = pending_cells(grid_cells(recipe, references_by_cell(references)), out / RESULTS_FILE)
    return 0 if todo or not done else len(done)


def command_line(args: argparse.Namespace, out: Path) -> list[str]:
    """The command as run (rebuilt from the parsed options, so it is exact also when called from Python)."""
    argv = ["aligngym", "bench", "reward-robustness", "--recipe", args.recipe, "--out", str(out)]
    for option, value in (
        ("--backend", args.backend if args.backend != "local" else None),
        ("--address", args.address),
        ("--workers", args.workers),
        ("--domain", args.domain),
    ):
        if value is not None:
            argv += [option, str(value)]
    return argv + [shlex.quote(item) for item in args.overrides]


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, metavar="DIR", help="a reward-robustness results folder")
    parser.add_argument(
        "--publish",
        type=Path,
        metavar="DIR",
        help="also write reward_robustness_<name>.{md,csv,png,jsonl} into DIR",
    )


def run_report(args: argparse.Namespace) -> int:
    if not (args.out / "results.jsonl").is_file():
        raise UsageError(f"{str(args.out)!r} holds no results.jsonl (not a reward-robustness results folder)")
    return _print_report(args.out, args.publish, f"reward_robustness_{_recipe_name(args.out)}")


def _recipe(out: Path) -> dict:
    import yaml

    config = out / "config.yaml"
    return (yaml.safe_load(config.read_text()) or {}) if config.is_file() else {}


def _recipe_name(out: Path) -> str:
    return str(_recipe(out).get("name", out.name))


def report_header(out: Path) -> str:
    """Title and provenance of a report: the exact command, commit and date from ``meta.json``."""
    lines = [f"# Reward-robustness benchmark: {_recipe_name(out)}", ""]
    meta_path = out / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        command = " ".join(meta.get("command", []))
        lines += [
            f"Command: `{command}`",
            "",
            f"Started {meta.get('started', '?')}, commit {meta.get('git_commit') or '?'}, "
            f"python {meta.get('python', '?')}, "
            + ", ".join(f"{k} {v}" for k, v in meta.get("packages", {}).items()),
            "",
        ]
    references = out / "references.jsonl"
    if references.is_file():
        from aligngym.runs.sweep import finished_rows, read_rows

        lines.append(
            "References per seed (true return; normalised return = (R - random) / (true-reward RL - random)):"
        )
        lines.append("")
        for row in sorted(finished_rows(read_rows(references)), key=lambda r: (r["env"], r["seed"])):
            lines.append(
                f"- {row['env']} seed {row['seed']}: random {row['random_return']:.1f}, "
                f"same RL on the true reward {row['true_rl_return']:.1f}"
            )
        lines.append("")
    return "\n".join(lines)


def _print_report(out: Path, publish: Path | None, stem: str) -> int:
    from rich.console import Console

    from aligngym.runs.reports import render_report

    methods = [m["name"] for m in _recipe(out).get("methods", [])]
    scores = _recipe(out).get("published") or {}
    report = render_report(out, header=report_header(out), method_order=methods, published=scores)
    write_tensorboard(out)
    console = Console()  # the terminal's width (COLUMNS, or 80 when not a terminal)
    title = f"reward robustness: {out}  (IQM over seeds; the markdown file has 95 % CIs, every column)"
    for table in fitting_tables(console.width, report.summaries, title):
        console.print(table)
    if report.deltas:
        title = "paired difference to bt (same seed, same labels)"
        for table in fitting_tables(console.width, report.deltas, title, signed=True):
            console.print(table)
    for line in report.verdict:
        console.print(f"policy return: {line}")
    if publish is not None:
        published = render_report(
            out,
            header=report_header(out),
            stem=stem,
            target_dir=publish,
            method_order=methods,
            published=scores,
        )
        shutil.copyfile(out / "results.jsonl", publish / f"{stem}.jsonl")
        console.print(f"published: {published.markdown}, {published.csv}, {published.png}")
    console.print(f"table: {report.markdown}\ncsv:   {report.csv}\nplot:  {report.png}")
    return 0


def write_tensorboard(out: Path) -> Path:
    """``out/tensorboard``: one HParams run per finished cell (its grid keys and numeric results), for
    ``tensorboard --logdir`` next to the jobs' logs. Derived from ``results.jsonl``, so rewritten each time."""
    import math

    from torch.utils.tensorboard import SummaryWriter

    from aligngym.runs.sweep import RESULTS_FILE, finished_rows, read_rows

    folder = out / "tensorboard"
    shutil.rmtree(folder, ignore_errors=True)
    keys = ("domain", "env", "method", "noise", "rate", "seed")
    with SummaryWriter(str(folder)) as writer:
        for row in finished_rows(read_rows(out / RESULTS_FILE)):
            metrics = {
                f"result/{name}": float(value)
                for name, value in row.items()
                if name not in keys and isinstance(value, (int, float)) and math.isfinite(value)
            }
            hparams = {name: row[name] for name in keys if name in row}
            writer.add_hparams(hparams, metrics, run_name=row["key"].replace("/", "_"))
    return folder


def fitting_tables(width: int, summaries, title: str, signed: bool = False) -> list:
    """The summary table, or its metric columns split over as few tables as fit ``width`` (no cell cut)."""
    from rich.console import Console
    from rich.measure import Measurement

    from aligngym.runs.reports import TERMINAL_METRICS, rich_table

    measure = Console(width=10_000)

    def fits(metrics: list[str]) -> bool:
        table = rich_table(summaries, title, signed, metrics=metrics)
        return Measurement.get(measure, measure.options, table).maximum <= width

    chunks: list[list[str]] = [[]]
    for metric in TERMINAL_METRICS:  # greedy: a new table when the next column would not fit
        if chunks[-1] and not fits([*chunks[-1], metric]):
            chunks.append([])
        chunks[-1].append(metric)
    if len(chunks) == 1:
        return [rich_table(summaries, title, signed)]
    size = -(-len(TERMINAL_METRICS) // len(chunks))  # as many tables, columns spread evenly, if that fits
    even = [list(TERMINAL_METRICS[i : i + size]) for i in range(0, len(TERMINAL_METRICS), size)]
    if len(even) == len(chunks) and all(fits(chunk) for chunk in even):
        chunks = even
    return [
        rich_table(summaries, f"{title} (columns {i}/{len(chunks)})", signed, metrics=chunk)
        for i, chunk in enumerate(chunks, start=1)
    ]


COMMANDS = {
    "reward-robustness": (
        "reward learning under corrupted preferences: losses x noise models x levels x seeds (local or Ray)",
        add_robustness_arguments,
        run_robustness,
    ),
    "report": (
        "re-render a reward-robustness folder: markdown table, CSV, PNG plot",
        add_report_arguments,
        run_report,
    ),
}
