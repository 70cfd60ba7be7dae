"""Reports: grouping, IQM [CI] over seeds, paired deltas, P(improvement), the return verdict, CSV, the PNG."""

from __future__ import annotations

import csv
import io
import math

import pytest
from rich.console import Console

from aligngym.runs.errors import UsageError
from aligngym.runs.reports import (
    baseline_deltas,
    csv_text,
    improvement_over_baseline,
    markdown_table,
    render_report,
    return_verdict,
    rich_table,
    summarize,
)
from aligngym.runs.sweep import append_row


def make_rows() -> list[dict]:
    rows = []
    for method, base in (("bt", 0.8), ("r3m", 0.85)):
        for rate in (0.0, 0.2):
            for seed in (0, 1):
                rows.append(
                    {
                        "key": f"{method}/{rate}/{seed}",
                        "domain": "control",
                        "env": "Toy-v0",
                        "method": method,
                        "noise": "mistake",
                        "rate": rate,
                        "seed": seed,
                        "clean_accuracy": base - rate * (0.5 if method == "bt" else 0.2) + 0.02 * seed,
                        "normalized_return": 0.5 + seed,
                        "outlier_precision": None,
                        "wall_s": 1.0,
                    }
                )
    return rows


def test_summary_means_and_sample_std_over_seeds():
    summaries = summarize(make_rows())
    assert [(s.key["rate"], s.key["method"]) for s in summaries] == [
        (0.0, "bt"),
        (0.0, "r3m"),
        (0.2, "bt"),
        (0.2, "r3m"),
    ]
    bt_noisy = summaries[2]
    assert bt_noisy.seeds == 2
    assert bt_noisy.mean["clean_accuracy"] == pytest.approx(0.71)
    assert bt_noisy.std["clean_accuracy"] == pytest.approx(0.02 / math.sqrt(2))
    assert "outlier_precision" not in bt_noisy.mean  # a metric no row has is left out
    assert "wall_s" not in bt_noisy.mean


def test_paired_deltas_to_the_baseline():
    deltas = baseline_deltas(make_rows())
    assert [d.key["method"] for d in deltas] == ["r3m", "r3m"]
    assert deltas[0].mean["clean_accuracy"] == pytest.approx(0.05)
    assert deltas[1].mean["clean_accuracy"] == pytest.approx(0.11)
    assert deltas[1].std["clean_accuracy"] == pytest.approx(0.0, abs=1e-12)  # pairing removes the seed offset
    assert baseline_deltas([r for r in make_rows() if r["method"] != "bt"]) == []


def test_markdown_csv_and_rich_tables_agree():
    summaries = summarize(make_rows())
    text = markdown_table(summaries)
    assert text.splitlines()[0].startswith("| env | noise | rate | method | seeds | clean acc |")
    # two seeds 0.70 and 0.72: IQM 0.71, the bootstrap CI spans the two values
    assert "| Toy-v0 | mistake | 0.2 | bt | 2 | 0.710 [0.700, 0.720] |" in text
    parsed = list(csv.DictReader(io.StringIO(csv_text(summaries))))
    assert len(parsed) == 4
    assert float(parsed[2]["clean_accuracy_mean"]) == pytest.approx(0.71)
    assert float(parsed[2]["clean_accuracy_iqm"]) == pytest.approx(0.71)
    assert (float(parsed[2]["clean_accuracy_ci_low"]), parsed[2]["clean_accuracy_n"]) == (0.70, "2")
    console = Console(record=True, width=200)
    console.print(rich_table(summaries, title="t"))
    text = console.export_text()
    assert "mistake 0.2" in text and "0.710" in text and "seeds per row: 2" in text


def test_a_metric_with_fewer_seeds_than_rows_says_so():
    rows = make_rows()
    rows[0]["clean_accuracy"] = None  # bt, rate 0, seed 0
    text = markdown_table(summarize(rows))
    assert "| Toy-v0 | mistake | 0 | bt | 2 | 0.820 (n=1) |" in text


def test_iqm_ignores_one_wild_seed():
    rows = []
    for seed, value in enumerate([0.5, 0.6, 0.7, 0.8, -50.0]):
        rows.append(
            {
                "domain": "control",
                "env": "E",
                "method": "bt",
                "noise": "mistake",
                "rate": 0.0,
                "seed": seed,
                "normalized_return": value,
            }
        )
    (summary,) = summarize(rows)
    assert summary.intervals["normalized_return"].value == pytest.approx(0.6)  # mean of 0.5, 0.6, 0.7
    assert summary.mean["normalized_return"] == pytest.approx(-9.48)


