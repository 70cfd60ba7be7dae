"""The adversarial suite of issue 16: hostile inputs and faults, as a user or a crash would produce them.

Two kinds of checks, counted by the note of the issue:

- *inputs* (``test_input_*``, one parametrised case each): bad user input that must end in exactly one
  ``aligngym: error: ...`` line and exit 2 from the CLI, before any run folder exists; or, for library
  entry points (envs, reward-net files, text parsers), one ValueError naming the bad value;
- *faults* (``test_fault_*``): a failing or killed cell, two writers, SIGTERM, a planted pickle, a
  damaged file, a refused re-run; each must be survived with nothing lost (every other result on disk,
  nothing executed, no file changed, no process left).
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from aligngym.runs.cli import main
from aligngym.runs.errors import UsageError
from aligngym.runs.sweep import cell_key, read_rows, run_sweep

HERE = Path(__file__).resolve().parent
CELL = "test_hostile_inputs:flaky_cell"
GAME = "aligngym/AdversarialInvertedPendulum-v0"


# ---------------------------------------------------------------------------------------------------
# Helpers


def flaky_cell(cell: dict, progress) -> dict:
    """A sweep cell that logs its start (key and pid), may sleep, raise or kill its worker process."""
    config = cell["config"]
    if config.get("marker_dir"):
        with open(Path(config["marker_dir"]) / "starts.txt", "a") as handle:
            handle.write(f"{cell_key(cell)} {os.getpid()}\n")
    time.sleep(config.get("sleep", 0.0))
    if cell["seed"] in config.get("fail_seeds", ()) and Path(config["fail_flag"]).exists():
        raise ValueError(f"planted failure in seed {cell['seed']}\nsecond line of the message")
    if cell["seed"] in config.get("die_seeds", ()):
        os._exit(3)  # the worker dies as if killed for memory
    progress(1, 1)
    return {"clean_accuracy": 0.5 + 0.01 * cell["seed"]}


def grid(n: int = 4, **config) -> list[dict]:
    return [
        {
            "domain": "control",
            "env": "Toy-v0",
            "method": "bt",
            "noise": "mistake",
            "rate": 0.1,
            "seed": seed,
            "config": dict(config),
        }
        for seed in range(n)
    ]


def starts(marker_dir: Path) -> list[str]:
    path = marker_dir / "starts.txt"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (what "changes no file" compares)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    """The CLI's stderr must be exactly one ``aligngym: error:`` line (no traceback, no warnings)."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("aligngym: error: "), err
    return lines[0]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has stopped running; only its exit status is left


# ---------------------------------------------------------------------------------------------------
# Inputs through the CLI: one line, exit 2, no run folder

SB3_RECIPE = {
    "job": "sb3",
    "name": "hostile",
    "seed": 0,
    "config": {
        "algo": "ppo",
        "env_id": "Pendulum-v1",
        "total_timesteps": 64,
        "hyperparams": {"n_steps": 32, "batch_size": 16, "n_epochs": 1},
        "eval_episodes": 1,
    },
}
RARL_RECIPE = {
    "job": "rarl",
    "name": "hostile",
    "seed": 0,
    "config": {
        "env_id": GAME,
        "max_episode_steps": 20,
        "iterations": 1,
        "protagonist_steps": 20,
        "adversary_steps": 20,
        "hyperparams": {"learning_starts": 10, "batch_size": 8, "buffer_size": 100},
        "policy_kwargs": {"net_arch": [8]},
        "evaluation": {"at_end": False},
    },
}


def _recipe(tmp_path: Path, recipe: dict) -> str:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


def _fake_checkpoint(tmp_path: Path, config_changes: dict) -> Path:
    """A folder that looks like a killed rarl run, trained with RARL_RECIPE plus ``config_changes``."""
    folder = tmp_path / "old-run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "latest.json").write_text('{"folder": "iteration-00001"}')
    old = {**RARL_RECIPE, "config": {**RARL_RECIPE["config"], **config_changes}}
    from aligngym.runs.recipes import recipe_from_dict

    (folder / "config.yaml").write_text(yaml.safe_dump(recipe_from_dict(old).to_dict()))
    return folder


