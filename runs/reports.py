"""Reports of a sweep per (env, noise, rate, method), as markdown, CSV, PNG and rich tables.

Every number is an interquartile mean (IQM) over seeds with a stratified-bootstrap 95 % CI, next to
the number of seeds behind it; a method is compared with the baseline (``bt``) by the paired
difference (same seed, same teacher labels and rollouts, so the seed-to-seed spread cancels) with a
Student-t 95 % CI, and by the probability of improvement ``P(method > bt)``; see
:mod:`aligngym.runs.statistics`. Everything is computed from ``results.jsonl`` alone, so
``aligngym bench report DIR`` re-renders a report of a finished, running or killed sweep.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aligngym.files import atomic_path, atomic_write_text
from aligngym.runs import statistics
from aligngym.runs.errors import UsageError
from aligngym.runs.statistics import NO_ESTIMATE, Interval
from aligngym.runs.sweep import RESULTS_FILE, finished_rows, read_rows

GROUP_KEYS = ("domain", "env", "noise", "rate", "method")
# metric key -> column title; the table shows those present in the rows, in this order
METRICS: dict[str, str] = {
    "clean_accuracy": "clean acc",
    "hard_accuracy": "hard-25% acc",
    "spearman": "Spearman",
    "epic": "EPIC ↓",
    "policy_tau": "policy tau",
    "ece": "ECE ↓",
    "gap_ratio": "gap ratio",
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
DELTA_METRICS = (
    "clean_accuracy",
    "hard_accuracy",
    "spearman",
    "epic",
    "policy_tau",
    "ece",
    "normalized_return",
    "rl_clean_accuracy",
)
REPORT_STEM = "report"


@dataclass
class Summary:
    """One group of rows (one method at one noise setting): per-metric mean, std and an interval.

    ``intervals`` holds the IQM with its bootstrap CI for a group of results, the paired mean
    difference with its t CI for a group of differences (:func:`baseline_deltas`), or ``P(> bt)``
    with its CI (:func:`improvement_over_baseline`); each interval's ``n`` is the number of seeds
    with a finite value of that metric (``seeds`` counts the rows of the group).
    """

    key: dict[str, Any]
    seeds: int
    mean: dict[str, float]
    std: dict[str, float]
    intervals: dict[str, Interval] = field(default_factory=dict)


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


def _iqm(values: list[float]) -> Interval:
    return statistics.iqm_interval(np.array(values)) if values else NO_ESTIMATE


def _paired(values: list[float]) -> Interval:
    return statistics.paired_difference(np.array(values), np.zeros(len(values))) if values else NO_ESTIMATE


def _groups(rows: Sequence[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    """Rows by (domain, env, noise, rate, method), sorted as :func:`_group_order` says."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in GROUP_KEYS), []).append(row)
    order = _group_order(rows)
    return {key: groups[key] for key in sorted(groups, key=order)}


