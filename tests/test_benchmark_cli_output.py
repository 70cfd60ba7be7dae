"""What `aligngym bench reward-robustness` / `bench report` print: tables that fit the terminal, and a re-run
that finds every cell done says so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from rich.measure import Measurement

from aligngym.runs.benchmark import fitting_tables, saved_cells
from aligngym.runs.reward_benchmark import (
    REFERENCES_FILE,
    grid_cells,
    load_bench_recipe,
    reference_cells,
    references_by_cell,
)
from aligngym.runs.sweep import RESULTS_FILE, cell_key

DEMO_ROWS = Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "reward_robustness_demo.jsonl"


@pytest.mark.parametrize("columns", [100, 80, 200])
def test_report_fits_the_terminal(tmp_path, columns):
    """The committed demo's rows, re-rendered by `aligngym bench report` into a COLUMNS-wide output."""
    shutil.copyfile(DEMO_ROWS, tmp_path / "results.jsonl")
    env = {**os.environ, "COLUMNS": str(columns), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "aligngym", "bench", "report", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns, max(lines, key=len)
    for label in ("clean acc", "hard-25% acc", "Spearman", "outlier P", "norm. return"):  # no column dropped
        assert label in result.stdout
    assert "…" not in result.stdout  # no cell truncated with an ellipsis


def test_fitting_tables_split_columns_only_when_needed():
    from aligngym.runs.reports import summarize
    from aligngym.runs.sweep import finished_rows, read_rows

    summaries = summarize(finished_rows(read_rows(DEMO_ROWS)))
    assert len(fitting_tables(10_000, summaries, "t")) == 1
    everything = len(fitting_tables(10_000, summaries, "t")[0].columns)
    narrow = fitting_tables(100, summaries, "t")
    assert len(narrow) >= 2  # the demo's metric columns do not fit one 100-column table
    measure = Console(width=10_000)
    assert all(Measurement.get(measure, measure.options, t).maximum <= 100 for t in narrow)
    assert sum(len(t.columns) - 3 for t in narrow) == everything - 3  # every metric, once


def _fake_rows(cells, extra):
    return "".join(json.dumps({"key": cell_key(c), **extra}) + "\n" for c in cells)


def test_saved_cells_counts_only_a_complete_folder(tmp_path):
    recipe = load_bench_recipe("demo", [])
    assert saved_cells(recipe, tmp_path) == 0  # nothing there
    references = reference_cells(recipe)
    ref_rows = [
        {"env": c["env"], "seed": c["seed"], "random_return": 0.0, "true_rl_return": 1.0} for c in references
    ]
    (tmp_path / REFERENCES_FILE).write_text(
        "".join(json.dumps({"key": cell_key(c), **r}) + "\n" for c, r in zip(references, ref_rows))
    )
    cells = grid_cells(recipe, references_by_cell(ref_rows))
    (tmp_path / RESULTS_FILE).write_text(_fake_rows(cells[:-1], {"clean_accuracy": 0.5}))
    assert saved_cells(recipe, tmp_path) == 0  # one cell missing: it will run
    with (tmp_path / RESULTS_FILE).open("a") as f:
        f.write(_fake_rows(cells[-1:], {"error": "ValueError: boom"}))
    assert saved_cells(recipe, tmp_path) == 0  # a failed cell is retried, not "done"
    with (tmp_path / RESULTS_FILE).open("a") as f:
        f.write(_fake_rows(cells[-1:], {"clean_accuracy": 0.5}))
    assert saved_cells(recipe, tmp_path) == len(cells)


def test_report_writes_one_tensorboard_hparams_run_per_cell(tmp_path):
    from aligngym.runs.benchmark import write_tensorboard
    from aligngym.runs.sweep import finished_rows, read_rows

    shutil.copyfile(DEMO_ROWS, tmp_path / "results.jsonl")
    folder = write_tensorboard(tmp_path)
    runs = [p for p in folder.iterdir() if p.is_dir()]
    assert len(runs) == len(finished_rows(read_rows(DEMO_ROWS)))
    assert all(list(run.glob("events.out.tfevents.*")) for run in runs)
    write_tensorboard(tmp_path)  # derived data: rewritten, not appended
    assert len([p for p in folder.iterdir() if p.is_dir()]) == len(runs)
