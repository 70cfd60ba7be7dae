"""Every registered loss, and a new one defined here in one class, through every place that trains with a loss.

Parametrised over ``LOSSES`` itself (plus the toy loss below), so a newly registered loss is covered
without editing this file: reward fitting, the control benchmark cell, the text cell, RobustDPOTrainer
and RobustRewardTrainer. Recipe parameters must reach the loss object in both domains.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from datasets import Dataset

from aligngym.rewards.fitting import FitConfig, fit_reward
from aligngym.rewards.losses import LOSSES, LossSpec, PreferenceLoss, R3MLoss, register_loss
from aligngym.rewards.pairs import PairConfig, SegmentSet, make_pair_split
from aligngym.rewards.reward_nets import RewardNet
from aligngym.rewards.teachers import make_teacher
from aligngym.runs.errors import UsageError
from aligngym.runs.reward_benchmark import (
    BenchRecipe,
    MethodSpec,
    NoiseSpec,
    TextConfig,
    control_cell,
    grid_cells,
    load_bench_recipe,
    text_cell,
)


@dataclass(frozen=True)
class ToyLoss(PreferenceLoss):
    """A new loss in one class: squared hinge ``max(0, offset - m)^2``; pairs with ``m < 0`` are flagged."""

    name: ClassVar[str] = "toy"
    calls: ClassVar[list[float]] = []  # the offset of every call (what reached the loss object)
    offset: float = 1.0

    def __post_init__(self) -> None:
        if not self.offset > 0:
            raise ValueError(f"loss 'toy': offset={self.offset!r} must be > 0")

    def _terms(self, margins: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ToyLoss.calls.append(self.offset)
        return torch.clamp(self.offset - margins, min=0.0) ** 2, {"excess": torch.clamp(-margins, min=0.0)}

    def _summaries(self, diag, hard):
        flagged = diag["excess"] > 0
        return {"flagged": flagged, "flagged_fraction": flagged.float().mean()}


ALL_LOSSES = [*sorted(LOSSES), ToyLoss.name]  # the registry as collected, and the toy loss
# (name, params): every loss at its defaults, and the toy loss with a non-default parameter that must arrive
ALL_SPECS = [*((name, {}) for name in sorted(LOSSES)), (ToyLoss.name, {"offset": 0.7})]
SMALL_TEXT = {
    "sft_examples": 96,
    "sft_epochs": 1.0,
    "train_prompts": 24,
    "heldout_prompts": 16,
    "samples_per_prompt": 3,
    "max_new_tokens": 12,
    "dpo_epochs": 1.0,
    "dpo_batch_size": 8,
}


@pytest.fixture(autouse=True)
def toy_registered():
    """The toy loss is registered for each test of this module only (register_loss, then removed)."""
    register_loss(ToyLoss)
    ToyLoss.calls.clear()
    yield
    LOSSES.pop(ToyLoss.name)


@pytest.fixture(scope="module")
def text_cache(tmp_path_factory):
    """One SFT model and pair pool cache for the text cells of this module."""
    return str(tmp_path_factory.mktemp("text-cache"))


def _linear_split(seed: int = 0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(300, 8, 4)).astype(np.float32)
    segments = SegmentSet(
        obs,
        np.zeros((300, 8, 0), np.float32),
        obs.astype(np.float64) @ rng.normal(size=4),
        np.zeros(300, int),
    )
    return make_pair_split(
        segments, PairConfig(n_train=400, n_val=0, n_test=150), make_teacher("oracle"), seed=seed
    )


def test_loss_spec_validates_once_with_one_clear_error():
    assert LossSpec("adaptive", {"tau_max": 2}).params == {"tau_max": 2.0}  # an int passes as a float
    assert LossSpec.of({"name": "adaptive", "params": {"tau0": 0.2}}).resolved_params()["tau_max"] == 1.0
    assert LossSpec.of("toy") == LossSpec("toy") and str(LossSpec("r3m", {"lam": 0.2})) == "r3m(lam=0.2)"
    for args, message in [
        (("r3n",), "unknown loss 'r3n'; valid names: adaptive, .*toy"),
        (("r3m", {"lamda": 0.2}), r"no parameter\(s\) lamda; valid: lam"),
        (("r3m", {"lam": "0.2"}), "lam='0.2' has type str; expected float"),
        (("adaptive", {"newton_steps": 2.5}), "newton_steps=2.5 has type float; expected int"),
        (("toy", {"offset": -1.0}), "offset=-1.0 must be > 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            LossSpec(*args)
    with pytest.raises(ValueError, match="unique, non-empty name"):
        register_loss(ToyLoss)  # already registered


def test_one_default_per_parameter_declared_in_the_loss_class():
    """The configs take the loss class's defaults: nothing re-declares them."""
    from aligngym.alignment.dpo import RobustDPOConfig
    from aligngym.alignment.reward_model import RobustRewardConfig

    args = {"output_dir": "unused", "use_cpu": True, "bf16": False, "report_to": "none"}
    assert RobustDPOConfig(loss_type="r3m", **args).loss_spec.build() == R3MLoss()
    assert RobustRewardConfig(loss_type="adaptive", **args).loss_spec.resolved_params()["tau0"] == 0.1
    assert FitConfig(loss="r3m").loss.build().lam == R3MLoss.lam == 0.5


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_every_loss_fits_a_reward_net(name):
    split = _linear_split()
    net = RewardNet(obs_dim=4, act_dim=0, hidden=(16,), seed=0)
    result = fit_reward(
        net, split.train, None, FitConfig(loss=name, epochs=8, lr=0.01, patience=None), split.test
    )
    assert result.test_metrics["accuracy"] > 0.8  # clean labels: every loss must learn the linear reward
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def _dpo_trainer(tmp_path, tiny_lm, spec, **extra):
    from aligngym.alignment.dpo import RobustDPOConfig, RobustDPOTrainer, dpo_loss_arguments

    policy, tokenizer = tiny_lm
    reference = copy.deepcopy(policy)
    with torch.no_grad():  # the policy differs from the reference, so margins are far from zero
        generator = torch.Generator().manual_seed(1)
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator))
    rows = [
        {"prompt": "Question: ", "chosen": " kind, short and true.", "rejected": " the lazy dog."},
        {"prompt": "A good reply ", "chosen": " is kind.", "rejected": " jumps over."},
        {"prompt": "Search[", "chosen": "Alice Smith]", "rejected": "Paris] Finish"},
        {"prompt": "The quick ", "chosen": "brown fox", "rejected": "answer: 5"},
    ]
    config = RobustDPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=4,
        max_steps=1,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        beta=1.0,
        **dpo_loss_arguments(spec),
        **extra,
    )
    return RobustDPOTrainer(
        model=policy,
        ref_model=reference,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )


def _batch_margins(trainer, batch) -> torch.Tensor:
    _, chosen, rejected, _ = trainer.policy_log_probs(trainer.model, batch)
    ref_chosen, ref_rejected = trainer.reference_log_probs(batch)
    return trainer.beta * ((chosen - ref_chosen) - (rejected - ref_rejected))


@pytest.mark.parametrize(("name", "params"), ALL_SPECS)
def test_every_loss_trains_dpo_with_the_loss_of_its_spec(tmp_path, tiny_lm, name, params):
    """RobustDPOTrainer's loss is the spec's formula on the DPO margins (for bt / robust: TRL's own code)."""
    spec = LossSpec(name, params)
    trainer = _dpo_trainer(tmp_path, tiny_lm, spec)
    batch = next(iter(trainer.get_train_dataloader()))
    loss = trainer.compute_loss(trainer.model, batch)
    with torch.no_grad():
        margins = _batch_margins(trainer, batch)
    assert margins.abs().max() > 1.0
    assert float(loss) == pytest.approx(float(spec.build()(margins.detach()).loss), rel=1e-5, abs=1e-6)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    logged = trainer.state.log_history[0]
    assert {"logits/chosen", "logits/rejected", "mean_token_accuracy", "rewards/margins"} <= set(logged)
    assert name != ToyLoss.name or set(ToyLoss.calls) == {0.7}