def test_resume_check_accepts_what_a_resumed_run_may_change(tmp_path) -> None:
    from aligngym.agents.adversarial.training import check_resume_folder
    from aligngym.runs.recipes import recipe_from_dict

    folder = _fake_checkpoint(tmp_path, {"iterations": 1, "progress_bar": True})
    longer = recipe_from_dict(
        {**RARL_RECIPE, "config": {**RARL_RECIPE["config"], "iterations": 5, "resume_from": str(folder)}}
    )
    check_resume_folder(longer.config, folder)  # more iterations, another progress setting: fine
    other = recipe_from_dict(
        {**RARL_RECIPE, "config": {**RARL_RECIPE["config"], "hyperparams": {"batch_size": 4}}}
    )
    with pytest.raises(ValueError, match="hyperparams.batch_size=8"):
        check_resume_folder(other.config, folder)


# id -> (argv builder(tmp_path) -> argv, text the error line must contain)
CLI_INPUTS = {
    "sb3-policy-os-system": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "policy=os:system"],
        "'os:system' is not allowed",
    ),
    "sb3-policy-builtins-eval": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "policy=builtins:eval"],
        "not allowed",
    ),
    "sb3-policy-module-no-attr": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "policy=aligngym:nothing"],
        "not allowed",
    ),
    "sb3-unknown-hyperparameter": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "hyperparams.n_step=256"],
        "hyperparams.n_step is not a PPO argument",
    ),
    "sb3-bad-hyperparameter-value": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "hyperparams.batch_size=[1]"],
        "sb3 recipe",
    ),
    "sb3-unknown-env-id": (lambda t: ["train", _recipe(t, SB3_RECIPE), "env_id=NoSuchEnv-v0"], "NoSuchEnv"),
    "sb3-env-id-imports-a-module": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "env_id=os:Foo-v0"],
        "a 'module:id' env id imports code",
    ),
    "sb3-unknown-env-kwarg": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "env_kwargs.no_such_kwarg=1"],
        "no_such_kwarg",
    ),
    "sb3-eval-episodes-zero": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "eval_episodes=0"],
        "eval_episodes=0",
    ),
    "sb3-negative-timesteps": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "total_timesteps=-5"],
        "total_timesteps",
    ),
    "sb3-activation-not-a-module": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "policy_kwargs.activation_fn=init"],
        "activation_fn='init'",
    ),
    "sb3-learning-rate-inf": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "hyperparams.learning_rate=.inf"],
        "hyperparams.learning_rate=inf must be a finite number",
    ),
    "sb3-learning-rate-nan": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "hyperparams.learning_rate=.nan"],
        "finite",
    ),
    "reward-fit-lr-inf": (
        lambda t: ["train", "reward-fit-hopper", "fit.lr=.inf"],
        "fit.lr=inf must be a finite number",
    ),
    "reward-fit-lr-nan": (lambda t: ["train", "reward-fit-hopper", "fit.lr=.nan"], "fit.lr=nan"),
    "reward-fit-unknown-env-id": (
        lambda t: ["train", "reward-fit-hopper", "env_id=NoSuchEnv-v0"],
        "NoSuchEnv",
    ),
    "out-is-a-file": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "--out", str(_file(t))],
        "is a file, not a folder",
    ),
    "out-below-a-file": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "--out", str(_file(t) / "sub")],
        "is a file, not a folder",
    ),
    "out-unwritable": (
        lambda t: ["train", _recipe(t, SB3_RECIPE), "--out", "/proc/aligngym-results"],
        "is not writable",
    ),
    "recipe-not-utf8": (
        lambda t: ["train", str(_bytes(t, b"job: sb3\nname: \xff\xfe\n"))],
        "is not UTF-8 text",
    ),
    "recipe-is-a-folder": (lambda t: ["train", str(t)], "neither a file nor a built-in recipe"),
    "recipe-python-tag": (
        lambda t: ["train", str(_bytes(t, b"job: !!python/object/apply:os.system ['true']\n"))],
        "not valid YAML",
    ),
    "recipe-not-a-mapping": (lambda t: ["train", str(_bytes(t, b"- 1\n- 2\n"))], "must be a mapping"),
    "rarl-resume-from-missing": (
        lambda t: ["train", _recipe(t, RARL_RECIPE), "resume_from=/nonexistent"],
        "resume_from='/nonexistent' holds no checkpoint",
    ),
    "rarl-resume-config-mismatch": (
        lambda t: ["train", _recipe(t, RARL_RECIPE), f"resume_from={_fake_checkpoint(t, {'gamma': 0.9})}"],
        "was trained with gamma=0.9",
    ),
    "rarl-force-bound-negative": (
        lambda t: ["train", _recipe(t, RARL_RECIPE), "env_kwargs.force_bound=-1"],
        "force_bound=-1.0",
    ),
    "rarl-unknown-body": (
        lambda t: ["train", _recipe(t, RARL_RECIPE), "env_kwargs.bodies=[nobody]"],
        "unknown body 'nobody'",
    ),
    "rarl-unknown-hyperparameter": (
        lambda t: ["train", _recipe(t, RARL_RECIPE), "hyperparams.n_step=256"],
        "hyperparams.n_step is not a SAC argument",
    ),
    "rarl-gamma-inf": (
        lambda t: ["train", _recipe(t, RARL_RECIPE), "gamma=.inf"],
        "gamma=inf must be a finite number",
    ),
    "bench-unknown-env": (
        lambda t: [
            "bench",
            "reward-robustness",
            "--recipe",
            "demo",
            "--out",
            str(t / "b"),
            "envs=[NoSuchEnv-v0]",
        ],
        "'NoSuchEnv-v0' is not a registered Gymnasium id",
    ),
    "bench-out-is-a-file": (
        lambda t: ["bench", "reward-robustness", "--recipe", "demo", "--out", str(_file(t))],
        "is a file, not a folder",
    ),
    "bench-recipe-not-utf8": (
        lambda t: ["bench", "reward-robustness", "--recipe", str(_bytes(t, b"name: \xff\n"))],
        "is not UTF-8 text",
    ),
    "eval-config-not-utf8": (
        lambda t: ["eval", "robustness", str(_run_folder(t, b"job: rarl\nname: \xff\n"))],
        "is not UTF-8 text",
    ),
    "eval-config-python-tag": (
        lambda t: [
            "eval",
            "robustness",
            str(_run_folder(t, b"job: !!python/object/apply:os.system ['true']\n")),
        ],
        "not valid YAML",
    ),
}


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def _bytes(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_bytes(data)
    return path


def _run_folder(tmp_path: Path, config: bytes) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_bytes(config)
    return folder


@pytest.mark.parametrize("case", sorted(CLI_INPUTS))
def test_input_through_the_cli_gets_one_error_line_before_any_folder(
    case, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default --out (results/) lands here
    build, expected = CLI_INPUTS[case]
    argv = build(tmp_path)
    before = snapshot(tmp_path)
    out = Path(argv[argv.index("--out") + 1]) if "--out" in argv else tmp_path / "results"
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert expected in line
    assert snapshot(tmp_path) == before  # no run folder, no config.yaml, nothing half-made
    assert not (out.is_dir() and any(out.iterdir())) or out == tmp_path


# ---------------------------------------------------------------------------------------------------
# Inputs to library entry points: one ValueError naming the value


def _game(**kwargs):
    from aligngym.envs.adversarial import AdversarialForceEnv

    env = AdversarialForceEnv("InvertedPendulum", **kwargs)
    env.reset(seed=0)
    return env


ENV_INPUTS = {
    "adversary-action-nan": (
        lambda env: env.step({"protagonist": [0.0], "adversary": [np.nan, 0.0]}),
        "adversary action",
    ),
    "adversary-action-inf": (
        lambda env: env.step({"protagonist": [0.0], "adversary": [np.inf, 0.0]}),
        "not finite",
    ),
    "protagonist-action-nan": (
        lambda env: env.step({"protagonist": [np.nan], "adversary": None}),
        "protagonist action",
    ),
    "gear-scale-1e300": (lambda env: env.reset(options={"gear_scale": 1e300}), "gear_scale=1e+300"),
    "mass-scale-1e300": (lambda env: env.reset(options={"mass_scale": 1e300}), "mass_scale=1e+300"),
    "friction-scale-nan": (
        lambda env: env.reset(options={"friction_scale": float("nan")}),
        "friction_scale=nan",
    ),
    "gravity-scale-negative": (lambda env: env.reset(options={"gravity_scale": -1.0}), "gravity_scale=-1.0"),
    "mass-bodies-unknown": (
        lambda env: env.reset(options={"mass_scale": 2.0, "mass_bodies": ["nobody"]}),
        "unknown body 'nobody'",
    ),
}


@pytest.mark.parametrize("case", sorted(ENV_INPUTS))
def test_input_to_the_force_game_raises_a_value_error_naming_it(case) -> None:
    action, expected = ENV_INPUTS[case]
    env = _game()
    with pytest.raises(ValueError, match=expected.replace("(", r"\(").replace("+", r"\+")):
        action(env)


def test_input_perturbation_wrapper_bounds_the_scales() -> None:
    import gymnasium as gym

    from aligngym.envs.perturbations import MAX_SCALE, ModelPerturbation

    with pytest.raises(ValueError, match=r"gear_scale=1e\+300 must be >= 0 and <= 100"):
        ModelPerturbation(gym.make("InvertedPendulum-v5"), gear_scale=1e300)
    ModelPerturbation(gym.make("InvertedPendulum-v5"), gear_scale=MAX_SCALE)  # the bound itself is allowed


def test_fault_a_failed_reset_leaves_the_previous_episode_consistent() -> None:
    env = _game()
    env.reset(options={"mass_scale": 2.0, "mass_bodies": ["pole"]})
    masses = env.model.body_mass.copy()
    before = env.perturbation
    with pytest.raises(ValueError, match="unknown body 'nobody'"):
        env.reset(options={"mass_scale": 3.0, "mass_bodies": ["nobody"]})
    assert env.perturbation == before  # still describes the model
    np.testing.assert_array_equal(env.model.body_mass, masses)  # which is still the one applied


def test_input_react_parser_is_linear_in_leading_whitespace() -> None:
    """1 MB of spaces before an action parsed in well under a second (the quadratic parser took > 90 s);
    the watchdog below is a hang guard only, the measured scaling is in benchmarks/results/react_parse.md."""
    from aligngym.envs.text.react import parse_step

    for text, kind, thought in (
        (" " * 1_000_000 + "Search[x]", "search", ""),
        ("Thought:" + " " * 1_000_000 + "hm\nAction:" + " " * 1_000_000 + "Finish[y]", "finish", "hm"),
        ("action" + " " * 500_000 + ":" + " " * 500_000 + "Search[x]", "search", ""),
    ):
        start = time.perf_counter()
        step = parse_step(text)
        assert (step.kind, step.thought) == (kind, thought)
        assert time.perf_counter() - start < 30  # hang guard (quadratic: minutes)


def test_input_react_steps_keep_the_old_transcript_semantics() -> None:
    from aligngym.envs.text.react import parse_step

    assert parse_step("Thought: look it up\nAction: Search[Zorvani]").thought == "look it up"
    assert parse_step("  thought :  hmm   action :  Finish[ a ]").thought == "hmm"
    assert parse_step("I know\nAction:Finish[x]").thought == "I know"
    assert parse_step("Thought:Action: Search[x]").thought == ""


def test_fault_a_raw_react_env_keeps_bounded_memory_and_the_same_observations() -> None:
    """10,000 steps without a TimeLimit: only what an observation can still show is kept, and every
    observation equals the one built from the full history (the old, unbounded way)."""
    from aligngym.envs.text.react import OMITTED, ReActQAEnv

    env = ReActQAEnv(split="dev", max_transcript_chars=512, max_searches=3)
    env.reset(seed=0)
    history: list[str] = []
    for i in range(10_000):
        obs, *_ = env.step(f"Search[query {i}]" if i % 7 else "garbage " * 40)
        history.append(obs.splitlines()[-2] + "\n" + obs.splitlines()[-1])
        head = f"Question: {env.question.text}\n"
        blocks, text = list(history), head + "".join(b + "\n" for b in history)
        while len(text) > 512 and blocks:
            blocks.pop(0)
            text = head + OMITTED + "\n" + "".join(b + "\n" for b in blocks)
        if i % 997 == 0:
            assert obs == text[-512:]
        if len(history) > 50:
            history = history[-50:]  # the reference only needs the tail (each block > 10 chars)
    assert len(env._blocks) <= 512 // 10
    assert sum(len(b) + 1 for b in env._blocks) <= 512 + max(len(b) + 1 for b in env._blocks)


@pytest.mark.parametrize("digits", [4_301, 10_000, 100_000])
def test_input_arithmetic_answers_beyond_the_int_str_limit(digits) -> None:
    from aligngym.envs.text.generation import arithmetic_reward

    a = "9" * digits
    assert arithmetic_reward(f"{a} + 1 =", " 1" + "0" * digits) == 1.0
    assert arithmetic_reward(f"{a} + 1 =", " 1" + "0" * (digits - 1) + "1") == 0.0
    assert arithmetic_reward("1 + 1 =", " " + "2" * digits) == 0.0


# ---------------------------------------------------------------------------------------------------
# Reward-net files


def _net():
    from aligngym.rewards.reward_nets import RewardNet

    return RewardNet(obs_dim=3, act_dim=1, hidden=(8, 8), ensemble_size=2, seed=0)


def _rewrite_metadata(path: Path, metadata: dict) -> None:
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(path), metadata=metadata)


def test_fault_a_flipped_byte_in_a_reward_net_file_is_detected(tmp_path) -> None:
    from aligngym.rewards.reward_nets import load_reward_net, save_reward_net

    path = tmp_path / "net.safetensors"
    save_reward_net(_net(), path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # a weight's low mantissa bit: still finite, only the checksum can tell
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="do not match their checksum"):
        load_reward_net(path)


def test_fault_a_flipped_exponent_in_an_old_reward_net_file_is_detected(tmp_path) -> None:
    """Files from before checksums: a flipped exponent byte gives inf/NaN, refused by the finite check."""
    from safetensors import safe_open

    from aligngym.rewards.reward_nets import load_reward_net, save_reward_net

    path = tmp_path / "net.safetensors"
    save_reward_net(_net(), path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = {"aligngym_reward_net": handle.metadata()["aligngym_reward_net"]}
    _rewrite_metadata(path, metadata)
    data = bytearray(path.read_bytes())
    data[-1] = 0x7F  # the last float's sign/exponent byte
    data[-2] |= 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="non-finite"):
        load_reward_net(path)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"obs_dim": 3, "act_dim": 1, "hidden": [100_000, 100_000]}, "at most 50,000,000"),
        ({"obs_dim": 3, "act_dim": 1, "hidden": [8, 4]}, "do not match the architecture"),
        ({"obs_dim": -1, "hidden": [8]}, "obs_dim=-1"),
        ({"obs_dim": 3, "nonsense": 1}, "architecture metadata is invalid"),
    ],
)
def test_input_reward_net_header_sizes_are_checked_before_allocation(tmp_path, fields, expected) -> None:
    from aligngym.rewards.reward_nets import load_reward_net, save_reward_net

    path = tmp_path / "net.safetensors"
    save_reward_net(_net(), path)
    _rewrite_metadata(path, {"aligngym_reward_net": json.dumps(fields)})
    with pytest.raises(ValueError, match=expected):
        load_reward_net(path)