def summarize(
    rows: Sequence[dict[str, Any]],
    metrics: Sequence[str] | None = None,
    interval: Any = _iqm,
) -> list[Summary]:
    """Group rows by (domain, env, noise, rate, method) and summarise each metric over seeds.

    ``interval`` maps a metric's finite values to an :class:`Interval` (default: IQM with its CI).
    """
    metrics = list(metrics) if metrics is not None else present_metrics(rows)
    out = []
    for key, members in _groups(rows).items():
        values = {m: _finite(r.get(m) for r in members) for m in metrics}
        moments = {m: _mean_std(v) for m, v in values.items()}
        out.append(
            Summary(
                dict(zip(GROUP_KEYS, key)),
                len(members),
                {m: s[0] for m, s in moments.items()},
                {m: s[1] for m, s in moments.items()},
                {m: interval(v) for m, v in values.items()},
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
    """Per group, ``method - baseline`` paired by seed: mean [t 95 % CI]; empty without the baseline."""
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
    return summarize(paired, metrics, interval=_paired)


def improvement_over_baseline(
    rows: Sequence[dict[str, Any]], baseline: str = "bt", metrics: Sequence[str] = DELTA_METRICS
) -> list[Summary]:
    """Per group, ``P(method > baseline)`` over the seeds of both (ties 1/2) with a bootstrap 95 % CI."""
    metrics = present_metrics(rows, metrics)
    groups = _groups(rows)
    base = {key[:-1]: members for key, members in groups.items() if key[-1] == baseline}
    out = []
    for key, members in groups.items():
        reference = base.get(key[:-1])
        if key[-1] == baseline or reference is None:
            continue
        intervals = {}
        for m in metrics:
            x, y = _finite(r.get(m) for r in members), _finite(r.get(m) for r in reference)
            intervals[m] = (
                statistics.improvement_interval(np.array(x), np.array(y)) if x and y else NO_ESTIMATE
            )
        nan = dict.fromkeys(metrics, math.nan)
        out.append(Summary(dict(zip(GROUP_KEYS, key)), len(members), nan, dict(nan), intervals))
    return out


def _cell(interval: Interval, seeds: int, digits: int = 3, signed: bool = False, ci: bool = True) -> str:
    """``value [low, high]`` (or the value alone), with ``(n=k)`` when fewer seeds than rows have a value."""
    text = (
        interval.text(digits, signed)
        if ci
        else Interval(interval.value, math.nan, math.nan, 0).text(digits, signed)
    )
    return f"{text} (n={interval.n})" if 0 < interval.n < seeds else text


def _rate(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def table_rows(
    summaries: Sequence[Summary],
    signed: bool = False,
    metrics: Sequence[str] | None = None,
    ci: bool = True,
    digits: int = 3,
) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of a summary table (shared by markdown and rich): intervals with their CIs."""
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
                *(_cell(s.intervals[m], s.seeds, digits, signed, ci) for m in metrics),
            ]
        )
    return header, body


def markdown_table(summaries: Sequence[Summary], signed: bool = False) -> str:
    header, body = table_rows(summaries, signed)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def rich_table(
    summaries: Sequence[Summary],
    title: str,
    signed: bool = False,
    metrics: Sequence[str] = TERMINAL_METRICS,
    ci: bool = False,
) -> Any:
    """A ``rich.table.Table`` of the summaries (the CLI prints it); ``ci=False``: the estimates only."""
    from rich import box
    from rich.table import Table

    header, body = table_rows(summaries, signed, metrics, ci=ci)
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


CSV_FIELDS = ("iqm", "ci_low", "ci_high", "n", "mean", "std")


def csv_text(summaries: Sequence[Summary]) -> str:
    """One CSV line per group: keys, seeds, then per metric its IQM, 95 % CI, seed count, mean and std."""
    metrics = list(summaries[0].mean) if summaries else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*GROUP_KEYS, "seeds", *(f"{m}_{f}" for m in metrics for f in CSV_FIELDS)])
    for s in summaries:
        cells = []
        for m in metrics:
            i = s.intervals[m]
            cells += [f"{v:.6g}" for v in (i.value, i.low, i.high)] + [i.n]
            cells += [f"{v:.6g}" for v in (s.mean[m], s.std[m])]
        writer.writerow([*(s.key[k] for k in GROUP_KEYS), s.seeds, *cells])
    return buffer.getvalue()


REFERENCE_LINES = {"normalized_return": ((0.0, "random policy (0)", "--"), (1.0, "true-reward RL (1)", ":"))}


def _robust_limits(
    points: list[float], intervals: list[tuple[float, float]], references: Sequence[float] = ()
) -> tuple:
    """y-limits around the estimates and their CIs, robust to one wild interval.

    CI ends count up to ``reach`` beyond the estimates: the larger of the estimates' spread and twice
    the median CI half-width. So typical CIs show whole, while one wild seed's huge CI is cut instead
    of flattening every other line; reference lines always show.
    """
    points = [v for v in points if math.isfinite(v)] + list(references)
    if not points:
        return None
    low, high = min(points), max(points)
    pairs = [(a, b) for a, b in intervals if math.isfinite(a) and math.isfinite(b)]
    halves = [(b - a) / 2 for a, b in pairs]
    typical = float(np.median(halves)) if halves else 0.0
    reach = max(high - low, 2 * typical, 0.05 * max(abs(low), abs(high)), 1e-3)
    ends = [v for pair in pairs for v in pair]
    low = max(min([low, *ends]), low - reach)
    high = min(max([high, *ends]), high + reach)
    pad = max(0.05 * (high - low), 0.1 * reach)
    return low - pad, high + pad


def _seed_caption(summaries: Sequence[Summary]) -> str:
    seeds = sorted({s.seeds for s in summaries})
    return f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"


def plot(
    summaries: Sequence[Summary],
    path: str | Path,
    metrics: Sequence[str] = PLOT_METRICS,
    deltas: Sequence[Summary] = (),
    baseline: str = "bt",
    return_note: str = "",
) -> Path:
    """PNG: one row of panels per (env, noise); one panel per metric vs noise level, one line per method.

    Lines are IQMs over seeds, shaded bands their 95 % bootstrap CIs; the last panel of a row shows the
    paired difference to ``baseline`` (mean and t 95 % CI) of the headline metric (normalised return
    when the sweep has an RL phase, else clean accuracy). The normalised-return panel has reference
    lines at 0 (random policy) and 1 (RL on the true reward); ``return_note`` is written across it
    (e.g. that the RL budget cannot separate methods).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def has(rows: Sequence[Summary], m: str) -> bool:
        return any(math.isfinite(s.intervals[m].value) for s in rows if m in s.intervals)

    metrics = [m for m in metrics if has(summaries, m)]
    if not metrics:
        raise UsageError("nothing to plot: no row has any of " + ", ".join(PLOT_METRICS))
    headline = next((m for m in ("normalized_return", "clean_accuracy") if has(deltas, m)), None)
    panels: dict[tuple, list[Summary]] = {}
    for s in summaries:
        panels.setdefault((s.key["domain"], s.key["env"], s.key["noise"]), []).append(s)
    columns = len(metrics) + (headline is not None)
    fig, axes = plt.subplots(len(panels), columns, figsize=(4.3 * columns, 3.4 * len(panels)), squeeze=False)
    methods = list(dict.fromkeys(s.key["method"] for s in summaries))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    for row, ((domain, env, noise), group) in enumerate(panels.items()):
        xlabel = f"{noise} teacher: {NOISE_AXES.get(noise, 'noise level')}"
        levels = sorted({float(s.key["rate"]) for s in group})
        for col, metric in enumerate(metrics):
            ax = axes[row][col]
            points, ends = [], []
            for method in methods:
                series = sorted(
                    (float(s.key["rate"]), s.intervals[metric])
                    for s in group
                    if s.key["method"] == method and math.isfinite(s.intervals[metric].value)
                )
                if not series:
                    continue
                x = np.array([r for r, _ in series])
                y = np.array([i.value for _, i in series])
                low = np.array([i.low if math.isfinite(i.low) else i.value for _, i in series])
                high = np.array([i.high if math.isfinite(i.high) else i.value for _, i in series])
                ax.plot(x, y, marker="o", label=method, color=colors[method])
                ax.fill_between(x, low, high, alpha=0.15, color=colors[method])
                if len(x) == 1:
                    ax.errorbar(x, y, yerr=[y - low, high - y], fmt="none", capsize=4, color=colors[method])
                points += list(y)
                ends += list(zip(low, high))
            references = REFERENCE_LINES.get(metric, ())
            for level, label, style in references:
                ax.axhline(level, color="0.3", linestyle=style, linewidth=1.0, label=label)
            limits = _robust_limits(points, ends, [level for level, _, _ in references])
            if limits is not None:
                ax.set_ylim(*limits)
            if metric == "normalized_return" and return_note:
                ax.set_title(f"{env} - {noise}\n{return_note}", fontsize=9, color="darkred")
            else:
                ax.set_title(f"{env} - {noise}", fontsize=10)
            ax.set_xlabel(xlabel, fontsize=9)
            ax.set_xticks(levels)
            ax.set_ylabel(PLOT_LABELS.get(metric, METRICS.get(metric, metric)), fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        if headline is not None:
            _delta_panel(axes[row][-1], deltas, (domain, env, noise), headline, methods, colors, baseline)
            axes[row][-1].set_xlabel(xlabel, fontsize=9)
            axes[row][-1].set_xticks(levels)
    fig.suptitle(
        f"reward learning under corrupted preferences: IQM over {_seed_caption(summaries)} seeds per point, "
        "bands = 95 % stratified-bootstrap CI\nright: paired difference to "
        f"{baseline} with t 95 % CI",
        fontsize=10,
    )
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def _delta_panel(
    ax: Any,
    deltas: Sequence[Summary],
    panel: tuple,
    metric: str,
    methods: Sequence[str],
    colors: dict[str, Any],
    baseline: str,
) -> None:
    """Paired differences to the baseline (error bars = t 95 % CI), methods side by side at each level."""
    group = [d for d in deltas if (d.key["domain"], d.key["env"], d.key["noise"]) == panel]
    others = [m for m in methods if m != baseline]
    rates = sorted({float(d.key["rate"]) for d in group})
    step = min(np.diff(rates)) if len(rates) > 1 else 1.0
    width = 0.6 * step / max(len(others), 1)
    points, ends = [], []
    for index, method in enumerate(others):
        series = sorted(
            (float(d.key["rate"]), d.intervals[metric])
            for d in group
            if d.key["method"] == method and math.isfinite(d.intervals[metric].value)
        )
        if not series:
            continue
        offset = (index - (len(others) - 1) / 2) * width
        x = np.array([r for r, _ in series]) + offset
        y = np.array([i.value for _, i in series])
        low = np.array([i.low if math.isfinite(i.low) else i.value for _, i in series])
        high = np.array([i.high if math.isfinite(i.high) else i.value for _, i in series])
        ax.errorbar(x, y, yerr=[y - low, high - y], fmt="o", capsize=3, color=colors[method], label=method)
        points += list(y)
        ends += list(zip(low, high))
    ax.axhline(0.0, color="0.3", linewidth=1.0, linestyle="--", label=f"= {baseline}")
    limits = _robust_limits(points, ends, [0.0])
    if limits is not None:
        ax.set_ylim(*limits)
    env, noise = panel[1], panel[2]
    ax.set_title(f"{env} - {noise}: paired difference to {baseline}", fontsize=10)
    ax.set_ylabel(f"{PLOT_LABELS.get(metric, metric)} - {baseline}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


CLEARLY_LEARNED = 0.8
"""The reference agent has clearly learned when it closes this share of the gap from random to the published score."""
RESOLVABLE_GAP = 0.5
"""A normalised-return column separates methods only if it detects gaps below this (80 % power)."""
TARGET_GAP = 0.2
"""The gap the seed count is sized for: a fifth of the way from random to true-reward RL."""
POWER = 0.8


def _reference_lines(
    env: str, references: Sequence[dict[str, Any]], published: dict[str, Any] | None
) -> tuple[list[str], bool]:
    """What the reference agent reached against random and the published score; whether it clearly learned."""
    true_rl = np.array(_finite(r.get("true_rl_return") for r in references))
    random = np.array(_finite(r.get("random_return") for r in references))
    if not len(true_rl) or len(true_rl) != len(random):
        return [f"{env}: no reference returns recorded"], False
    learned = statistics.paired_difference(true_rl, random) if len(true_rl) > 1 else None
    rl, rnd = statistics.iqm_interval(true_rl), statistics.iqm_interval(random)
    line = (
        f"{env}: true-reward RL (same algorithm and budget) reaches {rl.text(1)} over {rl.n} seeds, "
        f"random {rnd.text(1)}"
    )
    clearly = learned is not None and learned.low > 0
    if published:
        score = float(published["return"])
        fraction = (rl.value - rnd.value) / (score - rnd.value) if score != rnd.value else math.nan
        line += (
            f"; published {score:g} ({published.get('source', 'no source given')}): it gets "
            f"{100 * fraction:.0f} % of the way from random to the published score"
        )
        clearly = clearly and fraction >= CLEARLY_LEARNED
    verdict = "has clearly learned" if clearly else "has NOT clearly learned"
    criterion = (
        f"criterion: above random with 95 % confidence and >= {100 * CLEARLY_LEARNED:.0f} % of the way "
        "from random to the published score"
    )
    return [f"{line}. It {verdict} ({criterion})."], clearly


def return_verdict(
    rows: Sequence[dict[str, Any]],
    references: Sequence[dict[str, Any]],
    published: dict[str, dict[str, Any]] | None = None,
    baseline: str = "bt",
) -> list[str]:
    """Plain-language lines on whether the RL phase can separate methods, and whether any method does.

    Empty when no row has a normalised return. The resolution is the gap in normalised return that the
    paired t test detects with 80 % power at the seeds run, from the measured spread of the paired
    differences (median over noise settings and methods).
    """
    if not present_metrics(rows, ["normalized_return"]):
        return []
    lines, learned = [], True
    for env in dict.fromkeys(r.get("env") for r in rows):
        own = [r for r in references if r.get("env") == env]
        text, clearly = _reference_lines(str(env), own, (published or {}).get(str(env)))
        lines += text
        learned = learned and clearly
    deltas = [d for d in baseline_deltas(rows, baseline, ["normalized_return"]) if d.intervals]
    paired = [d.intervals["normalized_return"] for d in deltas]
    spreads = [d.std["normalized_return"] for d in deltas if math.isfinite(d.std["normalized_return"])]
    seeds = min((i.n for i in paired), default=0)
    if not spreads or seeds < 2:
        lines.append(
            "Resolution: fewer than 2 paired seeds per method and setting: no CI, the return column "
            "cannot separate methods."
        )
        return lines
    sd = float(np.median(spreads))
    needed = statistics.seeds_for_power(TARGET_GAP, sd, POWER)
    # per setting: the gap its paired t test detects with 80 % power at its own seeds and spread
    gaps = {
        id(d): statistics.detectable_gap(
            d.std["normalized_return"], d.intervals["normalized_return"].n, POWER
        )
        for d in deltas
    }
    finite = [g for g in gaps.values() if math.isfinite(g)]
    gap = max(finite) if finite else math.nan
    per_setting = "; ".join(
        f"{d.key['method']} at {d.key['noise']} {_rate(d.key['rate'])}: {gaps[id(d)]:.2f} "
        f"(sd {d.std['normalized_return']:.3f}, {d.intervals['normalized_return'].n} seeds)"
        for d in deltas
        if math.isfinite(gaps[id(d)])
    )
    lines.append(
        f"Resolution: the smallest gap in normalised return that the paired t test against {baseline} "
        f"detects with {100 * POWER:.0f} % power, from the spread of the paired differences: "
        f"{per_setting}. At the median sd {sd:.3f} a gap of {TARGET_GAP} needs "
        f"{needed if needed else '> 10000'} seeds."
    )
    if not learned:
        lines.append(
            "Verdict: at this RL budget the return column CANNOT separate methods (the reference agent "
            "has not clearly learned, so a normalised return of 1 is no achievement); read the "
            "reward-learning columns, or run a recipe whose reference agent learns (extended, paper)."
        )
        return lines
    coarse_settings = [
        f"{d.key['method']} at {d.key['noise']} {_rate(d.key['rate'])}"
        for d in deltas
        if gaps[id(d)] > RESOLVABLE_GAP
    ]
    coarse = bool(coarse_settings)
    if coarse:
        lines.append(
            f"The resolution is COARSE for {', '.join(coarse_settings)}: only gaps of more than "
            f"{RESOLVABLE_GAP} of the way from random to true-reward RL are detected there with "
            f"{100 * POWER:.0f} % power; smaller differences go unseen."
        )
    significant = [
        f"{d.key['method']} at {d.key['noise']} {_rate(d.key['rate'])}: "
        f"{d.intervals['normalized_return'].text(3, signed=True)}"
        for d in deltas
        if d.intervals["normalized_return"].excludes(0.0)
    ]
    if significant:
        rest = len(deltas) - len(significant)
        lines.append(
            f"Verdict: normalised return differs from {baseline} (paired 95 % CI excludes 0) for "
            + "; ".join(significant)
            + (f"; the other {rest} of {len(deltas)} paired CIs cover 0." if rest else ".")
        )
    else:
        lines.append(
            f"Verdict: no method's normalised return differs from {baseline}: all {len(deltas)} paired "
            f"95 % CIs cover 0 (gaps above the resolution, at most {gap:.2f}, would have been seen with "
            f"{100 * POWER:.0f} % power"
            + ("; smaller ones would not: no evidence either way below that)." if coarse else ").")
        )
    return lines


def _return_note(verdict: Sequence[str]) -> str:
    if any("CANNOT separate" in line for line in verdict):
        return "(this RL budget cannot separate methods)"
    if any("resolution is COARSE" in line for line in verdict):
        return "(coarse: these seeds miss small gaps; see the verdict)"
    return ""


@dataclass
class Report:
    """The files of a rendered report, the summaries behind them and the verdict on the return column."""

    markdown: Path
    csv: Path
    png: Path | None
    summaries: list[Summary]
    deltas: list[Summary]
    improvements: list[Summary] = field(default_factory=list)
    verdict: list[str] = field(default_factory=list)


SELECTION_NOTES = {
    "noisy": "the epoch with the best accuracy on the teacher's (noisy) validation labels",
    "oracle": "ORACLE setting: the epoch with the best accuracy on CLEAN validation labels (optimistic: "
    "a user has no clean labels)",
    "last-epoch": "the last epoch (no validation pairs)",
}


def _selection_note(rows: Sequence[dict[str, Any]]) -> str:
    """Which model selection the fixed-pairs rows used (rows record it as ``selection``); '' if none say."""
    found = sorted({str(r["selection"]) for r in rows if r.get("selection")})
    if not found:
        return ""
    return "Model selection: " + "; ".join(f"`{s}` = {SELECTION_NOTES.get(s, s)}" for s in found) + ".\n\n"


def render_report(
    out_dir: str | Path,
    header: str = "",
    stem: str = REPORT_STEM,
    target_dir: str | Path | None = None,
    method_order: Sequence[str] = (),
    published: dict[str, dict[str, Any]] | None = None,
) -> Report:
    """Write ``<stem>.md``, ``<stem>.csv`` and ``<stem>.png`` for the ``results.jsonl`` in ``out_dir``.

    Rows are in the order cells finished; methods are listed in ``method_order`` (then as first seen).
    ``published`` maps an env to ``{return, source}``, the published score the reference agent is
    compared with (``references.jsonl`` in ``out_dir`` holds the reference returns).
    """
    out_dir = Path(out_dir)
    rank = {m: i for i, m in enumerate(method_order)}
    # One row per cell key (the first successful one): a duplicate is no extra seed, an error row no result.
    rows = finished_rows(read_rows(out_dir / RESULTS_FILE))
    rows = sorted(rows, key=lambda r: rank.get(r.get("method"), len(rank)))
    if not rows:
        raise UsageError(f"no finished cells in {out_dir / RESULTS_FILE}; run a sweep into that folder first")
    target = Path(target_dir) if target_dir is not None else out_dir
    summaries = summarize(rows)
    deltas = baseline_deltas(rows)
    improvements = improvement_over_baseline(rows)
    references = finished_rows(read_rows(out_dir / "references.jsonl"))
    verdict = return_verdict(rows, references, published)
    png = (
        plot(summaries, target / f"{stem}.png", deltas=deltas, return_note=_return_note(verdict))
        if present_metrics(rows, PLOT_METRICS)
        else None
    )
    seeds = _seed_caption(summaries)
    parts = [
        header.rstrip() + "\n\n" if header else "",
        (
            f"{len(rows)} cells, {seeds} seeds per row. Each number is the interquartile mean (IQM) over "
            "seeds [stratified-bootstrap 95 % CI]; `(n=k)` marks a number behind which fewer seeds stand "
            "than the row has.\n\n"
        ),
    ]
    parts.append(_selection_note(rows))
    if verdict:
        parts += ["**Policy return**\n\n" + "".join(f"- {line}\n" for line in verdict) + "\n"]
    parts.append(markdown_table(summaries))
    if deltas:
        parts += [
            (
                "\nPaired difference to Bradley-Terry (`bt`), same seed, same labels: mean of the per-seed "
                "differences [Student-t 95 % CI]; positive = better than bt (for the metrics marked ↓, "
                "negative = better, and P(improvement) below 0.5 = better):\n\n"
            ),
            markdown_table(deltas, signed=True),
            (
                "\nProbability of improvement over `bt`: P(a seed of the method beats a seed of bt), ties "
                "1/2 [stratified-bootstrap 95 % CI]; 0.5 = no difference:\n\n"
            ),
            markdown_table(improvements),
        ]
    if png is not None:
        parts.append(f"\n![plot]({png.name})\n")
    markdown = target / f"{stem}.md"
    atomic_write_text(markdown, "".join(parts))
    csv_path = target / f"{stem}.csv"
    atomic_write_text(csv_path, csv_text(summaries))
    return Report(markdown, csv_path, png, summaries, deltas, improvements, verdict)
