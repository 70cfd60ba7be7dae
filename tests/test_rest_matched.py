"""``aligngym bench rest-matched``: arm construction (equal examples and steps), bad arms, the report, a tiny run."""

from __future__ import annotations

import json

from aligngym.agents.react.rest_config import RestConfig, SFTSettings
from aligngym.runs.bench.rest_matched import (
    ARMS,
    ARMS_BY_NAME,
    COMPARISONS,
    arm_rows,
    arm_steps,
    matched_size,
    nested_pools,
    replicate_indices,
    write_report,
)
from aligngym.runs.cli import main


def _rows(tag: str, n: int, trajectory=None) -> list[dict]:
    return [
        {"prompt": f"{tag} {i}", "completion": "c", "trajectory": trajectory(i) if trajectory else i}
        for i in range(n)
    ]


def test_gen2_pools_nest_by_trajectory_replicate():
    # 3 questions x 4 trajectories (question-major, as RestLoop.sample orders them); one row per trajectory.
    replicates = replicate_indices([q for q in "abc" for _ in range(4)])
    assert replicates == [0, 1, 2, 3] * 3
    pools = nested_pools(_rows("e1", 2), _rows("e2", 12), replicates)
    assert [len(pools[p]) for p in ("demos", "gen1", "gen2x1", "gen2x2", "gen2x4")] == [0, 2, 3, 6, 12]
    assert {r["trajectory"] for r in pools["gen2x1"]} == {0, 4, 8}
    assert all(r in pools["gen2x4"] for r in pools["gen2x2"]) and all(
        r in pools["gen2x2"] for r in pools["gen2x1"]
    )


def test_compared_arms_get_equal_examples_and_equal_steps():
    pools = {"demos": [], "gen1": _rows("e1", 5), "gen2x1": _rows("a", 8), "gen2x2": _rows("b", 14)}
    pools["gen2x4"] = _rows("c", 25)
    assert matched_size(pools) == 5
    config = RestConfig(finetune=SFTSettings(max_steps=300), distill=SFTSettings(max_steps=900))
    rows = {a.name: arm_rows(a, pools, seed=3) for a in ARMS}
    steps = {a.name: arm_steps(a, config, 600).max_steps for a in ARMS}
    for x, y, _ in COMPARISONS:
        assert steps[x] == steps[y], (x, y)
        if ARMS_BY_NAME[x].matched and ARMS_BY_NAME[y].matched:
            assert len(rows[x]) == len(rows[y]) == 5, (x, y)
    assert steps["gen1"] == 600 and steps["student-gen2"] == 900
    assert rows["demos"] == [] and len(rows["gen2-x4-all"]) == 25 and len(rows["gen2-x2-all"]) == 14
    prompts = [r["prompt"] for r in rows["gen2-x4"]]
    assert len(set(prompts)) == 5 and set(prompts) <= {r["prompt"] for r in pools["gen2x4"]}
    assert rows["student-gen2"] == rows["gen2"]  # the student's teacher arm trains on the same rows
    assert arm_rows(ARMS_BY_NAME["gen2"], pools, seed=3) == rows["gen2"]  # seeded: reproducible
    assert arm_rows(ARMS_BY_NAME["gen2"], pools, seed=4) != rows["gen2"]


