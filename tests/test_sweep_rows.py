"""What a sweep writes: strict JSON (null, never NaN), numbers for numpy / torch scalars, the first row
of a duplicated cell, and no run at all for a grid that lists a cell twice."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from aligngym.runs.errors import UsageError
from aligngym.runs.sweep import (
    append_row,
    cell_key,
    execute_cell,
    json_scalar,
    pending_cells,
    read_rows,
    run_sweep,
)

TARGET = "test_sweep_rows:undefined_metrics_cell"
PLAIN = "test_sweep_rows:plain_cell"


def plain_cell(cell: dict, progress) -> dict:
    return {"value": 1.5 + cell["seed"]}


def undefined_metrics_cell(cell: dict, progress) -> dict:
    """Metrics of every kind a real cell returns: undefined floats, numpy scalars, None (torch scalars:
    ``test_execute_cell_in_process...``; importing torch in a spawned worker costs seconds)."""
    return {
        "nan": float("nan"),
        "inf": float("inf"),
        "minus_inf": -math.inf,
        "numpy_nan": np.float64("nan"),
        "numpy_float32": np.float32(0.25),
        "numpy_int": np.int64(7),
        "missing": None,
        "value": 1.5 + cell["seed"],
    }


def cells(n: int = 2) -> list[dict]:
    return [
        {
            "domain": "control",
            "env": "Toy-v0",
            "method": "bt",
            "noise": "mistake",
            "rate": 0.1,
            "seed": s,
            "config": {},
        }
        for s in range(n)
    ]


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_rows_hold_null_for_undefined_metrics_and_numbers_for_scalars(tmp_path):
    rows = run_sweep(cells(), TARGET, tmp_path, workers=1, progress=False)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 2
    for line, row in zip(lines, rows):
        on_disk = _strict(line)  # strict JSON: NaN / Infinity would raise
        for name in ("nan", "inf", "minus_inf", "numpy_nan", "missing"):
            assert on_disk[name] is None and row[name] is None
        assert on_disk["numpy_float32"] == 0.25 and isinstance(on_disk["numpy_float32"], float)
        assert on_disk["numpy_int"] == 7 and isinstance(on_disk["numpy_int"], int)
    assert [r["value"] for r in rows] == [1.5, 2.5]


def test_execute_cell_in_process_gives_the_row_a_worker_writes(tmp_path):
    """The function pool workers run, here in-process (so coverage sees it)."""
    row = execute_cell(TARGET, cells()[1])
    assert row["key"] == cell_key(cells()[1]) and row["seed"] == 1 and row["value"] == 2.5
    assert row["nan"] is None and row["numpy_float32"] == 0.25
    _strict(json.dumps(row))
    import torch

    assert json_scalar(torch.tensor(2.5)) == 2.5 and isinstance(json_scalar(torch.tensor(2.5)), float)
    assert json_scalar(torch.tensor(float("nan"))) is None


def test_the_first_row_of_a_duplicated_cell_wins(tmp_path):
    grid = cells()
    first = run_sweep(grid, PLAIN, tmp_path, workers=1, progress=False)
    # A second sweep once wrote into the same folder: the same key again, with other numbers.
    append_row(tmp_path / "results.jsonl", {**first[0], "value": -99.0})
    assert len(read_rows(tmp_path / "results.jsonl")) == 3
    again = run_sweep(grid, PLAIN, tmp_path, workers=1, progress=False)
    assert [r["key"] for r in again] == [cell_key(c) for c in grid]
    assert [r["value"] for r in again] == [1.5, 2.5]
    assert pending_cells(grid, tmp_path / "results.jsonl")[1] == []  # nothing re-ran


def test_a_grid_that_lists_a_cell_twice_is_refused_before_anything_runs(tmp_path):
    grid = cells()
    twice = [*grid, dict(grid[0])]
    with pytest.raises(UsageError, match="same cell twice"):
        pending_cells(twice, tmp_path / "results.jsonl")
    with pytest.raises(UsageError, match="same cell twice"):
        run_sweep(twice, PLAIN, tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out" / "results.jsonl").exists()
