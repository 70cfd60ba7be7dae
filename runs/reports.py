"""Reports of a sweep: mean +- std over seeds per (env, noise, rate, method), as markdown, CSV, PNG and rich.

Everything is computed from ``results.jsonl`` alone, so ``aligngym bench report DIR`` re-renders a report
of a finished, running or killed sweep. Seeds are paired when a method is compared with the baseline
(same seed, same teacher labels and rollouts), which is why the delta table is sharper than the means.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aligngym.files import atomic_path, atomic_write_text
from aligngym.runs.errors import UsageError
from aligngym.runs.sweep import RESULTS_FILE, read_rows

GROUP_KEYS = ("domain", "env", "noise", "rate", "method")
# metric key -> column title; the table shows those present in the rows, in this order
METRICS: dict[str, str] = {
    "clean_accuracy": "clean acc",
    "hard_accuracy": "hard-25% acc",
    "spearman": "Spearman",
    "outlier_precision": "outlier P",
    "outlier_recall": "outlier R",
    "flagged_fraction": "flagged",
    "corrupted_fraction": "corrupted",
    "normalized_return": "norm. return",
    "true_return": "true return",
    "rl_clean_accuracy": "RL clean acc",
}
PLOT_METRICS = ("clean_accuracy", "hard_accuracy", "normalized_return")
PLOT_LABELS = {
    "clean_accuracy": "clean test accuracy",
    "hard_accuracy": "clean accuracy, hardest 25% of pairs",
    "normalized_return": "normalised true return (PbRL)",
    "spearman": "Spearman (learned vs true return)",
}
# what the level of each teacher of aligngym.rewards.teachers means (the x axis of the plots)
NOISE_AXES = {
    "mistake": "flip probability eps",
    "irrational": "p (flips the 64^p clearest of 64)",
    "stochastic": "beta (lower = noisier)",
    "myopic": "gamma (lower = more myopic)",
    "skip": "skip threshold",
    "equal": "equal threshold",
}
# the terminal table leaves out what the markdown and CSV keep (it has to fit a terminal)
TERMINAL_METRICS = (
    "clean_accuracy",
    "hard_accuracy",
    "spearman",
    "outlier_precision",
    "outlier_recall",
    "flagged_fraction",
    "corrupted_fraction",
    "normalized_return",
    "rl_clean_accuracy",
)
DELTA_METRICS = ("clean_accuracy", "hard_accuracy", "spearman", "normalized_return", "rl_clean_accuracy")
REPORT_STEM = "report"


@dataclass
class Summary:
    """One group of rows (one method at one noise setting) with per-metric mean, std and count."""

    key: dict[str, Any]
    seeds: int
    mean: dict[str, float]
    std: dict[str, float]


def _finite(values: Iterable[Any]) -> list[float]:
    return [
        float(v)
        for v in values
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ]


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def present_metrics(rows: Sequence[dict[str, Any]], candidates: Iterable[str] = METRICS) -> list[str]:
    """The metrics with at least one finite value in ``rows``."""
    return [m for m in candidates if _finite(r.get(m) for r in rows)]


def summarize(rows: Sequence[dict[str, Any]], metrics: Sequence[str] | None = None) -> list[Summary]:
    """Group rows by (domain, env, noise, rate, method), in the order groups first appear, and average seeds."""
    metrics = list(metrics) if metrics is not None else present_metrics(rows)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in GROUP_KEYS), []).append(row)
    ordered = sorted(groups, key=_group_order(rows))
    out = []
    for key in ordered:
        members = groups[key]
        stats = {m: _mean_std(_finite(r.get(m) for r in members)) for m in metrics}
        out.append(
            Summary(
                dict(zip(GROUP_KEYS, key)),
                len(members),
                {m: s[0] for m, s in stats.items()},
                {m: s[1] for m, s in stats.items()},
            )
        )
    return out


def _group_order(rows: Sequence[dict[str, Any]]):
    """Sort by env and noise as first seen, then rate numerically, then method as first seen."""
    first: dict[tuple[str, Any], int] = {}
    for row in rows:
        for k in ("domain", "env", "noise", "method"):
            first.setdefault((k, row.get(k)), len(first))
    return lambda key: (
        first[("domain", key[0])],
        first[("env", key[1])],
        first[("noise", key[2])],
        float(key[3]) if key[3] is not None else -1.0,
        first[("method", key[4])],
    )


def baseline_deltas(
    rows: Sequence[dict[str, Any]], baseline: str = "bt", metrics: Sequence[str] = DELTA_METRICS
) -> list[Summary]:
    """Per group, ``method - baseline`` paired by seed (mean +- std over seeds); empty without the baseline."""
    metrics = present_metrics(rows, metrics)
    base = {
        tuple(r.get(k) for k in (*GROUP_KEYS[:-1], "seed")): r for r in rows if r.get("method") == baseline
    }
    paired = []
    for row in rows:
        other = base.get(tuple(row.get(k) for k in (*GROUP_KEYS[:-1], "seed")))
        if row.get("method") == baseline or other is None:
            continue
        diff = {k: row.get(k) for k in (*GROUP_KEYS, "seed")}
        for m in metrics:
            a, b = _finite([row.get(m)]), _finite([other.get(m)])
            diff[m] = a[0] - b[0] if a and b else None
        paired.append(diff)
    return summarize(paired, metrics)


def _cell(mean: float, std: float, digits: int = 3, signed: bool = False, sep: str = " ± ") -> str:
    if math.isnan(mean):
        return "-"
    text = f"{mean:+.{digits}f}" if signed else f"{mean:.{digits}f}"
    return text if math.isnan(std) else f"{text}{sep}{std:.{digits}f}"


def _rate(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def table_rows(
    summaries: Sequence[Summary], signed: bool = False, metrics: Sequence[str] | None = None, sep: str = " ± "
) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of a summary table (shared by markdown and rich)."""
    available = list(summaries[0].mean) if summaries else []
    metrics = [m for m in metrics if m in available] if metrics is not None else available
    header = ["env", "noise", "rate", "method", "seeds", *(METRICS.get(m, m) for m in metrics)]
    body = []
    for s in summaries:
        env = s.key["env"] if s.key["domain"] == "control" else f"{s.key['domain']}:{s.key['env']}"
        body.append(
            [
                str(env),
                str(s.key["noise"]),
                _rate(s.key["rate"]),
                str(s.key["method"]),
                str(s.seeds),
                *(_cell(s.mean[m], s.std[m], signed=signed, sep=sep) for m in metrics),
            ]
        )
    return header, body