def test_input_a_diverged_reward_net_is_not_saved(tmp_path) -> None:
    from aligngym.rewards.reward_nets import save_reward_net

    net = _net()
    with torch.no_grad():
        net.body[0].weight[0, 0, 0] = float("inf")  # what fit.lr=inf produced
    with pytest.raises(ValueError, match="non-finite values"):
        save_reward_net(net, tmp_path / "net.safetensors")
    assert not (tmp_path / "net.safetensors").exists()


def test_input_a_truncated_reward_net_file_is_one_value_error(tmp_path) -> None:
    from aligngym.rewards.reward_nets import load_reward_net, save_reward_net

    path = tmp_path / "net.safetensors"
    save_reward_net(_net(), path)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_reward_net(path)


def test_reward_nets_save_and_load_like_hub_models(tmp_path) -> None:
    from aligngym.rewards.reward_nets import RewardNet, save_reward_net

    net = _net()
    net.save_pretrained(tmp_path / "hub")
    assert {"model.safetensors", "config.json"} <= {p.name for p in (tmp_path / "hub").iterdir()}
    assert json.loads((tmp_path / "hub" / "config.json").read_text())["hidden"] == [8, 8]
    x, u = torch.randn(5, 3), torch.randn(5, 1)
    torch.testing.assert_close(RewardNet.from_pretrained(tmp_path / "hub")(x, u), net(x, u))
    save_reward_net(net, tmp_path / "old.safetensors")  # the existing single-file format loads too
    torch.testing.assert_close(RewardNet.from_pretrained(tmp_path / "old.safetensors")(x, u), net(x, u))


