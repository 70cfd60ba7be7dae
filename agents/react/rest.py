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
policy's trajectories). Every generation's data (``trajectories.jsonl``, ``examples.jsonl``), checkpoint
(``model/``, save_pretrained + safetensors) and scores (``scores.json``) are written atomically into
``gen_XX/`` of the work folder; a stage whose output exists is skipped, so a killed loop resumes where it
stopped (``resume_from=<run folder>``).

Rankers (``ranker``):
- ``outcome`` (default, CPU): an outcome verifier that uses the gold answer. A ``Finish`` candidate scores
  its exact match; a ``Search`` candidate scores the exact match that the current policy reaches when it
  continues greedily from it. Only steps whose best candidate reaches the gold answer are kept.
- ``reward_model``: a scalar reward model (``ranker_model``: any sequence-classification folder, e.g. one
  trained with the alignment reward trainer) scores transcript + candidate; every step is kept.
- ``judge``: an LLM judge (``ranker_model``, default the policy itself) sees the transcript and the K
  numbered candidates and is scored on the number it would name as best, as in the paper.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from aligngym.agents.react.agent import AgentConfig, ReActAgent, Trajectory, trajectory_metrics
from aligngym.agents.react.expert import ScriptedExpert
from aligngym.agents.react.models import (
    EntityRenamer,
    entity_token_ids,
    freeze_embeddings,
    load_policy,
    randomize_embeddings,
)
from aligngym.alignment.models import (
    ModelSpec,
    load_causal_lm,
    load_reward_model,
    load_tokenizer,
    save_pretrained_atomic,
)
from aligngym.envs.text.knowledge_base import (
    KnowledgeBase,
    KnowledgeBaseConfig,
    Question,
    load_knowledge_base,
)
from aligngym.envs.text.react import ReActQAEnv, StepError, exact_match, parse_step
from aligngym.files import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

RANKERS = ("outcome", "reward_model", "judge")
JUDGE_INTRO = "Candidate next steps:"
JUDGE_QUESTION = "The best candidate is ("
# Fixed texts of the judge prompt: a tiny policy's vocabulary includes them.
JUDGE_TEXTS = (JUDGE_INTRO, JUDGE_QUESTION, " ".join(f"({i})" for i in range(1, 10)))