def markdown_table(summaries: Sequence[Summary], signed: bool = False) -> str:
    header, body = table_rows(summaries, signed)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def rich_table(summaries: Sequence[Summary], title: str, signed: bool = False) -> Any:
    """A ``rich.table.Table`` of the summaries (the CLI prints it)."""
    from rich import box
    from rich.table import Table

    header, body = table_rows(summaries, signed, TERMINAL_METRICS, sep="±")
    # compact: "noise level" in one column, the seed count in the title
    seeds = sorted({row[4] for row in body})
    table = Table(
        title=f"{title}; seeds per row: {', '.join(seeds)}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for index, name in enumerate(["env", "noise", "method", *header[5:]]):
        table.add_column(name, no_wrap=True, justify="left" if index < 3 else "right")
    previous = None
    for row in body:
        if previous is not None and tuple(row[:3]) != previous:
            table.add_section()
        table.add_row(row[0], f"{row[1]} {row[2]}", row[3], *row[5:])
        previous = tuple(row[:3])
    return table


def csv_text(summaries: Sequence[Summary]) -> str:
    """One CSV line per group: keys, seeds, then ``<metric>_mean, <metric>_std`` for each metric."""
    metrics = list(summaries[0].mean) if summaries else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*GROUP_KEYS, "seeds", *(f"{m}_{s}" for m in metrics for s in ("mean", "std"))])
    for s in summaries:
        writer.writerow(
            [
                *(s.key[k] for k in GROUP_KEYS),
                s.seeds,
                *(f"{v:.6g}" for m in metrics for v in (s.mean[m], s.std[m])),
            ]
        )
    return buffer.getvalue()