# ---------------------------------------------------------------------------------------------------
# Sweeps


def test_fault_a_failing_last_cell_keeps_every_other_row_and_a_rerun_retries_only_it(tmp_path) -> None:
    from aligngym.runs.errors import SweepError
    from aligngym.runs.sweep import finished_rows

    markers = tmp_path / "markers"
    markers.mkdir()
    out = tmp_path / "out"
    flag = tmp_path / "fail"
    flag.touch()
    cells = grid(marker_dir=str(markers), fail_seeds=[3], fail_flag=str(flag))
    with pytest.raises(SweepError) as failure:
        run_sweep(cells, CELL, out, workers=1, progress=False)
    message = str(failure.value)
    assert "\n" not in message and cell_key(cells[3]) in message and "planted failure in seed 3" in message
    rows = read_rows(out / "results.jsonl")
    assert sorted(r["seed"] for r in finished_rows(rows)) == [0, 1, 2]
    errors = [r for r in rows if r.get("error")]
    assert [(r["key"], r["seed"]) for r in errors] == [(cell_key(cells[3]), 3)]
    assert errors[0]["error"] == "ValueError: planted failure in seed 3 second line of the message"
    flag.unlink()  # the cause fixed, the same command again retries only the failed cell
    rows = run_sweep(cells, CELL, out, workers=1, progress=False)
    assert [r["seed"] for r in rows] == [0, 1, 2, 3] and not any(r.get("error") for r in rows)
    assert sorted(starts(markers)) == sorted([cell_key(c) for c in cells] + [cell_key(cells[3])])