def test_dpo_loss_weights_scale_the_robust_loss_as_trl_does(tmp_path, tiny_lm):
    spec = LossSpec("r3m", {"lam": 0.3})
    plain = _dpo_trainer(tmp_path, copy.deepcopy(tiny_lm), spec)
    doubled = _dpo_trainer(tmp_path, copy.deepcopy(tiny_lm), spec, loss_weights=[2.0])
    batch = next(iter(plain.get_train_dataloader()))
    assert float(doubled.compute_loss(doubled.model, batch)) == pytest.approx(
        2.0 * float(plain.compute_loss(plain.model, batch)), rel=1e-6
    )


@pytest.mark.parametrize(("name", "params"), ALL_SPECS)
def test_every_loss_trains_the_reward_model_with_the_loss_of_its_spec(tmp_path, tiny_lm, name, params):
    from aligngym.alignment.reward_model import RobustRewardConfig, RobustRewardTrainer, reward_loss_arguments
    from aligngym.alignment.tiny import build_tiny_reward_model

    _, tokenizer = tiny_lm
    spec = LossSpec(name, params)
    rows = [
        {"chosen": "A good reply is kind.", "rejected": "The lazy dog."},
        {"chosen": "Answer: 5", "rejected": "Finish[Paris]"},
        {"chosen": "short and true.", "rejected": "quick brown fox"},
        {"chosen": "Alice Smith", "rejected": "jumps over the"},
    ]
    model = build_tiny_reward_model(tokenizer, seed=0, hidden_size=32, layers=1, heads=2)
    with torch.no_grad():
        model.score.weight.mul_(50.0)  # rewards far apart, so the losses differ from Bradley-Terry
    config = RobustRewardConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        per_device_train_batch_size=4,
        max_steps=1,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        **reward_loss_arguments(spec),
    )
    trainer = RobustRewardTrainer(
        model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    assert trainer.margin_loss == spec.build()
    batch = dict(next(iter(trainer.get_train_dataloader())))
    loss = trainer.compute_loss(trainer.model, dict(batch))
    with torch.no_grad():
        margins = trainer.reward_margins_of(trainer.train_dataset)
    assert margins.abs().max() > 0.5
    assert float(loss) == pytest.approx(float(spec.build()(margins).loss), rel=1e-4, abs=1e-6)
    trainer.train()
    assert math.isfinite(trainer.state.log_history[0]["loss"])
    assert name != ToyLoss.name or set(ToyLoss.calls) == {0.7}


def test_toy_loss_and_its_parameter_reach_the_control_benchmark_cell(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(
        "name: toy\ndomain: control\nenvs: [Pendulum-v1]\n"
        "methods: [{name: bt}, {name: toy-strong, loss: toy, params: {offset: 0.7}}]\n"
        "noises: [{teacher: mistake, levels: [0.2]}]\nseeds: [0]\nrl: null\n"
        "pairs: {segment_length: 10, segments_per_policy: 20, gait_policies: 1, n_train: 64, n_test: 32, "
        "epochs: 2}\n"
    )
    recipe = load_bench_recipe(str(path))
    assert recipe.methods[1] == MethodSpec("toy-strong", LossSpec("toy", {"offset": 0.7}))
    (cell,) = [c for c in grid_cells(recipe) if c["method"] == "toy-strong"]
    out = control_cell(cell)
    assert set(ToyLoss.calls) == {0.7}
    assert 0.0 <= out["flagged_fraction"] <= 1.0 and 0.0 <= out["clean_accuracy"] <= 1.0


def test_demo_recipe_parameter_reaches_the_r3m_loss_in_both_domains(monkeypatch, text_cache):
    """The demo's ``{name: r3m, params: {lam: 0.2}}`` trains R3M with lambda 0.2, control and text alike."""
    seen: list[float] = []
    terms = R3MLoss._terms
    monkeypatch.setattr(R3MLoss, "_terms", lambda self, m: (seen.append(self.lam), terms(self, m))[1])
    control = load_bench_recipe(
        "demo",
        [
            "envs=[Pendulum-v1]",
            "rl=null",
            "pairs.segments_per_policy=20",
            "pairs.gait_policies=1",
            "pairs.segment_length=10",
            "pairs.n_train=64",
            "pairs.n_test=32",
            "pairs.epochs=1",
        ],
    )
    (cell,) = [c for c in grid_cells(control) if c["method"] == "r3m" and c["rate"] == 0.2 and c["seed"] == 0]
    control_cell(cell)
    assert seen and set(seen) == {0.2}
    seen.clear()
    text = load_bench_recipe("demo", [f"text.budget={dict(SMALL_TEXT, cache_dir=text_cache)}"], domain="text")
    (cell,) = [c for c in grid_cells(text) if c["method"] == "r3m" and c["rate"] == 0.2 and c["seed"] == 0]
    assert cell["config"]["loss"] == {"name": "r3m", "params": {"lam": 0.2}}
    out = text_cell(cell)
    assert seen and set(seen) == {0.2}  # the DPO margin loss, the flagged pairs: lambda 0.2 throughout
    assert 0.0 <= out["flagged_fraction"] <= 1.0


def test_toy_loss_and_the_noise_params_reach_the_text_cell(monkeypatch, text_cache):
    from aligngym.alignment import preference_data

    teachers: list[tuple] = []
    make = preference_data.make_teacher
    monkeypatch.setattr(
        preference_data,
        "make_teacher",
        lambda kind, level=None, **params: (
            teachers.append((kind, level, params)),
            make(kind, level, **params),
        )[1],
    )
    recipe = BenchRecipe(
        name="toy-text",
        domain="text",
        methods=[MethodSpec("toy-strong", LossSpec("toy", {"offset": 0.7}))],
        noises=[NoiseSpec("irrational", [0.5], {"batch_size": 16})],
        seeds=[0],
        text=TextConfig(budget=dict(SMALL_TEXT, cache_dir=text_cache)),
    )
    (cell,) = grid_cells(recipe)
    out = text_cell(cell)
    assert set(ToyLoss.calls) == {0.7}
    assert ("irrational", 0.5, {"batch_size": 16}) in teachers
    assert 0.0 <= out["flagged_fraction"] <= 1.0 and math.isfinite(out["normalized_return"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("methods: [{name: x, loss: r3n}]", "method 'x': unknown text loss 'r3n'; valid: adaptive, .*ipo"),
        ("methods: [{name: r3m, params: {lam: 1.5}}]", r"lam=1.5 is outside the valid range \(0.0, 1.0\)"),
        ("methods: [{name: ipo, params: {beta: 0.1}}]", "loss 'ipo'"),
        ("methods: [{name: r3m}]\nnoises: [{teacher: myopic, levels: [0.5]}]", "'myopic' needs per-step"),
        (
            "methods: [{name: r3m}]\ntext: {budget: {samples_per_prompt: 1}}",
            "samples_per_prompt must be >= 2",
        ),
    ],
)
def test_text_recipe_errors_fail_at_load(tmp_path, extra, message):
    path = tmp_path / "bad.yaml"
    noises = "" if "noises:" in extra else "noises: [{teacher: mistake, levels: [0.2]}]\n"
    path.write_text(f"name: bad\ndomain: text\n{noises}{extra}\n")
    with pytest.raises(UsageError, match=message):
        load_bench_recipe(str(path))


def test_a_bad_text_method_is_one_cli_error_line(tmp_path, capsys):
    from aligngym.runs.cli import main

    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nmethods: [{name: r3m-strong, loss: r3m}, {name: x, loss: r3n}]\n"
        "noises: [{teacher: mistake, levels: [0.2]}]\n"
    )
    assert (
        main(
            ["bench", "reward-robustness", "--recipe", str(path), "--domain", "text", "--out", str(tmp_path)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aligngym: error: ") and "'r3n'" in err[0]
