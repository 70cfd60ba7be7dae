"""DPO step time of each loss variant as a ratio to TRL's stock sigmoid DPO, on the same batch, in one run.

A step is ``compute_loss`` (policy and reference forward, loss, metrics) plus ``backward``: the part
the variants change (the optimizer step is the same for all). Every variant starts from the same
weights and times the same collated batch. Each variant is measured right after the baseline (TRL's
``DPOTrainer`` with ``loss_type="sigmoid"``) in every round, the order rotating, so machine load hits
both alike; the headline is the median over rounds of the paired ratios (min-max beside it) and the
ratio of the best times (the least disturbed run). Ratios belong side by side in one process, so this
benchmark runs directly, not through the sweep runner. Needs the ``llm`` extra.

    aligngym bench dpo-step-time --publish benchmarks/results     # tiny model on CPU, the committed table
    aligngym bench dpo-step-time --device cuda --model /models/Qwen2.5-0.5B --dtype bfloat16 \
        --batch-size 8 --repeat 8                                  # >= 100M params in bf16 on a GPU
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import tempfile
import time
from typing import Any

from aligngym.files import atomic_write_json, atomic_write_text
from aligngym.runs.bench.options import add_output_arguments, command_line, out_dir, publish
from aligngym.runs.errors import UsageError

NAME = "dpo-step-time"
DESCRIPTION = "DPO step time of each loss variant as a ratio to TRL's stock sigmoid DPO (paired, one process)"
VARIANTS: dict[str, dict] = {
    "TRL sigmoid (stock DPOTrainer)": {},
    "sigmoid via RobustDPOTrainer": {"loss_type": "sigmoid"},
    "TRL robust (rDPO)": {"loss_type": "robust", "label_smoothing": 0.2},
    "TRL ipo": {"loss_type": "ipo"},
    "bt (rewards.losses)": {"loss_type": "bt"},
    "r3m": {"loss_type": "r3m", "loss_params": {"lam": 0.5}},
    "adaptive": {"loss_type": "adaptive"},
    "adaptive_quadratic": {"loss_type": "adaptive_quadratic"},
}
BASELINE = "TRL sigmoid (stock DPOTrainer)"
TARGET = 1.05


def preference_rows(n: int, repeat: int, seed: int = 0) -> list[dict[str, str]]:
    """n sentiment pairs; ``repeat`` demonstrations per completion make longer sequences for real models."""
    from aligngym.envs.text.generation import get_task

    corpus = get_task("sentiment").corpus(n * 2 * repeat, seed)

    def completion(i: int) -> str:
        return "".join(r["completion"] for r in corpus[i * repeat : (i + 1) * repeat])

    return [
        {
            "prompt": corpus[2 * i * repeat]["prompt"],
            "chosen": completion(2 * i),
            "rejected": completion(2 * i + 1),
        }
        for i in range(n)
    ]


def build_trainers(args: argparse.Namespace, scratch: str) -> tuple[dict[str, Any], dict, int]:
    """One trainer per variant, each with its own copy of the same policy and reference weights."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from aligngym.alignment.dpo import RobustDPOConfig, RobustDPOTrainer
    from aligngym.alignment.models import ModelSpec, load_causal_lm, load_tokenizer

    rows = preference_rows(args.batch_size, args.repeat)
    spec = ModelSpec(name_or_path=args.model, dtype=args.dtype)
    tokenizer = load_tokenizer(spec, corpus=[r["prompt"] + r["chosen"] for r in preference_rows(256, 1)])
    model = load_causal_lm(spec, tokenizer, seed=0)
    cuda = args.device == "cuda"
    common = {
        "output_dir": scratch,
        "use_cpu": not cuda,
        "bf16": cuda and args.dtype == "bfloat16",
        "report_to": "none",
        "per_device_train_batch_size": args.batch_size,
        "gradient_checkpointing": False,
        "save_strategy": "no",
        "max_length": None,
        "seed": 0,
        "disable_tqdm": True,
        "beta": 0.1,
    }
    dataset = Dataset.from_list(rows)
    trainers: dict[str, Any] = {}
    for name, kwargs in VARIANTS.items():
        config_cls, trainer_cls = (
            (DPOConfig, DPOTrainer) if name == BASELINE else (RobustDPOConfig, RobustDPOTrainer)
        )
        policy, reference = copy.deepcopy(model), copy.deepcopy(model)
        if cuda:
            policy, reference = policy.cuda(), reference.cuda()
        trainers[name] = trainer_cls(
            model=policy,
            ref_model=reference,
            args=config_cls(**common, **kwargs),
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    batch = next(iter(trainers[BASELINE].get_train_dataloader()))
    n_params = sum(p.numel() for p in model.parameters())
    return trainers, batch, n_params


def timed_steps(trainer: Any, batch: dict, steps: int, cuda: bool) -> float:
    """Seconds per step (compute_loss + backward) over ``steps`` steps on the same batch."""
    import torch

    model = trainer.model
    model.train()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        with trainer.compute_loss_context_manager():
            loss = trainer.compute_loss(model, batch)
        loss.backward()
        model.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny", help="tiny (offline) or a local path / hub id")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per step")
    parser.add_argument(
        "--repeat", type=int, default=1, help="demonstrations per completion (longer sequences)"
    )
    parser.add_argument("--steps", type=int, default=5, help="steps per measurement")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    add_output_arguments(parser, NAME)