def test_fault_a_worker_killed_mid_sweep_costs_no_finished_row(tmp_path) -> None:
    from aligngym.runs.errors import SweepError
    from aligngym.runs.sweep import finished_rows

    markers = tmp_path / "markers"
    markers.mkdir()
    cells = grid(6, marker_dir=str(markers), die_seeds=[5], sleep=0.05)
    with pytest.raises(SweepError, match="BrokenProcessPool|terminated abruptly"):
        run_sweep(cells, CELL, tmp_path / "out", workers=1, progress=False)
    rows = read_rows(tmp_path / "out" / "results.jsonl")
    assert [r["seed"] for r in finished_rows(rows)] == [0, 1, 2, 3, 4]
    assert [r["seed"] for r in rows if r.get("error")] == [5]


def test_fault_a_second_sweep_into_a_locked_folder_is_refused_and_a_crash_releases_the_lock(
    tmp_path, capsys
) -> None:
    out = tmp_path / "out"
    script = (
        f"import sys, time; sys.path.insert(0, {str(HERE)!r});"
        "from aligngym.runs.sweep import folder_lock;"
        f"lock = folder_lock({str(out)!r}); lock.__enter__(); print('locked', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match="is in use by another running sweep"):
            run_sweep(grid(2), CELL, out, workers=1, progress=False)
        assert not (out / "results.jsonl").exists()
    finally:
        holder.kill()  # a crash: the kernel drops the flock
        holder.wait()
    assert len(run_sweep(grid(2), CELL, out, workers=1, progress=False)) == 2


def test_fault_reports_count_a_duplicated_cell_once(tmp_path) -> None:
    from aligngym.runs.reports import render_report
    from aligngym.runs.sweep import append_row

    rows = [
        {
            "key": f"k{seed}",
            "domain": "control",
            "env": "E",
            "noise": "mistake",
            "rate": 0.1,
            "method": "bt",
            "seed": seed,
            "clean_accuracy": float(seed),
        }
        for seed in range(3)
    ]
    for row in rows + rows[:2]:  # two instances once wrote cells 0 and 1 twice
        append_row(tmp_path / "results.jsonl", row)
    append_row(tmp_path / "results.jsonl", {**rows[0], "key": "k9", "seed": 9, "error": "ValueError: x"})
    report = render_report(tmp_path)
    assert [s.seeds for s in report.summaries] == [3]


def _bench_recipe(tmp_path: Path, epochs: int) -> str:
    path = tmp_path / f"recipe-{epochs}.yaml"
    path.write_text(
        "name: tiny\nenvs: [Pendulum-v1]\n"
        "methods: [{name: bt}]\nnoises: [{teacher: mistake, levels: [0.1]}]\nseeds: [0, 1]\n"
        "pairs: {segment_length: 5, segments_per_policy: 4, gait_policies: 1, n_train: 8, n_test: 4, "
        f"epochs: {epochs}}}\n"
    )
    return str(path)


def bench_cell(cell: dict, progress) -> dict:
    return {"clean_accuracy": 0.5 + 0.1 * cell["seed"]}


def test_fault_a_refused_rerun_changes_no_file_in_the_folder(tmp_path, monkeypatch) -> None:
    from aligngym.runs import reward_benchmark
    from aligngym.runs.reward_benchmark import load_bench_recipe, run_benchmark

    monkeypatch.setattr(reward_benchmark, "CONTROL_CELL", "test_hostile_inputs:bench_cell")
    out = tmp_path / "out"
    first = load_bench_recipe(_bench_recipe(tmp_path, 1))
    assert len(run_benchmark(first, out, workers=1, progress=False, argv=["first"])) == 2
    before = snapshot(out)
    changed = load_bench_recipe(_bench_recipe(tmp_path, 2))  # another grid: every cell's key differs
    with pytest.raises(UsageError, match="different sweep"):
        run_benchmark(changed, out, workers=1, progress=False, argv=["second"])
    assert snapshot(out) == before  # config.yaml and meta.json still describe the rows that are there


def test_fault_sigterm_to_a_sweep_stops_its_pool_workers(tmp_path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    cells = grid(2, marker_dir=str(markers), sleep=120)
    script = (
        f"import sys, json; sys.path.insert(0, {str(HERE)!r});"
        "from aligngym.runs.sweep import run_sweep;"
        f"run_sweep(json.loads(sys.argv[1]), {CELL!r}, {str(tmp_path / 'out')!r}, workers=2, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(cells)], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(starts(markers)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [int(line.split()[1]) for line in (markers / "starts.txt").read_text().splitlines()]
        assert len(pids) == 2 and all(_alive(pid) for pid in pids)
        proc.send_signal(signal.SIGTERM)  # to the sweep only, as `kill PID` or a scheduler would
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in pids)  # no orphaned worker keeps computing
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_status_lines_show_progress_and_eta_when_not_a_terminal(capsys) -> None:
    from aligngym.runs.sweep import _ProgressView

    view = _ProgressView(total=4, completed=1, enabled=True, interactive=False)
    view.started -= 120  # two minutes in
    view.finished({"key": "a"})
    line = capsys.readouterr().out.strip()
    assert line == "2/4 cells, 2m elapsed, ETA 4m"  # one cell in 2m here, two left


# ---------------------------------------------------------------------------------------------------
# No code from a results folder: a planted pickle is never executed


class Payload:
    """Unpickling this creates ``marker``: the proof that a load ran code from the folder."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def plant_payload(zip_path: Path, marker: Path) -> None:
    """Add a cloudpickled Payload to the ``data`` entry of an SB3 zip, where ``SAC.load`` unpickles it."""
    with zipfile.ZipFile(zip_path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    data = json.loads(entries["data"])
    data["planted"] = {
        ":type:": "<class 'object'>",
        ":serialized:": base64.b64encode(pickle.dumps(Payload(str(marker)))).decode(),
    }
    entries["data"] = json.dumps(data).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    zip_path.write_bytes(buffer.getvalue())


def _tiny_rarl(run_dir: Path, iterations: int = 1):
    from aligngym.agents.adversarial.training import AdversarialTrainer
    from aligngym.runs.recipes import recipe_from_dict

    recipe = recipe_from_dict({**RARL_RECIPE, "config": {**RARL_RECIPE["config"], "iterations": iterations}})
    trainer = AdversarialTrainer(recipe.config, 0, run_dir)
    trainer.train()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(recipe.to_dict()))
    return trainer


def test_fault_a_planted_pickle_in_a_run_folder_is_never_executed(tmp_path, capsys) -> None:
    from stable_baselines3 import SAC

    run = tmp_path / "run"
    trainer = _tiny_rarl(run)
    marker = tmp_path / "EXECUTED"
    for name in ("protagonist.zip", "adversary.zip", "checkpoints/iteration-00001/protagonist.zip"):
        plant_payload(run / name, marker)
    (run / "protagonist.pkl").write_bytes(pickle.dumps(Payload(str(marker))))
    SAC.load(run / "protagonist.zip")  # the plant is live: SB3's own loader runs it
    assert marker.exists()
    marker.unlink()

    argv = [
        "eval",
        "robustness",
        str(run),
        "--episodes",
        "1",
        "--worst-case-steps",
        "0",
        "--grid-points",
        "2",
    ]
    assert main(argv) == 0
    assert not marker.exists()
    assert "nominal_return" in capsys.readouterr().out

    from aligngym.agents.adversarial.training import load_players

    protagonist, adversary = load_players(trainer.config, run)
    for loaded, trained in ((protagonist, trainer.protagonist), (adversary, trainer.adversary)):
        for a, b in zip(
            loaded.policy.state_dict().values(), trained.policy.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b)

    # Resuming reads the checkpoint's weights but never its pickled ``data`` entry.
    from aligngym.agents.adversarial.training import AdversarialTrainer
    from aligngym.runs.recipes import recipe_from_dict

    longer = recipe_from_dict({**RARL_RECIPE, "config": {**RARL_RECIPE["config"], "iterations": 2}}).config
    resumed = AdversarialTrainer(longer, 0, run)
    resumed.train()
    assert resumed.iteration == 2 and not marker.exists()


def test_fault_altered_policy_weights_are_refused_with_one_line(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    _tiny_rarl(run)
    capsys.readouterr()  # training's own output is not the command's
    weights = run / "adversary.safetensors"
    data = bytearray(weights.read_bytes())
    data[-2] ^= 0x10
    weights.write_bytes(bytes(data))
    assert main(["eval", "robustness", str(run), "--worst-case-steps", "0", "--grid-points", "2"]) == 2
    assert "the file is altered" in one_error_line(capsys)


def test_fault_an_sb3_run_model_loads_without_pickle_and_a_hostile_description_is_refused(tmp_path) -> None:
    from aligngym.agents.sb3_training import SB3Config, load_trained_model, train_sb3

    config = SB3Config(**{**SB3_RECIPE["config"], "progress_bar": False})
    train_sb3(config, 0, tmp_path)
    marker = tmp_path / "EXECUTED"
    plant_payload(tmp_path / "model.zip", marker)
    model = load_trained_model(tmp_path / "model")
    assert not marker.exists()
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "model.safetensors"))
    for name, tensor in model.policy.state_dict().items():
        assert torch.equal(tensor, saved[name])
    description = json.loads((tmp_path / "model.json").read_text())
    description["sb3_config"]["policy"] = "os:system"  # a JSON someone edited to import code
    (tmp_path / "model.json").write_text(json.dumps(description))
    with pytest.raises(ValueError, match="'os:system' is not allowed"):
        load_trained_model(tmp_path / "model")