@dataclass
class SFTSettings:
    """One TRL SFT stage (fixed number of optimizer steps, so CPU time is predictable)."""

    max_steps: int = 300
    batch_size: int = 32
    learning_rate: float = 3e-3
    lr_scheduler: str = "cosine"
    warmup_steps: int = 20
    weight_decay: float = 0.0
    max_length: int = 1024
    """Longest training sequence in tokens (transcript + step)."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


@dataclass
class RestConfig:
    """Everything the ``rest`` job does: task, policies, bootstrap, generations, ranker, distillation."""

    knowledge_base: str = "default"
    """A knowledge-base JSON path, or ``default`` (the instance shipped with the package)."""
    kb: KnowledgeBaseConfig | None = None
    """Generate a knowledge base from this config instead of loading ``knowledge_base``."""
    top_k: int = 1
    """Search results shown per search."""
    max_searches: int = 5
    policy: ModelSpec = field(
        default_factory=lambda: ModelSpec(tiny_hidden_size=64, tiny_layers=2, tiny_heads=4)
    )
    """The policy: ``tiny`` (word-level tiny Llama, offline) or any causal-LM folder / hub id."""
    student: ModelSpec | None = None
    """Smaller model trained on the policy's data (self-distillation); None skips distillation."""
    demonstrations: int = 150
    """Training questions with a scripted demonstration (the bootstrap SFT data; 0 skips the bootstrap)."""
    bootstrap: SFTSettings = field(default_factory=lambda: SFTSettings(max_steps=1200, warmup_steps=50))
    finetune: SFTSettings = field(default_factory=lambda: SFTSettings(max_steps=300, learning_rate=1e-3))
    """The SFT stage of every generation (continues from the previous generation's weights)."""
    distill: SFTSettings = field(default_factory=lambda: SFTSettings(max_steps=900, warmup_steps=50))
    generations: int = 2
    questions_per_generation: int = 0
    """Training questions sampled per generation (0 = all)."""
    trajectories_per_question: list[int] = field(default_factory=lambda: [1, 2])
    """Episodes per question in generation 1, 2, ... (the last value repeats): the growing batch."""
    freeze_entity_embeddings: bool = True
    """Tiny policies only: entity-name embeddings are frozen random vectors (see react_models.freeze_embeddings)."""
    entity_embedding_std: float = 0.5
    """Standard deviation of those frozen vectors."""
    rename_copies: int = 4
    """Each SFT example is also trained in this many entity-renamed versions (0 for a pretrained model)."""
    candidates: int = 4
    """K: samples per step; the lowest-perplexity one continues, the ranker picks the target among them."""
    temperature: float = 0.8
    ranker: Literal["outcome", "reward_model", "judge"] = "outcome"
    ranker_model: str | None = None
    """Folder / hub id of the reward model (ranker=reward_model) or judge (ranker=judge; default: the policy)."""
    eval_splits: list[str] = field(default_factory=lambda: ["dev", "test"])
    eval_questions: int = 0
    """Questions per evaluation split (0 = all)."""
    eval_samples: int = 1
    """Candidates per step at evaluation (1 = greedy)."""
    agent: AgentConfig = field(default_factory=AgentConfig)
    """Decoding settings shared by sampling and evaluation (samples/temperature are set per use)."""
    control: bool = False
    """Also fine-tune generation 0 on the demonstrations alone for as many steps as all generations took:
    separates the effect of ReST's self-generated data from that of more training steps."""
    resume_from: str | None = None
    """A previous run folder of this job: finished stages are reused, the rest runs."""

    def __post_init__(self) -> None:
        if self.ranker not in RANKERS:
            raise ValueError(f"ranker {self.ranker!r} is not valid; valid choices: {', '.join(RANKERS)}")
        if self.ranker == "reward_model" and not self.ranker_model:
            raise ValueError(
                "ranker=reward_model needs ranker_model (a sequence-classification folder or hub id)"
            )
        if self.generations < 0 or self.demonstrations < 0 or self.questions_per_generation < 0:
            raise ValueError("generations, demonstrations and questions_per_generation must be >= 0")
        if not self.trajectories_per_question or min(self.trajectories_per_question) < 1:
            raise ValueError(
                f"trajectories_per_question must be a non-empty list of ints >= 1, got {self.trajectories_per_question}"
            )
        if self.rename_copies < 0 or self.entity_embedding_std <= 0:
            raise ValueError("rename_copies must be >= 0 and entity_embedding_std > 0")
        if self.candidates < 1 or self.eval_samples < 1:
            raise ValueError("candidates and eval_samples must be >= 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        bad = [s for s in self.eval_splits if s not in ("train", "dev", "test")]
        if bad:
            raise ValueError(f"eval split {bad[0]!r} is not valid; valid choices: train, dev, test")
        if self.demonstrations == 0 and self.policy.is_tiny:
            raise ValueError("a tiny policy starts untrained: it needs demonstrations > 0 for the bootstrap")
        if self.resume_from is not None:
            if not (Path(self.resume_from) / "rest_config.json").is_file():
                raise ValueError(
                    f"resume_from {self.resume_from!r} is not a rest run folder (no rest_config.json)"
                )
            check_resumable(Path(self.resume_from), self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_resumable(work_dir: Path, config: RestConfig) -> None:
    """Refuse to continue a loop in ``work_dir`` that was started with other settings (``resume_from`` aside)."""
    saved = work_dir / "rest_config.json"
    if not saved.is_file():
        return
    mine = json.loads(json.dumps(config.to_dict(), default=str))
    theirs = json.loads(saved.read_text())
    changed = sorted(
        k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k) and k != "resume_from"
    )
    if changed:
        raise ValueError(f"{str(work_dir)!r} was run with other settings: {', '.join(changed)}")


# --- data -------------------------------------------------------------------------------------------


def scripted_demonstrations(
    kb_path: str, questions: Sequence[Question], top_k: int, max_searches: int
) -> list[dict[str, str]]:
    """Per-step ``{"prompt", "completion"}`` examples from the scripted expert on ``questions``."""
    expert = ScriptedExpert()
    rows = []
    for question in questions:
        env = ReActQAEnv(split=question.split, knowledge_base=kb_path, top_k=top_k, max_searches=max_searches)
        env.reset(options={"question_id": question.id})
        demo = expert.run_episode(env)
        rows += [{"prompt": p, "completion": s} for p, s in zip(demo.prompts, demo.steps)]
    return rows


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line]


# --- rankers ----------------------------------------------------------------------------------------


@dataclass
class RankItem:
    """One step to relabel: its transcript, the steps before it, its K candidates, and its question."""

    question: Question
    prefix: list[str]
    prompt: str
    candidates: list[str]
    perplexities: list[float]


