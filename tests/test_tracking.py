"""Experiment tracking of jobs: the user picks the loggers; TensorBoard by default; nothing sent unless asked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aligngym.agents.sb3_logging import check_loggers, sb3_formats
from aligngym.agents.sb3_training import SB3Config, train_sb3


def _event_files(folder):
    return sorted(folder.rglob("events.out.tfevents.*"))


def test_sb3_job_logs_the_chosen_formats(tmp_path):
    tiny = {"total_timesteps": 64, "eval_episodes": 1, "hyperparams": {"n_steps": 32, "batch_size": 32}}
    train_sb3(SB3Config(**tiny, progress_bar=False), seed=0, run_dir=tmp_path / "default")
    assert _event_files(tmp_path / "default") and (tmp_path / "default" / "progress.csv").is_file()
    train_sb3(SB3Config(**tiny, loggers=["csv"], progress_bar=False), seed=0, run_dir=tmp_path / "csv")
    assert not _event_files(tmp_path / "csv") and (tmp_path / "csv" / "progress.csv").is_file()


def test_logger_names_are_checked():
    with pytest.raises(ValueError, match="unknown logger.*'mlflow'.*valid: stdout, csv, tensorboard"):
        SB3Config(loggers=["csv", "mlflow"])
    with pytest.raises(ValueError, match="must be a list"):
        check_loggers("csv")
    assert sb3_formats(["wandb"]) == ["tensorboard"]  # wandb mirrors the TensorBoard scalars
    assert sb3_formats(["stdout", "csv"]) == ["stdout", "csv"]


def test_reward_fit_job_writes_tensorboard(tmp_path):
    from aligngym.rewards.fitting import FitConfig, RewardFitJobConfig, run_reward_fit_job
    from aligngym.rewards.pairs import PairConfig

    config = RewardFitJobConfig(
        env_id="Pendulum-v1",
        policies=("random", "zero"),
        segments_per_policy=10,
        pairs=PairConfig(n_train=40, n_val=10, n_test=10),
        fit=FitConfig(epochs=2, patience=None),
        progress_bar=False,
    )
    run_reward_fit_job(config, seed=0, run_dir=tmp_path)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = _event_files(tmp_path / "tensorboard")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    losses = accumulator.Scalars("fit/train_loss")
    assert [e.step for e in losses] == [1, 2]
    assert "result/best_epoch" in accumulator.Tags()["scalars"]


def test_text_jobs_report_only_where_asked():
    pytest.importorskip("trl")
    from aligngym.alignment.jobs import DPOJobConfig, SFTJobConfig
    from aligngym.alignment.models import ModelSpec
    from aligngym.alignment.training import Tracking, tracking, trainer_arguments

    assert SFTJobConfig().report_to == ["tensorboard"]  # local files only
    with pytest.raises(ValueError, match="unknown integration.*'tensorbored'.*valid: .*tensorboard"):
        DPOJobConfig(report_to=["tensorbored"])
    spec = ModelSpec()
    assert trainer_arguments(spec, "out", 0)["report_to"] == "none"  # outside a job: nothing
    with tracking(Tracking(("tensorboard", "mlflow"), None, True)):
        assert trainer_arguments(spec, "out", 0)["report_to"] == ["mlflow"]  # TensorBoard: our own writer
    with tracking(Tracking(("tensorboard",), None, False)):
        assert trainer_arguments(spec, "out", 0)["report_to"] == "none"
    assert dataclasses.fields(Tracking)[0].default == ()
    assert SFTJobConfig(progress_bar=False).tracking(Path("run")).print_logs is False  # never raw log dicts
