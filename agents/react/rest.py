"""The ReST loop for ReAct agents (Aksitov et al. 2023, "ReST meets ReAct"), as an outer loop around TRL.

Generation 0 is a policy bootstrapped by SFT on scripted demonstrations. Generation g >= 1:

1. the policy of generation g-1 plays ``trajectories_per_question[g-1]`` episodes per training question
   (growing batch), drawing ``candidates`` (K) samples per step and continuing with the lowest-perplexity one;
2. every step becomes a training example: input = the step's transcript, candidates = its K samples;
3. a ranker scores the K candidates and the best one becomes the step's target (RAFT-like relabelling);
4. the policy is fine-tuned with TRL's ``SFTTrainer`` on the mix (demonstrations + every generation's
   examples so far), starting from generation g-1's weights;
5. dev and test success are measured.

Finally, self-distillation: a smaller student is trained from scratch on the same mix (the larger
policy's trajectories). That student and the demonstrations-only control are both made by
``RestLoop.variant`` (a model trained on given rows for given steps; ``aligngym bench rest-matched`` trains
its arms with it). Every generation's data (``trajectories.jsonl``, ``examples.jsonl``), checkpoint
(``model/``, save_pretrained + safetensors) and scores (``scores.json``) are written atomically into
``gen_XX/`` of the work folder; a stage whose output exists is skipped, so a killed loop resumes where it
stopped (``resume_from=<run folder>``).

Rankers (``ranker``: ``outcome``, ``reward_model``, ``judge``) are in ``rankers.py``, the settings in
``rest_config.py``, the SFT stage in ``finetuning.py``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aligngym.agents.react.agent import (
    AgentConfig,
    ReActAgent,
    Trajectory,
    evaluate_policy,
    trajectory_metrics,
)
from aligngym.agents.react.finetuning import supervised_finetune
from aligngym.agents.react.models import EntityRenamer, entity_token_ids, load_policy, randomize_embeddings
from aligngym.agents.react.rankers import (
    JUDGE_TEXTS,
    JudgeRanker,
    OutcomeVerifier,
    Ranker,
    RewardModelRanker,
    relabel,
)
from aligngym.agents.react.rest_config import RestConfig, SFTSettings, check_resumable
from aligngym.agents.react.rest_data import read_jsonl, scripted_demonstrations, write_jsonl
from aligngym.alignment.models import (
    ModelSpec,
    load_causal_lm,
    load_reward_model,
    load_tokenizer,
    save_pretrained_atomic,
)
from aligngym.envs.text.knowledge_base import load_knowledge_base
from aligngym.files import atomic_write_json

logger = logging.getLogger(__name__)


class RestLoop:
    """Runs (or resumes) the stages in ``work_dir``; see the module docstring."""

    def __init__(self, config: RestConfig, seed: int, work_dir: Path):
        self.config, self.seed, self.work_dir = config, seed, Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        check_resumable(self.work_dir, config)
        seed_file = self.work_dir / "rest_seed.json"
        if seed_file.exists() and json.loads(seed_file.read_text())["seed"] != seed:
            raise ValueError(
                f"{self.work_dir} was run with seed {json.loads(seed_file.read_text())['seed']}, not {seed}"
            )
        atomic_write_json(seed_file, {"seed": seed})
        atomic_write_json(
            self.work_dir / "rest_config.json", json.loads(json.dumps(config.to_dict(), default=str))
        )
        kb_file = self.work_dir / "knowledge_base.json"
        if not kb_file.exists():
            load_knowledge_base(config.kb if config.kb is not None else config.knowledge_base).save(kb_file)
        self.kb = load_knowledge_base(kb_file)
        self.env_kwargs = {
            "knowledge_base": str(kb_file.resolve()),
            "top_k": config.top_k,
            "max_searches": config.max_searches,
        }
        self.renamer = EntityRenamer([e.name for e in self.kb.entities])

    def gen_dir(self, g: int) -> Path:
        return self.work_dir / f"gen_{g:02d}"

    # --- models -----------------------------------------------------------------------------------

    def _frozen_ids(self, spec: ModelSpec, tokenizer: PreTrainedTokenizerBase) -> list[int]:
        if not (spec.is_tiny and self.config.freeze_entity_embeddings):
            return []
        return entity_token_ids(tokenizer, self.kb)

    def _new_policy(self, spec: ModelSpec, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        model, tokenizer = load_policy(spec, self.kb, seed=seed, extra_texts=JUDGE_TEXTS)
        frozen = self._frozen_ids(spec, tokenizer)
        if frozen:
            randomize_embeddings(model, frozen, self.config.entity_embedding_std, seed)
        return model, tokenizer

    def _load(self, folder: Path, spec: ModelSpec) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """A checkpoint of this loop (a save_pretrained folder), loaded with ``spec``'s dtype settings."""
        saved = ModelSpec(**{**asdict(spec), "name_or_path": str(folder.resolve()), "lora_r": 0})
        tokenizer = load_tokenizer(saved)
        return load_causal_lm(saved, tokenizer, seed=self.seed), tokenizer

    def _train(self, model, tokenizer, rows, settings: SFTSettings, spec: ModelSpec, seed: int, folder: Path):
        """SFT on ``rows`` (plus their entity-renamed copies) and an atomic checkpoint in ``folder/model``.

        Prompts get the agent's ``prompt_prefix``, so that training and inference see the same text."""
        rows = (
            self.renamer.augment(rows, self.config.rename_copies, seed) if self.config.rename_copies else rows
        )
        prefix = self.config.agent.prompt_prefix
        rows = [{"prompt": prefix + r["prompt"], "completion": r["completion"]} for r in rows]
        if not rows:
            logger.warning(
                "%s: no training examples (nothing verified); the model is kept as it was", folder.name
            )
            save_pretrained_atomic(model, tokenizer, folder / "model")
            return model
        logger.info("%s: SFT on %d examples", folder.name, len(rows))
        model = supervised_finetune(
            model,
            tokenizer,
            rows,
            settings,
            spec,
            seed,
            folder / "sft_log.json",
            frozen_token_ids=self._frozen_ids(spec, tokenizer),
        )
        save_pretrained_atomic(model, tokenizer, folder / "model")
        return model

    def _agent(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, samples: int) -> ReActAgent:
        if (
            torch.cuda.is_available()
            and model.device.type == "cpu"
            and getattr(model, "hf_device_map", None) is None
        ):
            model.to("cuda")
        settings = {**asdict(self.config.agent), "samples": samples, "temperature": self.config.temperature}
        return ReActAgent(model, tokenizer, AgentConfig(**settings))

    def _evaluate(self, folder: Path, model, tokenizer, seed_offset: int) -> dict[str, dict[str, float]]:
        path = folder / "scores.json"
        if path.exists():
            return json.loads(path.read_text())
        agent = self._agent(model, tokenizer, self.config.eval_samples)
        scores = evaluate_policy(
            agent,
            self.kb,
            self.env_kwargs,
            self.config.eval_splits,
            self.config.eval_questions,
            seed=self.seed * 1000 + seed_offset,
        )
        atomic_write_json(path, scores)
        return scores

    # --- stages -----------------------------------------------------------------------------------

    def demonstrations(self) -> list[dict[str, str]]:
        """Scripted-expert steps on ``config.demonstrations`` training questions (drawn with the seed)."""
        path = self.work_dir / "demonstrations.jsonl"
        if not path.exists():
            train = self.kb.questions("train")
            order = np.random.default_rng(self.seed).permutation(len(train))[: self.config.demonstrations]
            chosen = [train[i] for i in sorted(order)]
            write_jsonl(
                path,
                scripted_demonstrations(
                    self.env_kwargs["knowledge_base"], chosen, self.config.top_k, self.config.max_searches
                ),
            )
        return read_jsonl(path)

    def bootstrap(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict]:
        """Generation 0: the policy after SFT on the demonstrations (or as loaded, without any)."""
        folder, spec = self.gen_dir(0), self.config.policy
        if (folder / "model").is_dir():
            model, tokenizer = self._load(folder / "model", spec)
        else:
            model, tokenizer = self._new_policy(spec, self.seed)
            demos = self.demonstrations()
            if demos:
                model = self._train(model, tokenizer, demos, self.config.bootstrap, spec, self.seed, folder)
            else:
                save_pretrained_atomic(model, tokenizer, folder / "model")
        return model, tokenizer, self._evaluate(folder, model, tokenizer, 0)

    def _ranker(self, model, tokenizer, g: int) -> Ranker:
        if self.config.ranker == "outcome":
            return OutcomeVerifier(
                self._agent(model, tokenizer, 1), self.env_kwargs, seed=self.seed * 1000 + 500 + g
            )
        if self.config.ranker == "reward_model":
            spec = ModelSpec(name_or_path=self.config.ranker_model)
            rm_tokenizer = load_tokenizer(spec)
            return RewardModelRanker(load_reward_model(spec, rm_tokenizer), rm_tokenizer)
        if self.config.ranker_model:
            spec = ModelSpec(name_or_path=self.config.ranker_model)
            judge_tokenizer = load_tokenizer(spec)
            return JudgeRanker(load_causal_lm(spec, judge_tokenizer), judge_tokenizer)
        return JudgeRanker(model, tokenizer)

    def sample(self, g: int, model, tokenizer) -> list[Trajectory]:
        """Trajectories of the current policy on the training questions (growing batch)."""
        path = self.gen_dir(g) / "trajectories.jsonl"
        if path.exists():
            return [Trajectory.from_dict(r) for r in read_jsonl(path)]
        train = self.kb.questions("train")
        if self.config.questions_per_generation:
            order = np.random.default_rng(self.seed * 1000 + g).permutation(len(train))
            train = [train[i] for i in sorted(order[: self.config.questions_per_generation])]
        per_question = self.config.trajectories_per_question[
            min(g, len(self.config.trajectories_per_question)) - 1
        ]
        questions = [q for q in train for _ in range(per_question)]
        logger.info(
            "generation %d: sampling %d trajectories (K=%d)", g, len(questions), self.config.candidates
        )
        sampler = self._agent(model, tokenizer, self.config.candidates)
        trajectories = sampler.run_episodes(questions, self.env_kwargs, seed=self.seed * 1000 + 100 + g)
        write_jsonl(path, [t.to_dict() for t in trajectories])
        return trajectories

    def examples(self, g: int, model, tokenizer) -> list[dict[str, Any]]:
        """Generation g's relabelled per-step examples (and ``data_stats.json``)."""
        path = self.gen_dir(g) / "examples.jsonl"
        if not path.exists():
            trajectories = self.sample(g, model, tokenizer)
            rows, stats = relabel(trajectories, self.kb, self._ranker(model, tokenizer, g))
            sampled_on = [self.kb.question_by_id[t.question_id] for t in trajectories]
            stats |= {f"sampled_{k}": v for k, v in trajectory_metrics(trajectories, sampled_on).items()}
            write_jsonl(path, rows)
            atomic_write_json(self.gen_dir(g) / "data_stats.json", stats)
        return read_jsonl(path)

    def generation(self, g: int, model, tokenizer) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict]:
        """Sample, rank, fine-tune on the mix, evaluate."""
        folder = self.gen_dir(g)
        if (folder / "model").is_dir():
            model, tokenizer = self._load(folder / "model", self.config.policy)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            self.examples(g, model, tokenizer)
            model = self._train(
                model,
                tokenizer,
                self.training_mix(g),
                self.config.finetune,
                self.config.policy,
                self.seed * 1000 + g,
                folder,
            )
        return model, tokenizer, self._evaluate(folder, model, tokenizer, g)

    def training_mix(self, g: int) -> list[dict[str, str]]:
        """Demonstrations plus the relabelled examples of generations 1..g."""
        rows = [{"prompt": r["prompt"], "completion": r["completion"]} for r in self.demonstrations()]
        for h in range(1, g + 1):
            rows += [
                {"prompt": r["prompt"], "completion": r["completion"]}
                for r in read_jsonl(self.gen_dir(h) / "examples.jsonl")
            ]
        return rows

    def variant(
        self, name: str, rows: list[dict[str, str]], settings: SFTSettings, student: bool = False
    ) -> dict[str, dict[str, float]]:
        """Scores of a model trained on ``rows`` for ``settings.max_steps`` steps, kept in ``work_dir/name``:
        generation 0 trained further, or with ``student`` a fresh ``config.student`` (resumes like every stage).

        Every policy variant shares one SFT seed, every student another, so variants differ only in their data.
        """
        folder = self.work_dir / name
        spec = self.config.student if student else self.config.policy
        if spec is None:
            raise ValueError(f"variant {name!r} needs a student model, and the config has none")
        offset = 99 if student else 98
        if (folder / "model").is_dir():
            model, tokenizer = self._load(folder / "model", spec)
        else:
            if student:
                model, tokenizer = self._new_policy(spec, self.seed + 1)
            else:
                model, tokenizer = self._load(self.gen_dir(0) / "model", spec)
            model = self._train(model, tokenizer, rows, settings, spec, self.seed * 1000 + offset, folder)
        if student:
            self.student_parameters = sum(p.numel() for p in model.parameters())
        return self._evaluate(folder, model, tokenizer, offset)

    def distillation(self) -> dict | None:
        """A fresh (smaller) student trained on the same mix as the last generation."""
        if self.config.student is None:
            return None
        mix = self.training_mix(self.config.generations)
        return self.variant("distilled", mix, self.config.distill, student=True)

    def demonstrations_only_control(self) -> dict | None:
        """Generation 0 trained further on the demonstrations alone (same steps and learning rate as the generations)."""
        if not self.config.control or self.config.generations == 0:
            return None
        steps = self.config.finetune.max_steps * self.config.generations
        settings = SFTSettings(**{**asdict(self.config.finetune), "max_steps": steps})
        return self.variant("control", self.training_mix(0), settings)

    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        model, tokenizer, scores = self.bootstrap()
        history = {"gen_00": scores}
        parameters = {"policy_parameters": sum(p.numel() for p in model.parameters())}
        for g in range(1, self.config.generations + 1):
            model, tokenizer, history[f"gen_{g:02d}"] = self.generation(g, model, tokenizer)
        control = self.demonstrations_only_control()
        if control is not None:
            history["control"] = control
        distilled = self.distillation()
        if distilled is not None:
            history["distilled"] = distilled
            parameters["student_parameters"] = self.student_parameters
        summary: dict[str, Any] = {"work_dir": str(self.work_dir), **parameters}
        for stage, split_scores in history.items():
            for split, metrics in split_scores.items():
                summary[f"{stage}_{split}_success"] = metrics["success"]
        summary["wall_s"] = round(time.perf_counter() - start, 1)
        atomic_write_json(self.work_dir / "rest_summary.json", summary | {"history": history})
        return summary


def train_rest(config: RestConfig, seed: int, run_dir: Path) -> dict[str, Any]:
    """The ``rest`` job: run the loop in ``run_dir`` (or resume it in ``config.resume_from``)."""
    work_dir = Path(config.resume_from) if config.resume_from else Path(run_dir)
    return RestLoop(config, seed, work_dir).run()