def plot(summaries: Sequence[Summary], path: str | Path, metrics: Sequence[str] = PLOT_METRICS) -> Path:
    """PNG: one row of panels per (env, noise), one panel per metric vs corruption rate, one line per method.

    Lines are the mean over seeds, shaded bands +- one std.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in metrics if any(not math.isnan(s.mean.get(m, math.nan)) for s in summaries)]
    if not metrics:
        raise UsageError("nothing to plot: no row has any of " + ", ".join(PLOT_METRICS))
    panels: dict[tuple, list[Summary]] = {}
    for s in summaries:
        panels.setdefault((s.key["domain"], s.key["env"], s.key["noise"]), []).append(s)
    fig, axes = plt.subplots(
        len(panels), len(metrics), figsize=(4.2 * len(metrics), 3.3 * len(panels)), squeeze=False
    )
    methods = list(dict.fromkeys(s.key["method"] for s in summaries))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    for row, ((domain, env, noise), group) in enumerate(panels.items()):
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            for method in methods:
                points = sorted(
                    (float(s.key["rate"]), s.mean[metric], s.std[metric])
                    for s in group
                    if s.key["method"] == method and not math.isnan(s.mean[metric])
                )
                if not points:
                    continue
                x, y, e = (np.array(v) for v in zip(*points))
                ax.plot(x, y, marker="o", label=method, color=colors[method])
                ax.fill_between(
                    x, y - np.nan_to_num(e), y + np.nan_to_num(e), alpha=0.15, color=colors[method]
                )
            ax.set_title(f"{env} - {noise}", fontsize=10)
            ax.set_xlabel(f"{noise} teacher: {NOISE_AXES.get(noise, 'noise level')}")
            ax.set_ylabel(PLOT_LABELS.get(metric, METRICS.get(metric, metric)))
            ax.grid(alpha=0.3)
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    fig.suptitle("reward learning under corrupted preferences (mean ± std over seeds)", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


@dataclass
class Report:
    """The files of a rendered report and the summaries behind them."""

    markdown: Path
    csv: Path
    png: Path | None
    summaries: list[Summary]
    deltas: list[Summary]


def render_report(
    out_dir: str | Path,
    header: str = "",
    stem: str = REPORT_STEM,
    target_dir: str | Path | None = None,
    method_order: Sequence[str] = (),
) -> Report:
    """Write ``<stem>.md``, ``<stem>.csv`` and ``<stem>.png`` for the ``results.jsonl`` in ``out_dir``.

    Rows are in the order cells finished; methods are listed in ``method_order`` (then as first seen).
    """
    out_dir = Path(out_dir)
    rank = {m: i for i, m in enumerate(method_order)}
    rows = sorted(read_rows(out_dir / RESULTS_FILE), key=lambda r: rank.get(r.get("method"), len(rank)))
    if not rows:
        raise UsageError(f"no finished cells in {out_dir / RESULTS_FILE}; run a sweep into that folder first")
    target = Path(target_dir) if target_dir is not None else out_dir
    summaries = summarize(rows)
    deltas = baseline_deltas(rows)
    png = plot(summaries, target / f"{stem}.png") if present_metrics(rows, PLOT_METRICS) else None
    parts = [
        header.rstrip() + "\n\n" if header else "",
        f"{len(rows)} cells; mean ± std over seeds.\n\n",
        markdown_table(summaries),
    ]
    if deltas:
        parts += [
            (
                "\nPaired difference to Bradley-Terry (`bt`), same seed, same labels (mean ± std over seeds; "
                "positive = better than bt):\n\n"
            ),
            markdown_table(deltas, signed=True),
        ]
    if png is not None:
        parts.append(f"\n![plot]({png.name})\n")
    markdown = target / f"{stem}.md"
    atomic_write_text(markdown, "".join(parts))
    csv_path = target / f"{stem}.csv"
    atomic_write_text(csv_path, csv_text(summaries))
    return Report(markdown, csv_path, png, summaries, deltas)
