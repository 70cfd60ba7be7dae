"""Reports: grouping, mean +- std over seeds, paired deltas, CSV, markdown, the PNG."""

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
    markdown_table,
    render_report,
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
    assert "| Toy-v0 | mistake | 0.2 | bt | 2 | 0.710 ± 0.014 |" in text
    parsed = list(csv.DictReader(io.StringIO(csv_text(summaries))))
    assert len(parsed) == 4
    assert float(parsed[2]["clean_accuracy_mean"]) == pytest.approx(0.71)
    console = Console(record=True, width=200)
    console.print(rich_table(summaries, title="t"))
    text = console.export_text()
    assert "mistake 0.2" in text and "0.710±0.014" in text and "seeds per row: 2" in text


def test_render_report_writes_md_csv_and_a_png(tmp_path):
    for row in make_rows():
        append_row(tmp_path / "results.jsonl", row)
    report = render_report(tmp_path, header="# demo\n\ncommand: `x`")
    assert report.markdown.read_text().startswith("# demo")
    assert "Paired difference to Bradley-Terry" in report.markdown.read_text()
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