def test_probability_of_improvement_over_the_baseline():
    improvements = improvement_over_baseline(make_rows())
    assert [i.key["method"] for i in improvements] == ["r3m", "r3m"]
    # r3m beats bt on every seed pair in clean accuracy; normalised returns are identical: 1/2
    assert improvements[0].intervals["clean_accuracy"].value == 1.0
    assert improvements[0].intervals["normalized_return"].value == 0.5


def test_paired_delta_intervals_are_t_intervals():
    rows = make_rows()
    for row in rows:  # give r3m a seed-dependent gain: differences 0.05 and 0.07 at rate 0
        if row["method"] == "r3m" and row["rate"] == 0.0:
            row["clean_accuracy"] += 0.02 * row["seed"]
    delta = baseline_deltas(rows)[0].intervals["clean_accuracy"]
    half = 12.706 * 0.01 * math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) * sd / sqrt(n)
    assert delta.value == pytest.approx(0.06)
    assert (delta.low, delta.high) == pytest.approx((0.06 - half, 0.06 + half), abs=1e-3)


def _return_rows(gain: float, spread: float, seeds: int = 5) -> list[dict]:
    rows = []
    for seed in range(seeds):
        for method, shift in (("bt", 0.0), ("r3m", gain)):
            rows.append(
                {
                    "domain": "control",
                    "env": "E",
                    "method": method,
                    "noise": "mistake",
                    "rate": 0.2,
                    "seed": seed,
                    "normalized_return": 0.7 + shift + spread * (seed % 2 - 0.5) * (method == "r3m"),
                }
            )
    return rows


REFS = [{"env": "E", "seed": s, "random_return": -1200.0 + s, "true_rl_return": -160.0 - s} for s in range(5)]


def test_return_verdict_finds_a_real_gap_and_states_the_power():
    lines = return_verdict(_return_rows(0.3, 0.05), REFS, {"E": {"return": -157.0, "source": "zoo"}})
    text = " ".join(lines)
    assert "has clearly learned" in text and "published -157 (zoo)" in text
    assert "detects with 80 % power" in text and "r3m at mistake 0.2: 0.0" in text and "5 seeds)" in text
    assert "r3m at mistake 0.2: +0.295 [" in text


def test_return_verdict_says_when_the_budget_cannot_separate_methods():
    # the reference barely beats random against the published score: the column cannot separate
    weak = [{**r, "true_rl_return": -1100.0} for r in REFS]
    text = " ".join(return_verdict(_return_rows(0.3, 0.05), weak, {"E": {"return": -157.0}}))
    assert "has NOT clearly learned" in text and "CANNOT separate methods" in text
    # a learned reference but seeds that swing wildly: the resolution is coarse, and the verdict says
    # that covering 0 is no evidence of no effect
    text = " ".join(return_verdict(_return_rows(0.0, 3.0), REFS))
    assert "CANNOT" not in text and "resolution is COARSE" in text
    assert "no method's normalised return differs from bt" in text and "no evidence either way" in text
    # no gap and a fine resolution: every CI covers 0
    text = " ".join(return_verdict(_return_rows(0.0, 0.05), REFS))
    assert "no method's normalised return differs from bt" in text
    assert (
        return_verdict(
            [{k: v for k, v in r.items() if k != "normalized_return"} for r in _return_rows(0.0, 0.1)], REFS
        )
        == []
    )


def test_render_report_writes_md_csv_and_a_png(tmp_path):
    for row in make_rows():
        append_row(tmp_path / "results.jsonl", row)
    report = render_report(tmp_path, header="# demo\n\ncommand: `x`")
    assert report.markdown.read_text().startswith("# demo")
    assert "Paired difference to Bradley-Terry" in report.markdown.read_text()
    assert "Probability of improvement over `bt`" in report.markdown.read_text()
    assert report.png is not None and report.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report.png.stat().st_size > 10_000
    assert len(report.csv.read_text().splitlines()) == 5
    with pytest.raises(UsageError, match="no finished cells"):
        render_report(tmp_path / "empty")