def _one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_a_bad_arm_or_step_count_fails_with_one_line(tmp_path, capsys):
    assert main(["bench", "rest-matched", "--arms", "gen3", "--out", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert "'gen3'" in line and "valid arms: demos, gen1, gen2" in line
    assert main(["bench", "rest-matched", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "--steps=0" in _one_error_line(capsys)
    assert not (tmp_path / "results.jsonl").exists()


def _result(arm: str, seed: int, dev: float, test: float) -> dict:
    return {
        "arm": arm,
        "seed": seed,
        "examples": 5,
        "max_steps": 600,
        "dev_success": dev,
        "test_success": test,
        "demonstration_rows": 7,
        "matched_size": 5,
        "pool_sizes": {"gen1": 5, "gen2x1": 8, "gen2x2": 14, "gen2x4": 25},
        "reference": {s: {"dev": {"success": 0.1}, "test": {"success": 0.1}} for s in ("gen_00", "gen_01")},
        "wall_s": 10.0,
    }


def test_report_gives_paired_differences_with_t_intervals_and_the_students_share(tmp_path):
    rows = []
    for seed, (g1, g2, student) in enumerate([(0.2, 0.3, 0.15), (0.1, 0.3, 0.3), (0.3, 0.6, 0.3)]):
        rows += [
            _result("gen1", seed, g1, g1),
            _result("gen2", seed, g2, 0.5),
            _result("student-gen2", seed, student, 0.25),
        ]
    write_report(rows, "aligngym bench rest-matched", tmp_path / "r.md")
    text = (tmp_path / "r.md").read_text()
    # gen2 - gen1 on dev: differences 0.1, 0.2, 0.3 -> mean 0.2, sd 0.1, t(0.975, 2) = 4.303 -> +-0.248
    assert (
        "| gen2 - gen1 | data quality (the paper's Table 3: +9 points) | 3 | +0.200 [-0.048, +0.448] |"
        in text
    )
    assert "| gen1 - demos" not in text  # no demos rows: that comparison is left out, not invented
    assert "- dev: 0.67 [" in text and "per seed 0.50, 1.00, 0.50" in text  # student / teacher per seed
    assert "- test: 0.50 [0.50, 0.50]" in text
    assert "PARTIAL" not in text
    write_report(rows[:3], "cmd", tmp_path / "one.md")
    one = (tmp_path / "one.md").read_text()
    assert (
        "PARTIAL" in one
        and "| gen2 - gen1 | data quality (the paper's Table 3: +9 points) | 1 | +0.100 |" in one
    )


TINY_RECIPE = """
job: rest
name: rest-matched-test
seed: 0
config:
  kb: {seed: 2, people: 16, companies: 5, universities: 3, cities: 6, countries: 2}
  policy: {name_or_path: tiny, tiny_hidden_size: 32, tiny_layers: 1, tiny_heads: 2}
  student: {name_or_path: tiny, tiny_hidden_size: 16, tiny_layers: 1, tiny_heads: 2}
  demonstrations: 4
  rename_copies: 0
  bootstrap: {max_steps: 2, batch_size: 8, warmup_steps: 0}
  finetune: {max_steps: 2, batch_size: 8, warmup_steps: 0}
  distill: {max_steps: 2, batch_size: 8, warmup_steps: 0}
  questions_per_generation: 3
  candidates: 2
  ranker: judge
  eval_questions: 2
  agent: {max_new_tokens: 6, max_steps: 3}
"""


def test_a_tiny_run_shares_its_stages_and_resumes(tmp_path, capsys):  # ~30 s on a busy core
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(TINY_RECIPE)
    out = tmp_path / "out"
    command = ["bench", "rest-matched", "--recipe", str(recipe), "--seeds", "0", "--steps", "3"]
    command += ["--arms", "gen2", "gen1", "student-gen2", "--out", str(out), "--no-progress"]
    assert main(command) == 0
    rows = {r["arm"]: r for r in json.loads((out / "rest_matched.json").read_text())["results"]}
    assert list(rows) == ["gen1", "gen2", "student-gen2"]  # table order, whatever order was asked
    n = rows["gen1"]["matched_size"]
    assert n > 0 and all(r["examples"] == n for r in rows.values())
    assert (
        rows["gen1"]["max_steps"] == rows["gen2"]["max_steps"] == 3 and rows["student-gen2"]["max_steps"] == 2
    )
    seed_dir = out / "runs" / "seed_0"
    assert len((seed_dir / "gen_02" / "trajectories.jsonl").read_text().splitlines()) == 3 * 4
    assert not (
        seed_dir / "gen_02" / "model"
    ).exists()  # the gen-2 pool is sampled, never trained on in place
    for arm in rows:
        log = json.loads((seed_dir / f"arm_{arm}" / "sft_log.json").read_text())
        assert log[-1]["step"] == rows[arm]["max_steps"]
    results = (out / "results.jsonl").read_text()
    assert main(command) == 0  # every cell finished: nothing reruns
    assert (out / "results.jsonl").read_text() == results
    assert "gen2 - gen1" in capsys.readouterr().out