def run(args: argparse.Namespace) -> int:
    try:
        import trl  # noqa: F401
    except ImportError:
        raise UsageError("dpo-step-time needs the llm extra: pip install 'aligngym[llm]'") from None
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda needs a CUDA GPU; valid here: --device cpu")
    out = out_dir(args, NAME)
    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    load = os.getloadavg()

    with tempfile.TemporaryDirectory() as scratch:
        trainers, batch, n_params = build_trainers(args, scratch)
        device = trainers[BASELINE].accelerator.device
        batch = {k: v.to(device) for k, v in batch.items()}
        tokens = int(batch["attention_mask"].sum())
        for trainer in trainers.values():  # warm-up (allocator, kernels, lazy init)
            timed_steps(trainer, batch, 2, cuda)
        others = [name for name in trainers if name != BASELINE]
        times: dict[str, list[float]] = {name: [] for name in trainers}
        paired: dict[str, list[float]] = {name: [] for name in others}
        peak: dict[str, float] = {}
        for r in range(args.rounds):
            for name in others[r % len(others) :] + others[: r % len(others)]:
                base = timed_steps(trainers[BASELINE], batch, args.steps, cuda)
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                t = timed_steps(trainers[name], batch, args.steps, cuda)
                if cuda:
                    peak[name] = max(peak.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**30)
                times[BASELINE].append(base)
                times[name].append(t)
                paired[name].append(t / base)

    best_base = min(times[BASELINE])
    results = {
        "command": command_line(args, NAME),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads}",
        "load_average_at_start": [round(x, 2) for x in load],
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "model": args.model,
        "parameters": n_params,
        "dtype": args.dtype,
        "pairs_per_step": args.batch_size,
        "tokens_per_step": tokens,
        "steps_per_measurement": args.steps,
        "rounds": args.rounds,
        "variants": {},
    }
    for name in trainers:
        ratios = paired.get(name, [1.0])
        best = min(times[name])
        results["variants"][name] = {
            "best_step_ms": round(1000 * best, 2),
            "tokens_per_s_best": round(tokens / best, 1),
            "ratio_best": round(best / best_base, 3),
            "paired_ratio_median": round(statistics.median(ratios), 3),
            "paired_ratio_min": round(min(ratios), 3),
            "paired_ratio_max": round(max(ratios), 3),
            "peak_memory_gib": round(peak[name], 2) if name in peak else None,
        }
    stem = "dpo_step_time" if not cuda else "dpo_step_time_gpu"
    atomic_write_json(out / f"{stem}.json", results)
    atomic_write_text(out / f"{stem}.md", markdown(results))
    print(markdown(results))
    for path in publish(out, (f"{stem}.md", f"{stem}.json"), args.publish):
        print(f"published: {path}")
    return 0


def markdown(results: dict) -> str:
    lines = [
        "# DPO step time: each loss variant vs TRL's stock sigmoid DPO (same batch, same run)\n",
        f"Command: `{results['command']}`\n",
        (
            f"Machine: {results['machine']}; device {results['device']}; load average at start "
            f"{' '.join(map(str, results['load_average_at_start']))}. Model {results['model']} "
            f"({results['parameters']:,} parameters, {results['dtype']}), {results['pairs_per_step']} pairs "
            f"({results['tokens_per_step']} tokens) per step; step = compute_loss + backward; "
            f"{results['steps_per_measurement']} steps per measurement, {results['rounds']} rounds of "
            "(baseline, variant) pairs.\n"
        ),
        "| variant | best step (ms) | tokens/s | ratio (best) | paired ratio median (min-max) | target | met | peak GiB |",
        "| --- | ---: | ---: | ---: | --- | ---: | :---: | ---: |",
    ]
    for name, v in results["variants"].items():
        baseline = name == BASELINE
        met = "" if baseline else ("yes" if v["paired_ratio_median"] <= TARGET else "NO")
        peak = "" if v["peak_memory_gib"] is None else f"{v['peak_memory_gib']:.2f}"
        lines.append(
            f"| {name} | {v['best_step_ms']:.1f} | {v['tokens_per_s_best']:,.0f} | {v['ratio_best']:.3f} | "
            f"{v['paired_ratio_median']:.3f} ({v['paired_ratio_min']:.3f}-{v['paired_ratio_max']:.3f}) | "
            f"{'' if baseline else f'<= {TARGET}'} | {met} | {peak} |"
        )
    return "\n".join(lines) + "\n"