TINY_RECIPE = """
name: tiny
envs: [Pendulum-v1]
methods: [{name: bt}, {name: r3m, params: {lam: 0.3}}]
noises: [{teacher: mistake, levels: [0.0, 0.4]}]
seeds: [0]
pairs: {segment_length: 10, segments_per_policy: 20, gait_policies: 2, n_train: 100, n_test: 50, epochs: 3}
rl: {total_timesteps: 512, n_envs: 1, hyperparams: {n_steps: 256, batch_size: 64, n_epochs: 2}, query_every: 256,
     initial_queries: 16, query_budget: 32, segment_length: 10, heldout_pairs_per_round: 20, reward_epochs: 2,
     eval_episodes: 1}
"""
ROW_KEYS = {
    "domain",
    "env",
    "method",
    "noise",
    "rate",
    "seed",
    "normalized_return",
    "true_return",
    "clean_accuracy",
    "outlier_precision",
    "outlier_recall",
    "flagged_fraction",
    "wall_s",
    "config",
}


def test_cli_runs_a_tiny_benchmark_end_to_end_and_renders_it(tmp_path, capsys):
    from aligngym.runs.cli import main
    from aligngym.runs.sweep import read_rows

    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    out = tmp_path / "out"
    assert (
        main(
            [
                "bench",
                "reward-robustness",
                "--recipe",
                str(recipe),
                "--out",
                str(out),
                "--workers",
                "2",
                "--no-progress",
                "--publish",
                str(tmp_path / "pub"),
            ]
        )
        == 0
    )
    rows = read_rows(out / "results.jsonl")
    assert len(rows) == 4 and all(ROW_KEYS <= set(r) for r in rows)
    references = read_rows(out / "references.jsonl")
    assert [(r["env"], r["seed"], r["method"]) for r in references] == [("Pendulum-v1", 0, "true-reward")]
    by_method = {(r["method"], r["rate"]): r for r in rows}
    assert by_method[("bt", 0.4)]["outlier_precision"] is None  # bt flags nothing: null, not NaN
    assert 0.0 <= by_method[("r3m", 0.4)]["flagged_fraction"] <= 1.0
    assert by_method[("bt", 0.0)]["corrupted_fraction"] == 0.0 < by_method[("bt", 0.4)]["corrupted_fraction"]
    ref = references[0]
    expected = (by_method[("bt", 0.0)]["true_return"] - ref["random_return"]) / (
        ref["true_rl_return"] - ref["random_return"]
    )
    assert by_method[("bt", 0.0)]["normalized_return"] == pytest.approx(expected)
    printed = capsys.readouterr().out
    assert "mistake 0.4" in printed and "plot:" in printed
    assert (tmp_path / "pub" / "reward_robustness_tiny.png").is_file()
    assert (tmp_path / "pub" / "reward_robustness_tiny.jsonl").read_text() == (
        out / "results.jsonl"
    ).read_text()
    markdown = (out / "report.md").read_text()
    assert (
        markdown.startswith("# Reward-robustness benchmark: tiny") and "Command: `aligngym bench" in markdown
    )

    assert main(["bench", "report", str(out)]) == 0
    # a different recipe into the same folder is refused with one line and exit code 2
    assert main(["bench", "reward-robustness", "--recipe", str(recipe), "--out", str(out), "seeds=[5]"]) == 2
    assert "different sweep" in capsys.readouterr().err


def test_robust_y_limits_keep_the_estimates_readable_despite_one_wild_interval():
    from aligngym.runs.reports import _robust_limits

    intervals = [(0.45, 0.55), (0.55, 0.65), (0.6, 0.8), (-50.0, 60.0)]
    low, high = _robust_limits([0.5, 0.6, 0.7, 0.6], intervals, references=[0.0, 1.0])
    assert -1.2 < low < 0.0 and 1.0 < high < 2.2  # the references show, the +-55 interval is cut
    # CIs much wider than the spread of the estimates show whole (a paired-difference panel)
    low, high = _robust_limits([0.01, 0.05], [(-0.3, 0.32), (-0.29, 0.39)])
    assert low < -0.3 and high > 0.39
    low, high = _robust_limits([0.3, 0.3], [(0.3, 0.3)])  # all equal: still a non-empty range
    assert low < 0.3 < high
