"""``aligngym bench NAME``: the registry, its one-line errors, and cheap benchmarks run end to end at tiny sizes.

The long benchmarks are not re-run here; tensor-vs-mlp runs two tiny PPO cells through the sweep runner to show
that cells resume from the results folder.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aligngym.runs.bench import options
from aligngym.runs.bench.loss_overhead import LOSSES
from aligngym.runs.bench.registry import COMMANDS, MODULES
from aligngym.runs.cli import BENCHES, main

SCRIPT = shutil.which("aligngym", path=os.path.dirname(sys.executable)) or "aligngym"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SCRIPT, *args], check=False, capture_output=True, text=True, timeout=300)


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("aligngym: error:")
    return lines[0]


def test_every_benchmark_module_is_registered_under_its_dashed_name():
    files = {p.stem for p in Path(options.__file__).parent.glob("*.py")} - {"__init__", "options", "registry"}
    assert set(MODULES) == files
    assert set(COMMANDS) == {m.replace("_", "-") for m in MODULES}
    assert {"reward-robustness", "report"} <= set(BENCHES)  # the existing commands stay


def test_list_prints_every_name_with_its_description():
    result = run_cli("bench", "--list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for name, (description, _, _) in BENCHES.items():
        assert any(line.split()[0] == name and description in line for line in lines), name
    assert len(lines) == len(BENCHES)


def test_unknown_benchmark_is_one_error_line_naming_the_valid_ones():
    result = run_cli("bench", "no-such-bench")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aligngym: error:"), result.stderr
    assert "'no-such-bench'" in lines[0]
    for name in BENCHES:
        assert name in lines[0]


def test_building_the_command_line_imports_no_heavy_library():
    code = "import sys, aligngym.runs.cli; print(sorted(m for m in ('torch', 'stable_baselines3', 'trl', 'transformers', 'matplotlib', 'scipy') if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_benchmark_has_help_with_out_and_publish(name, capsys):
    description, _, run = COMMANDS[name]
    assert description and "\n" not in description and callable(run)
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", name, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: aligngym bench {name}")
    assert "--out" in text and "--publish" in text


@pytest.mark.parametrize(
    "name",
    [
        "adversarial-robustness",
        "force-bound-probe",
        "tensor-vs-mlp",
        "rest-generations",
        "dpo-text-robustness",
    ],
)
def test_cell_benchmarks_take_the_sweep_runners_options(name, capsys):
    with pytest.raises(SystemExit):
        main(["bench", name, "--help"])
    text = capsys.readouterr().out
    for option in ("--backend", "--address", "--workers", "--no-progress"):
        assert option in text


def test_bad_inputs_fail_before_any_work_with_one_line(tmp_path, capsys):
    assert main(["bench", "force-bound-probe", "--runs", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no finished run folders" in one_error_line(capsys)
    assert main(["bench", "adversarial-robustness", "--task", "pong", "--out", str(tmp_path / "o")]) == 2
    assert "'pong'" in one_error_line(capsys)
    assert (
        main(["bench", "adversarial-robustness", "--set", "iterationz=3", "--out", str(tmp_path / "o")]) == 2
    )
    assert "iterationz" in one_error_line(capsys)
    assert main(["bench", "tensor-vs-mlp", "--workers", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--workers=0" in one_error_line(capsys)
    assert (
        main(["bench", "tensor-distillation", str(tmp_path / "none.zip"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "none.zip" in one_error_line(capsys)
    assert (
        main(["bench", "dpo-text-robustness", "--set", "sft_exampels=3", "--out", str(tmp_path / "o")]) == 2
    )
    assert "'sft_exampels'" in one_error_line(capsys)
    assert (
        main(["bench", "dpo-text-robustness", "--set", "sft_examples=0", "--out", str(tmp_path / "o")]) == 2
    )
    assert "sft_examples must be >= 1" in one_error_line(capsys)
    assert main(["bench", "dpo-text-robustness", "--methods", "dpo2", "--out", str(tmp_path / "o")]) == 2
    assert "'dpo2'" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_publish_copies_the_named_files_and_refuses_a_missing_one(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "a.md").write_text("table\n")
    (out / "sub" / "results.jsonl").write_text("{}\n")
    copied = options.publish(out, ["a.md", "sub/results.jsonl"], tmp_path / "committed")
    assert copied == [tmp_path / "committed" / "a.md", tmp_path / "committed" / "sub" / "results.jsonl"]
    assert (tmp_path / "committed" / "a.md").read_text() == "table\n"
    assert options.publish(out, ["a.md"], None) == []
    with pytest.raises(options.UsageError, match="b.md"):
        options.publish(out, ["b.md"], tmp_path / "committed")


def test_command_line_is_the_command_as_typed():
    args = argparse.Namespace(argv=["bench", "loss-overhead", "--rounds", "2", "--out", "a b"])
    assert (
        options.command_line(args, "loss-overhead") == "aligngym bench loss-overhead --rounds 2 --out 'a b'"
    )
    assert "called from Python" in options.command_line(argparse.Namespace(rounds=2), "loss-overhead")


def test_loss_overhead_end_to_end_at_a_tiny_size(tmp_path, capsys):
    out, committed = tmp_path / "out", tmp_path / "committed"
    argv = [
        "bench",
        "loss-overhead",
        "--rounds",
        "1",
        "--epochs",
        "1",
        "--pairs",
        "64",
        "--call-repeats",
        "5",
    ]
    assert main([*argv, "--out", str(out), "--publish", str(committed)]) == 0
    data = json.loads((out / "loss_overhead.json").read_text())
    assert data["meta"]["command"].startswith("aligngym bench loss-overhead --rounds 1")
    assert data["meta"]["train_pairs"] == 64 and data["meta"]["rounds"] == 1
    assert [r["loss"] for r in data["rows"]] == [name for name in LOSSES if name != "bt"]
    assert all(r["epoch_cpu_ratio_median"] > 0 for r in data["rows"])
    markdown = (out / "loss_overhead.md").read_text()
    assert "Command: `aligngym bench loss-overhead" in markdown
    for name in ("loss_overhead.md", "loss_overhead.json"):
        assert (committed / name).read_bytes() == (out / name).read_bytes()


def test_env_throughput_end_to_end_at_a_tiny_size(tmp_path):
    out = tmp_path / "out"
    argv = [
        "bench",
        "env-throughput",
        "--envs",
        "Hopper",
        "--steps",
        "64",
        "--rounds",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    data = json.loads((out / "env_throughput.json").read_text())
    assert data["command"] == "aligngym " + " ".join(argv)
    variants = {r["variant"]: r for r in data["rows"]}
    assert variants["raw"]["ratio"] == 1.0
    assert variants["protagonist view, no adversary"]["target"] == 0.95
    assert all(r["steps_per_s"] > 0 for r in data["rows"])


def test_tensor_vs_mlp_runs_on_the_sweep_runner_and_resumes(tmp_path):
    out = tmp_path / "out"
    argv = [
        "bench", "tensor-vs-mlp", "--seeds", "1", "--envs", "Pendulum-v1", "--variants", "tensor", "mlp-paper",
        "--timesteps", "128", "--set", "n_envs=1", "--set", "hyperparams.n_steps=64", "--set", "eval_episodes=1",
        "--workers", "2", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(r["method"] for r in rows) == ["mlp-paper", "tensor"]
    assert all(r["timesteps"] >= 128 and r["run_dir"] for r in rows)
    summary = json.loads((out / "tensor_vs_mlp.json").read_text())
    assert {r["variant"]: r["parameters"] for r in summary["rows"]} == {"tensor": 301, "mlp-paper": 643}
    assert (out / "tensor_vs_mlp.png").stat().st_size > 0
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 2

    assert main(argv) == 0  # every cell finished: nothing runs again
    assert sorted((out / "runs").iterdir()) == runs
    assert len((out / "results.jsonl").read_text().splitlines()) == 2

    # a cell lost (as by a kill before its row was written) is the only one that runs again
    kept = [line for line in (out / "results.jsonl").read_text().splitlines() if '"tensor"' not in line]
    (out / "results.jsonl").write_text("\n".join(kept) + "\n")
    assert main(argv) == 0
    after = sorted((out / "runs").iterdir())
    assert len(after) == 3 and set(runs) < set(after)
    assert [p.name.split("__")[1] for p in set(after) - set(runs)] == ["tensor-pendulum"]


@pytest.mark.slow
def test_adversarial_robustness_and_force_bound_probe_at_a_tiny_size(tmp_path):
    """The two adversarial cell benchmarks chained as documented: probe the run folders the first one wrote."""
    out = tmp_path / "adv"
    budget = [
        "iterations=1", "protagonist_steps=100", "adversary_steps=100", "hyperparams.learning_starts=50",
        "evaluation.worst_case_steps=100", "evaluation.episodes=1", "evaluation.grid_points=2",
    ]  # fmt: skip
    argv = ["bench", "adversarial-robustness", "--seeds", "1", "--methods", "sac", "qarl", "--no-progress"]
    assert main([*argv, *(f"--set={item}" for item in budget), "--out", str(out)]) == 0
    rows = json.loads((out / "adversarial_robustness_invertedpendulum.json").read_text())
    assert sorted(r["method"] for r in rows) == ["qarl", "sac"]
    assert (out / "adversarial_heatmap_invertedpendulum_qarl.png").stat().st_size > 0
    probe = [
        "bench",
        "force-bound-probe",
        "--runs",
        str(out / "runs"),
        "--bounds",
        "5",
        "50",
        "--episodes",
        "1",
    ]
    assert main([*probe, "--no-progress", "--name", "probe", "--out", str(tmp_path / "probe")]) == 0
    probed = json.loads((tmp_path / "probe" / "probe.json").read_text())
    assert sorted((r["method"], r["bound"]) for r in probed) == [
        ("qarl", 5),
        ("qarl", 50),
        ("sac", 5),
        ("sac", 50),
    ]
    for row in probed:  # the probe's nominal return is the run's own nominal evaluation (same seed, episodes)
        run = next(r for r in rows if Path(r["run_dir"]).name == row["run"])
        assert row["nominal"] == pytest.approx(run["nominal_return"])