class Ranker:
    """Scores the K candidates of each step (higher is better); ``min_score`` drops steps whose best
    candidate scores lower (None keeps every step)."""

    min_score: float | None = None

    def score(self, items: Sequence[RankItem]) -> list[list[float]]:
        raise NotImplementedError

    def select(self, items: Sequence[RankItem]) -> list[tuple[int | None, list[float]]]:
        """The index of each step's best candidate (ties: lowest perplexity), or None when dropped."""
        out = []
        for item, scores in zip(items, self.score(items)):
            best = max(range(len(scores)), key=lambda i: (scores[i], -item.perplexities[i]))
            keep = self.min_score is None or scores[best] >= self.min_score
            out.append((best if keep else None, scores))
        return out


def canonical_step(text: str) -> str | None:
    """The env's canonical text of a step, or None when it does not parse."""
    try:
        return parse_step(text).text()
    except StepError:
        return None


class OutcomeVerifier(Ranker):
    """Scores a candidate by the exact match its episode reaches: directly for Finish, by a greedy rollout
    of ``agent`` for Search (rollouts are shared between identical states). Uses the gold answer."""

    min_score = 1.0

    def __init__(self, agent: ReActAgent, env_kwargs: dict[str, Any], seed: int = 0):
        self.agent = agent
        self.env_kwargs = env_kwargs
        self.seed = seed

    def score(self, items: Sequence[RankItem]) -> list[list[float]]:
        scores: list[list[float]] = []
        pending: dict[tuple[str, tuple[str, ...]], list[tuple[int, int]]] = {}
        for i, item in enumerate(items):
            row = []
            for j, candidate in enumerate(item.candidates):
                step = canonical_step(candidate)
                if step is None:
                    row.append(0.0)
                elif parse_step(step).kind == "finish":
                    row.append(exact_match(parse_step(step).argument, item.question.answer))
                else:
                    row.append(math.nan)
                    pending.setdefault((item.question.id, (*item.prefix, step)), []).append((i, j))
            scores.append(row)
        if pending:
            keys = list(pending)
            questions = {item.question.id: item.question for item in items}
            rollouts = self.agent.run_episodes(
                [questions[qid] for qid, _ in keys],
                self.env_kwargs,
                seed=self.seed,
                prefixes=[p for _, p in keys],
                samples=1,
            )
            for key, rollout in zip(keys, rollouts):
                for i, j in pending[key]:
                    scores[i][j] = rollout.reward
        return scores


class RewardModelRanker(Ranker):
    """A scalar reward model scores ``transcript + candidate`` (no gold answer is used)."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 32):
        self.model, self.tokenizer, self.batch_size = model, tokenizer, batch_size

    @torch.no_grad()
    def score(self, items: Sequence[RankItem]) -> list[list[float]]:
        texts = [item.prompt + c for item in items for c in item.candidates]
        values: list[float] = []
        self.model.eval()
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(texts[start : start + self.batch_size], return_tensors="pt", padding=True)
            values += self.model(**enc.to(self.model.device)).logits[:, 0].float().tolist()
        out, k = [], 0
        for item in items:
            out.append(values[k : k + len(item.candidates)])
            k += len(item.candidates)
        return out


class JudgeRanker(Ranker):
    """An LLM judge: the transcript, the numbered candidates, then ``The best candidate is (``; a candidate
    scores the judge's log-probability of its number (no gold answer is used)."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        self.model, self.tokenizer = model, tokenizer

    def prompt(self, item: RankItem) -> str:
        lines = [f"({i}) {c}" for i, c in enumerate(item.candidates, start=1)]
        return item.prompt + JUDGE_INTRO + "\n" + "\n".join(lines) + "\n" + JUDGE_QUESTION

    @torch.no_grad()
    def score(self, items: Sequence[RankItem]) -> list[list[float]]:
        self.tokenizer.padding_side = "left"
        out = []
        self.model.eval()
        for item in items:
            enc = self.tokenizer([self.prompt(item)], return_tensors="pt").to(self.model.device)
            logp = torch.log_softmax(self.model(**enc).logits[0, -1].float(), dim=-1)
            ids = [
                self.tokenizer.encode(str(i), add_special_tokens=False)[0]
                for i in range(1, len(item.candidates) + 1)
            ]
            out.append([float(logp[i]) for i in ids])
        return out


# --- training and evaluation ------------------------------------------------------------------------


def supervised_finetune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[dict[str, str]],
    settings: SFTSettings,
    spec: ModelSpec,
    seed: int,
    log_path: Path | None = None,
    frozen_token_ids: Sequence[int] = (),
) -> PreTrainedModel:
    """TRL ``SFTTrainer`` on prompt/completion rows (loss on the completion only); LoRA when ``spec.lora_r``;
    the embeddings of ``frozen_token_ids`` get no gradient."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    with tempfile.TemporaryDirectory(prefix="aligngym-sft-") as out:
        args = SFTConfig(
            output_dir=out,
            max_steps=settings.max_steps,
            per_device_train_batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            lr_scheduler_type=settings.lr_scheduler,
            warmup_steps=settings.warmup_steps,
            weight_decay=settings.weight_decay,
            max_length=settings.max_length,
            logging_steps=max(1, settings.max_steps // 10),
            save_strategy="no",
            report_to="none",
            use_cpu=not torch.cuda.is_available(),
            bf16=spec.bf16(),
            activation_checkpointing=False,
            seed=seed,
            data_seed=seed,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(list(rows)),
            processing_class=tokenizer,
            peft_config=spec.peft_config(),
        )
        if frozen_token_ids:
            freeze_embeddings(trainer.model, frozen_token_ids)
        trainer.train()
        if log_path is not None:
            atomic_write_json(log_path, trainer.state.log_history)
        trained = trainer.model
    if hasattr(trained, "merge_and_unload"):
        trained = trained.merge_and_unload()
    return trained


def evaluate_policy(
    agent: ReActAgent,
    kb: KnowledgeBase,
    env_kwargs: dict[str, Any],
    splits: Sequence[str] = ("dev", "test"),
    questions_per_split: int = 0,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Closed-loop success (exact match) etc. on each split (the first ``questions_per_split``; 0 = all)."""
    scores = {}
    for split in splits:
        questions = kb.questions(split)
        if questions_per_split:
            questions = questions[:questions_per_split]
        trajectories = agent.run_episodes(questions, env_kwargs, seed=seed)
        scores[split] = trajectory_metrics(trajectories, questions)
    return scores


