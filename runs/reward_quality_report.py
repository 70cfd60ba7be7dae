"""The reward-quality report (issue 15): the fixed-pairs benchmark's table plus each target, met or not.

Merges the ``results.jsonl`` of one or more ``quality`` sweeps (e.g. HalfCheetah and Hopper), renders the
usual report (``runs/reports.py``: IQM [bootstrap CI], paired differences to bt, P(improvement)) under a
header that answers the issue's questions from the same rows:

- gap closed at 20 % / 40 % uniform flips: ``(acc(method) - acc(bt, noisy)) / (acc(bt, clean) - acc(bt, noisy))``
  on means over the seeds all three share, with a paired percentile-bootstrap 95 % CI (seeds resampled
  jointly); the target is >= 0.5 for the best method;
- outlier detection at 20 % flips: precision and recall of the flagged pairs (IQM [CI]); target >= 0.7 both;
- adaptive scaling on its own claim (noise-free labels): clean accuracy, ECE, the gap-curve ratio, EPIC and
  policy tau, paired differences to bt (t CI), and the binned learned-vs-true gap curve itself;
- per noise setting, the method with the best clean accuracy and R3M's paired difference to bt.

    python -m aligngym.runs.reward_quality_report results/quality results/quality-hopper \\
        --out benchmarks/results --overhead benchmarks/results/loss_overhead.json
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aligngym.runs import statistics
from aligngym.runs.reports import render_report
from aligngym.runs.sweep import RESULTS_FILE, finished_rows, read_rows

STEM = "reward_quality"
METHOD_ORDER = ("bt", "r3m", "adaptive", "rime", "smoothing")
FLAGGING = ("r3m", "rime")
TARGET_GAP, TARGET_PR = 0.5, 0.7


def _values(rows: Sequence[dict], env: str, noise: str, rate: float, method: str, metric: str) -> dict:
    """seed -> finite value of ``metric`` for one grid point."""
    out = {}
    for r in rows:
        if (r["env"], r["noise"], r["method"]) == (env, noise, method) and math.isclose(r["rate"], rate):
            v = r.get(metric)
            if isinstance(v, (int, float)) and math.isfinite(v):
                out[r["seed"]] = float(v)
    return out


def gap_closed(
    rows: Sequence[dict], env: str, rate: float, method: str, reps: int = 10_000, seed: int = 0
) -> statistics.Interval:
    """Share of the bt clean-vs-noisy accuracy gap that ``method`` closes at ``rate`` uniform flips."""
    a = _values(rows, env, "mistake", rate, method, "clean_accuracy")
    b = _values(rows, env, "mistake", rate, "bt", "clean_accuracy")
    c = _values(rows, env, "mistake", 0.0, "bt", "clean_accuracy")
    seeds = sorted(set(a) & set(b) & set(c))
    if not seeds:
        return statistics.NO_ESTIMATE
    x = np.array([[a[s], b[s], c[s]] for s in seeds])

    def ratio(m: np.ndarray) -> np.ndarray:  # m: [..., 3] means
        gap = m[..., 2] - m[..., 1]
        return np.where(gap > 0, (m[..., 0] - m[..., 1]) / np.where(gap > 0, gap, 1.0), np.nan)

    value = float(ratio(x.mean(axis=0)))
    if len(seeds) < 2:
        return statistics.Interval(value, math.nan, math.nan, len(seeds))
    index = np.random.default_rng(seed).integers(len(seeds), size=(reps, len(seeds)))
    samples = ratio(x[index].mean(axis=1))
    low, high = np.nanpercentile(samples, [2.5, 97.5])
    return statistics.Interval(value, float(low), float(high), len(seeds))


def _iqm(rows, env, noise, rate, method, metric) -> statistics.Interval:
    values = list(_values(rows, env, noise, rate, method, metric).values())
    return statistics.iqm_interval(np.array(values)) if values else statistics.NO_ESTIMATE


def _paired(rows, env, noise, rate, method, metric, baseline="bt") -> statistics.Interval:
    x, y = (_values(rows, env, noise, rate, m, metric) for m in (method, baseline))
    seeds = sorted(set(x) & set(y))
    if not seeds:
        return statistics.NO_ESTIMATE
    return statistics.paired_difference(np.array([x[s] for s in seeds]), np.array([y[s] for s in seeds]))


def _methods(rows: Sequence[dict]) -> list[str]:
    present = {r["method"] for r in rows}
    return [m for m in METHOD_ORDER if m in present] + sorted(present - set(METHOD_ORDER))


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def targets_markdown(rows: Sequence[dict], overhead: dict | None = None) -> str:
    """The issue's targets, each answered from ``rows`` (and the loss-overhead benchmark's JSON)."""
    envs = list(dict.fromkeys(r["env"] for r in rows))
    methods = _methods(rows)
    lines = [
        "## Targets (fixed pairs, equal epochs, model selection on the teacher's noisy validation labels)",
        "",
    ]
    for rate in (0.2, 0.4):
        lines += [
            (
                f"**Accuracy gap closed at {rate:.0%} uniform flips**: (method - bt noisy) / (bt clean - bt noisy), "
                "means over seeds [paired bootstrap 95 % CI]; target >= 0.5 for the best method."
            ),
            "",
            "| env | bt clean | bt noisy | " + " | ".join(m for m in methods if m != "bt") + " | target |",
            "|" + " --- |" * (len(methods) + 3),
        ]
        for env in envs:
            clean = _iqm(rows, env, "mistake", 0.0, "bt", "clean_accuracy")
            noisy = _iqm(rows, env, "mistake", rate, "bt", "clean_accuracy")
            ratios = {m: gap_closed(rows, env, rate, m) for m in methods if m != "bt"}
            finite = {m: r for m, r in ratios.items() if not math.isnan(r.value)}
            if not finite:
                continue
            best = max(finite, key=lambda m: finite[m].value)
            cells = [ratios[m].text(2) for m in methods if m != "bt"]
            verdict = f"{_met(finite[best].value >= TARGET_GAP)} (best: {best}, {finite[best].value:.2f})"
            lines.append(
                f"| {env} | {clean.text(3)} | {noisy.text(3)} | " + " | ".join(cells) + f" | {verdict} |"
            )
        lines.append("")
    lines += [
        (
            "**Outlier detection at 20 % flips**: precision / recall of the flagged training pairs against the "
            "teacher's flips (IQM [CI]); target: both >= 0.7 for at least one method."
        ),
        "",
        "| env | method | flagged | precision | recall | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for env in envs:
        for m in (f for f in FLAGGING if f in methods):
            p = _iqm(rows, env, "mistake", 0.2, m, "outlier_precision")
            r = _iqm(rows, env, "mistake", 0.2, m, "outlier_recall")
            f = _iqm(rows, env, "mistake", 0.2, m, "flagged_fraction")
            if math.isnan(p.value):
                continue
            ok = p.value >= TARGET_PR and r.value >= TARGET_PR
            lines.append(f"| {env} | {m} | {f.text(3)} | {p.text(3)} | {r.text(3)} | {_met(ok)} |")
    lines.append("")
    if overhead:
        lines += [
            "**Extra cost per epoch** (`aligngym bench loss-overhead`, median of paired CPU-time ratios to "
            f"bt, load average {overhead['meta']['load_average'][0]:.1f} on {overhead['meta']['cpus']} CPUs): "
            + "; ".join(
                f"{row['loss']} {row['epoch_cpu_ratio_median']:.3f}"
                + (
                    f" (target <= {row['target']:.2f}: {_met(row['epoch_cpu_ratio_median'] <= row['target'])})"
                    if row.get("target")
                    else ""
                )
                for row in overhead["rows"]
                if row["loss"].startswith(("r3m", "rime"))
            ),
            "",
        ]
    lines += _adaptive_section(rows, envs)
    lines += _noise_section(rows, envs, methods)
    return "\n".join(lines) + "\n"


QUALITY = (
    ("clean_accuracy", "clean acc", "higher"),
    ("ece", "ECE", "lower"),
    ("gap_ratio", "gap ratio (top / bottom fifth)", "higher = steeper"),
    ("epic", "EPIC", "lower"),
    ("policy_tau", "policy tau", "higher"),
)


def _adaptive_section(rows: Sequence[dict], envs: list[str]) -> list[str]:
    lines = [
        (
            "**Adaptive scaling on its own claim** (noise-free labels, mistake 0): paired difference adaptive - bt "
            "[t 95 % CI]. The claim: a steeper learned-vs-true gap curve (larger gaps on clear pairs, smaller on "
            "ambiguous ones) and better calibration, at equal accuracy."
        ),
        "",
        "| env | " + " | ".join(f"{title} ({better})" for _, title, better in QUALITY) + " |",
        "|" + " --- |" * (len(QUALITY) + 1),
    ]
    for env in envs:
        diffs = [_paired(rows, env, "mistake", 0.0, "adaptive", metric) for metric, _, _ in QUALITY]
        if all(math.isnan(d.value) for d in diffs):
            continue
        lines.append(f"| {env} | " + " | ".join(d.text(3, signed=True) for d in diffs) + " |")
    lines += [
        "",
        (
            "Binned gap curve at mistake 0: mean |learned gap| per fifth of |true gap| (smallest first), divided "
            "by the mean |learned gap| (mean over seeds; a flat curve is all 1)."
        ),
        "",
        "| env | method | bins 1-5 |",
        "| --- | --- | --- |",
    ]
    for env in envs:
        for method in _methods(rows):
            curves = [
                r["gap_curve"]
                for r in rows
                if (r["env"], r["noise"], r["method"]) == (env, "mistake", method)
                and r["rate"] == 0.0
                and isinstance(r.get("gap_curve"), list)
            ]
            if curves:
                mean = np.mean(np.array(curves, dtype=float), axis=0)
                lines.append(f"| {env} | {method} | " + " / ".join(f"{v:.2f}" for v in mean) + " |")
    return [*lines, ""]


def _noise_section(rows: Sequence[dict], envs: list[str], methods: list[str]) -> list[str]:
    lines = [
        (
            "**Per noise setting**: the method with the highest IQM clean accuracy, and R3M's and RIME's paired "
            "difference to bt in clean accuracy [t 95 % CI] (R3M's paper: R3M above BT under stochastic, myopic "
            "and irrational teachers except irrational p = 1/3)."
        ),
        "",
        "| env | noise | level | best (IQM acc) | r3m - bt | rime - bt |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    settings = list(dict.fromkeys((r["env"], r["noise"], r["rate"]) for r in rows))
    for env, noise, rate in sorted(settings, key=lambda k: (envs.index(k[0]), k[1], k[2])):
        scores = {m: _iqm(rows, env, noise, rate, m, "clean_accuracy") for m in methods}
        finite = {m: s for m, s in scores.items() if not math.isnan(s.value)}
        if not finite:
            continue
        best = max(finite, key=lambda m: finite[m].value)
        r3m = _paired(rows, env, noise, rate, "r3m", "clean_accuracy")
        rime = _paired(rows, env, noise, rate, "rime", "clean_accuracy")
        lines.append(
            f"| {env} | {noise} | {rate:g} | {best} {finite[best].value:.3f} | {r3m.text(3, signed=True)} | "
            f"{rime.text(3, signed=True)} |"
        )
    return [*lines, ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aligngym.runs.reward_quality_report", description=__doc__
    )
    parser.add_argument("folders", nargs="+", help="sweep folders holding results.jsonl")
    parser.add_argument("--out", required=True, help=f"where {STEM}.{{md,csv,png,jsonl}} go")
    parser.add_argument("--overhead", help="loss_overhead.json of `aligngym bench loss-overhead`")
    parser.add_argument("--header", default="", help="text put above the targets (e.g. how the run was made)")
    args = parser.parse_args(argv)
    rows = [row for folder in args.folders for row in finished_rows(read_rows(Path(folder) / RESULTS_FILE))]
    if not rows:
        print("aligngym: error: no finished cells in " + ", ".join(args.folders), file=sys.stderr)
        return 2
    overhead = json.loads(Path(args.overhead).read_text()) if args.overhead else None
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        merged = Path(tmp) / RESULTS_FILE
        merged.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        header = (args.header.rstrip() + "\n\n" if args.header else "") + targets_markdown(rows, overhead)
        render_report(tmp, header=header, stem=STEM, target_dir=out, method_order=METHOD_ORDER)
        shutil.copyfile(merged, out / f"{STEM}.jsonl")
    print(f"wrote {out / STEM}.{{md,csv,png,jsonl}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
