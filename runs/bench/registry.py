"""Every benchmark of ``aligngym bench NAME`` by name: NAME is its module's name with dashes.

Each module exposes ``DESCRIPTION`` (one line), ``add_arguments(parser)`` and ``run(args) -> exit code``, and
imports only the standard library, numpy and aligngym's light modules at import time (torch, SB3, TRL
load when a benchmark runs), so that building the command line stays fast.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

BenchCommand = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]

MODULES = (
    "adversarial_robustness",
    "force_bound_probe",
    "qarl_throughput",
    "sac_backends",
    "env_throughput",
    "loss_overhead",
    "dpo_text_robustness",
    "dpo_step_time",
    "rest_generations",
    "rest_matched",
    "tensor_vs_mlp",
    "tensor_paper_protocol",
    "tensor_paper_trainer",
    "tensor_throughput",
    "tensor_distillation",
    "react_parse",
)


def _command(module_name: str) -> BenchCommand:
    module = importlib.import_module(f"aligngym.runs.bench.{module_name}")
    return module.DESCRIPTION, module.add_arguments, module.run


COMMANDS: dict[str, BenchCommand] = {name.replace("_", "-"): _command(name) for name in MODULES}