def relabel(
    trajectories: Sequence[Trajectory], kb: KnowledgeBase, ranker: Ranker
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Per-step examples whose target is the ranker's best candidate (deduplicated), and statistics."""
    items = []
    for trajectory in trajectories:
        question = kb.question_by_id[trajectory.question_id]
        prefix: list[str] = []
        for step in trajectory.steps:
            items.append(RankItem(question, list(prefix), step.prompt, step.candidates, step.perplexities))
            prefix.append(step.text)
    selections = ranker.select(items)
    seen, rows, relabelled = set(), [], 0
    for item, (best, scores) in zip(items, selections):
        if best is None:
            continue
        target = canonical_step(item.candidates[best]) or item.candidates[best]
        chosen = min(range(len(item.candidates)), key=lambda c: item.perplexities[c])
        relabelled += best != chosen
        if (item.prompt, target) in seen:
            continue
        seen.add((item.prompt, target))
        rows.append(
            {"prompt": item.prompt, "completion": target, "question_id": item.question.id, "scores": scores}
        )
    stats = {
        "steps": float(len(items)),
        "kept_steps": float(sum(b is not None for b, _ in selections)),
        "relabelled_steps": float(relabelled),
        "examples": float(len(rows)),
    }
    return rows, stats


# --- the loop ---------------------------------------------------------------------------------------


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

    def distillation(self) -> dict | None:
        """A fresh (smaller) student trained on the same mix as the last generation."""
        spec = self.config.student
        if spec is None:
            return None
        folder = self.work_dir / "distilled"
        if (folder / "model").is_dir():
            model, tokenizer = self._load(folder / "model", spec)
        else:
            model, tokenizer = self._new_policy(spec, self.seed + 1)
            model = self._train(
                model,
                tokenizer,
                self.training_mix(self.config.generations),
                self.config.distill,
                spec,
                self.seed * 1000 + 99,
                folder,
            )
        self.student_parameters = sum(p.numel() for p in model.parameters())
        return self._evaluate(folder, model, tokenizer, 99)

    def demonstrations_only_control(self) -> dict | None:
        """Generation 0 trained further on the demonstrations alone (same steps and learning rate as the generations)."""
        if not self.config.control or self.config.generations == 0:
            return None
        folder = self.work_dir / "control"
        spec = self.config.policy
        if (folder / "model").is_dir():
            model, tokenizer = self._load(folder / "model", spec)
        else:
            model, tokenizer = self._load(self.gen_dir(0) / "model", spec)
            settings = SFTSettings(
                **{
                    **asdict(self.config.finetune),
                    "max_steps": self.config.finetune.max_steps * self.config.generations,
                }
            )
            model = self._train(
                model, tokenizer, self.training_mix(0), settings, spec, self.seed * 1000 + 98, folder
            )
        return self._evaluate(folder, model, tokenizer, 98)

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
